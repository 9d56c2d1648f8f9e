import { expect } from "chai";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import hre from "hardhat";
import { TASK_TEST_GET_TEST_FILES } from "hardhat/builtin-tasks/task-names";
import { ROOT, fmtSeconds, mochaFailures, runStages, shownCommand, type Stage } from "../../scripts/test/runner";
import { COVERAGE_SUITES, INTEGRATION_DIR, STAGES } from "../../scripts/test/main";
import { createRequire } from "node:module";

/** The glob library solidity-coverage itself resolves --testfiles with (whichever version it depends on). */
const globby = createRequire(require.resolve("solidity-coverage/package.json"))("globby") as { sync(patterns: string[]): string[] };

const node = (name: string, code: string): Stage => ({ name, what: `fake stage ${name}`, command: process.execPath, args: ["-e", code] });

/** Runs the stages (one at a time unless told), capturing everything the runner prints. */
async function run(stages: Stage[], jobs = 1): Promise<{ code: number; out: string }> {
  let out = "";
  const code = await runStages(stages, { write: (t) => (out += t), jobs });
  return { code, out };
}

/**
 * A fake stage that writes `mine`, then waits (up to 20 s) for `theirs`: two of them can only both
 * finish in time if they run at the same time.
 */
const rendezvous = (name: string, mine: string, theirs: string): Stage =>
  node(
    name,
    `const fs = require("fs"); fs.writeFileSync(${JSON.stringify(mine)}, ""); const t0 = Date.now();
     const poll = () => fs.existsSync(${JSON.stringify(theirs)}) ? console.log("met") : Date.now() - t0 > 20000 ? process.exit(7) : setTimeout(poll, 20);
     poll();`,
  );

const tmpFile = (tag: string): string => path.join(os.tmpdir(), `runner-${process.pid}-${Date.now()}-${tag}`);

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

  it("writes durations as seconds, then minutes and whole seconds (never 60 of them)", function () {
    expect([fmtSeconds(12.34), fmtSeconds(61.2), fmtSeconds(479.6), fmtSeconds(539.4)]).to.deep.equal(["12.3 s", "1 min 1 s", "8 min 0 s", "8 min 59 s"]);
  });

  it("extracts mocha's failing-test list, or nothing", function () {
    expect(mochaFailures("a\n  2 failing\n\n  1) x\n")).to.equal("  2 failing\n\n  1) x");
    expect(mochaFailures("\u001b[31m  1 failing\u001b[0m\n  1) y")).to.equal("  1 failing\n  1) y");
    expect(mochaFailures("all good")).to.equal("");
  });

  it("runs two independent stages side by side, each output line tagged with its stage", async function () {
    this.timeout(60_000);
    const [a, b] = [tmpFile("a"), tmpFile("b")];
    try {
      const { code, out } = await run([rendezvous("left", a, b), rendezvous("right", b, a)], 2);
      expect(code).to.equal(0);
      // Whichever finishes second may be alone by then (untagged); the first is tagged for sure.
      expect(out).to.match(/^\[(left |right)\] met$/m);
      expect(out.match(/^(\[(left |right)\] )?met$/gm)).to.have.length(2);
      expect(out).to.match(/beside left/);
    } finally {
      for (const f of [a, b]) fs.rmSync(f, { force: true });
    }
  });

  it("starts a stage only after the stages it waits on passed", async function () {
    this.timeout(60_000);
    const marker = tmpFile("first");
    const first = node("first", `setTimeout(() => require("fs").writeFileSync(${JSON.stringify(marker)}, ""), 300)`);
    const second = { ...node("second", `process.exit(require("fs").existsSync(${JSON.stringify(marker)}) ? 0 : 9)`), after: ["first"] };
    try {
      const { code } = await run([second, first], 2);
      expect(code).to.equal(0);
    } finally {
      fs.rmSync(marker, { force: true });
    }
    // A failed prerequisite means the stage never starts.
    const { code, out } = await run([node("broken", "process.exit(4)"), { ...node("needs", "console.log('ran')"), after: ["broken"] }], 2);
    expect(code).to.equal(4);
    expect(out).to.not.contain("ran\n");
    expect(out).to.match(/skip  needs/);
  });

  it("stops a stage running beside one that fails, and still ends with the failure's verdict", async function () {
    this.timeout(60_000);
    const slow = node("slow", "setTimeout(() => console.log('slow finished'), 30000)");
    const started = Date.now();
    const { code, out } = await run([slow, node("quick", "setTimeout(() => process.exit(5), 300)")], 2);
    expect(code).to.equal(5);
    expect(Date.now() - started).to.be.lessThan(20_000);
    expect(out).to.not.match(/^(\[slow \] )?slow finished$/m);
    expect(out).to.match(/stop  slow/);
    expect(out.trimEnd().split("\n").pop()).to.match(/^npm test FAILED at stage "quick" \(exit code 5\)/);
  });

  it("refuses a stage graph that cannot run", async function () {
    await expectRejection(run([{ ...node("a", ""), after: ["b"] }, { ...node("b", ""), after: ["a"] }]), /wait on each other: a -> b -> a/);
    await expectRejection(run([node("a", ""), node("a", "")]), /Two stages are named "a"/);
  });

  it("runs compile and lint first, the tests after typecheck and lint, coverage beside them, on the contract suites", function () {
    // integration comes last, so it takes the slot the coverage run and its gate free.
    expect(STAGES.map((s) => s.name)).to.deep.equal(["compile", "typecheck", "lint", "tests", "coverage", "coverage-gate", "integration"]);
    const after = Object.fromEntries(STAGES.map((s) => [s.name, s.after ?? []]));
    expect(after).to.deep.equal({
      compile: [],
      typecheck: ["compile"],
      lint: [],
      tests: ["typecheck", "lint"],
      coverage: ["compile"],
      "coverage-gate": ["coverage"],
      integration: ["typecheck", "lint"],
    });
    const coverage = STAGES.find((s) => s.name === "coverage")!;
    expect(Number(coverage.env?.FC_RUNS)).to.be.lessThan(40);
    expect(coverage.args).to.include(COVERAGE_SUITES);
    // solidity-coverage globs the same way: a pattern that matched nothing would run every test.
    const measured = globby.sync([COVERAGE_SUITES]);
    expect(measured).to.include.members(["test/core/Settlement.single.ts", "test/settlement/Preflight.settlePacked.ts", "test/invariants/Preflight.invariants.ts", "test/security/Review.v2.ts"]);
    expect(measured).to.not.include("test/settlement/Preflight.payerSignedRun.adversarial.ts");
    expect(measured.every((f) => /^test\/(core|security|settlement|invariants)\//.test(f))).to.equal(true);
    // Instrumented artifacts go elsewhere, so nothing recompiles after npm test.
    expect(coverage.env?.PREFLIGHT_COVERAGE).to.equal("1");
    expect(STAGES.find((s) => s.name === "tests")!.args).to.include("--no-compile");
  });

  it("runs every file `npx hardhat test` runs exactly once, in one of the two test stages", async function () {
    const filesOf = (name: string): string[] => {
      const args = STAGES.find((s) => s.name === name)!.args;
      expect(args.slice(0, 2)).to.deep.equal(["test", "--no-compile"]);
      return args.slice(2);
    };
    const [inProcess, integration] = [filesOf("tests"), filesOf("integration")];
    expect(integration.length).to.be.greaterThan(0);
    expect(integration.every((f) => f.startsWith(`${INTEGRATION_DIR}/`))).to.equal(true);
    expect(inProcess.some((f) => f.startsWith(`${INTEGRATION_DIR}/`))).to.equal(false);
    const hardhats = ((await hre.run(TASK_TEST_GET_TEST_FILES, { testFiles: [] })) as string[]).map((f) => path.relative(ROOT, f).split(path.sep).join("/"));
    expect([...inProcess, ...integration].sort()).to.deep.equal([...hardhats].sort());
    expect(hardhats).to.include("test/tooling/TestRunner.stages.ts");
  });

  it("cuts a long argument list short in the banner, and the verdict says how to re-run the stage", async function () {
    const long: Stage = { ...node("many", "process.exit(2)"), args: ["-e", "process.exit(2)", ...Array.from({ length: 20 }, (_, i) => `f${i}.ts`)], rerun: "rerun many alone" };
    expect(shownCommand(long)).to.equal(`${process.execPath} -e process.exit(2) f0.ts f1.ts ... (18 more)`);
    expect(shownCommand(node("few", ""))).to.equal(`${process.execPath} -e `);
    const { code, out } = await run([long]);
    expect(code).to.equal(2);
    expect(out).to.contain(`$ ${process.execPath} -e process.exit(2) f0.ts f1.ts ... (18 more)`);
    expect(out.trimEnd().split("\n").pop()).to.match(/Re-run it alone with: rerun many alone$/);
  });
});

async function expectRejection(p: Promise<unknown>, message: RegExp): Promise<void> {
  try {
    await p;
  } catch (e) {
    expect((e as Error).message).to.match(message);
    return;
  }
  expect.fail("expected a rejection");
}
