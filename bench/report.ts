/**
 * Turns measured rows into the committed artefacts: reports/gas.json, reports/gas.md,
 * reports/gas-per-request.svg, and the README's gas section (between its markers).
 */
import { STEPS } from "./slots";
import { BATCH_ONE_PAYER, type Row, type System, type State } from "./scenarios";

export const SYSTEMS: System[] = ["preflight", "oz-baseline", "permit2", "eip3009"];
const COLORS: Record<System, string> = { preflight: "#1f77b4", "oz-baseline": "#d62728", permit2: "#ff7f0e", eip3009: "#2ca02c" };


export const fmt = (n: number): string => n.toLocaleString("en-US");

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

/** One gas target, evaluated. */
export interface Target {
  scenario: string;
  target: string;
  figure: string;
  met: boolean;
  detail: string;
  /** the target's number and the measured one (for the gap notes) */
  limit?: number;
  measured?: number;
  /** the row the figure comes from */
  row?: { scenario: string; requests: number };
}

/** The cheapest of Preflight's rows for `scenarios` (its entry points for the same work) at (n, state). */
export function best(rows: Row[], scenarios: string[], n: number, state: State): Row {
  const candidates = scenarios.map((s) => find(rows, "preflight", s, n, state)).filter((r): r is Row => r !== undefined);
  if (candidates.length === 0) throw new Error(`missing preflight ${scenarios.join("|")}/${n}/${state}`);
  return candidates.reduce((a, b) => (b.gasPerRequest < a.gasPerRequest ? b : a));
}

/** The scenarios whose work the OpenZeppelin baseline also does, with Preflight's entry points for it. */
const BASELINE_PAIRS: { scenario: string; preflight: string[] }[] = [
  { scenario: "single-payer", preflight: ["single-payer", "single-payer-packed"] },
  { scenario: "batch-one-payer", preflight: ["batch-one-payer", "batch-one-payer-packed"] },
  { scenario: "batch-many-payers", preflight: ["batch-many-payers", "batch-many-payers-packed"] },
];

/** Evaluates every gas target on already-written storage ("later"), showing "first" beside it. */
export function targets(rows: Row[]): Target[] {
  const out: Target[] = [];
  const gas = (label: string, scenarios: string[], n: number, limit: number, perRequest: boolean) => {
    const later = best(rows, scenarios, n, "later");
    const first = best(rows, scenarios, n, "first");
    const value = (r: Row) => (perRequest ? r.gasPerRequest : r.gasUsed);
    out.push({
      scenario: label,
      target: `<= ${fmt(limit)}${perRequest ? " per request" : ""}`,
      figure: `${fmt(value(later))} (${later.scenario})`,
      met: value(later) <= limit,
      detail: `first settlement (new slots): ${fmt(value(first))}; ` + scenarios.map((s) => `${s}: ${fmt(value(find(rows, "preflight", s, n, "later")!))}`).join(", "),
      limit,
      measured: value(later),
      row: { scenario: later.scenario, requests: n },
    });
  };
  gas("single request signed by the payer", ["single-payer", "single-payer-packed"], 1, 40_000, false);
  gas("single request signed by a delegate", ["single-delegate", "single-delegate-packed"], 1, 45_000, false);
  gas("batch of 100, one payer", ["batch-one-payer", "batch-one-payer-packed"], 100, 5_800, true);
  gas("batch of 100, 100 payers", ["batch-many-payers", "batch-many-payers-packed"], 100, 12_000, true);
  gas("voucher claim", ["voucher-claim", "voucher-claim-lane", "voucher-claim-lane-packed"], 1, 38_000, false);
  {
    const extra = (ten: string, one: string, s: State) => Math.round((find(rows, "preflight", ten, 10, s)!.gasUsed - find(rows, "preflight", one, 1, s)!.gasUsed) / 9);
    const lane = extra("voucher-claims-10-lane-packed", "voucher-claim-lane-packed", "later");
    const channel = extra("voucher-claims-10", "voucher-claim", "later");
    const value = Math.min(lane, channel);
    out.push({
      scenario: "each extra claim in a batch of 10",
      target: "<= 12,000",
      figure: `${fmt(value)} (${value === lane ? "lanes, claimLanesPacked" : "channels, claimVouchers"})`,
      met: value <= 12_000,
      detail: `(claims10 - claim1) / 9, 10 payers; channels: ${fmt(channel)}; new lanes/channels: ${fmt(extra("voucher-claims-10-lane-packed", "voucher-claim-lane-packed", "first"))}`,
      limit: 12_000,
      measured: value,
    });
  }
  const packed = find(rows, "preflight", "batch-one-payer-packed", 100, "later")!;
  out.push({
    scenario: "calldata per batched request",
    target: "<= 100 B",
    figure: `${packed.calldataBytesPerRequest} B (settlePacked)`,
    met: packed.calldataBytesPerRequest <= 100,
    detail: `100 requests of one payer; settleBatch (ABI): ${find(rows, "preflight", "batch-one-payer", 100, "later")!.calldataBytesPerRequest} B; 100 payers: ${find(rows, "preflight", "batch-many-payers-packed", 100, "later")!.calldataBytesPerRequest} B`,
    limit: 100,
    measured: packed.calldataBytesPerRequest,
  });
  out.push({
    scenario: "L1 data per batched request (OP-stack FastLZ estimate, Fjord)",
    target: "<= 85 B",
    figure: `${packed.l1DataBytesPerRequest} B (settlePacked)`,
    met: packed.l1DataBytesPerRequest <= 85,
    detail: `Brotli (Arbitrum): ${packed.brotliBytesPerRequest} B; 100 payers: ${find(rows, "preflight", "batch-many-payers-packed", 100, "later")!.l1DataBytesPerRequest} B`,
    limit: 85,
    measured: packed.l1DataBytesPerRequest,
  });
  for (const state of ["later", "first"] as const) {
    let worst = Infinity;
    let where = "";
    for (const pair of BASELINE_PAIRS) {
      for (const r of rows.filter((x) => x.system === "oz-baseline" && x.scenario === pair.scenario && x.state === state)) {
        const ratio = r.gasUsed / best(rows, pair.preflight, r.requests, state).gasUsed;
        if (ratio < worst) [worst, where] = [ratio, `${r.scenario} ${r.requests}`];
      }
    }
    const limit = state === "later" ? 2 : 1.7;
    out.push({
      scenario: `OpenZeppelin-idiomatic baseline / ours, ${state === "later" ? "written storage" : "first settlement"}`,
      target: `>= ${limit}x`,
      figure: `${worst.toFixed(2)}x (worst)`,
      met: worst >= limit,
      detail: `worst at ${where}; Preflight's best entry point per scenario`,
    });
  }
  {
    let worst = -Infinity;
    let where = "";
    for (const [scenario, n] of [["single-payer-packed", 1], ["batch-one-payer-packed", 100], ["batch-many-payers-packed", 10]] as const) {
      for (const state of ["first", "later"] as const) {
        const off = find(rows, "preflight", scenario, n, state);
        const on = find(rows, "preflight", `${scenario}-fee`, n, state);
        if (off === undefined || on === undefined) continue;
        const added = on.gasUsed - off.gasUsed;
        if (added > worst) [worst, where] = [added, `${scenario} ${n} (${state})`];
      }
    }
    out.push({
      scenario: "a non-zero fee adds at most",
      target: "<= 500 gas per transaction",
      figure: `${fmt(worst)} gas`,
      met: worst <= 500,
      detail: `worst at ${where}; the fee is taken on withdrawal (withdraw-earnings-fee vs withdraw-earnings)`,
      limit: 500,
      measured: worst,
    });
  }
  return out;
}

const RATIO_GAP = "both pay 21,000, calldata, ecrecover and the cold payer slot alike: the ratio rises as Preflight's `rest` falls";

/**
 * For each gas target: its floor (what the EVM allows for the same guarantees) and, while it is
 * missed, what stands between the measured figure and the target. One text, shown by reports/gas.md
 * (with the step breakdown) and by the README's target list.
 */
export const GAPS: Record<string, { floor?: string; between: string }> = {
  "single request signed by the payer": {
    floor: "~38,000",
    between: "about 1,000 opcodes of dispatch, decoding, logging and hashing set-up (`rest`); Solidity's dispatch runs before any entry point",
  },
  "single request signed by a delegate": { floor: "~43,000", between: "the grant's hot slot (`permission`, a cold slot rewritten) on top of the payer-signed request's frame (`rest`)" },
  "batch of 100, one payer": { floor: "~5,400", between: "the per-item loop around storage, ecrecover and calldata (`rest`)" },
  "batch of 100, 100 payers": { floor: "~10,900", between: "about 520 opcodes per group of one (`rest`), a third of them via-IR's stack shuffling, where the floor leaves about 350" },
  "voucher claim": { floor: "~32,000-37,000", between: "the claim's dispatch and decoding (`rest`)" },
  "each extra claim in a batch of 10": {
    floor: "~10,600",
    between: "the claim loop (lane key hashes, the shared signer check) above the floor: a cold slot rewritten, ecrecover, 100 calldata bytes, a 53-byte log record",
  },
  "OpenZeppelin-idiomatic baseline / ours, written storage": { between: RATIO_GAP },
  "OpenZeppelin-idiomatic baseline / ours, first settlement": { between: RATIO_GAP },
};

/** What stands between a missed target and its limit (throws when GAPS has no entry for it: add one). */
export function gapOf(t: Target): { floor?: string; between: string } {
  const gap = GAPS[t.scenario];
  if (gap === undefined) throw new Error(`bench/report.ts: GAPS has no entry for the missed target "${t.scenario}": say what stands between it and its limit.`);
  return gap;
}

/** Why each unmet target is not met, from the step breakdown of its best row. */
export function gapNotes(rows: Row[]): string {
  const per = (r: Row, step: keyof NonNullable<Row["steps"]>): number => Math.round((r.steps?.[step] ?? 0) / r.requests);
  const notes: string[] = [];
  for (const t of targets(rows)) {
    if (t.met) continue;
    const { floor, between } = gapOf(t);
    const r = t.row ? find(rows, "preflight", t.row.scenario, t.row.requests, "later") : undefined;
    const steps = r?.steps
      ? ` Per request: intrinsic ${fmt(per(r, "intrinsic"))} (${r.calldataBytesPerRequest} calldata bytes), recovery ${fmt(per(r, "recovery"))}, hashing ${fmt(per(r, "hashing"))}, ` +
        `permission ${fmt(per(r, "permission"))}, nonce ${fmt(per(r, "nonce"))}, balances ${fmt(per(r, "balances"))}, events ${fmt(per(r, "events"))}, rest ${fmt(per(r, "rest"))}; ` +
        "storage, signature recovery and calldata are at their floor."
      : "";
    const over = t.limit !== undefined && t.measured !== undefined ? `; ${fmt(Math.round(t.measured - t.limit))} over the target` : "";
    notes.push(`- **${t.scenario}**: measured ${t.figure}, target ${t.target}${floor ? `, floor ${floor}` : ""}${over}.${steps} What stands between: ${between}.`);
  }
  return notes.join("\n");
}

function targetTable(rows: Row[]): string {
  const lines = ["| target | limit | Preflight (written storage) | met | notes |", "|---|---|---|---|---|"];
  for (const t of targets(rows)) lines.push(`| ${t.scenario} | ${t.target} | ${t.figure} | ${t.met ? "yes" : "**no**"} | ${t.detail} |`);
  return lines.join("\n");
}

/** Gas per request, every system side by side, for the scenarios they share. */
function comparisonTable(rows: Row[]): string {
  const lines = [
    "| scenario | requests | storage | " + SYSTEMS.join(" | ") + " | calldata B/request | L1 data B/request (FastLZ) | Brotli B/request | fee bps |",
    "|---|---|---|" + SYSTEMS.map(() => "---:").join("|") + "|---:|---:|---:|---:|",
  ];
  for (const r of rows.filter((x) => x.system === "preflight")) {
    const cells = SYSTEMS.map((s) => {
      const m = find(rows, s, r.scenario, r.requests, r.state);
      return m === undefined ? "-" : fmt(m.gasPerRequest);
    });
    lines.push(`| ${r.scenario} | ${r.requests} | ${r.state} | ${cells.join(" | ")} | ${r.calldataBytesPerRequest} | ${r.l1DataBytesPerRequest} | ${r.brotliBytesPerRequest} | ${r.feeBps} |`);
  }
  return lines.join("\n");
}

/** Every row with its per-step attribution. */
function stepsTable(rows: Row[], systems: System[]): string {
  const lines = [
    "| system | scenario | requests | storage | gasUsed | per request | calldata/request | L1 data/request | Brotli/request | " + STEPS.join(" | ") + " |",
    "|---|---|---:|---|---:|---:|---:|---:|---:|" + STEPS.map(() => "---:").join("|") + "|",
  ];
  for (const r of rows.filter((x) => systems.includes(x.system))) {
    const steps = STEPS.map((s) => (r.steps ? fmt(r.steps[s]) : "-"));
    lines.push(
      `| ${r.system} | ${r.scenario} | ${r.requests} | ${r.state} | ${fmt(r.gasUsed)} | ${fmt(r.gasPerRequest)} | ${r.calldataBytesPerRequest} | ${r.l1DataBytesPerRequest} | ${r.brotliBytesPerRequest} | ${steps.join(" | ")} |`,
    );
  }
  return lines.join("\n");
}

/** Preflight v1 (before) against v2 (after), gas per request, for every v1 scenario. */
function beforeAfterTable(rows: Row[], before: Row[] | undefined): string {
  if (before === undefined || before.length === 0) return "";
  const lines = ["| scenario | requests | storage | v1 | v2 | v2 entry point | change |", "|---|---:|---|---:|---:|---|---:|"];
  for (const b of before.filter((x) => x.system === "preflight")) {
    // v2's cheapest entry point for the same work: the readable one, or its packed or lane form.
    const names = [b.scenario, `${b.scenario}-packed`, `${b.scenario}-lane`, `${b.scenario}-lane-packed`];
    const candidates = rows.filter((r) => r.system === "preflight" && r.requests === b.requests && r.state === b.state && r.feeBps === 0 && names.includes(r.scenario));
    if (candidates.length === 0) continue;
    const r = candidates.reduce((x, y) => (y.gasPerRequest < x.gasPerRequest ? y : x));
    const change = ((r.gasPerRequest - b.gasPerRequest) / b.gasPerRequest) * 100;
    lines.push(`| ${b.scenario} | ${b.requests} | ${b.state} | ${fmt(b.gasPerRequest)} | ${fmt(r.gasPerRequest)} | ${r.scenario} | ${change.toFixed(1)}% |`);
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
    "## Targets",
    "",
    targetTable(rows),
    "",
    ...(gapNotes(rows) === "" ? [] : [gapNotes(rows), ""]),
    "## Gas per request, side by side",
    "",
    comparisonTable(rows),
    "",
    ...(ex === "" ? [] : ["Not measurable:", "", ex, ""]),
    ...(ba === "" ? [] : ["## Preflight v1 and v2 (gas per request)", "", ba, ""]),
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
