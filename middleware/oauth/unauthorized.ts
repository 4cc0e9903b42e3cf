/** The one error the oauth layer raises; every part of the token machinery throws it. */
import { brand } from '../../src/core/brand.ts';
import { ErrorCode, McpLayersError, type McpLayersErrorOptions } from '../../src/core/errors.ts';

/** Credentials were missing, rejected, or could not be refreshed. */
export class UnauthorizedError extends McpLayersError<number> {
  static {
    brand(this, 'error.UnauthorizedError');
  }

  constructor(message: string, options: McpLayersErrorOptions = {}) {
    super(ErrorCode.Unauthorized, message, { layer: 'oauth', reason: 'unauthorized', ...options });
  }
}
