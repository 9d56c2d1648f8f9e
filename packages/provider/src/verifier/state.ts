/**
 * The verifier's cache of chain state as of the last applied block, and what of it is known.
 *
 * Every entry present is exact as of the synced block. An absent entry is zero (no balance, no
 * grant, no used nonce, an empty lane) only while the cache is `complete`, i.e. followed from the
 * contract's deployment, every effect named by its logs. After a reorg into applied blocks (or when
 * following starts after the deployment) nothing is assumed: absent entries read as unknown
 * (`undefined`), and the rules never accept on unknown state.
 */
import type { GrantFacts, LaneFacts, WithdrawalFacts } from "./types";

/** One payer's state in one token. `undefined` fields are not known. */
export interface AccountState {
  balance: bigint | undefined;
  withdrawal: WithdrawalFacts | undefined;
  /** Used-nonce bitmap words known. */
  words: Map<bigint, bigint>;
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

  // ------------------------------------------------------------------ writes

  /** The account entry, created with what `complete` implies about an absent one. */
  account(payer: string, token: string): AccountState {
    const key = accountKey(payer, token);
    let a = this.accounts.get(key);
    if (a === undefined) {
      a = this.complete ? { balance: 0n, withdrawal: NO_WITHDRAWAL, words: new Map() } : { balance: undefined, withdrawal: undefined, words: new Map() };
      this.accounts.set(key, a);
    }
    return a;
  }

  /** Sets nonce bits known to be used on-chain (the word's other bits stay as known). */
  markNonces(payer: string, token: string, word: bigint, mask: bigint): void {
    const a = this.account(payer, token);
    const bits = a.words.get(word) ?? this.nonceWord(payer, token, word);
    // An unknown word stays unknown: knowing some of its bits does not tell the others.
    if (bits !== undefined) a.words.set(word, bits | mask);
  }

  /** Forgets everything: after a reorg into applied blocks, nothing cached can be trusted. */
  forgetAll(): void {
    this.accounts.clear();
    this.grants.clear();
    this.channels.clear();
    this.lanes.clear();
    this.complete = false;
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
