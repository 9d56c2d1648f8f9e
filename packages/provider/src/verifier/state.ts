/**
 * The verifier's cache of chain state as of the last applied block, and what of it is known.
 *
 * Every entry present is exact as of the synced block. An absent entry is zero (no balance, no
 * grant, no used nonce, an empty lane) only while the cache is `complete`, i.e. followed from the
 * contract's deployment, every effect named by its logs. After a reorg into applied blocks (or when
 * following starts after the deployment) nothing is assumed: absent entries read as unknown
 * (`undefined`), and the rules never accept on unknown state.
 *
 * Every write goes through this class and is recorded, per applied block, in a `StateUndo` (the
 * values it replaced), so that the follower can take back the blocks a reorg drops and return the
 * cache exactly to the fork point.
 */
import type { GrantFacts, LaneFacts, WithdrawalFacts } from "./types";

/** One payer's state in one token. `undefined` fields are not known. */
export interface AccountState {
  balance: bigint | undefined;
  withdrawal: WithdrawalFacts | undefined;
  /** Used-nonce bitmap words known. */
  words: Map<bigint, bigint>;
}

/** What one applied block (and the reads inserted after it) replaced: enough to take it back. */
export interface StateUndo {
  /** `complete` before the block */
  complete: boolean;
  /** account key -> its balance and withdrawal before (undefined: the entry did not exist) */
  accounts: Map<string, { balance: bigint | undefined; withdrawal: WithdrawalFacts | undefined } | undefined>;
  /** account key|word -> the word before (undefined: not present) */
  words: Map<string, bigint | undefined>;
  grants: Map<string, GrantFacts | undefined>;
  channels: Map<string, bigint | undefined>;
  lanes: Map<string, LaneFacts | undefined>;
  /** Set when the block forgot everything: the maps as they were just before. */
  whole?: { accounts: Map<string, AccountState>; grants: Map<string, GrantFacts>; channels: Map<string, bigint>; lanes: Map<string, LaneFacts> };
}

export class ChainState {
  readonly accounts = new Map<string, AccountState>();
  readonly grants = new Map<string, GrantFacts>();
  /** payer|token|channel -> what the channel paid this provider */
  readonly channels = new Map<string, bigint>();
  /** payer|token -> the payer's lane to this provider */
  readonly lanes = new Map<string, LaneFacts>();
  /** payer -> whether it has code (looked up on demand; code does not go away in practice, see docs) */
  readonly codes = new Map<string, boolean>();
  /** Whether absent entries are known to be zero. */
  complete: boolean;
  /** Where writes are recorded (the latest applied block's undo); none before the first block. */
  private undo: StateUndo | undefined;

  constructor(complete: boolean) {
    this.complete = complete;
  }

  // ------------------------------------------------------------------ reads (undefined = unknown)

  balance(payer: string, token: string): bigint | undefined {
    const a = this.accounts.get(accountKey(payer, token));
    if (a === undefined) return this.complete ? 0n : undefined;
    return a.balance;
  }

  withdrawal(payer: string, token: string): WithdrawalFacts | undefined {
    const a = this.accounts.get(accountKey(payer, token));
    if (a === undefined) return this.complete ? NO_WITHDRAWAL : undefined;
    return a.withdrawal;
  }

  nonceWord(payer: string, token: string, word: bigint): bigint | undefined {
    const bits = this.accounts.get(accountKey(payer, token))?.words.get(word);
    if (bits !== undefined) return bits;
    return this.complete ? 0n : undefined;
  }

  grant(payer: string, token: string, delegate: string): GrantFacts | null | undefined {
    const g = this.grants.get(grantKey(payer, token, delegate));
    if (g !== undefined) return g;
    return this.complete ? null : undefined;
  }

  claimed(payer: string, token: string, channel: string): bigint | undefined {
    const c = this.channels.get(channelKey(payer, token, channel));
    if (c !== undefined) return c;
    return this.complete ? 0n : undefined;
  }

  lane(payer: string, token: string): LaneFacts | undefined {
    const l = this.lanes.get(accountKey(payer, token));
    if (l !== undefined) return l;
    return this.complete ? NO_LANE : undefined;
  }

  // ------------------------------------------------------------------ writes (recorded)

  /** Starts recording writes for a newly applied block; returns its undo. */
  beginUndo(): StateUndo {
    this.undo = { complete: this.complete, accounts: new Map(), words: new Map(), grants: new Map(), channels: new Map(), lanes: new Map() };
    return this.undo;
  }

  /** Records further writes into `u` (after a rollback: into the fork block's undo), or nowhere. */
  recordInto(u: StateUndo | undefined): void {
    this.undo = u;
  }

  /** Takes back what `u`'s block wrote (apply the newest block's undo first). */
  rollback(u: StateUndo): void {
    if (u.whole !== undefined) {
      for (const [mine, saved] of [[this.accounts, u.whole.accounts], [this.grants, u.whole.grants], [this.channels, u.whole.channels], [this.lanes, u.whole.lanes]] as [Map<string, unknown>, Map<string, unknown>][]) {
        mine.clear();
        for (const [k, v] of saved) mine.set(k, v);
      }
    }
    for (const [key, before] of u.accounts) {
      if (before === undefined) this.accounts.delete(key);
      else {
        const a = this.accounts.get(key) ?? { balance: undefined, withdrawal: undefined, words: new Map<bigint, bigint>() };
        a.balance = before.balance;
        a.withdrawal = before.withdrawal;
        this.accounts.set(key, a);
      }
    }
    for (const [k, bits] of u.words) {
      const cut = k.lastIndexOf("|");
      const a = this.accounts.get(k.slice(0, cut));
      if (a === undefined) continue; // the account itself did not exist before
      if (bits === undefined) a.words.delete(BigInt(k.slice(cut + 1)));
      else a.words.set(BigInt(k.slice(cut + 1)), bits);
    }
    restore(this.grants, u.grants);
    restore(this.channels, u.channels);
    restore(this.lanes, u.lanes);
    this.complete = u.complete;
  }

  /** The account entry for writing, created with what `complete` implies about an absent one. */
  account(payer: string, token: string): AccountState {
    const key = accountKey(payer, token);
    let a = this.accounts.get(key);
    const u = this.recording();
    if (u !== undefined && !u.accounts.has(key)) u.accounts.set(key, a === undefined ? undefined : { balance: a.balance, withdrawal: a.withdrawal });
    if (a === undefined) {
      a = this.complete ? { balance: 0n, withdrawal: NO_WITHDRAWAL, words: new Map() } : { balance: undefined, withdrawal: undefined, words: new Map() };
      this.accounts.set(key, a);
    }
    return a;
  }

  /** Sets a used-nonce word as known (the whole word: e.g. read from the chain). */
  setWord(payer: string, token: string, word: bigint, bits: bigint): void {
    const a = this.account(payer, token);
    const u = this.recording();
    if (u !== undefined) {
      const k = accountKey(payer, token) + "|" + word.toString();
      if (!u.words.has(k)) u.words.set(k, a.words.get(word));
    }
    a.words.set(word, bits);
  }

  /** Sets nonce bits known to be used on-chain (the word's other bits stay as known). */
  markNonces(payer: string, token: string, word: bigint, mask: bigint): void {
    const a = this.accounts.get(accountKey(payer, token));
    const known = a?.words.get(word) ?? (this.complete ? 0n : undefined);
    // An unknown word stays unknown: knowing some of its bits does not tell the others.
    if (known !== undefined) this.setWord(payer, token, word, known | mask);
  }

  /** A grant entry for changing in place (recorded first), or undefined when absent. */
  grantForWrite(key: string): GrantFacts | undefined {
    const g = this.grants.get(key);
    this.saveGrant(key);
    return g;
  }

  setGrant(key: string, g: GrantFacts): void {
    this.saveGrant(key);
    this.grants.set(key, g);
  }

  setChannel(key: string, claimed: bigint): void {
    const u = this.recording();
    if (u !== undefined && !u.channels.has(key)) u.channels.set(key, this.channels.get(key));
    this.channels.set(key, claimed);
  }

  setLane(key: string, lane: LaneFacts): void {
    const u = this.recording();
    if (u !== undefined && !u.lanes.has(key)) u.lanes.set(key, this.lanes.get(key));
    this.lanes.set(key, lane);
  }

  /** Forgets everything: nothing cached can be trusted (a log it cannot decode, a reorg past what it can undo). */
  forgetAll(): void {
    const u = this.undo;
    if (u !== undefined && u.whole === undefined) {
      u.whole = { accounts: new Map(this.accounts), grants: new Map(this.grants), channels: new Map(this.channels), lanes: new Map(this.lanes) };
    }
    this.accounts.clear();
    this.grants.clear();
    this.channels.clear();
    this.lanes.clear();
    this.complete = false;
  }

  /**
   * The undo that records a write, if any. Once a block forgot everything, its snapshot of the maps
   * covers every later write too (a per-key record taken after it would undo the snapshot).
   */
  private recording(): StateUndo | undefined {
    const u = this.undo;
    return u === undefined || u.whole !== undefined ? undefined : u;
  }

  private saveGrant(key: string): void {
    const u = this.recording();
    if (u === undefined || u.grants.has(key)) return;
    const g = this.grants.get(key);
    u.grants.set(key, g === undefined ? undefined : { ...g, models: new Map(g.models) });
  }
}

function restore<V>(map: Map<string, V>, saved: Map<string, V | undefined>): void {
  for (const [k, v] of saved) {
    if (v === undefined) map.delete(k);
    else map.set(k, v);
  }
}

export const NO_WITHDRAWAL: WithdrawalFacts = Object.freeze({ amount: 0n, readyAt: 0n, expiresAt: 0n });
export const NO_LANE: LaneFacts = Object.freeze({ claimed: 0n, funds: 0n, closeReadyAt: 0n, closeExpiresAt: 0n });

export function accountKey(payer: string, token: string): string {
  return payer + "|" + token;
}
export function grantKey(payer: string, token: string, delegate: string): string {
  return payer + "|" + token + "|" + delegate;
}
export function channelKey(payer: string, token: string, channel: string): string {
  return payer + "|" + token + "|" + channel;
}
