/**
 * Coverage gate: fails unless the deployable contracts (contracts/*.sol and contracts/libraries/*.sol)
 * have 100% of lines and at least 95% of branches covered, as measured by `hardhat coverage`
 * (solidity-coverage, see .solcover.js). Mocks, hostile test contracts, benchmarks and interfaces are
 * not deployable code and are not gated.
 *
 *   npm run coverage            # measures, then runs this check
 *   npx ts-node scripts/check-coverage.ts [coverage/coverage-final.json]
 *
 * Thresholds can be raised (never lowered in CI) with COVERAGE_MIN_LINES / COVERAGE_MIN_BRANCHES.
 */
import fs from "node:fs";
import path from "node:path";

const MIN_LINES = Number(process.env.COVERAGE_MIN_LINES ?? 100);
const MIN_BRANCHES = Number(process.env.COVERAGE_MIN_BRANCHES ?? 95);

interface Location {
  start: { line: number };
}
interface FileCoverage {
  path: string;
  statementMap: Record<string, Location>;
  s: Record<string, number>;
  branchMap: Record<string, { line?: number; loc?: Location; locations: Location[] }>;
  b: Record<string, number[]>;
  l?: Record<string, number>;
}

const root = path.resolve(__dirname, "..");
const report = path.resolve(root, process.argv[2] ?? "coverage/coverage-final.json");
if (!fs.existsSync(report)) {
  console.error(`coverage gate: ${path.relative(root, report)} not found; run \`npm run coverage\` first`);
  process.exit(1);
}
const files = JSON.parse(fs.readFileSync(report, "utf8")) as Record<string, FileCoverage>;

/** The deployable sources on disk that the gate covers. */
const gated = ["contracts", "contracts/libraries"].flatMap((dir) =>
  fs
    .readdirSync(path.join(root, dir))
    .filter((f) => f.endsWith(".sol"))
    .map((f) => path.join(dir, f)),
);

let failed = false;
let [linesHit, linesTotal, branchesHit, branchesTotal] = [0, 0, 0, 0];
const rows: string[] = [];
for (const relative of gated) {
  const entry = Object.values(files).find((f) => path.relative(root, path.resolve(root, f.path)) === relative);
  if (!entry) {
    // A contract with no executable statement (e.g. only declarations) is not instrumented at all.
    const source = fs.readFileSync(path.join(root, relative), "utf8");
    if (/\bfunction\b|\bconstructor\b|\bmodifier\b/.test(source)) {
      rows.push(`${relative}: MISSING from the coverage report (skipped or not compiled?)`);
      failed = true;
    }
    continue;
  }
  // Lines: the report's line hits (solidity-coverage writes them), else a line is covered when every
  // statement starting on it ran at least once.
  const lineHits = new Map<number, number>();
  if (entry.l) {
    for (const [line, hits] of Object.entries(entry.l)) lineHits.set(Number(line), hits);
  } else {
    for (const [id, loc] of Object.entries(entry.statementMap)) {
      const line = loc.start.line;
      lineHits.set(line, Math.min(lineHits.get(line) ?? Infinity, entry.s[id]));
    }
  }
  const uncoveredLines = [...lineHits.entries()].filter(([, hits]) => hits === 0).map(([line]) => line);
  const uncoveredBranches: string[] = [];
  let bHit = 0;
  let bTotal = 0;
  for (const [id, counts] of Object.entries(entry.b)) {
    counts.forEach((hits, arm) => {
      bTotal += 1;
      if (hits > 0) bHit += 1;
      else {
        const branch = entry.branchMap[id];
        uncoveredBranches.push(`${branch.line ?? branch.loc?.start.line ?? "?"}${arm === 0 ? "(if)" : "(else)"}`);
      }
    });
  }
  linesHit += lineHits.size - uncoveredLines.length;
  linesTotal += lineHits.size;
  branchesHit += bHit;
  branchesTotal += bTotal;
  const pct = (hit: number, total: number) => (total === 0 ? 100 : (100 * hit) / total);
  const detail = [
    uncoveredLines.length ? `uncovered lines ${uncoveredLines.join(",")}` : "",
    uncoveredBranches.length ? `uncovered branches ${uncoveredBranches.join(",")}` : "",
  ]
    .filter((x) => x)
    .join("; ");
  rows.push(
    `${relative.padEnd(42)} lines ${pct(lineHits.size - uncoveredLines.length, lineHits.size).toFixed(2).padStart(6)}%  ` +
      `branches ${pct(bHit, bTotal).toFixed(2).padStart(6)}%${detail ? `  (${detail})` : ""}`,
  );
}

const linePct = linesTotal === 0 ? 100 : (100 * linesHit) / linesTotal;
const branchPct = branchesTotal === 0 ? 100 : (100 * branchesHit) / branchesTotal;
console.log("coverage gate (deployable contracts):");
for (const row of rows) console.log(`  ${row}`);
console.log(
  `  total: lines ${linePct.toFixed(2)}% (${linesHit}/${linesTotal}, need ${MIN_LINES}%), ` +
    `branches ${branchPct.toFixed(2)}% (${branchesHit}/${branchesTotal}, need ${MIN_BRANCHES}%)`,
);
if (linePct < MIN_LINES || branchPct < MIN_BRANCHES) failed = true;
if (failed) {
  console.error("coverage gate: FAILED");
  process.exit(1);
}
console.log("coverage gate: passed");
