/**
 * Calling the application's transport callbacks. Whatever the application's
 * `onmessage` throws goes to its `onerror`, never back into the code that read the
 * peer's bytes; an `onerror` that throws has nowhere left to report to.
 */
import { asError } from './errors.ts';
import type { JSONRPCMessage } from './jsonrpc.ts';
import type { MessageExtraInfo } from './transport.ts';

interface Reports {
  onerror?: ((error: Error) => void) | undefined;
}

interface Delivers extends Reports {
  onmessage?: ((message: JSONRPCMessage, extra?: MessageExtraInfo) => void) | undefined;
}

export function reportTo(target: Reports, error: unknown): void {
  const onerror = target.onerror;
  if (onerror === undefined) return;
  try {
    onerror(asError(error));
  } catch {
    // Nowhere left to report to.
  }
}

export function deliverTo(target: Delivers, message: JSONRPCMessage, extra?: MessageExtraInfo): void {
  const onmessage = target.onmessage;
  if (onmessage === undefined) return;
  try {
    onmessage(message, extra);
  } catch (error) {
    reportTo(target, error);
  }
}
