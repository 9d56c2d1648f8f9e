/**
 * Fills the verifier's cache (`state.ts`) with state it does not know yet, read from the node at the
 * block the follower has applied (`reader.ts`): what a decision needs and the logs have not shown.
 */
import type { ChainFollower } from "./follower";
import type { StateReader } from "./reader";
import { accountKey, channelKey, grantKey, type ChainState } from "./state";
import type { StateKey } from "./types";

/**
 * Reads `keys` at the synced block and inserts each value only if no block was applied meanwhile (the
 * value would miss that block's effects) and it is still unknown.
 * @example
 * await fillUnknown(state, reader, follower, verdict.unknown);
 */
export async function fillUnknown(state: ChainState, reader: StateReader, follower: ChainFollower, keys: StateKey[]): Promise<void> {
  const version = follower.version;
  const at = Math.max(follower.syncedBlock, 0);
  const writes = await Promise.all(keys.map((k) => readKey(state, reader, k, at)));
  if (follower.version !== version) return;
  for (const write of writes) write();
}

/** Reads one key; returns the write that inserts it (when still unknown). */
async function readKey(state: ChainState, reader: StateReader, k: StateKey, at: number): Promise<() => void> {
  switch (k.kind) {
    case "account": {
      const r = await reader.account(k.payer, k.token, at);
      return () => {
        const a = state.account(k.payer, k.token);
        if (a.balance === undefined || a.withdrawal === undefined) {
          a.balance = r.balance;
          a.withdrawal = r.withdrawal;
        }
      };
    }
    case "word": {
      const bits = await reader.word(k.payer, k.token, k.word, at);
      return () => {
        if (state.nonceWord(k.payer, k.token, k.word) === undefined) state.setWord(k.payer, k.token, k.word, bits);
      };
    }
    case "grant": {
      const g = await reader.grant(k.payer, k.token, k.delegate, at);
      return () => {
        if (state.grant(k.payer, k.token, k.delegate) === undefined) state.setGrant(grantKey(k.payer, k.token, k.delegate), g);
      };
    }
    case "model": {
      const allowed = await reader.model(k.payer, k.token, k.delegate, k.model, at);
      return () => {
        state.grantForWrite(grantKey(k.payer, k.token, k.delegate))?.models.set(k.model, allowed);
      };
    }
    case "channel": {
      const claimed = await reader.channel(k.payer, k.token, k.channel, at);
      return () => {
        if (state.claimed(k.payer, k.token, k.channel) === undefined) state.setChannel(channelKey(k.payer, k.token, k.channel), claimed);
      };
    }
    case "lane": {
      const lane = await reader.lane(k.payer, k.token, at);
      return () => {
        if (state.lane(k.payer, k.token) === undefined) state.setLane(accountKey(k.payer, k.token), lane);
      };
    }
  }
}
