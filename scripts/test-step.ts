/** One step of `npm test` (scripts/run-tests.ts) and what it counts. */
export interface Result {
  passed: number;
  failed: number;
}

export interface Step {
  name: string;
  /** This step's own deadline in minutes (the run's remaining time caps it). */
  deadlineMin: number;
  run(deadline: number): Promise<Result>;
}
