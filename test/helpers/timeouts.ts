import hre from "hardhat";

/**
 * Timeouts for the few long tests, sized so that each takes less than a third of its timeout on a
 * busy 2-core machine (`npm test` lists every test's duration against its timeout). Instrumented
 * bytecode (the coverage run) is several times slower, so budgets grow by COVERAGE_SLOWDOWN there.
 */
export const COVERAGE_SLOWDOWN = 5;

/** Whether this run executes instrumented contracts (solidity-coverage sets this flag on the runtime). */
export function underCoverage(): boolean {
  return (hre as unknown as { __SOLIDITY_COVERAGE_RUNNING?: boolean }).__SOLIDITY_COVERAGE_RUNNING === true;
}

/** `ms` on real bytecode, COVERAGE_SLOWDOWN times as much on instrumented bytecode. */
export function budget(ms: number): number {
  return underCoverage() ? ms * COVERAGE_SLOWDOWN : ms;
}
