/** CLI failures: one line for the user, and an exit code. */
/** Exit codes, one table (docs/cli.md): "worst" over nodes is blocked > errorFindings > wouldKill > ok. */
export const EXIT = { ok: 0, error: 1, usage: 2, wouldKill: 3, blocked: 4, errorFindings: 5, timedOut: 6, planChanged: 7, rolloutHalted: 8 } as const;

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
