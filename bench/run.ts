/**
 * `npm run bench`: measures every scenario (Preflight and its peers) with per-step attribution,
 * showing progress, and compares the figures with the committed reports. It writes its reports to
 * cache/bench/ and leaves every tracked file alone.
 * `npm run bench:update` (BENCH_UPDATE=1) writes them where they are committed instead:
 * reports/gas.json, reports/gas.md, reports/gas-per-request.svg, reports/gas-snapshot.json (the
 * figures the `npm test` guard holds Preflight to) and the README's generated gas section.
 * BENCH_REPORT_ONLY=1 re-renders the reports from the committed reports/gas.json without measuring.
 */
import fs from "node:fs";
import path from "node:path";
import { network } from "hardhat";
import { runScenarios, rowKey, type Row } from "./scenarios";
import { markdown, missingPeerRows, svg, targets } from "./report";
import { snapshotOf, SNAPSHOT_PATH } from "./snapshot";
import { renderReadme } from "../scripts/docs/readme";

const ROOT = path.join(__dirname, "..");
const REPORTS = path.join(ROOT, "reports");
const update = process.env.BENCH_UPDATE !== undefined;
const OUT = update ? REPORTS : path.join(ROOT, "cache", "bench");

/** Counts the transactions traced so far against the count in the committed report. */
function showProgress(expected: number): () => void {
  let traced = 0;
  const provider = network.provider as { send: (method: string, params?: unknown[]) => Promise<unknown> };
  const send = provider.send.bind(provider);
  provider.send = async (method, params) => {
    if (method === "debug_traceTransaction") traced++;
    return send(method, params);
  };
  const started = Date.now();
  const line = (): string => {
    const s = Math.round((Date.now() - started) / 1000);
    const share = expected > 0 ? ` of about ${expected} (${Math.min(99, Math.round((traced / expected) * 100))}%)` : "";
    return `  measured ${traced} transaction(s)${share}, ${Math.floor(s / 60)} min ${s % 60} s`;
  };
  const ticker = setInterval(() => console.log(line()), 15_000);
  return () => {
    clearInterval(ticker);
    provider.send = send;
  };
}

async function main(): Promise<void> {
  const started = Date.now();
  const reuse = process.env.BENCH_REPORT_ONLY !== undefined;
  const committedPath = path.join(REPORTS, "gas.json");
  const committed = fs.existsSync(committedPath) ? (JSON.parse(fs.readFileSync(committedPath, "utf8")) as Row[]) : [];
  let rows: Row[];
  if (reuse) {
    rows = committed;
  } else {
    console.log("Measuring every scenario of Preflight and its three peers, tracing each transaction to split its gas into steps (a few minutes)...");
    const stop = showProgress(committed.reduce((n, r) => n + r.transactions, 0));
    try {
      rows = await runScenarios({ peers: true, trace: true });
    } finally {
      stop();
    }
  }
  fs.mkdirSync(OUT, { recursive: true });
  const excluded = missingPeerRows(rows);
  const beforePath = path.join(REPORTS, "gas-before-optimization.json");
  const before = fs.existsSync(beforePath) ? (JSON.parse(fs.readFileSync(beforePath, "utf8")) as Row[]) : undefined;
  fs.writeFileSync(path.join(OUT, "gas.json"), JSON.stringify(rows, null, 2) + "\n");
  fs.writeFileSync(path.join(OUT, "gas.md"), markdown(rows, before, excluded));
  fs.writeFileSync(path.join(OUT, "gas-per-request.svg"), svg(rows));
  if (update) {
    fs.writeFileSync(SNAPSHOT_PATH, JSON.stringify(snapshotOf(rows), null, 2) + "\n");
    const readmePath = path.join(ROOT, "README.md");
    fs.writeFileSync(readmePath, renderReadme(fs.readFileSync(readmePath, "utf8"), rows));
  }

  for (const t of targets(rows)) console.log(`${t.met ? "met    " : "NOT MET"} ${t.scenario}: ${t.figure} (target ${t.target})`);
  const old = new Map(committed.map((r) => [`${r.system} ${rowKey(r)}`, r.gasUsed]));
  const changed = rows.filter((r) => old.get(`${r.system} ${rowKey(r)}`) !== r.gasUsed);
  for (const r of changed) {
    const was = old.get(`${r.system} ${rowKey(r)}`);
    console.log(`  changed: ${r.system} ${rowKey(r)}: ${was === undefined ? "new" : was} -> ${r.gasUsed}`);
  }
  const seconds = ((Date.now() - started) / 1000).toFixed(0);
  console.log(
    `${rows.length} rows in ${seconds} s; ${changed.length} differ from reports/gas.json. ` +
      (update
        ? "Wrote reports/ (gas.json, gas.md, gas-per-request.svg, gas-snapshot.json) and the README's gas section."
        : `Wrote ${path.relative(ROOT, OUT)}/ only; tracked files are unchanged (npm run bench:update rewrites reports/ and the README).`),
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
