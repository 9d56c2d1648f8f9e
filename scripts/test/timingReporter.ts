/**
 * Mocha reporter for `npm test`: mocha's usual "spec" output, plus every test's and hook's
 * duration and timeout appended to the JSON file named by PREFLIGHT_TEST_TIMINGS, so the runner
 * can show the slowest tests against their timeouts (no test may use a third of its timeout).
 */
import fs from "node:fs";
import path from "node:path";
import Mocha from "mocha";

import type { Timing } from "./timings";

class TimingReporter extends Mocha.reporters.Spec {
  constructor(runner: Mocha.Runner, options: Mocha.MochaOptions) {
    super(runner, options);
    const out = process.env.PREFLIGHT_TEST_TIMINGS;
    const timings: Timing[] = [];
    const record = (r: Mocha.Runnable): void => {
      timings.push({ title: r.fullTitle(), file: path.relative(process.cwd(), r.file ?? ""), ms: r.duration ?? 0, timeoutMs: r.timeout() });
    };
    runner.on("test end", record);
    runner.on("hook end", record);
    runner.once("end", () => {
      if (out === undefined) return;
      fs.mkdirSync(path.dirname(out), { recursive: true });
      fs.writeFileSync(out, JSON.stringify(timings, null, 1) + "\n");
    });
  }
}

export = TimingReporter;
