/**
 * What the gateway does with each batch the settlement queue reports: counts it in the metrics,
 * logs it, lets go of what its items held (`releases.ts`, once the chain shows it), and has the
 * store forget a lane's latest grant hold when a claim left that hold uncharged, unless a raise of
 * that lane is under way here, which then takes the hold (`laneRaises.ts`).
 */
import { Reason } from "@preflight/sdk";
import type { DroppedItem, SettlementBatch, SettlementQueue } from "./interfaces";
import type { LaneRaises } from "./laneRaises";
import type { Logger } from "./log";
import { laneKeyOf } from "./memoryStore";
import type { GatewayMetrics } from "./metrics";
import { contractRefusal } from "./refusals";
import { grantLeftUncharged, holdsOf, type HoldReleases } from "./releases";

export interface SettledBatchContext {
  laneRaises: Pick<LaneRaises, "park">;
  /** Has the store forget a lane's latest grant hold (its next delegate raise holds the whole excess). */
  forgetLaneGrant: (lane: string) => void;
  settlement: Pick<SettlementQueue, "queuedAmount">;
  metrics: GatewayMetrics;
  log: Logger;
  releases: HoldReleases;
  /** Whether the gateway is shutting down (a store no one shares then skips the release grace). */
  closing: () => boolean;
}

/** The listener the gateway subscribes to its settlement queue. */
export function settledBatchHandler({ laneRaises, forgetLaneGrant, settlement, metrics, log, releases, closing }: SettledBatchContext): (batch: SettlementBatch) => void {
  // A lane claim whose delegate's grant holds go uncharged (refused, or given up): a raise of the
  // lane under way here takes them (its claim charges the whole excess); else they are let go and
  // the lane's next delegate raise must hold the whole excess again.
  function unchargedGrantHolds<T extends DroppedItem>(item: T): T {
    if (!grantLeftUncharged(item)) return item;
    const lane = laneKeyOf(item.payer, item.token);
    if (laneRaises.park(lane, item.grantHolds!)) return { ...item, grantHolds: undefined };
    forgetLaneGrant(lane);
    return item;
  }
  return (original) => {
    const batch = { ...original, items: original.items.map(unchargedGrantHolds), dropped: original.dropped?.map(unchargedGrantHolds) };
    const kind = batch.kind;
    if (batch.error) {
      metrics.settlementFailures.inc({ kind });
      log("error", "settlement-failed", { kind, error: String((batch.error as Error)?.message ?? batch.error).slice(0, 500), settled: batch.items.length, dropped: batch.dropped?.length ?? 0 });
      // What an earlier attempt settled is on chain; what the queue gave up on never will be (no
      // block to wait for). Both holds go, or they would count against their payers for good.
      if (batch.items.length) releases.release(holdsOf(batch.items), batch.blockNumber, closing());
      if (batch.dropped?.length) releases.release(holdsOf(batch.dropped), undefined, closing());
      return;
    }
    metrics.settlementGas.inc({ kind }, Number(batch.gasUsed));
    if (kind === "collect") {
      log("info", "collected", { txHash: batch.txHash, block: batch.blockNumber, gasUsed: batch.gasUsed, lanes: batch.items.length, amount: batch.collected ?? 0n });
      return;
    }
    // Counted per reason once a batch (a metric update per item held the event loop for each).
    let settled = 0n;
    const byReason = new Map<Reason, number>();
    for (const item of batch.items) {
      byReason.set(item.reason, (byReason.get(item.reason) ?? 0) + 1);
      settled += item.amount;
    }
    for (const [reason, count] of byReason) metrics.settledItems.inc({ kind, reason: contractRefusal(reason).name }, count);
    metrics.settledAmount.inc({ kind }, Number(settled));
    metrics.queuedAmount.set(Number(settlement.queuedAmount));
    log("info", "settled", { kind, txHash: batch.txHash, block: batch.blockNumber, gasUsed: batch.gasUsed, items: batch.items.length, amount: settled, attempts: batch.attempts ?? 1 });
    releases.release(holdsOf(batch.items), batch.blockNumber, closing());
  };
}
