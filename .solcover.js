/**
 * solidity-coverage settings. Coverage is measured on the deployable contracts only:
 * mocks, hostile test contracts and benchmark baselines are not instrumented.
 * `npm run coverage` picks the test files (the contract suites, `COVERAGE_SUITES` in
 * scripts/test/main.ts) and `scripts/check-coverage.ts` enforces the gate on coverage/coverage-final.json.
 */
module.exports = {
  skipFiles: ["test/", "bench/"],
  // viaIR with the project's optimizer settings: solidity-coverage (>= 0.8.7) instruments viaIR code
  // without turning the optimizer off. `irMinimum: true` (optimizer steps off) builds a 127 kB runtime
  // whose deployment needs ~25M gas, over Osaka's 2^24 per-transaction cap (EIP-7825), so it is off.
  irMinimum: false,
  istanbulReporter: ["json-summary", "json", "text-summary"],
  // Tests that measure gas are meaningless on instrumented bytecode (and slow): test/gas/** is outside
  // the --testfiles glob of `npm run coverage`, and any other test tagged "@gas" in its title is skipped here.
  mocha: { timeout: 300_000, grep: "@gas", invert: true },
};
