/**
 * Turns measured rows into the committed artefacts: reports/gas.json, reports/gas.md and
 * reports/gas-per-request.svg (the README's headline table comes from reports/gas.json through
 * scripts/docs/readme.ts).
 */
import { STEPS } from "./slots";
import { BATCH_ONE_PAYER, type Row, type System, type State } from "./scenarios";

export const SYSTEMS: System[] = ["preflight", "oz-baseline", "permit2", "eip3009"];
const COLORS: Record<System, string> = { preflight: "#1f77b4", "oz-baseline": "#d62728", permit2: "#ff7f0e", eip3009: "#2ca02c" };

/** The scenarios where the baseline does the same settlement work as Preflight. */
const SETTLEMENT = new Set(["single-payer", "batch-one-payer", "batch-many-payers"]);

const fmt = (n: number): string => n.toLocaleString("en-US");

export function find(rows: Row[], system: System, scenario: string, requests: number, state: State): Row | undefined {
  return rows.find((r) => r.system === system && r.scenario === scenario && r.requests === requests && r.state === state);
}

/** Peer batch rows that are missing because the batch does not fit in one transaction (EIP-7825 cap). */
export function missingPeerRows(rows: Row[]): string[] {
  const out: string[] = [];
  // Packed scenarios are Preflight's own encoding: peers have no such row to miss.
  for (const r of rows.filter((x) => x.system === "preflight" && x.scenario.startsWith("batch-") && !x.scenario.endsWith("-packed"))) {
    for (const system of SYSTEMS) {
      if (find(rows, system, r.scenario, r.requests, r.state) === undefined) {
        out.push(`${system} ${r.scenario} ${r.requests} (${r.state}): does not fit in one transaction under the EIP-7825 cap of 16,777,216 gas`);
      }
    }
  }
  return out;
}

/** One DESIGN.md target, evaluated. */
export interface Target {
  scenario: string;
  target: string;
  figure: string;
  met: boolean;
  detail: string;
}

/** Evaluates every DESIGN.md gas target on already-written storage ("later"), showing "first" beside it. */
export function targets(rows: Row[]): Target[] {
  const pf = (scenario: string, n: number, state: State): Row => {
    const r = find(rows, "preflight", scenario, n, state);
    if (r === undefined) throw new Error(`missing preflight ${scenario}/${n}/${state}`);
    return r;
  };
  const out: Target[] = [];
  const total = (label: string, scenario: string, limit: number) => {
    const later = pf(scenario, 1, "later");
    const first = pf(scenario, 1, "first");
    out.push({
      scenario: label,
      target: `<= ${fmt(limit)}`,
      figure: fmt(later.gasUsed),
      met: later.gasUsed <= limit,
      detail: `first settlement (new slots): ${fmt(first.gasUsed)}`,
    });
  };
  total("single request signed by the payer, own transaction", "single-payer", 40_000);
  total("single request signed by a delegate within a grant", "single-delegate", 45_000);
  // Batches: the better of settleBatch (ABI-encoded) and settlePacked (compact calldata).
  const perRequest = (label: string, scenario: string, n: number, limit: number) => {
    const abi = pf(scenario, n, "later");
    const packed = find(rows, "preflight", `${scenario}-packed`, n, "later");
    const best = packed !== undefined && packed.gasPerRequest < abi.gasPerRequest ? packed : abi;
    const bestFirst = pf(best.scenario, n, "first");
    out.push({
      scenario: label,
      target: `<= ${fmt(limit)} per request`,
      figure: `${fmt(best.gasPerRequest)} (${best === abi ? "settleBatch" : "settlePacked"})`,
      met: best.gasPerRequest <= limit,
      detail: `settleBatch: ${fmt(abi.gasPerRequest)}; first settlement: ${fmt(bestFirst.gasPerRequest)}`,
    });
  };
  perRequest("batch of 100 requests, one payer, one provider", "batch-one-payer", 100, 6_000);
  perRequest("batch of 100 requests, 100 payers, one provider", "batch-many-payers", 100, 12_000);
  total("voucher claim (covers any number of requests)", "voucher-claim", 38_000);
  {
    const extra = (s: State) => Math.round((pf("voucher-claims-10", 10, s).gasUsed - pf("voucher-claim", 1, s).gasUsed) / 9);
    out.push({
      scenario: "10 voucher claims in one transaction",
      target: "<= 12,000 per extra claim",
      figure: fmt(extra("later")),
      met: extra("later") <= 12_000,
      detail: `(claims10 - claim1) / 9; new channels: ${fmt(extra("first"))}`,
    });
  }
  {
    const abi = pf("batch-one-payer", 100, "later");
    const r = find(rows, "preflight", "batch-one-payer-packed", 100, "later") ?? abi;
    out.push({
      scenario: "calldata per request inside a batch",
      target: "<= 100 bytes",
      figure: `${r.calldataBytesPerRequest} bytes (${r === abi ? "settleBatch" : "settlePacked"})`,
      met: r.calldataBytesPerRequest <= 100,
      detail: `100 requests of one payer; settleBatch (ABI, 64-byte signatures): ${abi.calldataBytesPerRequest} bytes`,
    });
  }
  {
    let worst = Infinity;
    let where = "";
    for (const r of rows.filter((x) => x.system === "oz-baseline")) {
      const p = find(rows, "preflight", r.scenario, r.requests, r.state);
      if (p === undefined || !SETTLEMENT.has(r.scenario)) continue;
      const ratio = r.gasUsed / p.gasUsed;
      if (ratio < worst) {
        worst = ratio;
        where = `${r.scenario} ${r.requests} (${r.state})`;
      }
    }
    const best100 = find(rows, "oz-baseline", "batch-one-payer", 100, "later")!.gasUsed / pf("batch-one-payer", 100, "later").gasUsed;
    out.push({
      scenario: "same flow built the usual OpenZeppelin way",
      target: ">= 2x more gas than ours",
      figure: `${worst.toFixed(2)}x (worst case)`,
      met: worst >= 2,
      detail: `settlement scenarios; worst at ${where}; batch of 100: ${best100.toFixed(2)}x`,
    });
  }
  return out;
}

/** Why each unmet target is not met and what it would take, with figures taken from the breakdown. */
export function gapNotes(rows: Row[]): string {
  const pf = (scenario: string, n: number, state: State): Row => find(rows, "preflight", scenario, n, state)!;
  const per = (r: Row, step: keyof NonNullable<Row["steps"]>): number => Math.round((r.steps?.[step] ?? 0) / r.requests);
  const notes: string[] = [];
  const met = new Map(targets(rows).map((t) => [t.scenario, t.met]));
  const single = pf("single-payer", 1, "later");
  if (met.get("single request signed by the payer, own transaction") === false && single.steps) {
    const floor = single.steps.intrinsic + single.steps.recovery + single.steps.balances + single.steps.events;
    notes.push(
      `- **single request (${fmt(single.gasUsed)})**: intrinsic ${fmt(single.steps.intrinsic)} (the ABI-encoded \`SignedRequest\` is ${single.calldataBytesPerRequest} bytes, mostly ` +
        `32-byte padding), recovery ${fmt(single.steps.recovery)}, balances ${fmt(single.steps.balances)} (cold payer slot, cold provider earnings, the fee ` +
        `config read), events ${fmt(single.steps.events)} already add up to ${fmt(floor)}. Under 40,000 needs a packed calldata entry point ` +
        "(~140 bytes instead of the padded struct), a smaller event, and the fee config out of the cold path; the struct, event and entry points are fixed by the spec other components build on.",
    );
  }
  const delegate = pf("single-delegate", 1, "later");
  if (met.get("single request signed by a delegate within a grant") === false && delegate.steps) {
    notes.push(
      `- **delegate (${fmt(delegate.gasUsed)})**: the single-request costs above plus permission ${fmt(delegate.steps.permission)} (two cold grant slots, one rewritten). ` +
        "Packing the grant's hot fields into one slot would save a cold read; the rest needs the same packed entry point.",
    );
  }
  const b100 = find(rows, "preflight", "batch-one-payer-packed", 100, "later") ?? pf("batch-one-payer", 100, "later");
  if (met.get("batch of 100 requests, one payer, one provider") === false) {
    notes.push(
      `- **batch of 100, one payer (${fmt(b100.gasPerRequest)}/request with ${b100.scenario.endsWith("packed") ? "settlePacked" : "settleBatch"})**: per request, ` +
        `intrinsic ${fmt(per(b100, "intrinsic"))} (${b100.calldataBytesPerRequest} calldata bytes), recovery ${fmt(per(b100, "recovery"))}, hashing ${fmt(per(b100, "hashing"))}, ` +
        `rest ${fmt(per(b100, "rest"))} (the Solidity loop: stack shuffling, jumps, the shared authorization code path). ` +
        `Calldata and storage are at their floor; 6,000 needs ${fmt(b100.gasPerRequest - 6_000)} gas less per item, out of the loop's ${fmt(per(b100, "rest"))}, ` +
        "e.g. a hand-written assembly loop for the payer-signed case.",
    );
  }
  const m100 = find(rows, "preflight", "batch-many-payers-packed", 100, "later") ?? pf("batch-many-payers", 100, "later");
  if (met.get("batch of 100 requests, 100 payers, one provider") === false) {
    notes.push(
      `- **batch of 100, 100 payers (${fmt(m100.gasPerRequest)}/request)**: each payer's slot is cold (2,100 read + 2,900 write; balances ` +
        `${fmt(per(m100, "balances"))}/request), each item carries its own group header (${m100.calldataBytesPerRequest} calldata bytes), on top of the one-payer costs.`,
    );
  }
  const v1 = pf("voucher-claim", 1, "later");
  if (met.get("voucher claim (covers any number of requests)") === false && v1.steps) {
    notes.push(
      `- **voucher claim (${fmt(v1.gasUsed)})**: intrinsic ${fmt(v1.steps.intrinsic)}, recovery ${fmt(v1.steps.recovery)}, balances ${fmt(v1.steps.balances)}, ` +
        `channel ${fmt(v1.steps.nonce)} (its own cold slot), event ${fmt(v1.steps.events)}. Keeping the claimed amount in the payer's slot for a default ` +
        "channel, and a packed entry point, would be needed.",
    );
  }
  if (met.get("10 voucher claims in one transaction") === false) {
    notes.push(
      "- **extra voucher claim**: each claim in the measured case is a different payer: two cold slots (payer, channel: ~10,000), ecrecover 3,000+, " +
        "~330 calldata bytes and a `VoucherClaimed` event per claim; under 12,000 needs packed calldata and no per-claim event.",
    );
  }
  if (met.get("calldata per request inside a batch") === false) {
    notes.push(`- **calldata**: ${b100.calldataBytesPerRequest} bytes per request.`);
  }
  if (met.get("same flow built the usual OpenZeppelin way") === false) {
    notes.push("- **OpenZeppelin baseline**: the single-request ratio is bounded by the 21,000 base and the shared calldata; batches are well past 2x.");
  }
  return notes.join("\n");
}

function targetTable(rows: Row[]): string {
  const lines = ["| DESIGN.md target | target | Preflight (written storage) | met | notes |", "|---|---|---|---|---|"];
  for (const t of targets(rows)) lines.push(`| ${t.scenario} | ${t.target} | ${t.figure} | ${t.met ? "yes" : "**no**"} | ${t.detail} |`);
  return lines.join("\n");
}

/** Gas per request, every system side by side, for the scenarios they share. */
function comparisonTable(rows: Row[]): string {
  const lines = [
    "| scenario | requests | storage | " + SYSTEMS.join(" | ") + " | calldata bytes/request (Preflight) |",
    "|---|---|---|" + SYSTEMS.map(() => "---:").join("|") + "|---:|",
  ];
  for (const r of rows.filter((x) => x.system === "preflight")) {
    const cells = SYSTEMS.map((s) => {
      const m = find(rows, s, r.scenario, r.requests, r.state);
      return m === undefined ? "-" : fmt(m.gasPerRequest);
    });
    lines.push(`| ${r.scenario} | ${r.requests} | ${r.state} | ${cells.join(" | ")} | ${r.calldataBytesPerRequest} |`);
  }
  return lines.join("\n");
}

/** Every row with its per-step attribution. */
function stepsTable(rows: Row[], systems: System[]): string {
  const lines = [
    "| system | scenario | requests | storage | gasUsed | per request | calldata/request | " + STEPS.join(" | ") + " |",
    "|---|---|---:|---|---:|---:|---:|" + STEPS.map(() => "---:").join("|") + "|",
  ];
  for (const r of rows.filter((x) => systems.includes(x.system))) {
    const steps = STEPS.map((s) => (r.steps ? fmt(r.steps[s]) : "-"));
    lines.push(
      `| ${r.system} | ${r.scenario} | ${r.requests} | ${r.state} | ${fmt(r.gasUsed)} | ${fmt(r.gasPerRequest)} | ${r.calldataBytesPerRequest} | ${steps.join(" | ")} |`,
    );
  }
  return lines.join("\n");
}

function beforeAfterTable(rows: Row[], before: Row[] | undefined): string {
  if (before === undefined || before.length === 0) return "";
  const lines = ["| scenario | requests | storage | before | after | change |", "|---|---:|---|---:|---:|---:|"];
  for (const r of rows.filter((x) => x.system === "preflight")) {
    // A packed scenario is new: compare it with what the same work cost through settleBatch before.
    const packed = r.scenario.endsWith("-packed");
    const b = find(before, "preflight", packed ? r.scenario.slice(0, -"-packed".length) : r.scenario, r.requests, r.state);
    if (b === undefined) continue;
    const change = ((r.gasUsed - b.gasUsed) / b.gasUsed) * 100;
    const label = packed ? `${r.scenario} (before: settleBatch)` : r.scenario;
    lines.push(`| ${label} | ${r.requests} | ${r.state} | ${fmt(b.gasPerRequest)} | ${fmt(r.gasPerRequest)} | ${change.toFixed(1)}% |`);
  }
  return lines.join("\n");
}

export const STEP_MEANINGS = `| step | what it covers (from the transaction's own opcode trace) |
|---|---|
| intrinsic | 21,000 base + calldata (4 per zero byte, 16 per non-zero byte), or the EIP-7623 floor (10/40 per byte) when that is higher |
| hashing | KECCAK256 of typed data (struct hashes, the EIP-712 digest, domain separator) including the memory it expands; keccaks that compute storage keys are charged to the slot's step instead |
| recovery | the call to the ecrecover precompile (3,000 + call and memory costs), or everything an ERC-1271 wallet executes |
| permission | grant reads and writes (SLOAD/SSTORE on grant slots and the grant's model set) and the hashes locating them |
| nonce | replay protection stored apart from the balance: spilled nonce words, voucher channels; the peers' nonce maps and bitmaps |
| balances | balances and the ledger: payer account, provider earnings, fee config, token balances/allowances, and the cost of calling a token. Preflight's payer slot also holds the nonce window, so its nonce check costs nothing extra |
| events | LOG0..LOG4, including their memory expansion |
| rest | everything else: dispatch, ABI decoding, calldata copies, memory, stack and control flow, locks (TLOAD/TSTORE, ReentrancyGuard), calls to the verifier itself |

SSTORE refunds (EIP-3529) are credited back to the step of the slot that earned them. The steps of every
row add up exactly to the receipt's \`gasUsed\`; the benchmark throws otherwise.`;

/** The markdown report. */
export function markdown(rows: Row[], before?: Row[], excluded: string[] = []): string {
  const ba = beforeAfterTable(rows, before);
  const ex = excluded.map((e) => `- ${e}`).join("\n");
  return [
    "# Gas per verification step",
    "",
    "Generated by `npm run bench` (bench/). Hardhat network, osaka hardfork, solc 0.8.30 via-IR (Permit2: its own",
    "settings, solc 0.8.17). Gas from real transaction receipts, 21,000 base and calldata included. Price per",
    "request 1,000 units of a 6-decimal token. \"first\": the payers' and the provider's first settlement (new",
    "slots); \"later\": the same work again (every slot already written); every transaction starts cold (EIP-2929).",
    "",
    "## DESIGN.md targets",
    "",
    targetTable(rows),
    "",
    ...(gapNotes(rows) === "" ? [] : [gapNotes(rows), ""]),
    "## Gas per request, side by side",
    "",
    comparisonTable(rows),
    "",
    ...(ex === "" ? [] : ["Not measurable:", "", ex, ""]),
    ...(ba === "" ? [] : ["## Preflight before and after optimization (gas per request)", "", ba, ""]),
    "## Steps",
    "",
    STEP_MEANINGS,
    "",
    stepsTable(rows, SYSTEMS),
    "",
    "![gas per request](gas-per-request.svg)",
    "",
  ].join("\n");
}

/** The chart: gas per request against requests per transaction (log x), one line per system. */
export function svg(rows: Row[]): string {
  const W = 760;
  const H = 440;
  const left = 80;
  const right = 200;
  const topM = 50;
  const bottom = 60;
  const xs = BATCH_ONE_PAYER;
  const lines: { system: System; label: string; scenario: string; dashed: boolean }[] = [
    { system: "preflight", label: "preflight (settlePacked)", scenario: "batch-one-payer-packed", dashed: true },
    ...SYSTEMS.map((system) => ({
      system,
      label: system === "preflight" ? "preflight (settleBatch)" : system,
      scenario: "batch-one-payer",
      dashed: false,
    })),
  ];
  const series = lines.map((line) => ({
    ...line,
    points: xs
      .map((n) => ({ n, r: find(rows, line.system, line.scenario, n, "later") }))
      .filter((p): p is { n: number; r: Row } => p.r !== undefined)
      .map((p) => ({ n: p.n, y: p.r.gasPerRequest })),
  }));
  const maxY = Math.max(...series.flatMap((s) => s.points.map((p) => p.y)));
  const yMax = Math.ceil(maxY / 10_000) * 10_000;
  const x = (n: number) => left + ((Math.log10(n) - 0) / Math.log10(xs[xs.length - 1]!)) * (W - left - right);
  const y = (v: number) => topM + (1 - v / yMax) * (H - topM - bottom);
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  parts.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  parts.push(`<text x="${left}" y="24" font-size="15" font-weight="bold">Gas per paid request vs requests per transaction (one payer, one provider)</text>`);
  for (let v = 0; v <= yMax; v += yMax / 5) {
    parts.push(`<line x1="${left}" y1="${y(v).toFixed(1)}" x2="${W - right}" y2="${y(v).toFixed(1)}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${left - 8}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${fmt(v)}</text>`);
  }
  for (const n of xs) {
    parts.push(`<line x1="${x(n).toFixed(1)}" y1="${topM}" x2="${x(n).toFixed(1)}" y2="${H - bottom}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${x(n).toFixed(1)}" y="${H - bottom + 18}" text-anchor="middle">${n}</text>`);
  }
  parts.push(`<line x1="${left}" y1="${H - bottom}" x2="${W - right}" y2="${H - bottom}" stroke="#333"/>`);
  parts.push(`<line x1="${left}" y1="${topM}" x2="${left}" y2="${H - bottom}" stroke="#333"/>`);
  parts.push(`<text x="${(left + W - right) / 2}" y="${H - 18}" text-anchor="middle">requests per transaction (log scale)</text>`);
  parts.push(`<text x="18" y="${(topM + H - bottom) / 2}" text-anchor="middle" transform="rotate(-90 18 ${(topM + H - bottom) / 2})">gas per request (receipt gasUsed / requests)</text>`);
  series.forEach((s, i) => {
    const color = COLORS[s.system];
    if (s.points.length > 0) {
      const d = s.points.map((p, j) => `${j === 0 ? "M" : "L"}${x(p.n).toFixed(1)},${y(p.y).toFixed(1)}`).join(" ");
      parts.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2.5"${s.dashed ? ' stroke-dasharray="7 4"' : ""}/>`);
      for (const p of s.points) {
        parts.push(`<circle cx="${x(p.n).toFixed(1)}" cy="${y(p.y).toFixed(1)}" r="3.5" fill="${color}"><title>${s.label}, ${p.n} per tx: ${fmt(p.y)} gas/request</title></circle>`);
      }
    }
    const ly = topM + 10 + i * 22;
    parts.push(`<line x1="${W - right + 10}" y1="${ly}" x2="${W - right + 34}" y2="${ly}" stroke="${color}" stroke-width="2.5"${s.dashed ? ' stroke-dasharray="7 4"' : ""}/>`);
    parts.push(`<text x="${W - right + 40}" y="${ly + 4}">${s.label}</text>`);
  });
  parts.push(`<text x="${W - right + 10}" y="${topM + 10 + lines.length * 22 + 10}" fill="#666">already-written storage</text>`);
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}
