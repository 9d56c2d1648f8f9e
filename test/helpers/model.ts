/**
 * A reference implementation of Preflight's accounting in TypeScript, used by the property tests
 * (test/invariants) to predict the outcome of every action before the contract runs it. It follows the
 * specification in contracts/interfaces (checks in the documented order), not the Solidity code.
 */
import { Reason, type ReasonCode } from "./security";

export const U32_MAX = 2n ** 32n - 1n;
export const U128_MAX = 2n ** 128n - 1n;
const BPS = 10_000n;
/** Seconds after maturing during which a withdrawal or lane close may execute. */
export const WITHDRAWAL_WINDOW = 7n * 86_400n;

export interface ModelGrant {
  epoch: bigint;
  expiry: bigint; // 0 = revoked / none
  provider: string; // ZeroAddress = any
  maxPrice: bigint;
  budget: bigint;
  period: bigint;
  periodEnd: bigint;
  spent: bigint;
  models: Set<string> | null; // null = any model
}

export interface Pending {
  amount: bigint;
  readyAt: bigint;
  /** deposited since the request: never under notice, so never withdrawn by it */
  depositedSince: bigint;
}

/** A lane (payer, provider, token). */
export interface Lane {
  claimed: bigint;
  funds: bigint;
  uncollected: bigint;
  closeReadyAt: bigint;
  /** the lane's funds and claimed total when the pending close was requested */
  closeFunds: bigint;
  closeClaimed: bigint;
}

/** What an item (request or voucher) asks the model to authorize. */
export interface Authorization {
  payer: string;
  token: string;
  provider: string;
  model: string;
  amount: bigint;
  /** address whose key signed: the payer, a delegate, or anyone else */
  signer: string;
  isRequest: boolean;
}

const ZERO = "0x0000000000000000000000000000000000000000";
const key = (...parts: (string | bigint)[]) => parts.map(String).join("|");

export class PreflightModel {
  clock = 0n;
  readonly fees = new Map<string, bigint>();
  readonly lanes = new Map<string, Lane>();
  readonly balances = new Map<string, bigint>();
  readonly earnings = new Map<string, bigint>();
  readonly held = new Map<string, bigint>();
  readonly usedNonces = new Map<string, Set<bigint>>();
  readonly grants = new Map<string, ModelGrant>();
  readonly claimed = new Map<string, bigint>();
  readonly pending = new Map<string, Pending>();

  /** `feeBps`: the fee fixed at deployment, taken (rounded up) when a provider withdraws. */
  constructor(
    readonly noticePeriod: bigint,
    readonly feeBps = 0n,
  ) {}

  feesOf(token: string): bigint {
    return this.fees.get(token) ?? 0n;
  }
  lane(payer: string, provider: string, token: string): Lane {
    const k = key(payer, provider, token);
    let l = this.lanes.get(k);
    if (!l) this.lanes.set(k, (l = { claimed: 0n, funds: 0n, uncollected: 0n, closeReadyAt: 0n, closeFunds: 0n, closeClaimed: 0n }));
    return l;
  }

  balance(payer: string, token: string): bigint {
    return this.balances.get(key(payer, token)) ?? 0n;
  }
  earned(provider: string, token: string): bigint {
    return this.earnings.get(key(provider, token)) ?? 0n;
  }
  holding(token: string): bigint {
    return this.held.get(token) ?? 0n;
  }
  grant(payer: string, token: string, delegate: string): ModelGrant {
    const k = key(payer, token, delegate);
    let g = this.grants.get(k);
    if (!g) {
      g = { epoch: 0n, expiry: 0n, provider: ZERO, maxPrice: 0n, budget: 0n, period: 0n, periodEnd: 0n, spent: 0n, models: null };
      this.grants.set(k, g);
    }
    return g;
  }
  nonces(payer: string, token: string): Set<bigint> {
    const k = key(payer, token);
    let s = this.usedNonces.get(k);
    if (!s) this.usedNonces.set(k, (s = new Set()));
    return s;
  }
  /** The 64-bit used-nonce bitmap of `word`, as `nonceBitmap` reports it. */
  bitmap(payer: string, token: string, word: bigint): bigint {
    let bits = 0n;
    for (const n of this.nonces(payer, token)) if (n >> 6n === word) bits |= 1n << (n & 63n);
    return bits;
  }
  channel(payer: string, provider: string, token: string, channel: string): bigint {
    return this.claimed.get(key(payer, provider, token, channel)) ?? 0n;
  }

  // ---------------------------------------------------------------- escrow

  deposit(payer: string, token: string, amount: bigint): "ok" | "BalanceOverflow" | "ZeroAmount" {
    if (amount === 0n) return "ZeroAmount";
    const balance = this.balance(payer, token);
    if (balance + amount > U128_MAX) return "BalanceOverflow";
    this.balances.set(key(payer, token), balance + amount);
    this.held.set(token, this.holding(token) + amount);
    const p = this.pending.get(key(payer, token));
    if (p) p.depositedSince += amount;
    return "ok";
  }

  /** Capped at the balance now, so a request cannot be armed before a deposit. */
  requestWithdrawal(payer: string, token: string, amount: bigint): "ok" | "ZeroAmount" {
    const balance = this.balance(payer, token);
    const capped = amount > balance ? balance : amount;
    if (capped === 0n) return "ZeroAmount";
    this.pending.set(key(payer, token), { amount: capped, readyAt: this.clock + this.noticePeriod, depositedSince: 0n });
    return "ok";
  }

  /** @returns the amount paid, or the error */
  withdraw(payer: string, token: string): bigint | "NoWithdrawalRequested" | "NoticePeriodActive" | "WithdrawalLapsed" | "ZeroAmount" {
    const p = this.pending.get(key(payer, token));
    if (!p) return "NoWithdrawalRequested";
    if (this.clock < p.readyAt) return "NoticePeriodActive";
    if (this.clock >= p.readyAt + WITHDRAWAL_WINDOW) return "WithdrawalLapsed";
    const balance = this.balance(payer, token);
    const noticed = balance > p.depositedSince ? balance - p.depositedSince : 0n;
    const amount = p.amount < noticed ? p.amount : noticed;
    if (amount === 0n) return "ZeroAmount";
    this.pending.delete(key(payer, token));
    this.balances.set(key(payer, token), balance - amount);
    this.held.set(token, this.holding(token) - amount);
    return amount;
  }

  /** @returns what is sent to the provider: its earnings less the fee, ceil(earnings * bps / 10,000). */
  withdrawEarnings(provider: string, token: string): bigint | "ZeroAmount" {
    const gross = this.earned(provider, token);
    if (gross === 0n) return "ZeroAmount";
    const fee = (gross * this.feeBps + BPS - 1n) / BPS;
    this.earnings.set(key(provider, token), 0n);
    this.fees.set(token, this.feesOf(token) + fee);
    this.held.set(token, this.holding(token) - (gross - fee));
    return gross - fee;
  }

  /** @returns what is sent to the fee recipient */
  withdrawFees(token: string): bigint | "ZeroAmount" {
    const amount = this.feesOf(token);
    if (amount === 0n) return "ZeroAmount";
    this.fees.set(token, 0n);
    this.held.set(token, this.holding(token) - amount);
    return amount;
  }

  /** Credits a settlement transaction's gross to `provider` (the fee is taken on withdrawal). */
  credit(provider: string, token: string, gross: bigint): void {
    this.earnings.set(key(provider, token), this.earned(provider, token) + gross);
  }

  // ---------------------------------------------------------------- lanes

  /** Moves `amount` of the payer's balance into its lane for `provider`; a pending close is unchanged. */
  fundLane(payer: string, provider: string, token: string, amount: bigint): "ok" | "ZeroAmount" | "InsufficientBalance" {
    if (amount === 0n) return "ZeroAmount";
    const balance = this.balance(payer, token);
    if (balance < amount) return "InsufficientBalance";
    this.balances.set(key(payer, token), balance - amount);
    const l = this.lane(payer, provider, token);
    l.funds += amount;
    return "ok";
  }

  /** A fresh deposit (anyone pays) into lane (payer, provider, token); a pending close is unchanged. */
  depositToLane(payer: string, provider: string, token: string, amount: bigint): "ok" | "ZeroAmount" {
    if (amount === 0n) return "ZeroAmount";
    this.lane(payer, provider, token).funds += amount;
    this.held.set(token, this.holding(token) + amount);
    return "ok";
  }

  /** Claims a lane voucher (payer, provider, token, cumulative): into the lane's uncollected amount. */
  claimLane(a: Authorization & { cumulative: bigint }): { reason: ReasonCode; amount: bigint } {
    const l = this.lane(a.payer, a.provider, a.token);
    if (a.cumulative <= l.claimed) return { reason: Reason.NothingToClaim, amount: 0n };
    const amount = a.cumulative - l.claimed;
    const auth = this.authorize({ ...a, amount });
    if (auth.reason !== Reason.Settled) return { reason: auth.reason, amount: 0n };
    if (l.funds < amount) return { reason: Reason.InsufficientBalance, amount: 0n };
    l.claimed = a.cumulative;
    l.funds -= amount;
    l.uncollected += amount;
    this.recordSpend(a, auth);
    return { reason: Reason.Settled, amount };
  }

  /** Moves the uncollected claims of `payers`' lanes to the provider's earnings. */
  collectLanes(provider: string, token: string, payers: string[]): bigint {
    let total = 0n;
    for (const payer of payers) {
      const l = this.lane(payer, provider, token);
      total += l.uncollected;
      l.uncollected = 0n;
    }
    this.credit(provider, token, total);
    return total;
  }

  requestLaneClose(payer: string, provider: string, token: string): void {
    const l = this.lane(payer, provider, token);
    l.closeReadyAt = this.clock + this.noticePeriod;
    l.closeFunds = l.funds;
    l.closeClaimed = l.claimed;
  }

  /** @returns the funds sent back to the payer, or the error */
  closeLane(payer: string, provider: string, token: string): bigint | "LaneCloseNotRequested" | "LaneCloseNotReady" | "LaneCloseLapsed" {
    const l = this.lane(payer, provider, token);
    if (l.closeReadyAt === 0n) return "LaneCloseNotRequested";
    if (this.clock < l.closeReadyAt) return "LaneCloseNotReady";
    if (this.clock >= l.closeReadyAt + WITHDRAWAL_WINDOW) return "LaneCloseLapsed";
    // What is left of the funds under notice: claims since the request draw on them first.
    const claimedSince = l.claimed - l.closeClaimed;
    const amount = claimedSince >= l.closeFunds ? 0n : l.closeFunds - claimedSince;
    l.funds -= amount;
    l.closeReadyAt = 0n;
    this.held.set(token, this.holding(token) - amount);
    return amount;
  }

  // ---------------------------------------------------------------- grants

  setGrant(
    payer: string,
    t: { delegate: string; token: string; provider: string; maxPrice: bigint; budget: bigint; period: bigint; expiry: bigint; models: string[] },
  ): "ok" | "GrantExpiryInPast" {
    if (t.expiry <= this.clock) return "GrantExpiryInPast";
    const g = this.grant(payer, t.token, t.delegate);
    const periodEnd = t.period === 0n ? U32_MAX : this.clock + t.period;
    Object.assign(g, {
      epoch: g.epoch + 1n,
      expiry: t.expiry,
      provider: t.provider,
      maxPrice: t.maxPrice,
      budget: t.budget,
      period: t.period,
      periodEnd: periodEnd > U32_MAX ? U32_MAX : periodEnd,
      spent: 0n,
      models: t.models.length === 0 ? null : new Set(t.models),
    });
    return "ok";
  }

  revoke(payer: string, token: string, delegate: string): void {
    const g = this.grant(payer, token, delegate);
    g.epoch += 1n;
    g.expiry = 0n;
  }

  // ---------------------------------------------------------------- settlement

  /**
   * Who may spend, per the spec: the payer; else a delegate with a grant (ever made) within its scope;
   * else nobody. Returns the reason and, for a delegate, the grant's spending after this item.
   */
  authorize(a: Authorization): { reason: ReasonCode; delegate?: string; spent?: bigint; periodEnd?: bigint } {
    if (a.signer === a.payer) return { reason: Reason.Settled };
    const g = this.grants.get(key(a.payer, a.token, a.signer));
    if (!g || g.epoch === 0n) return { reason: Reason.InvalidSigner };
    if (g.expiry === 0n) return { reason: Reason.GrantRevoked };
    if (this.clock >= g.expiry) return { reason: Reason.GrantExpired };
    if (g.provider !== ZERO && g.provider !== a.provider) return { reason: Reason.ProviderNotAllowed };
    if (a.isRequest && a.amount > g.maxPrice) return { reason: Reason.PriceAboveCap };
    if (g.models !== null && !g.models.has(a.model)) return { reason: Reason.ModelNotAllowed };
    let spent = g.spent;
    let periodEnd = g.periodEnd;
    if (this.clock >= periodEnd) {
      periodEnd += ((this.clock - periodEnd) / g.period + 1n) * g.period;
      if (periodEnd > U32_MAX) periodEnd = U32_MAX;
      spent = 0n;
    }
    spent += a.amount;
    if (spent > g.budget) return { reason: Reason.BudgetExceeded };
    return { reason: Reason.Settled, delegate: a.signer, spent, periodEnd };
  }

  /** Settles one request (debit only; the caller credits the provider per transaction). */
  settleRequest(a: Authorization & { nonce: bigint; deadline: bigint }): ReasonCode {
    if (this.clock > a.deadline) return Reason.Expired;
    const auth = this.authorize(a);
    if (auth.reason !== Reason.Settled) return auth.reason;
    const balance = this.balance(a.payer, a.token);
    if (balance < a.amount) return Reason.InsufficientBalance;
    const used = this.nonces(a.payer, a.token);
    if (used.has(a.nonce)) return Reason.NonceUsed;
    used.add(a.nonce);
    this.balances.set(key(a.payer, a.token), balance - a.amount);
    this.recordSpend(a, auth);
    return Reason.Settled;
  }

  /** Claims one voucher (debit only). `a.amount` is ignored: it is cumulative minus what the channel paid. */
  claimVoucher(a: Authorization & { channel: string; cumulative: bigint }): { reason: ReasonCode; amount: bigint } {
    const ck = key(a.payer, a.provider, a.token, a.channel);
    const claimed = this.claimed.get(ck) ?? 0n;
    if (a.cumulative <= claimed) return { reason: Reason.NothingToClaim, amount: 0n };
    const amount = a.cumulative - claimed;
    const auth = this.authorize({ ...a, amount });
    if (auth.reason !== Reason.Settled) return { reason: auth.reason, amount: 0n };
    const balance = this.balance(a.payer, a.token);
    if (balance < amount) return { reason: Reason.InsufficientBalance, amount: 0n };
    this.claimed.set(ck, a.cumulative);
    this.balances.set(key(a.payer, a.token), balance - amount);
    this.recordSpend(a, auth);
    return { reason: Reason.Settled, amount };
  }

  invalidateNonces(payer: string, token: string, word: bigint, mask: bigint): void {
    const used = this.nonces(payer, token);
    for (let i = 0n; i < 64n; i++) if ((mask >> i) & 1n) used.add((word << 6n) | i);
  }

  private recordSpend(a: Authorization, auth: { delegate?: string; spent?: bigint; periodEnd?: bigint }): void {
    if (auth.delegate === undefined) return;
    const g = this.grant(a.payer, a.token, auth.delegate);
    g.spent = auth.spent!;
    g.periodEnd = auth.periodEnd!;
  }
}
