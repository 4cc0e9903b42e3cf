import { parseArgs } from 'node:util';

/** A mistake on the command line: printed with the command's name, exit code 2. */
export class UsageError extends Error {
  readonly command: string | undefined;
  constructor(message: string, command?: string) {
    super(message);
    this.name = 'UsageError';
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

