/**
 * Follows the contract's logs block by block into the state cache.
 *
 * - Each block is applied exactly once and atomically: its logs are decoded (`events.ts`), whatever
 *   they touch that the cache does not know is read with view calls at that block, and only then is
 *   everything applied in one synchronous step that also advances the synced block. A failed read
 *   applies nothing; the next sync starts again at that block.
 * - Decoding never throws and never reads calldata. A log that cannot be decoded makes every cached
 *   state unknown (it is read from the chain before it is used again).
 * - Blocks newer than `confirmations` are not applied. The hash of the last applied block is checked
 *   on every sync: if the chain reorganised under it, every cached state is forgotten (and read from
 *   the chain before it is used again); reservations stay, and end as the new chain shows.
 */
import type { Log, Provider } from "ethers";
import { effectsOf, needsBlockTime, type Effect } from "./events";
import type { AccountRead, StateReader } from "./reader";
import type { Reservations } from "./reservations";
import { accountKey, grantKey, type ChainState } from "./state";
import type { GrantFacts, LaneFacts } from "./types";

const UINT32_MAX = (1n << 32n) - 1n;
const ZERO_ADDRESS = "0x" + "0".repeat(40);

export interface FollowerOptions {
  /** The provider (lowercase) whose channels and lanes are kept. */
  provider: string;
  fromBlock: number;
  logChunk: number;
  confirmations: number;
}

/** State the block touches that the cache does not know: read at the block before applying it. */
interface ReadPlan {
  accounts: Map<string, [string, string]>;
  words: Map<string, [string, string, bigint]>;
  grants: Map<string, [string, string, string]>;
  lanes: Map<string, [string, string]>;
}

interface PlanResults {
  accounts: Map<string, AccountRead>;
  words: Map<string, bigint>;
  grants: Map<string, GrantFacts>;
  lanes: Map<string, LaneFacts>;
}

export class ChainFollower {
  /** The next block to apply. */
  nextBlock: number;
  /** Bumped by every applied block and every reorg: reads made at an older version are stale. */
  version = 0;
  /** Logs applied so far. */
  logsApplied = 0;
  /** Reorgs detected so far. */
  reorgs = 0;
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
      if (header === null || header.hash === null) break; // not served yet: the next sync tries again
      const logs = await this.rpc.getLogs({ address: this.address, fromBlock: this.nextBlock, toBlock: to });
      const blocks = groupByBlock(logs, this.nextBlock, to, header.hash);
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
    this.reorgs++;
  }

  private async applyBlock(number: number, logs: Log[]): Promise<void> {
    const effects = effectsOf(logs, this.address);
    const forget = effects.some((e) => e.kind === "unknown");
    const plan = forget ? undefined : this.plan(effects);
    const [time, results] = await Promise.all([
      needsBlockTime(effects) ? this.blockTime(number) : Promise.resolve(0n),
      plan === undefined ? Promise.resolve(undefined) : this.read(plan, number),
    ]);
    // ---- from here on, synchronous: the block is applied whole or not at all
    const touched = new Set<string>();
    if (forget) this.state.forgetAll();
    else {
      for (const e of effects) this.apply(e, time, touched);
      this.overwrite(results!, touched);
    }
    this.reservations.settleFromChain(this.state, touched);
    this.nextBlock = number + 1;
    this.applied = { number, hash: logs[0].blockHash };
    this.version++;
    this.logsApplied += logs.length;
  }

  /** What the effects touch that the cache does not know (only after a reorg or a late start). */
  private plan(effects: readonly Effect[]): ReadPlan {
    const plan: ReadPlan = { accounts: new Map(), words: new Map(), grants: new Map(), lanes: new Map() };
    if (this.state.complete) return plan;
    const state = this.state;
    const ours = this.options.provider;
    for (const e of effects) {
      switch (e.kind) {
        case "balance":
        case "withdrawal":
          if (state.balance(e.payer, e.token) === undefined || state.withdrawal(e.payer, e.token) === undefined) {
            plan.accounts.set(accountKey(e.payer, e.token), [e.payer, e.token]);
          }
          break;
        case "nonces":
          if (state.nonceWord(e.payer, e.token, e.word) === undefined) {
            plan.words.set(accountKey(e.payer, e.token) + "|" + e.word.toString(), [e.payer, e.token, e.word]);
          }
          break;
        case "grantSpent":
        case "grantRevoked":
          if (state.grant(e.payer, e.token, e.delegate) === undefined) plan.grants.set(grantKey(e.payer, e.token, e.delegate), [e.payer, e.token, e.delegate]);
          break;
        case "laneFunds":
        case "laneClose":
        case "laneClaimed":
          if (e.provider === ours && state.lane(e.payer, e.token) === undefined) plan.lanes.set(accountKey(e.payer, e.token), [e.payer, e.token]);
          break;
        default:
          break;
      }
    }
    return plan;
  }

  private async read(plan: ReadPlan, blockTag: number): Promise<PlanResults> {
    const results: PlanResults = { accounts: new Map(), words: new Map(), grants: new Map(), lanes: new Map() };
    const reads: Promise<void>[] = [];
    for (const [key, [payer, token]] of plan.accounts) reads.push(this.reader.account(payer, token, blockTag).then((r) => void results.accounts.set(key, r)));
    for (const [key, [payer, token, word]] of plan.words) reads.push(this.reader.word(payer, token, word, blockTag).then((r) => void results.words.set(key, r)));
    for (const [key, [payer, token, delegate]] of plan.grants) reads.push(this.reader.grant(payer, token, delegate, blockTag).then((r) => void results.grants.set(key, r)));
    for (const [key, [payer, token]] of plan.lanes) reads.push(this.reader.lane(payer, token, blockTag).then((r) => void results.lanes.set(key, r)));
    await Promise.all(reads);
    return results;
  }

  /** Applies one effect to the cache. Unknown state stays unknown (the plan's reads replace it). */
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
        const a = state.account(e.payer, e.token);
        if (a.balance !== undefined) a.withdrawal = { amount: e.amount, readyAt: e.readyAt, expiresAt: e.expiresAt };
        return;
      }
      case "nonces": {
        state.markNonces(e.payer, e.token, e.word, e.mask);
        touched.add(accountKey(e.payer, e.token));
        return;
      }
      case "grantSet": {
        // InferencePermissions._setGrant: remaining = budget, the first period starts now.
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
          remaining: e.budget,
          anyModel: e.models.length === 0,
          models: new Map(e.models.map((m) => [m, true])),
          modelsComplete: true,
        });
        return;
      }
      case "grantRevoked": {
        const key = grantKey(e.payer, e.token, e.delegate);
        const g = state.grants.get(key) ?? (state.complete ? revokedNeverGranted() : undefined);
        if (g === undefined) return; // read by the plan
        g.expiry = 0n;
        g.epoch = e.epoch;
        state.grants.set(key, g);
        return;
      }
      case "grantSpent": {
        // InferencePermissions._checkGrant's rollover at the block's timestamp, then the spend.
        const g = state.grants.get(grantKey(e.payer, e.token, e.delegate));
        if (g === undefined) return; // read by the plan
        if (time >= g.periodEnd && g.period > 0n) {
          let periodEnd = g.periodEnd + ((time - g.periodEnd) / g.period + 1n) * g.period;
          if (periodEnd > UINT32_MAX) periodEnd = UINT32_MAX;
          g.periodEnd = periodEnd;
          g.remaining = g.budget;
        }
        g.remaining -= e.amount;
        return;
      }
      case "channel": {
        if (e.provider !== this.options.provider) return;
        state.channels.set(e.payer + "|" + e.token + "|" + e.channel, e.cumulative);
        touched.add(accountKey(e.payer, e.token));
        return;
      }
      case "laneFunds":
      case "laneClose":
      case "laneClaimed": {
        if (e.provider !== this.options.provider) return;
        const key = accountKey(e.payer, e.token);
        const known = state.lane(e.payer, e.token);
        if (known === undefined) return; // read by the plan
        const lane = { ...known };
        if (e.kind === "laneFunds") lane.funds = e.funds;
        else if (e.kind === "laneClose") [lane.closeReadyAt, lane.closeExpiresAt] = [e.readyAt, e.expiresAt];
        else [lane.claimed, lane.funds] = [e.cumulative, lane.funds - e.amount];
        state.lanes.set(key, lane);
        touched.add(key);
        return;
      }
      default:
        return;
    }
  }

  /** Puts in what the plan read: end-of-block values, which already include the block's effects. */
  private overwrite(results: PlanResults, touched: Set<string>): void {
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
    for (const [key, g] of results.grants) state.grants.set(key, g);
    for (const [key, lane] of results.lanes) {
      state.lanes.set(key, lane);
      touched.add(key);
    }
  }

  private async blockTime(number: number): Promise<bigint> {
    const block = await this.rpc.getBlock(number);
    if (block === null) throw new Error(`block ${number} is not served by the node`);
    return BigInt(block.timestamp);
  }
}

/** What revoking a delegate that never had a grant leaves: a revoked hot slot under provider zero. */
function revokedNeverGranted(): GrantFacts {
  return {
    epoch: 0n,
    expiry: 0n,
    provider: ZERO_ADDRESS,
    maxPrice: 0n,
    budget: 0n,
    period: 0n,
    periodEnd: 0n,
    remaining: 0n,
    anyModel: false,
    models: new Map(),
    modelsComplete: true,
  };
}

/**
 * The logs of a chunk grouped by block in chain order, de-duplicated; undefined when they are not
 * one consistent view of the chain from block `from` to the block with hash `tipHash` (number `tip`).
 */
function groupByBlock(logs: readonly Log[], from: number, tip: number, tipHash: string): Map<number, Log[]> | undefined {
  const sorted = logs.filter((l) => !l.removed).sort((a, b) => a.blockNumber - b.blockNumber || a.index - b.index);
  const blocks = new Map<number, Log[]>();
  let last: Log | undefined;
  for (const log of sorted) {
    if (log.blockNumber < from || log.blockNumber > tip) return undefined;
    if (last !== undefined && last.blockNumber === log.blockNumber && last.index === log.index) continue; // served twice
    const group = blocks.get(log.blockNumber);
    if (group === undefined) blocks.set(log.blockNumber, [log]);
    else if (group[0].blockHash !== log.blockHash) return undefined;
    else group.push(log);
    if (log.blockNumber === tip && log.blockHash !== tipHash) return undefined;
    last = log;
  }
  return blocks;
}
