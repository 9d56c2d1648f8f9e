/**
 * The committed gas snapshot of Preflight's scenarios (reports/gas-snapshot.json) and the comparison
 * the `npm test` guard makes against it.
 */
import path from "node:path";
import { rowKey, type Row } from "./scenarios";

export const SNAPSHOT_PATH = path.join(__dirname, "..", "reports", "gas-snapshot.json");

/** scenario/requests/state -> gasUsed, for Preflight's rows. */
export type Snapshot = Record<string, number>;

export function snapshotOf(rows: Row[]): Snapshot {
  const out: Snapshot = {};
  for (const r of rows.filter((x) => x.system === "preflight")) out[rowKey(r)] = r.gasUsed;
  return out;
}

/** One scenario whose gas differs from the snapshot. */
export interface Difference {
  key: string;
  snapshot: number | undefined;
  measured: number | undefined;
}

/** Every scenario that costs more than its snapshot (or is missing on either side), and those that got cheaper. */
export function compare(snapshot: Snapshot, rows: Row[]): { worse: Difference[]; better: Difference[] } {
  const measured = snapshotOf(rows);
  const worse: Difference[] = [];
  const better: Difference[] = [];
  for (const key of new Set([...Object.keys(snapshot), ...Object.keys(measured)])) {
    const d = { key, snapshot: snapshot[key], measured: measured[key] };
    if (d.snapshot === undefined || d.measured === undefined || d.measured > d.snapshot) worse.push(d);
    else if (d.measured < d.snapshot) better.push(d);
  }
  return { worse, better };
}

/** A readable table of differences. */
export function describe(diffs: Difference[]): string {
  return diffs
    .map((d) => {
      if (d.snapshot === undefined) return `  ${d.key}: not in the snapshot (measured ${d.measured})`;
      if (d.measured === undefined) return `  ${d.key}: in the snapshot (${d.snapshot}) but no longer measured`;
      const delta = d.measured - d.snapshot;
      return `  ${d.key}: ${d.snapshot} -> ${d.measured} (${delta > 0 ? "+" : ""}${delta}, ${((delta / d.snapshot) * 100).toFixed(2)}%)`;
    })
    .join("\n");
}
