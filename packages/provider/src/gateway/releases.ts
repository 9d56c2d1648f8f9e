/**
 * Letting go of what the gateway held for settled items: once the chain shows a batch (and the
 * preflight has followed it), the funds its items held, and a delegate's grant spend, are released
 * from the store, after a grace period so that every replica has followed the chain first (one still
 * seeing the old balance would otherwise accept the released funds again).
 */
import { Reason } from "@preflight/sdk";
import type { DroppedItem, Preflighter, ReservationStore, SettledItem } from "./interfaces";
import { fundsKey, laneFundsPool } from "./memoryStore";

/** What one (payer, pool) held for the items of a batch. */
export interface Hold {
  payer: string;
  pool: string;
  amount: bigint;
}

/**
 * The holds of a batch's items, summed per payer and pool: a batch has up to thousands of items,
 * and a store call per item held the event loop (and Redis) for each. A request's funds are in its
 * token's pool, a lane's in `laneFundsPool`; a delegate's request also held its grant's pool.
 * Settled items and the requests a failed batch gave up on (`DroppedItem`) alike.
 */
export function holdsOf(items: readonly DroppedItem[]): Hold[] {
  const held = new Map<string, Hold>();
  const add = (payer: string, pool: string, amount: bigint) => {
    const key = fundsKey(payer, pool);
    const entry = held.get(key);
    if (entry) entry.amount += amount;
    else held.set(key, { payer, pool, amount });
  };
  for (const item of items) {
    if (item.held !== 0n) add(item.payer, item.kind === "lane" ? laneFundsPool(item.token) : item.token, item.held);
    for (const g of item.grantHolds ?? []) if (g.amount !== 0n) add(item.payer, g.pool, g.amount);
  }
  return [...held.values()];
}

/**
 * Whether a lane claim's delegate grant holds go without the claim charging them: it was refused
 * (a claim that paid, or found the lane already paid past it, charged the grant) or given up.
 */
export function grantLeftUncharged(item: SettledItem | DroppedItem): boolean {
  if (item.kind !== "lane" || !item.grantHolds?.length) return false;
  return !("reason" in item) || (item.reason !== Reason.Settled && item.reason !== Reason.NothingToClaim);
}

/** The releases under way, so that shutdown can wait for them. */
export class HoldReleases {
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly store: ReservationStore,
    private readonly preflighter: Pick<Preflighter, "waitForBlock">,
    private readonly graceMs: number,
    private readonly onError: (error: unknown) => void,
  ) {}

  /**
   * Releases `holds` once the preflight has followed `blockNumber`, after the grace. On shutdown
   * (`closing`) a store no one else shares skips the grace: no other replica reads it.
   */
  release(holds: Hold[], blockNumber: number | undefined, closing: boolean): void {
    const run = (async () => {
      if (blockNumber !== undefined) await this.preflighter.waitForBlock(blockNumber);
      if ((!closing || this.store.shared) && this.graceMs > 0) await new Promise((r) => setTimeout(r, this.graceMs).unref());
      for (const { payer, pool, amount } of holds) await this.store.releaseFunds(payer, pool, amount);
    })().catch(this.onError);
    this.pending.add(run);
    void run.finally(() => this.pending.delete(run));
  }

  /** Resolves when every release started so far is done. */
  async settled(): Promise<void> {
    await Promise.all([...this.pending]);
  }
}
