import { parseArgs } from 'node:util';
import { brand } from '../../core/brand.ts';
import { McpLayersError, SetupErrorCode, type SetupErrorCodeValue } from '../../core/errors.ts';

/** Exit codes of every command: failed while running; invalid arguments or configuration (nothing was started). */
export const EXIT_FAILED = 1;
export const EXIT_INVALID = 2;

/** A mistake on the command line: printed with the command's name, exit code 2. */
export class UsageError extends McpLayersError<SetupErrorCodeValue> {
  static {
    brand(this, 'error.UsageError');
  }

  readonly command: string | undefined;
  constructor(message: string, command?: string) {
    super(SetupErrorCode.Usage, message, { layer: 'cli', reason: 'usage' });
    this.command = command;
  }
}

type Spec = NonNullable<Parameters<typeof parseArgs>[0]>['options'];

/** node:util parseArgs, with its errors turned into usage errors that name the command. */
export function parse(argv: readonly string[], options: Spec, command: string, positionals: boolean): { values: Record<string, unknown>; positionals: string[] } {
  try {
    const parsed = parseArgs({ args: [...argv], options, allowPositionals: positionals, strict: true });
    return { values: parsed.values as Record<string, unknown>, positionals: parsed.positionals };
  } catch (error) {
    throw new UsageError((error as Error).message.replace(/\. To specify a positional argument.*$/s, ''), command);
  }
}

