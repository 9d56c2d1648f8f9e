import { expect } from "chai";
import { mochaFailures, runStages, type Stage } from "../../scripts/test/runner";
import { STAGES } from "../../scripts/test/main";

const node = (name: string, code: string): Stage => ({ name, what: `fake stage ${name}`, command: process.execPath, args: ["-e", code] });

/** Runs the stages, capturing everything the runner prints. */
async function run(stages: Stage[]): Promise<{ code: number; out: string }> {
  let out = "";
  const code = await runStages(stages, { write: (t) => (out += t) });
  return { code, out };
}

describe("npm test's stage runner", function () {
  it("announces each stage, and ends with a summary when all pass (exit 0)", async function () {
    const { code, out } = await run([node("one", "console.log('hello')"), node("two", "")]);
    expect(code).to.equal(0);
    expect(out).to.match(/==> \[1\/2\] one: fake stage one\n/);
    expect(out).to.match(/==> \[2\/2\] two: fake stage two\n/);
    expect(out).to.contain("hello");
    expect(out.trimEnd().split("\n").pop()).to.match(/^npm test passed: 2 stages in [0-9.]+ s \(load average [0-9. ]+\)\.$/);
  });

  it("stops at the first failure, whose verdict and exit code are the last thing printed", async function () {
    const failing = node(
      "tests",
      "console.log('  1 passing\\n  1 failing\\n\\n  1) suite\\n       breaks:\\n     Error: boom'); console.log('Lines ' + ': 100% (a healthy-looking summary)'); process.exit(3)",
    );
    const { code, out } = await run([node("first", ""), failing, node("never", "console.log('ran')")]);
    expect(code).to.equal(3);
    expect(out).to.not.contain("ran\n");
    expect(out).to.match(/skip  never/);
    expect(out).to.match(/Failing tests in tests:\n\s+1 failing\n\n\s+1\) suite\n\s+breaks:\n\s+Error: boom/);
    const last = out.trimEnd().split("\n").pop();
    expect(last).to.match(/^npm test FAILED at stage "tests" \(exit code 3\) after [0-9.]+ s\. Re-run it alone with: /);
    // The summary comes after the stage's own last words, and quotes only the failing tests.
    expect(out.indexOf("Lines : 100%")).to.be.lessThan(out.indexOf("==> Summary"));
    expect(out.slice(out.indexOf("==> Summary"))).to.not.contain("Lines : 100%");
  });

  it("says when a stage was killed by a signal, and exits 128 + its number", async function () {
    const { code, out } = await run([node("killed", "process.kill(process.pid, 'SIGTERM'); setTimeout(() => {}, 5000)")]);
    expect(code).to.equal(143);
    expect(out).to.contain('(stage "killed" was killed by SIGTERM)');
    expect(out.trimEnd().split("\n").pop()).to.match(/^npm test FAILED at stage "killed" \(exit code 143\)/);
  });

  it("reports a command that cannot start as a failure", async function () {
    const { code, out } = await run([{ name: "missing", what: "no such program", command: "/nonexistent/program", args: [] }]);
    expect(code).to.not.equal(0);
    expect(out.trimEnd().split("\n").pop()).to.match(/^npm test FAILED at stage "missing"/);
  });

  it("extracts mocha's failing-test list, or nothing", function () {
    expect(mochaFailures("a\n  2 failing\n\n  1) x\n")).to.equal("  2 failing\n\n  1) x");
    expect(mochaFailures("\u001b[31m  1 failing\u001b[0m\n  1) y")).to.equal("  1 failing\n  1) y");
    expect(mochaFailures("all good")).to.equal("");
  });

  it("runs compile, typecheck, lint, tests, coverage and the coverage gate, sizing the coverage run down", function () {
    expect(STAGES.map((s) => s.name)).to.deep.equal(["compile", "typecheck", "lint", "tests", "coverage", "coverage-gate"]);
    const coverage = STAGES.find((s) => s.name === "coverage")!;
    expect(Number(coverage.env?.FC_RUNS)).to.be.lessThan(40);
    expect(Number(coverage.env?.DIFF_ROUNDS)).to.be.lessThan(24);
    // Instrumented artifacts go elsewhere, so nothing recompiles after npm test.
    expect(coverage.env?.PREFLIGHT_COVERAGE).to.equal("1");
    expect(STAGES.find((s) => s.name === "tests")!.args).to.include("--no-compile");
  });
});
