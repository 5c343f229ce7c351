/** CLI failures: one line for the user, and an exit code. */
export const EXIT = { ok: 0, error: 1, usage: 2, wouldKill: 3 } as const;

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.error,
  ) {
    super(message);
    this.name = "CliError";
  }
}

export function usage(message: string): CliError {
  return new CliError(`${message} (see: beamdeck help)`, EXIT.usage);
}
