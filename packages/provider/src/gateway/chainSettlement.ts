/**
 * The `SettlementQueue` over the contract: when and how reliably signed requests, the latest voucher
 * of each lane (one claim transaction per model) and what the claims paid (`collectLanes`,
 * periodically, and on close) go on chain; how each batch is sent is `SettlementSends`'
 * (`settlementSends.ts`). Batches go out when `maxBatchSize` items are queued or the oldest
 * has waited `maxAgeMs`, one transaction at a time per provider key across replicas (the store's
 * lock), and on `close` before the gateway exits.
 *
 * A send that fails for a transient reason (the RPC unreachable or erroring, nonce too low, fee
 * underpriced) is retried with backoff. Before each retry the queue waits until none of the
 * provider's transactions is pending and reads the provider's settlement logs since the first
 * attempt: what a lost attempt already settled is taken from there, not sent again, so each item
 * is reported settled exactly once (the contract never pays an item twice in any case). Items whose
 * retries run out go back to the queue, unless it is closing.
 */
import type { RawTransactionSender } from "./rawSender";
import { SettlementSends, laneItem, requestItem, type Attempt, type Queued, type QueuedLane, type QueuedRequest } from "./settlementSends";
import {
  LANES_CLAIMED_TOPIC,
  LANES_COLLECTED_TOPIC,
  REQUESTS_SETTLED_TOPIC,
  Reason,
  decodeLanesClaimed,
  decodeLanesCollected,
  decodeRequestsSettled,
  type SignedLaneVoucher,
  type SignedRequest,
} from "@preflight/sdk";
import type { Preflight } from "@preflight/sdk/typechain";
import { grantLeftUncharged } from "./releases";
import type { DroppedItem, GrantHold, ReservationStore, SettlementBatch, SettlementQueue, SettledItem } from "./interfaces";

export interface SettlementRetryOptions {
  /** Sends tried per batch before its items go back to the queue (default 8). */
  attempts?: number;
  /** First backoff, doubled per retry up to `maxDelayMs` (defaults 250 ms and 8,000 ms). */
  baseDelayMs?: number;
  maxDelayMs?: number;
}

export interface ChainSettlementQueueOptions {
  /** The Preflight contract connected to the provider's signer. */
  contract: Preflight;
  /** The token every item is in. */
  token: string;
  /** The shared store: its lock keeps replicas with one provider key from racing transaction nonces. */
  store: ReservationStore;
  /** Settle when this many items are queued (default 100). */
  maxBatchSize?: number;
  /** Settle when the oldest queued item is this old (default 10,000 ms). */
  maxAgeMs?: number;
  /** Move claimed lanes into the provider's earnings this often (default 60,000 ms), and on close. */
  collectEveryMs?: number;
  retry?: SettlementRetryOptions;
  /**
   * Sends the compact settlements (`settlePacked` for requests of payers without code,
   * `claimLanesPacked`) as raw transactions signed in-process: far less CPU per item than ethers'
   * transaction objects. Without it every send goes through the contract's signer (and requests
   * through `BatchSettler`'s `settleBatch`).
   */
  sender?: RawTransactionSender;
  /** Called after every batch transaction (or failure). */
  onBatch?: (batch: SettlementBatch) => void;
}

/**
 * @example
 * const queue = new ChainSettlementQueue({ contract: preflight.connect(providerWallet), token, store, maxBatchSize: 100, maxAgeMs: 5_000 });
 */
export class ChainSettlementQueue implements SettlementQueue {
  private readonly token: string;
  private readonly store: ReservationStore;
  private readonly maxBatchSize: number;
  private readonly maxAgeMs: number;
  /** `maxAgeMs`: the longest a queued item waits before its batch is sent. */
  get maxWaitMs(): number {
    return this.maxAgeMs;
  }
  private readonly collectEveryMs: number;
  private readonly attempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly listeners: ((batch: SettlementBatch) => void)[] = [];
  private requests: QueuedRequest[] = [];
  private lanes = new Map<string, QueuedLane>();
  /** Payers whose lanes hold claimed amounts not yet collected into the provider's earnings. */
  private readonly uncollected = new Set<string>();
  /** Lane vouchers a flush took that are not being sent yet (it waits behind another), by payer, oldest first. */
  private readonly waiting = new Map<string, QueuedLane[]>();
  private amount = 0n;
  /** Items a flush took from the queue whose transactions are not done yet. */
  private sending = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly collector: NodeJS.Timeout;
  private chain: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** How each batch goes on chain. */
  private readonly sends: SettlementSends;

  constructor(options: ChainSettlementQueueOptions) {
    this.token = options.token;
    this.store = options.store;
    this.maxBatchSize = options.maxBatchSize ?? 100;
    this.maxAgeMs = options.maxAgeMs ?? 10_000;
    this.collectEveryMs = Math.max(100, options.collectEveryMs ?? 60_000);
    this.attempts = Math.max(1, options.retry?.attempts ?? 8);
    this.baseDelayMs = options.retry?.baseDelayMs ?? 250;
    this.maxDelayMs = options.retry?.maxDelayMs ?? 8_000;
    this.sends = new SettlementSends(options.contract, options.token, options.sender);
    if (options.onBatch) this.listeners.push(options.onBatch);
    this.collector = setInterval(() => {
      if (this.uncollected.size > 0) void this.serially(() => this.collect()).catch(() => undefined);
    }, this.collectEveryMs);
    this.collector.unref();
  }

  subscribe(listener: (batch: SettlementBatch) => void): void {
    this.listeners.push(listener);
  }

  private emit(batch: SettlementBatch): SettlementBatch {
    for (const listener of this.listeners) listener(batch);
    return batch;
  }

  get queuedCount(): number {
    return this.requests.length + this.lanes.size;
  }

  get queuedAmount(): bigint {
    return this.amount;
  }

  get settlingCount(): number {
    return this.sending;
  }

  enqueueRequest(item: SignedRequest, held: bigint, grantPool?: string): void {
    this.assertOpen();
    this.requests.push({ item, held, grantHolds: grantPool ? [{ pool: grantPool, amount: held }] : undefined });
    this.amount += held;
    this.schedule();
  }

  enqueueLaneVoucher(item: SignedLaneVoucher, held: bigint, grantHold?: GrantHold, carried: GrantHold[] = []): void {
    this.assertOpen();
    const grantHolds = [...carried, ...(grantHold ? [grantHold] : [])].filter((g) => g.amount !== 0n);
    this.queueLane({ item, held, grantHolds: grantHolds.length > 0 ? grantHolds : undefined });
    this.schedule();
  }

  /** Only the highest cumulative voucher of a lane is worth claiming; it carries every increase held so far. */
  private queueLane(entry: QueuedLane): void {
    const key = entry.item.payer.toLowerCase();
    const previous = this.lanes.get(key);
    const item = previous && previous.item.cumulativeAmount > entry.item.cumulativeAmount ? previous.item : entry.item;
    const grantHolds = [...(previous?.grantHolds ?? []), ...(entry.grantHolds ?? [])];
    this.lanes.set(key, { item, held: (previous?.held ?? 0n) + entry.held, grantHolds: grantHolds.length > 0 ? grantHolds : undefined });
    this.amount += entry.held;
  }

  flush(): Promise<SettlementBatch[]> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const requests = this.requests;
    const lanes = [...this.lanes.values()];
    this.requests = [];
    this.lanes = new Map();
    const taken = requests.length + lanes.length;
    this.sending += taken;
    for (const lane of lanes) {
      const key = lane.item.payer.toLowerCase();
      this.waiting.set(key, [...(this.waiting.get(key) ?? []), lane]);
    }
    return this.serially(async () => {
      try {
        return await this.settleTaken(requests, lanes);
      } finally {
        this.sending -= taken;
        for (const lane of lanes) this.stopWaiting(lane);
      }
    });
  }

  /** What one flush took from the queue, in batches, one transaction at a time. */
  private async settleTaken(requests: QueuedRequest[], lanes: QueuedLane[]): Promise<SettlementBatch[]> {
    const batches: SettlementBatch[] = [];
    for (let i = 0; i < requests.length; i += this.maxBatchSize) {
      batches.push(await this.settle("request", requests.slice(i, i + this.maxBatchSize), (b) => this.sends.requests(b), (b, from) => this.reconcileRequests(b, from)));
    }
    // One claimLanesPacked per model (the packed form names one model for all its claims).
    const byModel = new Map<string, QueuedLane[]>();
    for (const lane of lanes) {
      const model = lane.item.model.toLowerCase();
      byModel.set(model, [...(byModel.get(model) ?? []), lane]);
    }
    for (const group of byModel.values()) {
      for (let i = 0; i < group.length; i += this.maxBatchSize) {
        const batch = group.slice(i, i + this.maxBatchSize);
        for (const lane of batch) this.stopWaiting(lane);
        batches.push(await this.settle("lane", batch, (b) => this.sendLanes(b), (b, from) => this.reconcileLanes(b, from)));
      }
    }
    if (this.closed || this.uncollected.size >= this.maxBatchSize) {
      const collected = await this.collect();
      if (collected) batches.push(collected);
    }
    return batches;
  }

  async close(): Promise<SettlementBatch[]> {
    this.closed = true;
    clearInterval(this.collector);
    return this.flush();
  }

  /** Runs `fn` after every settlement already under way (one transaction at a time from this queue). */
  private serially<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error("the settlement queue is closed (the gateway is shutting down)");
  }

  private schedule(): void {
    if (this.queuedCount >= this.maxBatchSize) void this.flush().catch(() => undefined);
    else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.flush().catch(() => undefined);
      }, this.maxAgeMs);
      this.timer.unref();
    }
  }

  /**
   * Sends a batch, retrying transient failures: before a retry, what an earlier attempt settled
   * (read back from the logs) leaves the batch, so nothing is sent twice.
   */
  private async settle<T extends Queued<unknown>>(
    kind: "request" | "lane",
    batch: T[],
    send: (batch: T[]) => Promise<Attempt<T>>,
    reconcile: (batch: T[], fromBlock: number) => Promise<{ done: SettledItem[]; rest: T[]; txHash?: string; blockNumber?: number }>,
  ): Promise<SettlementBatch> {
    for (const b of batch) this.amount -= b.held;
    const done: SettledItem[] = [];
    let pending = batch;
    let fromBlock: number | undefined;
    let last: { txHash?: string; blockNumber?: number; gasUsed: bigint } = { gasUsed: 0n };
    let error: unknown;
    for (let attempt = 1; attempt <= this.attempts; attempt++) {
      if (attempt > 1) {
        await sleep(Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** (attempt - 2)));
        try {
          await this.quiesce();
          if (fromBlock !== undefined) {
            const seen = await reconcile(pending, fromBlock);
            done.push(...seen.done);
            pending = seen.rest;
            if (seen.txHash) last = { txHash: seen.txHash, blockNumber: seen.blockNumber, gasUsed: last.gasUsed };
          }
        } catch (e) {
          error = e;
          if (!isTransient(e)) break;
          continue;
        }
        if (pending.length === 0) return this.emit({ kind, ...last, items: done, attempts: attempt - 1 });
      }
      try {
        fromBlock ??= await this.sends.rpc().getBlockNumber();
      } catch (e) {
        error = e;
        if (!isTransient(e)) break;
        continue;
      }
      const result = await this.store.withLock("settle", 120_000, () => send(pending));
      if (!("error" in result)) {
        for (const item of result.done) {
          // A refused claim charged no grant: the lane's next voucher here will charge it all.
          if (grantLeftUncharged(item)) {
            const claim = pending.find((p) => (p.item as SignedLaneVoucher).payer.toLowerCase() === item.payer.toLowerCase())!.item as SignedLaneVoucher;
            item.grantHolds = this.keepForQueuedClaim(item.payer, item.grantHolds, claim.cumulativeAmount);
          }
        }
        done.push(...result.done);
        return this.emit({ kind, txHash: result.txHash, blockNumber: result.blockNumber, gasUsed: result.gasUsed + last.gasUsed, items: done, attempts: attempt });
      }
      error = result.error;
      if (!isTransient(error)) break;
    }
    // Out of retries (or a failure no retry cures): what is left goes back to the queue, unless closing.
    if (!this.closed && isTransient(error)) {
      this.requeue(kind, pending);
      return this.emit({ kind, ...last, items: done, error, attempts: this.attempts });
    }
    // Before anything is given up, what an attempt landed is read back from the chain: a batch of
    // two transactions may fail in its second, and a send may be mined whatever its answer said.
    let unread = false;
    if (fromBlock !== undefined) {
      try {
        // Still pending after the wait, an earlier attempt may yet land: nothing is known for sure.
        unread = !(await this.quiesce());
        const seen = await reconcile(pending, fromBlock);
        done.push(...seen.done);
        pending = seen.rest;
        if (seen.txHash) last = { txHash: seen.txHash, blockNumber: seen.blockNumber, gasUsed: last.gasUsed };
      } catch {
        unread = true;
      }
      // All of it landed after all (a send mined whatever its answer said): a settled batch.
      if (!unread && pending.length === 0) return this.emit({ kind, ...last, items: done, attempts: this.attempts });
    }
    // Only a revert, with the chain read back and nothing pending, says the rest did not land and
    // never will: then their holds can go.
    if (!unread && nothingLanded(error)) return this.emit({ kind, ...last, items: done, error, dropped: this.giveUp(kind, pending), attempts: this.attempts });
    // Anything else (an error of unknown meaning, a read-back that failed) is not known to be final:
    // the rest goes back to the queue (a re-send is harmless: the contract skips what already
    // settled). Shutting down, it stays held instead (in Redis until the holds expire): releasing
    // what may still land would promise those funds twice.
    if (!this.closed) this.requeue(kind, pending);
    return this.emit({ kind, ...last, items: done, error, attempts: this.attempts });
  }

  /** Puts items a batch could not settle back in the queue, for the next batch. */
  private requeue<T extends Queued<unknown>>(kind: "request" | "lane", pending: T[]): void {
    for (const p of pending) {
      if (kind === "request") {
        this.requests.push(p as unknown as QueuedRequest);
        this.amount += p.held;
      } else this.queueLane(p as unknown as QueuedLane);
    }
    this.schedule();
  }

  /**
   * The items a batch gives up on after a revert (nothing of them landed): their holds can go.
   * Nothing will settle a request. A lane's funds hold is not needed: every raise is checked against
   * the lane's funds for its whole excess over what the lane paid. A delegate's grant hold goes too
   * (and the gateway has the store forget it, so the lane's next raise holds the whole excess),
   * unless the lane's next voucher is already queued here: its claim charges the whole excess, so
   * the hold moves to it (`keepForQueuedClaim`).
   */
  private giveUp<T extends Queued<unknown>>(kind: "request" | "lane", pending: T[]): DroppedItem[] {
    return pending.map((p) => {
      const { payer, token } = p.item as SignedRequest | SignedLaneVoucher;
      const grantHolds = kind === "lane" ? this.keepForQueuedClaim(payer, p.grantHolds, (p.item as SignedLaneVoucher).cumulativeAmount) : p.grantHolds;
      return { kind, payer, token, held: p.held, grantHolds };
    });
  }

  /** `lane` is being sent (or its flush ended): later claims' holds no longer move to it. */
  private stopWaiting(lane: QueuedLane): void {
    const key = lane.item.payer.toLowerCase();
    const left = (this.waiting.get(key) ?? []).filter((w) => w !== lane);
    if (left.length > 0) this.waiting.set(key, left);
    else this.waiting.delete(key);
  }

  /**
   * The grant holds of a lane's claim that did not charge them (refused, or given up): moved to the
   * lane's next voucher here if there is one (its claim charges the whole excess, and is sent after
   * this one: a flush waiting behind this one, or the queue), else returned, to be let go. Only a
   * voucher at or above `cumulative` (the claim's own) is the next one: a lower voucher put back in
   * the queue (its batch's failure not known to be final) charges less than those holds stood for,
   * and the store's marker still counts them; let go, the marker is forgotten with them.
   */
  private keepForQueuedClaim(payer: string, grantHolds: GrantHold[] | undefined, cumulative: bigint): GrantHold[] | undefined {
    if (!grantHolds?.length) return grantHolds;
    const key = payer.toLowerCase();
    const next = this.waiting.get(key)?.find((w) => w.item.cumulativeAmount >= cumulative);
    if (next) {
      next.grantHolds = [...(next.grantHolds ?? []), ...grantHolds];
      return undefined;
    }
    const queued = this.lanes.get(key);
    if (!queued || queued.item.cumulativeAmount < cumulative) return grantHolds;
    this.lanes.set(key, { ...queued, grantHolds: [...(queued.grantHolds ?? []), ...grantHolds] });
    return undefined;
  }

  /** Waits (bounded) until none of the provider's transactions is pending, so a lost send either landed or never will. */
  private async quiesce(): Promise<boolean> {
    const rpc = this.sends.rpc();
    const address = await this.sends.providerAddressOf();
    for (let i = 0; i < 60; i++) {
      const [pending, latest] = await Promise.all([rpc.getTransactionCount(address, "pending"), rpc.getTransactionCount(address, "latest")]);
      if (pending === latest) return true;
      await sleep(1_000);
    }
    return false;
  }

  /** Lane claims through `SettlementSends`; lanes that were paid wait to be collected. */
  private async sendLanes(batch: QueuedLane[]): Promise<Attempt<QueuedLane>> {
    const attempt = await this.sends.lanes(batch);
    if (!("error" in attempt)) for (const item of attempt.done) if (item.amount > 0n) this.uncollected.add(item.payer.toLowerCase());
    return attempt;
  }

  /** Requests an earlier attempt settled, from the provider's RequestsSettled logs since `fromBlock`. */
  private async reconcileRequests(batch: QueuedRequest[], fromBlock: number) {
    const seen = new Map<string, { reason: Reason; txHash: string; blockNumber: number }>();
    for (const log of await this.sends.providerLogs(REQUESTS_SETTLED_TOPIC, fromBlock)) {
      for (const r of decodeRequestsSettled(log).records) {
        if (r.reason === Reason.Settled) seen.set(`${r.payer.toLowerCase()}|${r.nonce}`, { reason: r.reason, txHash: log.transactionHash, blockNumber: log.blockNumber });
      }
    }
    const done: SettledItem[] = [];
    const rest: QueuedRequest[] = [];
    let tx: { txHash?: string; blockNumber?: number } = {};
    for (const b of batch) {
      const hit = seen.get(`${b.item.payer.toLowerCase()}|${b.item.nonce}`);
      if (!hit) rest.push(b);
      else {
        done.push(requestItem(b, hit.reason));
        tx = hit;
      }
    }
    return { done, rest, ...tx };
  }

  /** Lane vouchers an earlier attempt claimed, from the provider's LanesClaimed logs since `fromBlock`. */
  private async reconcileLanes(batch: QueuedLane[], fromBlock: number) {
    const seen = new Map<string, { cumulative: bigint; amount: bigint; txHash: string; blockNumber: number }>();
    for (const log of await this.sends.providerLogs(LANES_CLAIMED_TOPIC, fromBlock)) {
      for (const r of decodeLanesClaimed(log).records) {
        if (r.reason === Reason.Settled) seen.set(r.payer.toLowerCase(), { cumulative: r.cumulativeAmount, amount: r.amount, txHash: log.transactionHash, blockNumber: log.blockNumber });
      }
    }
    const done: SettledItem[] = [];
    const rest: QueuedLane[] = [];
    let tx: { txHash?: string; blockNumber?: number } = {};
    for (const b of batch) {
      const hit = seen.get(b.item.payer.toLowerCase());
      if (!hit || hit.cumulative < b.item.cumulativeAmount) rest.push(b);
      else {
        done.push(laneItem(b, Reason.Settled, hit.amount));
        this.uncollected.add(b.item.payer.toLowerCase());
        tx = hit;
      }
    }
    return { done, rest, ...tx };
  }

  /**
   * `collectLanes` for every lane with claims not yet collected (sending it twice is harmless: a
   * lane with nothing uncollected is skipped), retried like a batch.
   */
  private async collect(): Promise<SettlementBatch | undefined> {
    const payers = [...this.uncollected];
    if (payers.length === 0) return undefined;
    let error: unknown;
    for (let attempt = 1; attempt <= this.attempts; attempt++) {
      if (attempt > 1) await sleep(Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** (attempt - 2)));
      try {
        const receipt = await this.store.withLock("settle", 120_000, async () => {
          await this.quiesce();
          return this.sends.collectLanes(payers);
        });
        for (const p of payers) this.uncollected.delete(p);
        const collected = this.sends.logsOf(receipt, LANES_COLLECTED_TOPIC)
          .flatMap((l) => decodeLanesCollected(l).records)
          .reduce((sum, r) => sum + r.amount, 0n);
        const items: SettledItem[] = payers.map((payer) => ({ kind: "lane", payer, token: this.token, amount: 0n, reason: Reason.Settled, held: 0n }));
        return this.emit({ kind: "collect", txHash: receipt.hash, blockNumber: receipt.blockNumber, gasUsed: receipt.gasUsed, items, collected, attempts: attempt });
      } catch (e) {
        error = e;
        if (!isTransient(e)) break;
      }
    }
    return this.emit({ kind: "collect", gasUsed: 0n, items: [], error, attempts: this.attempts });
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Whether a failed send may succeed if tried again: the RPC unreachable, timing out or erroring
 * (5xx, rate limits), the transaction refused for its nonce or fee, or the provider key short of
 * gas money. A revert is not.
 */
export function isTransient(error: unknown): boolean {
  const e = error as { code?: unknown; message?: unknown; error?: unknown; cause?: unknown } | undefined;
  if (!e) return false;
  if (e.code === "CALL_EXCEPTION") return false;
  // A provider key short of gas money settles once it is topped up: its items wait in the queue.
  if (["INSUFFICIENT_FUNDS", "NETWORK_ERROR", "SERVER_ERROR", "TIMEOUT", "NONCE_EXPIRED", "REPLACEMENT_UNDERPRICED", "ECONNREFUSED", "ECONNRESET", "EPIPE", "UND_ERR_SOCKET"].includes(String(e.code))) return true;
  const text = `${String(e.message ?? "")} ${JSON.stringify(e.error ?? "")} ${String((e.cause as { message?: unknown })?.message ?? "")}`;
  return /nonce too low|nonce has already been used|underpriced|already known|ECONNREFUSED|ECONNRESET|socket hang up|fetch failed|timeout|timed out|rate limit|\b(429|502|503|504)\b|bad response|missing response|connection/i.test(text);
}

/**
 * Whether a failure says the transaction did not change the chain: a revert, in the gas check
 * (`eth_call`, `eth_estimateGas`) or in a mined receipt (status 0). Nothing else does.
 */
export function nothingLanded(error: unknown): boolean {
  return (error as { code?: unknown } | undefined)?.code === "CALL_EXCEPTION";
}
