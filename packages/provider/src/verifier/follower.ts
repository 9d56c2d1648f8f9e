/**
 * Follows the contract's logs block by block into the state cache.
 *
 * - Each block is applied exactly once and atomically: its logs are decoded (`events.ts`), whatever
 *   they touch that the cache does not know is read with view calls at that block, and only then is
 *   everything applied in one synchronous step that also advances the synced block. A failed read
 *   applies nothing; the next sync starts again at that block.
 * - Decoding never throws and never reads calldata. A log that cannot be decoded makes every cached
 *   state unknown (it is read from the chain before it is used again).
 * - Blocks newer than `confirmations` are not applied. Each applied block is kept, for the last
 *   `reorgDepth` blocks, with its hash, what it wrote to the cache (`StateUndo`) and the reservations
 *   it ended. Every sync checks the newest kept block's hash; if the chain reorganised under it, the
 *   fork point is the newest kept block still on the chain (by hash): every block above it is taken
 *   back, newest first (the cache returns exactly to the fork point, the reservations those blocks
 *   ended come back unless the provider gave them up), and the new chain is applied from there. A
 *   reorg deeper than what is kept takes back everything kept and forgets every cached state (read
 *   from the chain before it is used again).
 */
import type { Log, Provider } from "ethers";
import { effectsOf, needsBlockTime, type Effect } from "./events";
import type { AccountRead, StateReader } from "./reader";
import type { EndedHold, Reservations } from "./reservations";
import { accountKey, channelKey, grantKey, type ChainState, type StateUndo } from "./state";
import type { GrantFacts, LaneFacts } from "./types";

const UINT32_MAX = (1n << 32n) - 1n;
const ZERO_ADDRESS = "0x" + "0".repeat(40);

export interface FollowerOptions {
  /** The provider (lowercase) whose channels and lanes are kept. */
  provider: string;
  fromBlock: number;
  logChunk: number;
  confirmations: number;
  /** How many recent blocks are kept to be taken back on a reorg. */
  reorgDepth: number;
}

/** An applied block, kept while a reorg could still drop it. */
interface BlockRecord {
  number: number;
  hash: string;
  /** What it (and the reads inserted after it) wrote to the cache. */
  undo: StateUndo;
  /** The reservations it ended. */
  ended: Map<string, EndedHold>;
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
  /** Applied blocks a reorg could still drop, oldest first (blocks with logs and the last of each chunk). */
  private readonly records: BlockRecord[] = [];

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
      // The same tip after the logs as before: they are of the chain the header is of (a reorg below
      // the tip would have changed it), so the hash kept for every block below is the chain's.
      const after = await this.rpc.getBlock(to);
      if (after === null || after.hash !== header.hash) break;
      for (const [number, blockLogs] of blocks) await this.applyBlock(number, blockLogs);
      this.keep(to, header.hash);
      this.nextBlock = to + 1;
      this.version++;
      // The chain's clock: a request whose deadline is before a synced block's timestamp can never settle.
      this.reservations.expire(BigInt(header.timestamp));
    }
    return this.syncedBlock;
  }

  /**
   * If the newest kept block is no longer on the chain, takes back every block above the fork point
   * (the newest kept block still on it), newest first, and follows the new chain from there.
   */
  private async checkReorg(): Promise<void> {
    const records = this.records;
    const newest = records.at(-1);
    if (newest === undefined || (await this.onChain(newest))) return;
    let fork = records.length - 2;
    while (fork >= 0 && !(await this.onChain(records[fork]))) fork--;
    // ---- from here on, synchronous
    this.state.recordInto(undefined);
    for (let i = records.length - 1; i > fork; i--) {
      this.state.rollback(records[i].undo);
      this.reservations.restore(records[i].ended);
    }
    if (fork >= 0) {
      const base = records[fork];
      records.length = fork + 1;
      this.state.recordInto(base.undo);
      this.reservations.noteInto(base.ended);
      this.nextBlock = base.number + 1;
    } else {
      // Deeper than what is kept: the cache as of the oldest kept block is not known to be the
      // chain's. Forget it (read before it is used again) and follow from there.
      this.nextBlock = records[0].number;
      records.length = 0;
      this.state.forgetAll();
      this.reservations.noteInto(undefined);
    }
    this.reservations.rederiveVouchers(this.state);
    this.version++;
    this.reorgs++;
  }

  private async onChain(record: BlockRecord): Promise<boolean> {
    const block = await this.rpc.getBlock(record.number);
    return block !== null && block.hash === record.hash;
  }

  /** Starts keeping block `number` (writes and ends from now on are recorded to it); drops what is too deep. */
  private keep(number: number, hash: string): void {
    const records = this.records;
    const last = records.at(-1);
    if (last !== undefined && last.number === number) return; // the chunk's last block had logs: kept already
    records.push({ number, hash, undo: this.state.beginUndo(), ended: this.reservations.openLog() });
    let drop = 0;
    while (drop < records.length - 1 && records[drop].number <= number - this.options.reorgDepth) drop++;
    for (const old of records.splice(0, drop)) this.reservations.closeLog(old.ended);
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
    this.keep(number, logs[0].blockHash);
    const touched = new Set<string>();
    if (forget) this.state.forgetAll();
    else {
      for (const e of effects) this.apply(e, time, touched);
      this.overwrite(results!, touched);
    }
    this.reservations.settleFromChain(this.state, touched);
    this.nextBlock = number + 1;
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
        state.setGrant(grantKey(e.payer, e.token, e.delegate), {
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
        const g = state.grantForWrite(key) ?? (state.complete ? revokedNeverGranted() : undefined);
        if (g === undefined) return; // read by the plan
        g.expiry = 0n;
        g.epoch = e.epoch;
        state.setGrant(key, g);
        return;
      }
      case "grantSpent": {
        // InferencePermissions._checkGrant's rollover at the block's timestamp, then the spend.
        const g = state.grantForWrite(grantKey(e.payer, e.token, e.delegate));
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
        state.setChannel(channelKey(e.payer, e.token, e.channel), e.cumulative);
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
        state.setLane(key, lane);
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
      state.setWord(payer, token, BigInt(word), bits);
      touched.add(accountKey(payer, token));
    }
    for (const [key, g] of results.grants) state.setGrant(key, g);
    for (const [key, lane] of results.lanes) {
      state.setLane(key, lane);
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
