import { expect } from "chai";
import fs from "node:fs";
import { runScenarios, type Row } from "../../bench/scenarios";
import { SNAPSHOT_PATH, compare, describe as describeDiffs, type Snapshot } from "../../bench/snapshot";

/**
 * The gas guard: re-measures every Preflight scenario of the benchmark (receipts only, no tracing)
 * and fails when any costs more than reports/gas-snapshot.json. Refresh the snapshot on purpose
 * with `npm run bench:update`. (Excluded from coverage runs: instrumentation changes gas.)
 */
describe("Preflight gas snapshot", function () {
  // Measuring every scenario (the before hook) takes tens of seconds on a busy machine.
  this.timeout(300_000);
  let rows: Row[];

  before(async function () {
    rows = await runScenarios({ peers: false, trace: false });
  });

  it("costs no more gas than reports/gas-snapshot.json in any scenario", function () {
    const snapshot = JSON.parse(fs.readFileSync(SNAPSHOT_PATH, "utf8")) as Snapshot;
    const { worse, better } = compare(snapshot, rows);
    if (better.length > 0) {
      console.log(`      cheaper than the snapshot (run \`npm run bench:update\` to lock it in):\n${describeDiffs(better)}`);
    }
    expect(worse, `gas above reports/gas-snapshot.json (or scenarios added/removed):\n${describeDiffs(worse)}\n`).to.deep.equal([]);
  });
});
