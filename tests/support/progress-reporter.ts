/**
 * A vitest reporter that keeps one small file saying which test file and test
 * run now (BEAMDECK_TEST_PROGRESS_FILE), so that scripts/run-tests.ts can say
 * what it was waiting on when a step passes its deadline.
 */
import fs from "node:fs";
import type { Reporter, TestCase, TestModule } from "vitest/node";

export default class ProgressReporter implements Reporter {
  private readonly file = process.env.BEAMDECK_TEST_PROGRESS_FILE;
  private module: string | null = null;

  private write(test: string | null): void {
    if (!this.file) return;
    try {
      fs.writeFileSync(this.file, JSON.stringify({ file: this.module, test, since: new Date().toISOString() }));
    } catch {
      /* a report is a help, never a failure */
    }
  }

  onTestModuleStart(m: TestModule): void {
    this.module = m.relativeModuleId;
    this.write(null);
  }

  onTestCaseReady(t: TestCase): void {
    this.module = t.module.relativeModuleId;
    this.write(t.fullName);
  }
}
