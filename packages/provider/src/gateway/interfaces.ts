/**
 * The three narrow seams of the gateway. The HTTP side depends only on these, so a new verifier
 * (one that follows the chain differently), a new settlement path or another shared store is one new
 * implementation, not a change to the gateway:
 *
 * - `Preflighter`: the contract's answer for a signed item, decided in-process (accept, or refuse
 *   with the contract's reason code). It never reserves: reservations belong to the store, so that
 *   several replicas share them.
 * - `ReservationStore`: what has been accepted and not yet settled, shared by every replica: used
 *   nonces, funds held per payer, and each lane's totals; every change is one atomic step.
 * - `SettlementQueue`: what was served, settled in the background in batches.
 */
import type { Reason, SignedLaneVoucher, SignedRequest } from "@preflight/sdk";

/** The preflight's answer for one item. */
export interface PreflightDecision {
  accepted: boolean;
  /** `Reason.Settled` (0) when accepted, else the contract's reason code. */
  reason: Reason;
  /** What the item would debit: a request's price, or a lane voucher's excess over what its lane paid on chain. */
  amount: bigint;
  /** The key that signed (lowercase), when the signature recovered. */
  signer?: string;
  /**
   * The funds, as of the last followed block, that the store reserves against: what the payer's
   * escrow can still pay this provider (its balance less a withdrawal that can execute before the
   * settlement) for a request, the lane's funds (none while its close can execute) for a lane voucher.
   */
  balance: bigint;
  /** Lane vouchers: what the lane already paid on chain (also on a refusal, when known). */
  claimed?: bigint;
  /**
   * An item signed by a delegate: the pool of its grant's spend (`grantPool`) and what the grant may
   * still spend, that the store also reserves against (a delegate's budget across calls in flight).
   */
  grant?: { pool: string; remaining: bigint };
}

/** Decides items in-process, with the contract's rules. */
export interface Preflighter {
  /** Decide a per-call request at unix time `now`, without reserving. */
  checkRequest(item: SignedRequest, now: bigint): PreflightDecision | Promise<PreflightDecision>;
  /** Decide a lane voucher's increase over what its lane (payer, this provider, token) paid on chain, without reserving. */
  checkLaneVoucher(item: SignedLaneVoucher, now: bigint): PreflightDecision | Promise<PreflightDecision>;
  /**
   * For a lane voucher that adds nothing new: the key that signed it (lowercase, undefined when none
   * recovers), and `Reason.Settled` while that key may still pay for the voucher's model (a delegate's
   * grant not revoked or expired and covering the model), else the contract's reason.
   */
  laneVoucherSigner(item: SignedLaneVoucher, now: bigint): { signer?: string; reason: Reason } | Promise<{ signer?: string; reason: Reason }>;
  /** Resolves once the chain state the preflight reads includes `block` (so settled reservations may go). */
  waitForBlock(block: number): Promise<void>;
  /** Stop following the chain. */
  close(): void;
}

/** Outcome of reserving a request. */
export type RequestReservation = "reserved" | "nonce-used" | "insufficient-balance" | "budget-exceeded";

/**
 * Outcome of raising a lane's cover with a new voucher: `held` of the lane's funds, and `grantHeld`
 * of the signing delegate's grant pool (0 for the payer). `carried`: the grant pool held only the
 * excess over this store's last raise of the lane, the same key's, whose grant hold holds the rest,
 * so the voucher's claim stands for that hold too (it charges the whole excess).
 */
export type CoverOutcome =
  | { status: "raised"; held: bigint; grantHeld: bigint; carried: boolean }
  | { status: "stale"; covered: bigint }
  | { status: "insufficient-balance" }
  | { status: "budget-exceeded" };

/** What a delegate's grant pool holds for one queued item. */
export interface GrantHold {
  pool: string;
  amount: bigint;
}

/** A lane's totals (atomic units). */
export interface LaneTotals {
  /** Charged for what was served (never below what the chain claimed from the lane). */
  owed: bigint;
  /** Highest cumulative voucher accepted. */
  covered: bigint;
  /** Held for calls in flight. */
  held: bigint;
  /** The key whose voucher last raised the cover (lowercase), "" for none. */
  signer: string;
}

/** Reservations shared by every replica of a provider's gateway; each method is atomic. */
export interface ReservationStore {
  /** Whether other gateway processes share these reservations (then a release waits for them to follow the chain, even on shutdown). */
  readonly shared: boolean;
  /**
   * Marks (payer, token, nonce) used and holds `amount` of the payer's funds, unless the nonce is
   * taken or `balance` does not cover everything held. Funds are held per (payer, pool): the pool
   * is the token for escrow balances, `laneFundsPool(token)` for a lane's funds. With `grant`, the
   * amount is also held in the grant's pool, unless that would pass `grant.remaining`.
   */
  reserveRequest(payer: string, token: string, nonce: bigint, amount: bigint, balance: bigint, ttlSeconds: number, grant?: { pool: string; remaining: bigint }): Promise<RequestReservation>;
  /** Undoes `reserveRequest` for a call that was not served (the nonce is free again, and the grant's spend). */
  cancelRequest(payer: string, token: string, nonce: bigint, amount: bigint, grantPool?: string): Promise<void>;
  /** Lets go of `amount` of held funds once the chain shows them settled. */
  releaseFunds(payer: string, token: string, amount: bigint): Promise<void>;
  /**
   * Raises lane `lane`'s cover to `cumulative`, holding the increase over max(cover, `claimed`) of
   * the payer's funds in `pool` (returned as `held`), and lifts what the lane owes to at least
   * `claimed` (what the chain paid was owed); `stale` when the cover is already at or above it.
   * With `grant` (a delegate signed), the delegate's grant pool also holds what the claim of this
   * voucher will charge its grant (returned as `grantHeld`): the excess over this store's last
   * raise of the lane when that raise was the same key's (this replica: the claims it queued hold
   * the rest, and `carried` is true), else everything over `claimed` (the claim charges the whole
   * excess to the signer of the voucher it claims; another replica's holds may be let go without
   * this replica knowing); `budget-exceeded`, changing nothing, when that would pass
   * `grant.remaining`.
   */
  raiseCover(lane: string, payer: string, pool: string, cumulative: bigint, claimed: bigint, balance: bigint, signer: string, grant?: { pool: string; remaining: bigint }): Promise<CoverOutcome>;
  /**
   * Forgets whose grant hold is the lane's latest, if it was made through this store, so that the
   * lane's next delegate raise holds the whole excess again: called when a claim's grant holds are
   * let go without the claim charging them (the claim was refused, or given up). Another replica's
   * latest grant hold is left alone: its own claims still hold it.
   */
  forgetLaneGrant(lane: string): Promise<void>;
  /** Admits a call holding `hold` on the lane, unless owed + held + hold would pass covered + `creditLimit`. */
  admit(lane: string, hold: bigint, creditLimit: bigint): Promise<{ admitted: boolean; totals: LaneTotals }>;
  /** Ends an admitted call: drops its hold and adds its `cost` to what the lane owes. */
  charge(lane: string, hold: bigint, cost: bigint): Promise<LaneTotals>;
  /** A lane's totals (all zero when unknown). */
  lane(lane: string): Promise<LaneTotals>;
  /** Runs `fn` while holding a lock shared by the replicas (e.g. one settlement transaction at a time per provider key). */
  withLock<T>(name: string, ttlMs: number, fn: () => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** One settled (or refused) item, as the settlement queue reports it. */
export interface SettledItem {
  kind: "request" | "lane";
  payer: string;
  token: string;
  /** What the chain debited (0 when skipped). */
  amount: bigint;
  /** `Reason.Settled` or why the contract skipped it. */
  reason: Reason;
  /** The amount the gateway held for it (released once the chain shows the settlement). */
  held: bigint;
  /** What delegates' grant pools held for it (a delegate's request: its price; a lane claim: what its raises held). */
  grantHolds?: GrantHold[];
}

/** A request or lane claim a failed batch gave up on, with what the gateway held for it. */
export type DroppedItem = Pick<SettledItem, "kind" | "payer" | "token" | "held" | "grantHolds">;

/**
 * One settlement transaction: signed requests (`settleBatch`), lane claims (`claimLanesPacked`), or
 * the collection of claimed lanes into the provider's earnings (`collectLanes`, `collected`).
 */
export interface SettlementBatch {
  kind: "request" | "lane" | "collect";
  txHash?: string;
  blockNumber?: number;
  gasUsed: bigint;
  items: SettledItem[];
  /** `collect`: what moved into the provider's earnings. */
  collected?: bigint;
  /** Sends tried for this batch (more than 1 after transient failures). */
  attempts?: number;
  error?: unknown;
  /**
   * With `error`: the items the queue gave up on after a revert (the chain read back, nothing
   * pending), with what was held for them: nothing settled them, so those holds can go. `items` are
   * what an attempt did settle. A lane claim's grant holds are left off when the lane's next
   * voucher here took them (its claim charges the whole excess). Items whose failure is not known to
   * be final are not listed: they went back to the queue, or, shutting down, stay held.
   */
  dropped?: DroppedItem[];
}

/** Background settlement. */
export interface SettlementQueue {
  /** Queue a served, reserved request (`grantPool`: where its delegate's spend is held, if any). */
  enqueueRequest(item: SignedRequest, held: bigint, grantPool?: string): void;
  /**
   * Queue a lane's latest voucher (replaces any queued voucher of the same lane); `held` is the
   * increase it covers, `grantHold` what its delegate's grant pool held, `carried` grant holds of
   * the lane's earlier claims that its claim now stands for (they went uncharged while it was raised).
   */
  enqueueLaneVoucher(item: SignedLaneVoucher, held: bigint, grantHold?: GrantHold, carried?: GrantHold[]): void;
  /** Calls `listener` after every settlement transaction (or failure). */
  subscribe(listener: (batch: SettlementBatch) => void): void;
  /** Settle everything queued now. */
  flush(): Promise<SettlementBatch[]>;
  /** Settle everything queued (and collect the claimed lanes), then refuse more. */
  close(): Promise<SettlementBatch[]>;
  /** Items and atomic units waiting. */
  readonly queuedCount: number;
  readonly queuedAmount: bigint;
  /** Items taken from the queue whose settlement transactions are still under way. */
  readonly settlingCount: number;
  /** The longest a queued item waits before its batch is sent, in ms (a request must not expire before that). */
  readonly maxWaitMs: number;
}
