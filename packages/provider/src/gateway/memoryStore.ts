/**
 * The in-memory `ReservationStore`: one gateway process. Each method runs to completion without
 * awaiting, so it is atomic in Node's single thread. Same rules as the Redis store's scripts.
 */
import type { CoverOutcome, LaneTotals, RequestReservation, ReservationStore } from "./interfaces";

interface UsedNonce {
  expiresAt: number;
}

/**
 * @example
 * const store = new MemoryReservationStore();
 * await store.reserveRequest(payer, token, 7n, 1_000n, balance, 600);
 */
export class MemoryReservationStore implements ReservationStore {
  readonly shared = false; // this process only
  private readonly nonces = new Map<string, UsedNonce>();
  private readonly funds = new Map<string, bigint>();
  private readonly lanes = new Map<string, LaneTotals>();
  /** Per lane, the delegate whose grant hold is the lane's latest here, and the cumulative total it holds up to (`raiseCover`). */
  private readonly laneGrants = new Map<string, { signer: string; cumulative: bigint }>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private sweepAt = 0;

  async reserveRequest(payer: string, token: string, nonce: bigint, amount: bigint, balance: bigint, ttlSeconds: number, grant?: { pool: string; remaining: bigint }): Promise<RequestReservation> {
    const now = Date.now();
    this.sweep(now);
    const key = nonceKey(payer, token, nonce);
    const used = this.nonces.get(key);
    if (used && used.expiresAt > now) return "nonce-used";
    const fk = fundsKey(payer, token);
    const held = this.funds.get(fk) ?? 0n;
    if (held + amount > balance) return "insufficient-balance";
    const gk = grant ? fundsKey(payer, grant.pool) : undefined;
    const spent = gk ? (this.funds.get(gk) ?? 0n) : 0n;
    if (grant && spent + amount > grant.remaining) return "budget-exceeded";
    this.nonces.set(key, { expiresAt: now + ttlSeconds * 1000 });
    this.funds.set(fk, held + amount);
    if (gk) this.funds.set(gk, spent + amount);
    return "reserved";
  }

  async cancelRequest(payer: string, token: string, nonce: bigint, amount: bigint, grantPool?: string): Promise<void> {
    this.nonces.delete(nonceKey(payer, token, nonce));
    this.subtract(fundsKey(payer, token), amount);
    if (grantPool) this.subtract(fundsKey(payer, grantPool), amount);
  }

  async releaseFunds(payer: string, token: string, amount: bigint): Promise<void> {
    this.subtract(fundsKey(payer, token), amount);
  }

  async raiseCover(lane: string, payer: string, pool: string, cumulative: bigint, claimed: bigint, balance: bigint, signer: string, grant?: { pool: string; remaining: bigint }): Promise<CoverOutcome> {
    const totals = this.totals(lane);
    if (cumulative <= totals.covered) return { status: "stale", covered: totals.covered };
    const need = cumulative - (totals.covered > claimed ? totals.covered : claimed);
    const fk = fundsKey(payer, pool);
    const held = this.funds.get(fk) ?? 0n;
    if (held + need > balance) return { status: "insufficient-balance" };
    // The claim charges its voucher's signer the whole excess over `claimed`; a key whose grant hold
    // is the lane's latest holds it already up to its last raise, less this increase.
    const latest = this.laneGrants.get(lane);
    const carried = grant !== undefined && latest?.signer === signer.toLowerCase();
    const heldUpTo = carried && latest.cumulative > claimed ? latest.cumulative : claimed;
    const grantNeed = !grant ? 0n : cumulative - heldUpTo;
    const gk = grant ? fundsKey(payer, grant.pool) : undefined;
    const spent = gk ? (this.funds.get(gk) ?? 0n) : 0n;
    if (grant && spent + grantNeed > grant.remaining) return { status: "budget-exceeded" };
    this.funds.set(fk, held + need);
    if (gk) this.funds.set(gk, spent + grantNeed);
    if (grant) this.laneGrants.set(lane, { signer: signer.toLowerCase(), cumulative });
    else this.laneGrants.delete(lane);
    this.lanes.set(lane, { ...totals, owed: totals.owed > claimed ? totals.owed : claimed, covered: cumulative, signer: signer.toLowerCase() });
    return { status: "raised", held: need, grantHeld: grantNeed, carried };
  }

  async forgetLaneGrant(lane: string): Promise<void> {
    this.laneGrants.delete(lane);
  }

  async admit(lane: string, hold: bigint, creditLimit: bigint): Promise<{ admitted: boolean; totals: LaneTotals }> {
    const totals = this.totals(lane);
    if (totals.owed + totals.held + hold > totals.covered + creditLimit) return { admitted: false, totals };
    const next = { ...totals, held: totals.held + hold };
    this.lanes.set(lane, next);
    return { admitted: true, totals: next };
  }

  async charge(lane: string, hold: bigint, cost: bigint): Promise<LaneTotals> {
    const totals = this.totals(lane);
    const next = { ...totals, held: totals.held > hold ? totals.held - hold : 0n, owed: totals.owed + cost };
    this.lanes.set(lane, next);
    return next;
  }

  async lane(lane: string): Promise<LaneTotals> {
    return this.totals(lane);
  }

  async withLock<T>(name: string, _ttlMs: number, fn: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(name) ?? Promise.resolve();
    const run = previous.then(fn, fn);
    this.locks.set(name, run.catch(() => undefined));
    return run;
  }

  async close(): Promise<void> {}

  private totals(lane: string): LaneTotals {
    return this.lanes.get(lane) ?? { owed: 0n, covered: 0n, held: 0n, signer: "" };
  }

  private subtract(key: string, amount: bigint): void {
    const held = this.funds.get(key) ?? 0n;
    if (held > amount) this.funds.set(key, held - amount);
    else this.funds.delete(key);
  }

  /** Forgets expired nonces at most once a minute (their requests can no longer settle anyway). */
  private sweep(now: number): void {
    if (now < this.sweepAt) return;
    this.sweepAt = now + 60_000;
    for (const [key, used] of this.nonces) if (used.expiresAt <= now) this.nonces.delete(key);
  }
}

export function nonceKey(payer: string, token: string, nonce: bigint): string {
  return `n:${payer.toLowerCase()}:${token.toLowerCase()}:${nonce.toString()}`;
}

/** The store's key of a lane: one per (payer, provider, token) on chain, one cumulative total for every model. */
export function laneKeyOf(payer: string, token: string): string {
  return `${payer}|${token}`.toLowerCase();
}

export function fundsKey(payer: string, pool: string): string {
  return `f:${payer.toLowerCase()}:${pool.toLowerCase()}`;
}

/**
 * The funds pool of a lane in `token`: a lane's funds are reserved for the provider on chain, apart
 * from the payer's escrow balance, so what is held against them is counted apart too.
 * @example
 * await store.raiseCover(lane, payer, laneFundsPool(token), cumulative, claimed, laneFunds, signer);
 */
export function laneFundsPool(token: string): string {
  return `lane:${token.toLowerCase()}`;
}

/**
 * The pool a delegate's grant spend is held in, per payer like its funds.
 * @example
 * await store.reserveRequest(payer, token, nonce, price, balance, ttl, { pool: grantPool(token, delegate), remaining });
 */
export function grantPool(token: string, delegate: string): string {
  return `grant:${token.toLowerCase()}:${delegate.toLowerCase()}`;
}
