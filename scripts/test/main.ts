/**
 * `npm test`: every check the project makes, each with a banner, two at a time where their
 * prerequisites allow, stopping at the first failure, ending with a summary (the verdict is the last
 * thing printed and the exit code).
 *
 *   npm test                              # all stages
 *   npm run coverage                      # compile, then the coverage stages (coverage, gate)
 *   npx ts-node scripts/test/main.ts tests lint   # any stages by name (their prerequisites are not rerun)
 *
 * The order: compile and lint start together; typecheck needs the typechain types, so it follows
 * compile; the coverage run (its own instrumented build) starts beside typecheck; the tests follow
 * typecheck and lint. The tests are two mocha runs: the in-process suites (`tests`) and the suites
 * that start real nodes and run the command line and the demo (`integration`, test/integration/).
 * Both wait on the same stages; `integration` is listed last, so on two cores it takes the slot the
 * coverage run (and its gate) frees:
 * before the split, one core sat idle for the last third of the run (measured: 52% busy for 290 s).
 * On two cores the whole run costs about the compile plus the tests, shared between the two cores.
 *
 * The coverage run measures the contract suites on instrumented contracts: the suites that exercise
 * the contracts (core, security, settlement, invariants) reach every line and branch the whole suite
 * reaches, so the verifier, SDK, tooling, gateway and node suites, which only run the contracts as any
 * client does, are not repeated there. Nor is the attack on settlePacked's assembly walk
 * (Preflight.payerSignedRun.adversarial.ts): solidity-coverage does not instrument inline assembly,
 * and without it the run reaches the same lines and branches (572 of 572, 306 of 314) in half the time. Its property-based runs are sized down (they find bugs at full
 * size in the `tests` stage; coverage only needs every branch reached), and its build goes to
 * cache/coverage/ so `artifacts/` stays valid.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ROOT, readJsonIfExists, runStages, type Stage, type StageResult } from "./runner";
import type { Timing } from "./timings";

const bin = (name: string): string => path.join(ROOT, "node_modules", ".bin", name);
const TIMINGS = path.join(ROOT, "cache", "test-timings");

/** Size of the property-based runs in the coverage stage (env override). */
const COVERAGE_SIZES = { FC_RUNS: process.env.FC_RUNS ?? "6" };

/**
 * The suites the coverage run measures: those that exercise the contracts themselves. One glob
 * (solidity-coverage takes one), and a glob that matches nothing runs every test: TestRunner.stages.ts
 * checks what it matches.
 */
export const COVERAGE_SUITES = "test/{core,security,settlement,invariants}/**/!(Preflight.payerSignedRun.adversarial).ts";

/** The suites of the `integration` stage: real nodes (npx hardhat node, anvil), the CLI and the demo, each in processes of their own. */
export const INTEGRATION_DIR = "test/integration";

/**
 * Every file `npx hardhat test` runs (each .ts or .js file under test/, relative to the root), split
 * into the two test stages: TestRunner.stages.ts checks that together they are exactly Hardhat's own
 * list, so a new suite cannot fall between them.
 */
export function testFiles(): { inProcess: string[]; integration: string[] } {
  const all = (fs.readdirSync(path.join(ROOT, "test"), { recursive: true }) as string[])
    .map((f) => path.posix.join("test", f.split(path.sep).join("/")))
    .filter((f) => /\.(ts|js)$/.test(f) && fs.statSync(path.join(ROOT, f)).isFile())
    .sort();
  const integration = all.filter((f) => f.startsWith(`${INTEGRATION_DIR}/`));
  return { inProcess: all.filter((f) => !integration.includes(f)), integration };
}

const FILES = testFiles();

export const STAGES: Stage[] = [
  { name: "compile", what: "build the contracts and their typechain types (a first build takes a few minutes)", command: bin("hardhat"), args: ["compile"], after: [] },
  { name: "typecheck", what: "type-check every TypeScript file (tsc --noEmit)", command: bin("tsc"), args: ["--noEmit", "-p", "tsconfig.json"], after: ["compile"] },
  { name: "lint", what: "lint the Solidity sources (solhint, no warnings allowed)", command: bin("solhint"), args: ["--max-warnings", "0", "contracts/**/*.sol"], after: [] },
  {
    name: "tests",
    what: "every in-process test: unit, adversarial, property-based, differential, gas snapshot, gateway, packages, README",
    command: bin("hardhat"),
    args: ["test", "--no-compile", ...FILES.inProcess],
    rerun: "npx ts-node --transpile-only scripts/test/main.ts tests",
    after: ["typecheck", "lint"],
    env: { PREFLIGHT_TEST_TIMINGS: path.join(TIMINGS, "tests.json") },
  },
  {
    name: "coverage",
    what: `the contract suites (${COVERAGE_SUITES}) on instrumented contracts; property runs FC_RUNS=${COVERAGE_SIZES.FC_RUNS}`,
    command: bin("hardhat"),
    args: ["coverage", "--testfiles", COVERAGE_SUITES],
    after: ["compile"],
    env: { ...COVERAGE_SIZES, PREFLIGHT_COVERAGE: "1", PREFLIGHT_TEST_TIMINGS: path.join(TIMINGS, "coverage.json") },
  },
  {
    name: "coverage-gate",
    what: "100% of lines and >= 95% of branches of the deployable contracts",
    command: bin("ts-node"),
    args: ["--transpile-only", "scripts/check-coverage.ts"],
    after: ["coverage"],
  },
  {
    name: "integration",
    what: `the suites that start real nodes and run the CLI and the demo (${INTEGRATION_DIR}/)`,
    command: bin("hardhat"),
    args: ["test", "--no-compile", ...FILES.integration],
    rerun: "npx ts-node --transpile-only scripts/test/main.ts integration",
    after: ["typecheck", "lint"],
    env: { PREFLIGHT_TEST_TIMINGS: path.join(TIMINGS, "integration.json") },
  },
];

/** The slowest tests of each mocha stage against their timeouts; flags any above a third of it. */
export function slowestTests(results: StageResult[], count = 5): string {
  const lines: string[] = [];
  for (const r of results) {
    const timings = readJsonIfExists<Timing[]>(path.join(TIMINGS, `${r.stage.name}.json`));
    if (timings === undefined || r.stage.env?.PREFLIGHT_TEST_TIMINGS === undefined) continue;
    const timed = timings.filter((t) => t.timeoutMs > 0);
    const untimed = timings.filter((t) => t.timeoutMs === 0).length;
    const worst = [...timed].sort((a, b) => b.ms / b.timeoutMs - a.ms / a.timeoutMs);
    const over = worst.filter((t) => t.ms * 3 > t.timeoutMs);
    lines.push(`Slowest in ${r.stage.name} (duration / timeout):`);
    for (const t of [...timings].sort((a, b) => b.ms - a.ms).slice(0, count)) {
      lines.push(`    ${(t.ms / 1000).toFixed(1).padStart(6)} s / ${t.timeoutMs === 0 ? "none" : `${t.timeoutMs / 1000} s`}  ${t.title.slice(0, 100)}`);
    }
    if (over.length > 0) {
      lines.push(`    WARNING: ${over.length} test(s) used more than a third of their timeout: ${over.map((t) => `"${t.title.slice(0, 60)}" ${Math.round((t.ms / t.timeoutMs) * 100)}%`).join(", ")}`);
    }
    if (untimed > 0) lines.push(`    ${untimed} test(s) or hook(s) without a timeout`);
  }
  return lines.join("\n");
}

async function main(): Promise<void> {
  const wanted = process.argv.slice(2);
  const unknown = wanted.filter((w) => !STAGES.some((s) => s.name === w));
  if (unknown.length > 0) {
    console.error(`Unknown stage(s) ${unknown.join(", ")}: the stages are ${STAGES.map((s) => s.name).join(", ")}.`);
    process.exit(2);
  }
  const stages = wanted.length === 0 ? STAGES : STAGES.filter((s) => wanted.includes(s.name));
  console.log(`npm test: ${stages.map((s) => s.name).join(" -> ")} on ${os.cpus().length} CPU(s), load average ${os.loadavg()[0].toFixed(1)}`);
  process.exitCode = await runStages(stages, { cwd: ROOT, epilogue: slowestTests });
}

if (require.main === module) void main();
