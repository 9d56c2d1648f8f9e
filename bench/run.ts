/**
 * `npm run bench`: measures every scenario (Preflight and its peers) with per-step attribution and
 * writes reports/gas.json, reports/gas.md, reports/gas-per-request.svg and the README's gas section.
 * `npm run bench:update` (BENCH_UPDATE=1) also rewrites reports/gas-snapshot.json, the figures the
 * `npm test` guard holds Preflight to.
 */
import fs from "node:fs";
import path from "node:path";
import { runScenarios, type Row } from "./scenarios";
import { markdown, missingPeerRows, readmeSection, svg, targets } from "./report";
import { snapshotOf, SNAPSHOT_PATH } from "./snapshot";

const ROOT = path.join(__dirname, "..");
const REPORTS = path.join(ROOT, "reports");

async function main(): Promise<void> {
  const started = Date.now();
  // BENCH_REPORT_ONLY=1 re-renders the reports from the committed reports/gas.json without measuring.
  const reuse = process.env.BENCH_REPORT_ONLY !== undefined;
  const rows = reuse
    ? (JSON.parse(fs.readFileSync(path.join(REPORTS, "gas.json"), "utf8")) as Row[])
    : await runScenarios({ peers: true, trace: true });
  fs.mkdirSync(REPORTS, { recursive: true });
  const excluded = missingPeerRows(rows);
  // "Before": Preflight v1 as last measured (reports/gas-v1.json), compared scenario by scenario with v2.
  const beforePath = path.join(REPORTS, "gas-v1.json");
  const before = fs.existsSync(beforePath) ? (JSON.parse(fs.readFileSync(beforePath, "utf8")) as Row[]) : undefined;
  fs.writeFileSync(path.join(REPORTS, "gas.json"), JSON.stringify(rows, null, 2) + "\n");
  fs.writeFileSync(path.join(REPORTS, "gas.md"), markdown(rows, before, excluded));
  fs.writeFileSync(path.join(REPORTS, "gas-per-request.svg"), svg(rows));
  const readmePath = path.join(ROOT, "README.md");
  const readme = fs.readFileSync(readmePath, "utf8");
  const section = readmeSection(rows, before, excluded);
  const pattern = /<!-- section:gas -->[\s\S]*?<!-- \/section:gas -->/;
  fs.writeFileSync(readmePath, pattern.test(readme) ? readme.replace(pattern, section) : readme.trimEnd() + "\n\n" + section + "\n");
  if (process.env.BENCH_UPDATE !== undefined) {
    fs.writeFileSync(SNAPSHOT_PATH, JSON.stringify(snapshotOf(rows), null, 2) + "\n");
    console.log(`updated ${path.relative(ROOT, SNAPSHOT_PATH)}`);
  }
  for (const t of targets(rows)) console.log(`${t.met ? "met    " : "NOT MET"} ${t.scenario}: ${t.figure} (target ${t.target})`);
  console.log(`${rows.length} rows in ${((Date.now() - started) / 1000).toFixed(0)} s; wrote reports/ and README.md`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
