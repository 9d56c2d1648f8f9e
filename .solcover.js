/**
 * solidity-coverage settings. Coverage is measured on the deployable contracts only:
 * mocks, hostile test contracts and benchmark baselines are not instrumented.
 * `npm run coverage` picks the test files (everything but the gas measurements and the suites that
 * start external nodes) and `scripts/check-coverage.ts` enforces the gate on coverage/coverage-final.json.
 */
module.exports = {
  skipFiles: ["test/", "bench/"],
  // viaIR stays on (the contracts need it); the Yul optimizer runs with stack allocation only, which
  // keeps the instrumented build compiling without "stack too deep" and is fast to build.
  irMinimum: false,
  istanbulReporter: ["json-summary", "json", "text-summary"],
  mocha: { timeout: 300_000 },
};
