/**
 * `npm run docs:readme`: rewrites the README's generated gas section (between its
 * `<!-- generated:gas -->` markers) from the committed report, reports/gas.json, so every figure on
 * the front page comes from a committed report. `npm run bench:update` runs it too, and a test
 * (test/tooling/Readme.generated.ts) fails when the README differs from what this produces.
 *
 *   npm run docs:readme            # rewrite README.md
 *   npm run docs:readme -- --check # exit 1 if README.md is not up to date
 */
import fs from "node:fs";
import path from "node:path";
import { find, fmt, gapOf, targets } from "../../bench/report";
import type { Row } from "../../bench/scenarios";

export const ROOT = path.join(__dirname, "..", "..");
export const README = path.join(ROOT, "README.md");
export const GAS_REPORT = path.join(ROOT, "reports", "gas.json");
const BEGIN = "<!-- generated:gas (npm run docs:readme, from reports/gas.json) -->";
const END = "<!-- /generated:gas -->";
const PEERS = ["oz-baseline", "permit2", "eip3009"] as const;

/** The headline rows: what a request costs on already-written storage, against the peers. */
const HEADLINE: { label: string; scenario: string; requests: number; perExtra?: string }[] = [
  { label: "one request, signed by the payer (`settle`)", scenario: "single-payer", requests: 1 },
  { label: "one request, signed by a session key within a grant", scenario: "single-delegate", requests: 1 },
  { label: "batch of 100, one payer (`settleBatch`)", scenario: "batch-one-payer", requests: 100 },
  { label: "batch of 100, one payer (`settlePacked`)", scenario: "batch-one-payer-packed", requests: 100 },
  { label: "batch of 100, 100 payers (`settleBatch`)", scenario: "batch-many-payers", requests: 100 },
  { label: "batch of 100, 100 payers (`settlePacked`)", scenario: "batch-many-payers-packed", requests: 100 },
  { label: "voucher claim (any number of requests)", scenario: "voucher-claim", requests: 1 },
  { label: "10 voucher claims in one transaction, per claim", scenario: "voucher-claims-10", requests: 10 },
];

/** The targets the committed report misses: measured, target, floor, and what stands between (reports/gas.md has the steps). */
function missedTargets(rows: Row[]): string[] {
  const missed = targets(rows).filter((t) => !t.met);
  if (missed.length === 0) return ["Every gas target is met.", ""];
  const lines = ["**Targets missed** (measured; target; floor; what stands between):", ""];
  for (const t of missed) {
    const { floor, between } = gapOf(t);
    const measured = t.measured === undefined ? t.figure : fmt(t.measured);
    lines.push(`- ${t.scenario}: ${measured}; ${t.target}${floor ? `; ${floor}` : ""}; ${between}.`);
  }
  return [...lines, ""];
}

/** The generated section, markers included. */
export function gasSection(rows: Row[]): string {
  const lines = [
    BEGIN,
    "Gas per request from receipts (21,000 base and calldata included), storage already written, Osaka pricing.",
    "Peers doing the same work: an OpenZeppelin-idiomatic escrow, Permit2 `permitTransferFrom`, EIP-3009",
    "`transferWithAuthorization` (x402 \"exact\"), one signature per request.",
    "",
    "| scenario | Preflight | OZ-idiomatic | Permit2 | EIP-3009 | calldata B/request |",
    "|---|---:|---:|---:|---:|---:|",
  ];
  for (const h of HEADLINE) {
    const ours = find(rows, "preflight", h.scenario, h.requests, "later");
    if (ours === undefined) throw new Error(`reports/gas.json has no preflight row ${h.scenario}/${h.requests}/later: run npm run bench:update`);
    const peers = PEERS.map((p) => find(rows, p, h.scenario, h.requests, "later")).map((r) => (r === undefined ? "-" : fmt(r.gasPerRequest)));
    lines.push(`| ${h.label} | **${fmt(ours.gasPerRequest)}** | ${peers.join(" | ")} | ${ours.calldataBytesPerRequest} |`);
  }
  lines.push(
    "",
    "![Gas per request against requests per transaction](reports/gas-per-request.svg)",
    "",
    ...missedTargets(rows),
    "Every row, first settlements and each verification step's gas: [reports/gas.md](reports/gas.md) ([docs/gas.md](docs/gas.md)).",
    END,
  );
  return lines.join("\n");
}

/** `readme` with its generated section replaced by the one `rows` give. */
export function renderReadme(readme: string, rows: Row[]): string {
  const start = readme.indexOf(BEGIN);
  const end = readme.indexOf(END);
  if (start < 0 || end < start) throw new Error(`README.md has no generated gas section: put the lines\n${BEGIN}\n${END}\nwhere it goes.`);
  return readme.slice(0, start) + gasSection(rows) + readme.slice(end + END.length);
}

export function readGasReport(file = GAS_REPORT): Row[] {
  return JSON.parse(fs.readFileSync(file, "utf8")) as Row[];
}

function main(): void {
  const current = fs.readFileSync(README, "utf8");
  const wanted = renderReadme(current, readGasReport());
  if (process.argv.includes("--check")) {
    if (current !== wanted) {
      console.error("README.md's generated gas section is not what reports/gas.json gives: run npm run docs:readme.");
      process.exit(1);
    }
    console.log("README.md's gas section matches reports/gas.json.");
    return;
  }
  fs.writeFileSync(README, wanted);
  console.log(current === wanted ? "README.md was up to date." : "README.md's gas section rewritten from reports/gas.json.");
}

if (require.main === module) main();
