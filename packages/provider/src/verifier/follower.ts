/**
 * Follows the contract's logs block by block into the state cache.
 *
 * - Each block is applied exactly once and atomically: its logs are decoded, the state its logs
 *   leave open is read with view calls at that block, and only then is everything applied in one
 *   synchronous step that also advances the synced block. A failed read applies nothing; the next
 *   sync starts again at that block.
 * - Decoding never throws and never reads calldata (see `events.ts`).
 * - Blocks newer than `confirmations` are not applied. The hash of the last applied block is checked
 *   on every sync: if the chain reorganised under it, every cached state is forgotten (and read from
 *   the chain before it is used again); reservations stay.
 */
import type { Log, Provider } from "ethers";
import { effectsOf, needsBlockTime, type Effect } from "./events";
import type { StateReader, AccountRead } from "./reader";
import type { Reservations } from "./reservations";
import { accountKey, grantKey, type ChainState } from "./state";
import type { GrantFacts } from "./types";

const UINT32_MAX = (1n << 32n) - 1n;

export interface FollowerOptions {
  /** The provider (lowercase) whose voucher channels are kept. */
  provider: string;
  fromBlock: number;
  logChunk: number;
  confirmations: number;
}

/** What to read at the end of a block. */
interface ReadPlan {
  /** tokens whose every cached state is re-read (and whose absent nonce words become unknown) */
  tokens: Set<string>;
  /** accountKey -> words to read (and whether to read balance and withdrawal) */
  accounts: Map<string, { payer: string; token: string; balance: boolean; words: Set<bigint> }>;
  /** grantKey -> [payer, token, delegate] */
  grants: Map<string, [string, string, string]>;
  /** accountKeys whose grants not in `grants` must be dropped after the block (they may have spent) */
  grantsOf: Set<string>;
  /** something could not be decoded: forget everything */
  all: boolean;
}

interface PlanResults {
  accounts: Map<string, AccountRead>;
  words: Map<string, bigint>;
  grants: Map<string, GrantFacts>;
}

export class ChainFollower {
  /** The next block to apply. */
  nextBlock: number;
  /** Bumped by every applied block and every reorg: reads made before a bump are stale. */
  version = 0;
  /** Number of logs applied so far (for the bench). */
  logsApplied = 0;
  private applied: { number: number; hash: string } | undefined;

  constructor(
    private readonly rpc: Provider,
    private readonly address: string,
    private readonly state: ChainState,
    private readonly reservations: Reservations,
    private readonly reader: StateReader,
    private readonly options: FollowerOptions,
  ) {
    this.nextBlock = options.fromBlock;
  }

  get syncedBlock(): number {
    return this.nextBlock - 1;
  }

  /** Applies every confirmed block up to `toBlock` (default: the confirmed head). */
  async catchUp(toBlock?: number): Promise<number> {
    await this.checkReorg();
    const confirmedHead = (await this.rpc.getBlockNumber()) - this.options.confirmations;
    const latest = toBlock === undefined ? confirmedHead : Math.min(toBlock, confirmedHead);
    while (this.nextBlock <= latest) {
      const to = Math.min(latest, this.nextBlock + this.options.logChunk - 1);
      const header = await this.rpc.getBlock(to);
      if (header === null || header.hash === null) break; // not served yet: try again next sync
      const logs = await this.rpc.getLogs({ address: this.address, fromBlock: this.nextBlock, toBlock: to });
      const blocks = groupByBlock(logs, to, header.hash);
      if (blocks === undefined) break; // the logs and the header disagree (a reorg while fetching): retry
      for (const [number, blockLogs] of blocks) await this.applyBlock(number, blockLogs);
      this.nextBlock = to + 1;
      this.applied = { number: to, hash: header.hash };
      this.version++;
      // The chain's clock: a request whose deadline is before a synced block's timestamp can never settle.
      this.reservations.expire(BigInt(header.timestamp));
    }
    return this.syncedBlock;
  }

  /** If the last applied block is no longer on the chain, nothing cached can be trusted. */
  private async checkReorg(): Promise<void> {
    if (this.applied === undefined) return;
    const block = await this.rpc.getBlock(this.applied.number);
    if (block !== null && block.hash === this.applied.hash) return;
    this.state.forgetAll();
    this.applied = undefined;
    this.version++;
  }

  private async applyBlock(number: number, logs: Log[]): Promise<void> {
    const effects = effectsOf(logs);
    const plan = this.plan(effects);
    const [time, results] = await Promise.all([needsBlockTime(effects) ? this.blockTime(number) : Promise.resolve(0n), this.read(plan, number)]);
    // ---- from here on, synchronous: the block is applied whole or not at all
    const touched = new Set<string>();
    for (const e of effects) this.apply(e, time, touched);
    this.overwrite(plan, results, touched);
    if (plan.all) this.state.forgetAll();
    this.reservations.settleFromChain(this.state, touched);
    this.nextBlock = number + 1;
    this.applied = { number, hash: logs[0].blockHash };
    this.version++;
    this.logsApplied += logs.length;
  }

  private plan(effects: readonly Effect[]): ReadPlan {
    const plan: ReadPlan = { tokens: new Set(), accounts: new Map(), grants: new Map(), grantsOf: new Set(), all: false };
    const state = this.state;
    const wantAccount = (payer: string, token: string, balance: boolean) => {
      const key = accountKey(payer, token);
      let a = plan.accounts.get(key);
      if (a === undefined) {
        a = { payer, token, balance, words: new Set() };
        plan.accounts.set(key, a);
      }
      a.balance ||= balance;
      return a;
    };
    for (const e of effects) {
      if (e.kind === "unknown") plan.all = true;
      else if (e.kind === "rereadToken") plan.tokens.add(e.token);
      else if (e.kind === "rereadGrants") plan.grantsOf.add(accountKey(e.payer, e.token));
    }
    if (plan.all) return plan;
    // Token-wide: every cached account and grant of the token, every account the block names, every
    // word known or reserved.
    if (plan.tokens.size > 0) {
      for (const [key, account] of state.accounts) {
        const token = key.slice(key.indexOf("|") + 1);
        if (!plan.tokens.has(token)) continue;
        const a = wantAccount(key.slice(0, key.indexOf("|")), token, true);
        for (const word of account.words.keys()) a.words.add(word);
      }
      for (const key of this.reservations.accountKeys()) {
        const [payer, token] = key.split("|");
        if (!plan.tokens.has(token)) continue;
        const a = wantAccount(payer, token, true);
        for (const word of this.reservations.reservedWords(payer, token)) a.words.add(word);
      }
    }
    for (const e of effects) {
      if (e.kind === "balance" || e.kind === "withdrawal") {
        // An unknown balance stays unknown under a delta; read it instead.
        if (plan.tokens.has(e.token) || state.balance(e.payer, e.token) === undefined) wantAccount(e.payer, e.token, true);
      } else if (e.kind === "nonces") {
        if (plan.tokens.has(e.token) || state.nonceWord(e.payer, e.token, e.word) === undefined) wantAccount(e.payer, e.token, false).words.add(e.word);
      } else if (e.kind === "grantSet" || e.kind === "grantRevoked") {
        if (plan.tokens.has(e.token) || plan.grantsOf.has(accountKey(e.payer, e.token))) plan.grants.set(grantKey(e.payer, e.token, e.delegate), [e.payer, e.token, e.delegate]);
      }
    }
    for (const key of state.grants.keys()) {
      const [payer, token, delegate] = key.split("|");
      if (plan.tokens.has(token) || plan.grantsOf.has(accountKey(payer, token))) plan.grants.set(key, [payer, token, delegate]);
    }
    return plan;
  }

  private async read(plan: ReadPlan, blockTag: number): Promise<PlanResults> {
    const results: PlanResults = { accounts: new Map(), words: new Map(), grants: new Map() };
    if (plan.all) return results;
    const reads: Promise<void>[] = [];
    for (const [key, a] of plan.accounts) {
      if (a.balance) reads.push(this.reader.account(a.payer, a.token, blockTag).then((r) => void results.accounts.set(key, r)));
      for (const word of a.words) {
        reads.push(this.reader.word(a.payer, a.token, word, blockTag).then((bits) => void results.words.set(key + "|" + word.toString(), bits)));
      }
    }
    for (const [key, [payer, token, delegate]] of plan.grants) {
      reads.push(this.reader.grant(payer, token, delegate, blockTag).then((g) => void results.grants.set(key, g)));
    }
    await Promise.all(reads);
    return results;
  }

  /** Applies one effect to the cache. Unknown state stays unknown (the plan re-reads what matters). */
  private apply(e: Effect, time: bigint, touched: Set<string>): void {
    const state = this.state;
    switch (e.kind) {
      case "balance": {
        const a = state.account(e.payer, e.token);
        if (a.balance !== undefined) a.balance += e.delta;
        touched.add(accountKey(e.payer, e.token));
        return;
      }
      case "withdrawal": {
        state.account(e.payer, e.token).withdrawal = { amount: e.amount, readyAt: e.readyAt };
        return;
      }
      case "nonces": {
        state.markNonces(e.payer, e.token, e.word, e.mask);
        touched.add(accountKey(e.payer, e.token));
        return;
      }
      case "grantSet": {
        let periodEnd = e.period === 0n ? UINT32_MAX : time + e.period;
        if (periodEnd > UINT32_MAX) periodEnd = UINT32_MAX;
        state.grants.set(grantKey(e.payer, e.token, e.delegate), {
          epoch: e.epoch,
          expiry: e.expiry,
          provider: e.provider,
          maxPrice: e.maxPrice,
          budget: e.budget,
          period: e.period,
          periodEnd,
          spent: 0n,
          anyModel: e.models.length === 0,
          models: new Map(e.models.map((m) => [m, true])),
          modelsComplete: true,
        });
        return;
      }
      case "grantRevoked": {
        const key = grantKey(e.payer, e.token, e.delegate);
        const g = state.grants.get(key);
        if (g !== undefined) {
          g.expiry = 0n;
          g.epoch = e.epoch;
        } else {
          // Revoked: the rules stop at its expiry of 0, whatever else the grant held.
          state.grants.set(key, {
            epoch: e.epoch,
            expiry: 0n,
            provider: "",
            maxPrice: 0n,
            budget: 0n,
            period: 0n,
            periodEnd: UINT32_MAX,
            spent: 0n,
            anyModel: false,
            models: new Map(),
            modelsComplete: true,
          });
        }
        return;
      }
      case "channel": {
        if (e.provider === this.options.provider) {
          state.channels.set(e.payer + "|" + e.token + "|" + e.channel, e.cumulative);
          touched.add(accountKey(e.payer, e.token));
        }
        return;
      }
      default:
        return;
    }
  }

  /** Replaces what the plan re-read, and drops what it should have re-read but the cache gained meanwhile. */
  private overwrite(plan: ReadPlan, results: PlanResults, touched: Set<string>): void {
    if (plan.all) return;
    const state = this.state;
    for (const [key, r] of results.accounts) {
      const [payer, token] = key.split("|");
      const a = state.account(payer, token);
      a.balance = r.balance;
      a.withdrawal = r.withdrawal;
      touched.add(key);
    }
    for (const [key, bits] of results.words) {
      const [payer, token, word] = key.split("|");
      state.account(payer, token).words.set(BigInt(word), bits);
      touched.add(accountKey(payer, token));
    }
    for (const [key, g] of results.grants) {
      const previous = state.grants.get(key);
      if (previous !== undefined && previous.epoch === g.epoch) {
        g.models = previous.models;
        g.modelsComplete = previous.modelsComplete;
      }
      state.grants.set(key, g);
    }
    if (plan.tokens.size > 0) {
      for (const [key, account] of [...state.accounts]) {
        const token = key.slice(key.indexOf("|") + 1);
        if (!plan.tokens.has(token)) continue;
        const planned = plan.accounts.get(key);
        if (planned === undefined || !planned.balance) {
          state.accounts.delete(key);
          continue;
        }
        for (const word of [...account.words.keys()]) if (!planned.words.has(word)) account.words.delete(word);
      }
      for (const token of plan.tokens) state.uncertainWords.add(token);
    }
    for (const key of [...state.grants.keys()]) {
      const [payer, token] = key.split("|");
      if ((plan.tokens.has(token) || plan.grantsOf.has(accountKey(payer, token))) && !plan.grants.has(key)) state.grants.delete(key);
    }
  }

  private async blockTime(number: number): Promise<bigint> {
    const block = await this.rpc.getBlock(number);
    if (block === null) throw new Error(`block ${number} is not served by the node`);
    return BigInt(block.timestamp);
  }
}

/**
 * The logs of a chunk grouped by block in chain order, de-duplicated; undefined when they are not
 * one consistent view of the chain ending at the block with hash `tipHash` (number `tip`).
 */
function groupByBlock(logs: readonly Log[], tip: number, tipHash: string): Map<number, Log[]> | undefined {
  const sorted = logs.filter((l) => !l.removed).sort((a, b) => a.blockNumber - b.blockNumber || a.index - b.index);
  const blocks = new Map<number, Log[]>();
  let last: Log | undefined;
  for (const log of sorted) {
    if (last !== undefined && last.blockNumber === log.blockNumber && last.index === log.index) continue; // served twice
    const group = blocks.get(log.blockNumber);
    if (group === undefined) blocks.set(log.blockNumber, [log]);
    else {
      if (group[0].blockHash !== log.blockHash) return undefined;
      group.push(log);
    }
    if (log.blockNumber === tip && log.blockHash !== tipHash) return undefined;
    last = log;
  }
  return blocks;
}
