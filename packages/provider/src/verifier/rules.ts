/**
 * The contract's settlement rules, as one pure function of (state, item, time) per kind of item.
 * Read these beside the contract, check by check in the contract's order:
 * - `decideRequest`  = Settlement._settleRequest + Settlement._debit
 * - `decideVoucher`  = Settlement._claimChannel
 * - `decideLaneVoucher` = Lanes._claimLane
 * - `authorize`      = Settlement._authorize
 * - `checkGrant`     = InferencePermissions._checkGrant
 * (A batch's TokenMismatch is not a property of an item on its own: a provider's batch names the
 * item's token.)
 *
 * Nothing here does I/O or changes state. What the provider already accepted (reservations) is part
 * of the state read, so an accepted item is never counted twice; the caller holds what is accepted.
 * State that is not known (`undefined` from the `RuleState`) never lets an item be accepted: the
 * verdict lists which state to read (`unknown`), and the decision says `needsChainRead`.
 *
 * Two rules are the provider's, not the contract's, because the contract applies them later than the
 * preflight: funds that can leave before the provider settles (a pending withdrawal or a lane close
 * that can execute within `settlementWindow`) do not count as covering anything.
 */
import { ZeroAddress } from "ethers";
import { Reason, type SignedLaneVoucher, type SignedRequest, type SignedVoucher } from "@preflight/sdk";
import { SignatureStatus } from "../crypto";
import type { Decision, GrantFacts, LaneFacts, StateKey, WithdrawalFacts } from "./types";

const UINT32_MAX = (1n << 32n) - 1n;
/** Settlement.MAX_NONCE */
const MAX_NONCE = (1n << 64n) - 1n;
const ZERO = ZeroAddress.toLowerCase();

/** The state the rules read: chain state as of the synced block, and this provider's reservations. */
export interface RuleState {
  /** The provider (lowercase) that will settle. */
  readonly provider: string;
  balance(payer: string, token: string): bigint | undefined;
  withdrawal(payer: string, token: string): WithdrawalFacts | undefined;
  /** Used-nonce bitmap word. */
  nonceWord(payer: string, token: string, word: bigint): bigint | undefined;
  /** `null` = known to be no delegate (epoch 0). */
  grant(payer: string, token: string, delegate: string): GrantFacts | null | undefined;
  /** What the channel (payer, this provider, token, channel) paid so far. */
  claimed(payer: string, token: string, channel: string): bigint | undefined;
  /** The lane (payer, this provider, token). */
  lane(payer: string, token: string): LaneFacts | undefined;
  /** Whether the payer has code; `undefined` = not looked up (treated as an EOA: refusing is safe). */
  isContract(payer: string): boolean | undefined;
  /** Amount of the payer's balance this provider accepted and has not seen settle. */
  reservedBalance(payer: string, token: string): bigint;
  /** Nonce bits of `word` this provider accepted and has not seen settle. */
  reservedNonces(payer: string, token: string, word: bigint): bigint;
  /** Spend this provider accepted under the delegate's grant and has not seen settle. */
  reservedGrant(payer: string, token: string, delegate: string): bigint;
  /** The accepted, unclaimed voucher of a channel. */
  voucherHold(payer: string, token: string, channel: string): HoldFacts | undefined;
  /** The accepted, unclaimed voucher of the lane. */
  laneHold(payer: string, token: string): HoldFacts | undefined;
}

/** An accepted cumulative voucher not yet claimed. */
export interface HoldFacts {
  cumulative: bigint;
  /** The excess over what the channel or lane had paid when accepted: what it reserves. */
  amount: bigint;
  delegate?: string;
}

/** A signature recovered against the item's digest (pure; the caller computes it when the rules ask). */
export interface RecoveredSignature {
  /** 0x hex digest */
  digest: string;
  status: SignatureStatus;
  /** lowercase signer, when it recovered */
  signer?: string;
}

/** When the decision is for, and what an ERC-1271 wallet answered (if asked). */
export interface RuleTime {
  /** Unix time the decision is for (the block timestamp the contract would see). */
  now: bigint;
  /** Seconds within which the provider settles: funds that can leave sooner do not count. */
  settlementWindow: bigint;
  /** The payer wallet's `isValidSignature` answer, when asked. */
  erc1271?: boolean;
}

/** A decision, and the state it could not decide without. */
export interface Verdict {
  decision: Decision;
  /** State that was not known; non-empty means not accepted and `decision.needsChainRead`. */
  unknown: StateKey[];
}

/** Settlement._settleRequest and _debit: deadline, nonce range, authorisation, balance, nonce. */
export function decideRequest(state: RuleState, r: SignedRequest, recover: () => RecoveredSignature, t: RuleTime): Verdict {
  const unknown: StateKey[] = [];
  if (t.now > r.deadline) return { decision: refuse(Reason.Expired, 0n), unknown }; // inclusive deadline
  if (r.nonce > MAX_NONCE) return { decision: refuse(Reason.NonceOutOfRange, 0n), unknown };
  const payer = r.payer.toLowerCase();
  const token = r.token.toLowerCase();
  const price = r.price;
  const auth = authorize(state, payer, token, r.model, price, true, recover(), t, 0n, unknown);
  if (auth.reason !== Reason.Settled) return finish({ ...auth, amount: price }, unknown);
  const spendable = spendableBalance(state, payer, token, t, 0n, unknown);
  if (spendable !== undefined && spendable < price) return finish({ ...auth, reason: Reason.InsufficientBalance, amount: price }, unknown);
  const word = r.nonce >> 6n;
  const bits = state.nonceWord(payer, token, word);
  if (bits === undefined) unknown.push({ kind: "word", payer, token, word });
  else if (((bits | state.reservedNonces(payer, token, word)) >> (r.nonce & 63n)) & 1n) {
    return finish({ ...auth, reason: Reason.NonceUsed, amount: price }, unknown);
  }
  return finish({ ...auth, accepted: true, reason: Reason.Settled, amount: price, spendable }, unknown);
}

/**
 * Settlement._claimChannel: the channel must owe more than it paid (or than the voucher this
 * provider already accepted for it); the excess must be authorised and covered by the balance.
 */
export function decideVoucher(state: RuleState, v: SignedVoucher, recover: () => RecoveredSignature, t: RuleTime): Verdict {
  const unknown: StateKey[] = [];
  const payer = v.payer.toLowerCase();
  const token = v.token.toLowerCase();
  const channel = v.channel.toLowerCase();
  const claimed = state.claimed(payer, token, channel);
  if (claimed === undefined) {
    unknown.push({ kind: "channel", payer, token, channel });
    return finish(refuse(Reason.NothingToClaim, 0n), unknown);
  }
  const held = state.voucherHold(payer, token, channel);
  const floor = held !== undefined && held.cumulative > claimed ? held.cumulative : claimed;
  if (v.cumulativeAmount <= floor) return { decision: refuse(Reason.NothingToClaim, 0n), unknown };
  const amount = v.cumulativeAmount - claimed;
  const sig = recover();
  const auth = authorize(state, payer, token, v.model, amount, false, sig, t, replaced(held, sig), unknown);
  if (auth.reason !== Reason.Settled) return finish({ ...auth, amount }, unknown);
  const spendable = spendableBalance(state, payer, token, t, held?.amount ?? 0n, unknown);
  if (spendable !== undefined && spendable < amount) return finish({ ...auth, reason: Reason.InsufficientBalance, amount }, unknown);
  return finish({ ...auth, accepted: true, reason: Reason.Settled, amount, spendable }, unknown);
}

/**
 * Lanes._claimLane: the lane must owe more than it paid (or than the voucher this provider already
 * accepted for it); the excess must be authorised and covered by the lane's funds (which count as
 * gone when a close the payer requested can execute before the provider settles).
 */
export function decideLaneVoucher(state: RuleState, v: SignedLaneVoucher, recover: () => RecoveredSignature, t: RuleTime): Verdict {
  const unknown: StateKey[] = [];
  const payer = v.payer.toLowerCase();
  const token = v.token.toLowerCase();
  const lane = state.lane(payer, token);
  if (lane === undefined) {
    unknown.push({ kind: "lane", payer, token });
    return finish(refuse(Reason.NothingToClaim, 0n), unknown);
  }
  const held = state.laneHold(payer, token);
  const floor = held !== undefined && held.cumulative > lane.claimed ? held.cumulative : lane.claimed;
  if (v.cumulativeAmount <= floor) return { decision: refuse(Reason.NothingToClaim, 0n), unknown };
  const amount = v.cumulativeAmount - lane.claimed;
  const sig = recover();
  const auth = authorize(state, payer, token, v.model, amount, false, sig, t, replaced(held, sig), unknown);
  if (auth.reason !== Reason.Settled) return finish({ ...auth, amount }, unknown);
  // One voucher per lane is held at a time, and this one replaces it: the lane's funds cover it alone.
  const funds = canExecuteWithin(lane.closeReadyAt, lane.closeExpiresAt, t) ? 0n : lane.funds;
  if (funds < amount) return finish({ ...auth, reason: Reason.InsufficientBalance, amount }, unknown);
  return finish({ ...auth, accepted: true, reason: Reason.Settled, amount, spendable: funds }, unknown);
}

/**
 * Whether a lane voucher that adds nothing may still be used by its signer (the gateway accepts such
 * a voucher only from the key whose voucher last raised the lane, which passed every rule then): a
 * delegate only while its grant is not revoked or expired and still covers this provider and the
 * voucher's model; the payer, or a key its ERC-1271 wallet accepted, always. Nothing is debited, so
 * no budget is checked.
 */
export function decideLaneSigner(state: RuleState, v: SignedLaneVoucher, sig: RecoveredSignature, t: RuleTime): Verdict {
  const unknown: StateKey[] = [];
  const payer = v.payer.toLowerCase();
  const token = v.token.toLowerCase();
  const signer = sig.signer;
  const base: Decision = { accepted: true, reason: Reason.Settled, signer, digest: sig.digest, amount: 0n };
  if (signer === undefined || signer === payer) return { decision: base, unknown };
  const grant = state.grant(payer, token, signer);
  if (grant === undefined) unknown.push({ kind: "grant", payer, token, delegate: signer });
  if (!grant || grant.epoch === 0n) return finish(base, unknown); // not a delegate
  const reason = checkGrant(state, grant, payer, token, signer, v.model, 0n, false, t.now, 0n, unknown);
  return finish({ ...base, delegate: signer, accepted: reason === Reason.Settled, reason }, unknown);
}

/**
 * Settlement._authorize: the payer by ECDSA; else a delegate (a grant record with a non-zero epoch)
 * within its grant; else, for a payer with code, its ERC-1271 answer; else the signature's reason.
 */
export function authorize(
  state: RuleState,
  payer: string,
  token: string,
  model: string,
  amount: bigint,
  isRequest: boolean,
  sig: RecoveredSignature,
  t: RuleTime,
  replacedGrant: bigint,
  unknown: StateKey[],
): Decision {
  const base: Decision = { accepted: false, reason: Reason.Settled, signer: sig.signer, digest: sig.digest, amount };
  const signer = sig.signer;
  if (signer !== undefined && signer === payer) return base;
  if (signer !== undefined) {
    const grant = state.grant(payer, token, signer);
    if (grant === undefined) {
      // Whether the signer is a delegate is not known: read the grant before deciding.
      unknown.push({ kind: "grant", payer, token, delegate: signer });
      return { ...base, delegate: signer };
    }
    if (grant !== null && grant.epoch !== 0n) {
      const reason = checkGrant(state, grant, payer, token, signer, model, amount, isRequest, t.now, replacedGrant, unknown);
      const grantRemaining = rollover(grant, t.now).remaining - state.reservedGrant(payer, token, signer) + replacedGrant;
      return { ...base, delegate: signer, reason, grantRemaining };
    }
  }
  const sigReason =
    sig.status === SignatureStatus.BadLength
      ? Reason.SignatureLength
      : sig.status === SignatureStatus.Malleable
        ? Reason.SignatureMalleable
        : Reason.InvalidSigner;
  if (state.isContract(payer) === true) {
    if (t.erc1271 === true) return base;
    if (t.erc1271 === undefined) return { ...base, reason: sigReason, needsErc1271: true };
  }
  return { ...base, reason: sigReason };
}

/**
 * InferencePermissions._checkGrant for a signer whose grant record exists: revoked, expired, provider
 * (the hot slot lives under the grant's provider, or under zero for any provider), price cap
 * (requests only), model, then the period's remaining budget after rollover, net of this
 * provider's reserved spend.
 */
export function checkGrant(
  state: RuleState,
  g: GrantFacts,
  payer: string,
  token: string,
  delegate: string,
  model: string,
  amount: bigint,
  checkPrice: boolean,
  now: bigint,
  replacedGrant: bigint,
  unknown: StateKey[],
): Reason {
  // A grant for another provider is refused in the same order as any: revoked, expired, then the provider.
  if (g.expiry === 0n) return Reason.GrantRevoked;
  if (now >= g.expiry) return Reason.GrantExpired;
  if (g.provider !== ZERO && g.provider !== state.provider) return Reason.ProviderNotAllowed;
  if (checkPrice && amount > g.maxPrice) return Reason.PriceAboveCap;
  if (!g.anyModel) {
    const m = model.toLowerCase();
    const allowed = g.models.get(m) ?? (g.modelsComplete ? false : undefined);
    if (allowed === undefined) unknown.push({ kind: "model", payer, token, delegate, model: m });
    else if (!allowed) return Reason.ModelNotAllowed;
  }
  const { remaining } = rollover(g, now);
  if (amount + state.reservedGrant(payer, token, delegate) - replacedGrant > remaining) return Reason.BudgetExceeded;
  return Reason.Settled;
}

/** The budget period containing `now` (aligned to the grant's start) and what remains in it. */
export function rollover(g: Pick<GrantFacts, "remaining" | "budget" | "period" | "periodEnd">, now: bigint): { remaining: bigint; periodEnd: bigint } {
  if (now < g.periodEnd || g.period === 0n) return { remaining: g.remaining, periodEnd: g.periodEnd };
  let periodEnd = g.periodEnd + ((now - g.periodEnd) / g.period + 1n) * g.period;
  if (periodEnd > UINT32_MAX) periodEnd = UINT32_MAX;
  return { remaining: g.budget, periodEnd };
}

/** Whether something executable in [readyAt, expiresAt) can execute between now and the settlement. */
function canExecuteWithin(readyAt: bigint, expiresAt: bigint, t: RuleTime): boolean {
  return readyAt !== 0n && readyAt <= t.now + t.settlementWindow && expiresAt > t.now;
}

/**
 * What the payer's balance can still be debited for this provider: the balance, less what this
 * provider reserved (except `heldHere`, the reservation being replaced), less a pending withdrawal
 * that can execute before the provider settles (the contract pays it out of the same balance).
 */
function spendableBalance(state: RuleState, payer: string, token: string, t: RuleTime, heldHere: bigint, unknown: StateKey[]): bigint | undefined {
  const balance = state.balance(payer, token);
  const w = state.withdrawal(payer, token);
  if (balance === undefined || w === undefined) {
    unknown.push({ kind: "account", payer, token });
    return undefined;
  }
  const leaving = w.amount > 0n && canExecuteWithin(w.readyAt, w.expiresAt, t) ? (w.amount < balance ? w.amount : balance) : 0n;
  return balance - leaving - (state.reservedBalance(payer, token) - heldHere);
}

/** The grant spend a held voucher reserved, when the same delegate signs its replacement. */
function replaced(held: HoldFacts | undefined, sig: RecoveredSignature): bigint {
  return held?.delegate !== undefined && held.delegate === sig.signer ? held.amount : 0n;
}

function refuse(reason: Reason, amount: bigint): Decision {
  return { accepted: false, reason, amount };
}

/** The reason an item would get if the unknown state turned out against it. */
const UNKNOWN_REASON: Record<StateKey["kind"], Reason> = {
  account: Reason.InsufficientBalance,
  word: Reason.NonceUsed,
  grant: Reason.InvalidSigner,
  model: Reason.ModelNotAllowed,
  channel: Reason.NothingToClaim,
  lane: Reason.NothingToClaim,
};

/** Unknown state turns any answer into "not accepted, read first". */
function finish(decision: Decision, unknown: StateKey[]): Verdict {
  if (unknown.length === 0) return { decision, unknown };
  const reason = decision.reason === Reason.Settled ? UNKNOWN_REASON[unknown[0].kind] : decision.reason;
  return { decision: { ...decision, accepted: false, reason, needsChainRead: true }, unknown };
}
