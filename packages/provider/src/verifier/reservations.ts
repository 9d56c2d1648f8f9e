/**
 * What this provider accepted and has not seen settle: the balance, nonce and grant spend of every
 * accepted request, and the excess of every accepted voucher over what its channel paid.
 *
 * A reservation ends only when the chain shows the item settled or dead (its nonce used, its
 * deadline passed at a synced block's timestamp, its channel or lane paid up to it, its lane closed)
 * or when the provider gives it up (`giveUp*`). A skipped item stays reserved: the provider that
 * accepted it decides.
 *
 * What the chain ended is noted per applied block (`openLog`), so that a reorg that drops the block
 * brings it back (`restore`); what the provider gave up is struck from those notes and never comes back.
 */
import type { ChainState } from "./state";
import { accountKey, grantKey } from "./state";
import type { HoldFacts } from "./rules";

/** An accepted request. */
export interface RequestHold {
  payer: string;
  token: string;
  nonce: bigint;
  amount: bigint;
  deadline: bigint;
  delegate?: string;
}

/** An accepted voucher: of a channel, or (no `channel`) of the payer's lane to this provider. */
export interface VoucherHold extends HoldFacts {
  payer: string;
  token: string;
  channel?: string;
}

/** A reservation the chain ended, as it was. */
export type EndedHold = { kind: "request"; hold: RequestHold } | { kind: "voucher"; hold: VoucherHold };

interface AccountHolds {
  amount: bigint;
  /** word -> reserved nonce bits */
  nonces: Map<bigint, bigint>;
  /** request keys held on this account */
  requests: Set<string>;
  /** voucher keys held on this account */
  vouchers: Set<string>;
}

export class Reservations {
  private readonly requests = new Map<string, RequestHold>();
  private readonly vouchers = new Map<string, VoucherHold>();
  private readonly byAccount = new Map<string, AccountHolds>();
  private readonly byGrant = new Map<string, bigint>();
  /** Where the chain's ends are noted: the latest applied block's log. */
  private log: Map<string, EndedHold> | undefined;
  /** Every log still kept (blocks a reorg could still drop). */
  private readonly logs = new Set<Map<string, EndedHold>>();

  get size(): number {
    return this.requests.size + this.vouchers.size;
  }

  reservedBalance(payer: string, token: string): bigint {
    return this.byAccount.get(accountKey(payer, token))?.amount ?? 0n;
  }

  reservedNonces(payer: string, token: string, word: bigint): bigint {
    return this.byAccount.get(accountKey(payer, token))?.nonces.get(word) ?? 0n;
  }

  reservedGrant(payer: string, token: string, delegate: string): bigint {
    return this.byGrant.get(grantKey(payer, token, delegate)) ?? 0n;
  }

  voucherHold(payer: string, token: string, channel: string | undefined): VoucherHold | undefined {
    return this.vouchers.get(voucherKey(payer, token, channel));
  }

  /** Reserved nonce words of (payer, token), so the follower keeps them current. */
  reservedWords(payer: string, token: string): Iterable<bigint> {
    return this.byAccount.get(accountKey(payer, token))?.nonces.keys() ?? [];
  }

  /** Accounts (payer|token keys) that hold something. */
  accountKeys(): Iterable<string> {
    return this.byAccount.keys();
  }

  holdRequest(h: RequestHold): void {
    const key = requestKey(h.payer, h.token, h.nonce);
    this.releaseRequest(h.payer, h.token, h.nonce);
    this.requests.set(key, h);
    const a = this.holdsOf(h.payer, h.token);
    a.amount += h.amount;
    const word = h.nonce >> 6n;
    a.nonces.set(word, (a.nonces.get(word) ?? 0n) | (1n << (h.nonce & 63n)));
    a.requests.add(key);
    if (h.delegate !== undefined) this.addGrant(h.payer, h.token, h.delegate, h.amount);
  }

  /** Replaces the channel's (or lane's) accepted voucher: a later cumulative voucher supersedes the earlier. */
  holdVoucher(h: VoucherHold): void {
    this.releaseVoucher(h.payer, h.token, h.channel);
    const key = voucherKey(h.payer, h.token, h.channel);
    this.vouchers.set(key, h);
    const a = this.holdsOf(h.payer, h.token);
    a.amount += h.amount;
    a.vouchers.add(key);
    if (h.delegate !== undefined) this.addGrant(h.payer, h.token, h.delegate, h.amount);
  }

  /** Starts noting what the chain ends, for a newly applied block; returns its log. */
  openLog(): Map<string, EndedHold> {
    const log = new Map<string, EndedHold>();
    this.log = log;
    this.logs.add(log);
    return log;
  }

  /** Notes further ends into `log` (after a rollback: the fork block's), or nowhere. */
  noteInto(log: Map<string, EndedHold> | undefined): void {
    this.log = log;
  }

  /** Forgets a block's log (it is now too deep to be dropped by a reorg the follower can undo). */
  closeLog(log: Map<string, EndedHold>): void {
    this.logs.delete(log);
    if (this.log === log) this.log = undefined;
  }

  /**
   * Brings back what the chain ended in a block a reorg dropped (call for the newest block first),
   * except what is held again meanwhile. What the provider gave up is no longer in the log.
   */
  restore(log: Map<string, EndedHold>): void {
    this.closeLog(log);
    for (const ended of log.values()) {
      if (ended.kind === "request") {
        const h = ended.hold;
        if (!this.requests.has(requestKey(h.payer, h.token, h.nonce))) this.holdRequest(h);
      } else {
        const h = ended.hold;
        if (!this.vouchers.has(voucherKey(h.payer, h.token, h.channel))) this.holdVoucher(h);
      }
    }
  }

  /**
   * After a rollback: every voucher hold reserves its excess over what its channel or lane paid as
   * of now (what a dropped block paid is owed again). Unknown state changes nothing.
   */
  rederiveVouchers(state: ChainState): void {
    for (const h of [...this.vouchers.values()]) {
      const claimed = h.channel === undefined ? state.lane(h.payer, h.token)?.claimed : state.claimed(h.payer, h.token, h.channel);
      if (claimed !== undefined && claimed < h.cumulative && h.cumulative - claimed > h.amount) this.holdVoucher({ ...h, amount: h.cumulative - claimed });
    }
  }

  /** The provider gives up an accepted request: released, and never brought back by a reorg. */
  giveUpRequest(payer: string, token: string, nonce: bigint): void {
    this.releaseRequest(payer, token, nonce);
    const key = requestKey(payer, token, nonce);
    for (const log of this.logs) log.delete(key);
  }

  /** The provider gives up an accepted voucher: released, and never brought back by a reorg. */
  giveUpVoucher(payer: string, token: string, channel: string | undefined): void {
    this.releaseVoucher(payer, token, channel);
    const key = voucherKey(payer, token, channel);
    for (const log of this.logs) log.delete(key);
  }

  private noteEnd(key: string, ended: EndedHold): void {
    if (this.log !== undefined && !this.log.has(key)) this.log.set(key, ended);
  }

  releaseRequest(payer: string, token: string, nonce: bigint): void {
    const key = requestKey(payer, token, nonce);
    const h = this.requests.get(key);
    if (h === undefined) return;
    this.requests.delete(key);
    const a = this.holdsOf(payer, token);
    a.amount -= h.amount;
    a.requests.delete(key);
    const word = nonce >> 6n;
    const rest = (a.nonces.get(word) ?? 0n) & ~(1n << (nonce & 63n));
    if (rest === 0n) a.nonces.delete(word);
    else a.nonces.set(word, rest);
    if (h.delegate !== undefined) this.addGrant(payer, token, h.delegate, -h.amount);
    this.dropIfEmpty(payer, token, a);
  }

  releaseVoucher(payer: string, token: string, channel: string | undefined): void {
    const key = voucherKey(payer, token, channel);
    const h = this.vouchers.get(key);
    if (h === undefined) return;
    this.vouchers.delete(key);
    const a = this.holdsOf(payer, token);
    a.amount -= h.amount;
    a.vouchers.delete(key);
    if (h.delegate !== undefined) this.addGrant(payer, token, h.delegate, -h.amount);
    this.dropIfEmpty(payer, token, a);
  }

  /**
   * Ends what the chain (as cached in `state`) shows settled or dead, for the accounts in `touched`
   * (all accounts when omitted): requests whose nonce is used, vouchers whose channel paid up to them
   * (a partly paid one keeps the rest reserved). Unknown state ends nothing.
   */
  settleFromChain(state: ChainState, touched?: Iterable<string>): void {
    for (const key of touched ?? [...this.byAccount.keys()]) {
      const a = this.byAccount.get(key);
      if (a === undefined) continue;
      for (const rk of [...a.requests]) {
        const h = this.requests.get(rk)!;
        const bits = state.nonceWord(h.payer, h.token, h.nonce >> 6n);
        if (bits !== undefined && ((bits >> (h.nonce & 63n)) & 1n) === 1n) {
          this.noteEnd(rk, { kind: "request", hold: h });
          this.releaseRequest(h.payer, h.token, h.nonce);
        }
      }
      for (const vk of [...a.vouchers]) {
        const h = this.vouchers.get(vk)!;
        const lane = h.channel === undefined ? state.lane(h.payer, h.token) : undefined;
        const claimed = h.channel === undefined ? lane?.claimed : state.claimed(h.payer, h.token, h.channel);
        if (claimed === undefined) continue;
        // A lane left with no funds below the voucher was closed: the voucher can never be claimed.
        if (claimed >= h.cumulative || lane?.funds === 0n) {
          this.noteEnd(vk, { kind: "voucher", hold: h });
          this.releaseVoucher(h.payer, h.token, h.channel);
        }
        else if (h.cumulative - claimed < h.amount) this.holdVoucher({ ...h, amount: h.cumulative - claimed });
      }
    }
  }

  /** Ends requests whose deadline is before `blockTime`, the timestamp of a synced block: they can never settle. */
  expire(blockTime: bigint): void {
    for (const [key, h] of [...this.requests]) {
      if (blockTime <= h.deadline) continue;
      this.noteEnd(key, { kind: "request", hold: h });
      this.releaseRequest(h.payer, h.token, h.nonce);
    }
  }

  private holdsOf(payer: string, token: string): AccountHolds {
    const key = accountKey(payer, token);
    let a = this.byAccount.get(key);
    if (a === undefined) {
      a = { amount: 0n, nonces: new Map(), requests: new Set(), vouchers: new Set() };
      this.byAccount.set(key, a);
    }
    return a;
  }

  private dropIfEmpty(payer: string, token: string, a: AccountHolds): void {
    if (a.requests.size === 0 && a.vouchers.size === 0) this.byAccount.delete(accountKey(payer, token));
  }

  private addGrant(payer: string, token: string, delegate: string, amount: bigint): void {
    const key = grantKey(payer, token, delegate);
    const total = (this.byGrant.get(key) ?? 0n) + amount;
    if (total <= 0n) this.byGrant.delete(key);
    else this.byGrant.set(key, total);
  }
}

function requestKey(payer: string, token: string, nonce: bigint): string {
  return payer + "|" + token + "|" + nonce.toString();
}
/** Voucher holds are keyed by channel, or by the lane (the provider is this verifier's). */
function voucherKey(payer: string, token: string, channel: string | undefined): string {
  return payer + "|" + token + (channel === undefined ? "|lane" : "|v" + channel);
}
