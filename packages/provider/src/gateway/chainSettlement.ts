/**
 * The `SettlementQueue` over the contract: signed requests through the SDK's `BatchSettler`
 * (`settleBatch`), the latest voucher of each lane through `claimLanesPacked` (one transaction per
 * model), and what the claims paid into the provider's earnings through `collectLanes`
 * (periodically, and on close). Batches go out when `maxBatchSize` items are queued or the oldest
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
import { BatchSettler } from "../settler";
import { addressBytesCall, RawTransactionSender, type RawReceipt } from "./rawSender";
import {
  LANES_CLAIMED_TOPIC,
  LANES_COLLECTED_TOPIC,
  REQUESTS_SETTLED_TOPIC,
  Reason,
  decodeLanesClaimed,
  decodeLanesCollected,
  decodeRequestsSettled,
  encodeLaneClaims,
  encodePacked,
  isPackable,
  type SignedLaneVoucher,
  type SignedRequest,
} from "@preflight/sdk";
import type { Preflight } from "@preflight/sdk/typechain";
import type { Provider, Signer, TransactionReceipt } from "ethers";
import type { ReservationStore, SettlementBatch, SettlementQueue, SettledItem } from "./interfaces";

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

interface Queued<T> {
  item: T;
  held: bigint;
}

type QueuedRequest = Queued<SignedRequest>;
type QueuedLane = Queued<SignedLaneVoucher>;

/** One attempt's outcome: done (with what the chain said), or an error. */
type Attempt<T> = { done: SettledItem[]; rest: T[]; txHash?: string; blockNumber?: number; gasUsed: bigint; collected?: bigint } | { error: unknown };

/**
 * @example
 * const queue = new ChainSettlementQueue({ contract: preflight.connect(providerWallet), token, store, maxBatchSize: 100, maxAgeMs: 5_000 });
 */
export class ChainSettlementQueue implements SettlementQueue {
  private readonly contract: Preflight;
  private readonly token: string;
  private readonly store: ReservationStore;
  private readonly maxBatchSize: number;
  private readonly maxAgeMs: number;
  private readonly collectEveryMs: number;
  private readonly attempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly listeners: ((batch: SettlementBatch) => void)[] = [];
  private requests: QueuedRequest[] = [];
  private lanes = new Map<string, QueuedLane>();
  /** Payers whose lanes hold claimed amounts not yet collected into the provider's earnings. */
  private readonly uncollected = new Set<string>();
  private amount = 0n;
  private timer: NodeJS.Timeout | undefined;
  private readonly collector: NodeJS.Timeout;
  private chain: Promise<unknown> = Promise.resolve();
  private closed = false;
  private providerAddress: Promise<string> | undefined;
  private readonly sender: RawTransactionSender | undefined;
  /** Payers known to have code or not (contract payers settle through settleBatch, with their wallets' gas budget). */
  private readonly hasCode = new Map<string, boolean>();

  constructor(options: ChainSettlementQueueOptions) {
    this.contract = options.contract;
    this.token = options.token;
    this.store = options.store;
    this.maxBatchSize = options.maxBatchSize ?? 100;
    this.maxAgeMs = options.maxAgeMs ?? 10_000;
    this.collectEveryMs = Math.max(100, options.collectEveryMs ?? 60_000);
    this.attempts = Math.max(1, options.retry?.attempts ?? 8);
    this.baseDelayMs = options.retry?.baseDelayMs ?? 250;
    this.maxDelayMs = options.retry?.maxDelayMs ?? 8_000;
    this.sender = options.sender;
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

  enqueueRequest(item: SignedRequest, held: bigint): void {
    this.assertOpen();
    this.requests.push({ item, held });
    this.amount += held;
    this.schedule();
  }

  enqueueLaneVoucher(item: SignedLaneVoucher, held: bigint): void {
    this.assertOpen();
    this.queueLane({ item, held });
    this.schedule();
  }

  /** Only the highest cumulative voucher of a lane is worth claiming; it carries every increase held so far. */
  private queueLane(entry: QueuedLane): void {
    const key = entry.item.payer.toLowerCase();
    const previous = this.lanes.get(key);
    const item = previous && previous.item.cumulativeAmount > entry.item.cumulativeAmount ? previous.item : entry.item;
    this.lanes.set(key, { item, held: (previous?.held ?? 0n) + entry.held });
    this.amount += entry.held;
  }

  flush(): Promise<SettlementBatch[]> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const requests = this.requests;
    const lanes = [...this.lanes.values()];
    this.requests = [];
    this.lanes = new Map();
    return this.serially(async () => {
      const batches: SettlementBatch[] = [];
      for (let i = 0; i < requests.length; i += this.maxBatchSize) {
        batches.push(await this.settle("request", requests.slice(i, i + this.maxBatchSize), (b) => this.sendRequests(b), (b, from) => this.reconcileRequests(b, from)));
      }
      // One claimLanesPacked per model (the packed form names one model for all its claims).
      const byModel = new Map<string, QueuedLane[]>();
      for (const lane of lanes) {
        const model = lane.item.model.toLowerCase();
        byModel.set(model, [...(byModel.get(model) ?? []), lane]);
      }
      for (const group of byModel.values()) {
        for (let i = 0; i < group.length; i += this.maxBatchSize) {
          batches.push(await this.settle("lane", group.slice(i, i + this.maxBatchSize), (b) => this.sendLanes(b), (b, from) => this.reconcileLanes(b, from)));
        }
      }
      if (this.closed || this.uncollected.size >= this.maxBatchSize) {
        const collected = await this.collect();
        if (collected) batches.push(collected);
      }
      return batches;
    });
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
        fromBlock ??= await this.rpc().getBlockNumber();
      } catch (e) {
        error = e;
        if (!isTransient(e)) break;
        continue;
      }
      const result = await this.store.withLock("settle", 120_000, () => send(pending));
      if (!("error" in result)) {
        done.push(...result.done);
        return this.emit({ kind, txHash: result.txHash, blockNumber: result.blockNumber, gasUsed: result.gasUsed + last.gasUsed, items: done, attempts: attempt });
      }
      error = result.error;
      if (!isTransient(error)) break;
    }
    // Out of retries (or a failure no retry cures): what is left goes back to the queue, unless closing.
    if (!this.closed && isTransient(error)) {
      for (const p of pending) {
        if (kind === "request") {
          this.requests.push(p as unknown as QueuedRequest);
          this.amount += p.held;
        } else this.queueLane(p as unknown as QueuedLane);
      }
      this.schedule();
    }
    return this.emit({ kind, ...last, items: done, error, attempts: this.attempts });
  }

  /** Waits (bounded) until none of the provider's transactions is pending, so a lost send either landed or never will. */
  private async quiesce(): Promise<void> {
    const rpc = this.rpc();
    const address = await this.providerAddressOf();
    for (let i = 0; i < 60; i++) {
      const [pending, latest] = await Promise.all([rpc.getTransactionCount(address, "pending"), rpc.getTransactionCount(address, "latest")]);
      if (pending === latest) return;
      await sleep(1_000);
    }
  }

  private async sendRequests(batch: QueuedRequest[]): Promise<Attempt<QueuedRequest>> {
    try {
      const packed: QueuedRequest[] = [];
      const other: QueuedRequest[] = [];
      // One code lookup per distinct payer of the batch, in parallel: a lookup per item (500 sequential
      // eth_getCode calls per batch) cost the node about as much CPU as the gateway's whole paid path.
      // Without a raw sender nothing is packed here, so nothing is looked up (the settler looks up its own).
      const code = this.sender ? await this.payersWithCode(batch.map((b) => b.item.payer)) : new Map<string, boolean>();
      for (const b of batch) (this.sender && isPackable(b.item.signature, code.get(b.item.payer.toLowerCase()) === true) ? packed : other).push(b);
      const done: SettledItem[] = [];
      let last: { txHash?: string; blockNumber?: number } = {};
      let gasUsed = 0n;
      if (packed.length > 0) {
        // Consecutive nonces of one payer share a group header: cheaper calldata and gas.
        packed.sort((x, y) => (x.item.payer.toLowerCase() < y.item.payer.toLowerCase() ? -1 : x.item.payer.toLowerCase() > y.item.payer.toLowerCase() ? 1 : x.item.nonce < y.item.nonce ? -1 : 1));
        const data = addressBytesCall(this.contract.interface.getFunction("settlePacked").selector, this.token, encodePacked(packed.map((b) => ({ request: { ...b.item, provider: this.sender!.address }, signature: b.item.signature })), PAYERS_WITHOUT_CODE));
        const receipt = await this.sender!.send(this.contractAddress(), data);
        const records = this.logsOf(receipt, REQUESTS_SETTLED_TOPIC).flatMap((l) => decodeRequestsSettled(l).records);
        if (records.length !== packed.length) throw new Error(`${receipt.hash} logged ${records.length} requests, sent ${packed.length}`);
        packed.forEach((b, i) => done.push(requestItem(b.item, records[i]!.reason as Reason, b.held)));
        last = { txHash: receipt.hash, blockNumber: receipt.blockNumber };
        gasUsed += receipt.gasUsed;
      }
      if (other.length > 0) {
        const viaSettler = await this.sendViaSettler(other);
        if ("error" in viaSettler) return viaSettler;
        done.push(...viaSettler.done);
        last = { txHash: viaSettler.txHash, blockNumber: viaSettler.blockNumber };
        gasUsed += viaSettler.gasUsed;
      }
      return { done, rest: [], ...last, gasUsed };
    } catch (error) {
      return { error };
    }
  }

  /**
   * Whether each distinct payer (lowercase) has code, looked up once each and in parallel. A request
   * or lane claim is packed when its signature packs unchanged for its payer (the SDK's `isPackable`:
   * a 65-byte one only for a payer without code).
   */
  private async payersWithCode(payers: string[]): Promise<Map<string, boolean>> {
    const out = new Map<string, boolean>();
    const distinct = [...new Set(payers.map((p) => p.toLowerCase()))];
    const codes = await Promise.all(distinct.map((p) => this.payerHasCode(p)));
    distinct.forEach((p, i) => out.set(p, codes[i]!));
    return out;
  }

  /**
   * Whether `payer` has code. Only "has code" is remembered (bounded): a payer without code today may
   * gain some later (a counterfactual wallet deployed, an EIP-7702 delegation), and its wallet would
   * then check a 65-byte signature packed as 64 bytes.
   */
  private async payerHasCode(payer: string): Promise<boolean> {
    const key = payer.toLowerCase();
    if (this.hasCode.has(key)) return true;
    const code = (await this.rpc().getCode(payer)) !== "0x";
    if (code) {
      if (this.hasCode.size >= 10_000) this.hasCode.clear();
      this.hasCode.set(key, true);
    }
    return code;
  }

  private async sendViaSettler(batch: QueuedRequest[]): Promise<Attempt<QueuedRequest>> {
    // A fresh settler per attempt: one whose attempt failed midway holds nothing back.
    const settler = new BatchSettler({ contract: this.contract, token: this.token, maxBatchSize: Number.MAX_SAFE_INTEGER, maxAgeMs: 2 ** 31 - 1 });
    const held = new Map(batch.map((b) => [b.item, b.held]));
    const outcomes = batch.map((b) => settler.add(b.item));
    const results = await settler.flush();
    const failed = results.find((r) => r.error !== undefined);
    if (failed || results.length === 0) return { error: failed?.error ?? new Error("nothing sent") };
    const items: SettledItem[] = (await Promise.all(outcomes)).map((o) => requestItem(o.item, o.reason, held.get(o.item) ?? 0n));
    const last = results[results.length - 1]!;
    const receipt = last.txHash ? await this.receipt(last.txHash) : null;
    return { done: items, rest: [], txHash: last.txHash, blockNumber: receipt?.blockNumber, gasUsed: results.reduce((g, r) => g + r.gasUsed, 0n) };
  }

  private async sendLanes(batch: QueuedLane[]): Promise<Attempt<QueuedLane>> {
    try {
      const model = batch[0]!.item.model;
      // claimLanesPacked carries only signatures it keeps unchanged (`isPackable`); a contract payer's
      // 65-byte (or longer) signature goes through the readable claimLane, one voucher at a time.
      const packed: QueuedLane[] = [];
      const single: QueuedLane[] = [];
      const hasCode = await this.payersWithCode(batch.map((b) => b.item.payer));
      for (const b of batch) (isPackable(b.item.signature, hasCode.get(b.item.payer.toLowerCase()) === true) ? packed : single).push(b);
      const items: SettledItem[] = [];
      let last: { hash: string; blockNumber: number } | undefined;
      let gasUsed = 0n;
      if (packed.length > 0) {
        const data = encodeLaneClaims(
          model,
          packed.map((b) => ({ payer: b.item.payer, cumulativeAmount: b.item.cumulativeAmount, signature: b.item.signature })),
          { isContract: (payer) => hasCode.get(payer.toLowerCase()) === true },
        );
        let receipt: RawReceipt | TransactionReceipt | null;
        if (this.sender) receipt = await this.sender.send(this.contractAddress(), addressBytesCall(this.contract.interface.getFunction("claimLanesPacked").selector, this.token, data));
        else {
          const tx = await this.contract.claimLanesPacked(this.token, data);
          receipt = await tx.wait();
          if (!receipt) throw new Error(`no receipt for ${tx.hash}`);
        }
        // The one LanesClaimed log lists every claim of the call in order: paid (reason 0, with the
        // amount) or skipped with its reason (docs/log-format.md). Nothing is read from calldata.
        const records = this.logsOf(receipt, LANES_CLAIMED_TOPIC).flatMap((l) => decodeLanesClaimed(l).records);
        if (records.length !== packed.length) throw new Error(`${receipt.hash} logged ${records.length} lane claims, sent ${packed.length}`);
        packed.forEach((b, index) => items.push(laneItem(b.item, records[index]!.reason as Reason, records[index]!.amount, b.held)));
        last = receipt;
        gasUsed += receipt.gasUsed;
      }
      for (const b of single) {
        const voucher = { payer: b.item.payer, token: this.token, model, cumulativeAmount: b.item.cumulativeAmount, signature: b.item.signature };
        // A refusal is the contract's custom error, named as the batch reason codes are; anything
        // else (the RPC, gas) is transient: the attempt fails and is retried, reconciled from the logs.
        const refused = await this.contract.claimLane.staticCall(voucher).then(
          () => undefined,
          (error: unknown) => refusalReason(this.contract, error),
        );
        if (refused !== undefined) {
          items.push(laneItem(b.item, refused, 0n, b.held));
          continue;
        }
        const tx = await this.contract.claimLane(voucher);
        const receipt = await tx.wait();
        if (!receipt) throw new Error(`no receipt for ${tx.hash}`);
        const record = this.logsOf(receipt, LANES_CLAIMED_TOPIC).flatMap((l) => decodeLanesClaimed(l).records)[0];
        items.push(laneItem(b.item, (record?.reason ?? Reason.Settled) as Reason, record?.amount ?? 0n, b.held));
        last = receipt;
        gasUsed += receipt.gasUsed;
      }
      for (const item of items) if (item.amount > 0n) this.uncollected.add(item.payer.toLowerCase());
      return { done: items, rest: [], txHash: last?.hash, blockNumber: last?.blockNumber, gasUsed };
    } catch (error) {
      return { error };
    }
  }

  /** Requests an earlier attempt settled, from the provider's RequestsSettled logs since `fromBlock`. */
  private async reconcileRequests(batch: QueuedRequest[], fromBlock: number) {
    const seen = new Map<string, { reason: Reason; txHash: string; blockNumber: number }>();
    for (const log of await this.providerLogs(REQUESTS_SETTLED_TOPIC, fromBlock)) {
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
        done.push(requestItem(b.item, hit.reason, b.held));
        tx = hit;
      }
    }
    return { done, rest, ...tx };
  }

  /** Lane vouchers an earlier attempt claimed, from the provider's LanesClaimed logs since `fromBlock`. */
  private async reconcileLanes(batch: QueuedLane[], fromBlock: number) {
    const seen = new Map<string, { cumulative: bigint; amount: bigint; txHash: string; blockNumber: number }>();
    for (const log of await this.providerLogs(LANES_CLAIMED_TOPIC, fromBlock)) {
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
        done.push(laneItem(b.item, Reason.Settled, hit.amount, b.held));
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
          const tx = await this.contract.collectLanes(this.token, payers);
          return tx.wait();
        });
        if (!receipt) throw new Error("no receipt for collectLanes");
        for (const p of payers) this.uncollected.delete(p);
        const collected = this.logsOf(receipt, LANES_COLLECTED_TOPIC)
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

  private logsOf(receipt: { logs: readonly { address: string; topics: readonly string[]; data: string }[] }, topic: string) {
    const address = this.contractAddress();
    return receipt.logs.filter((l) => l.address.toLowerCase() === address && l.topics[0] === topic);
  }

  private async providerLogs(topic: string, fromBlock: number) {
    const provider = (await this.providerAddressOf()).toLowerCase();
    const pad = (a: string) => "0x" + a.slice(2).toLowerCase().padStart(64, "0");
    return this.rpc().getLogs({ address: this.contractAddress(), fromBlock, toBlock: "latest", topics: [topic, pad(provider), pad(this.token)] });
  }

  /** The provider's address (it signs the settlements). */
  private providerAddressOf(): Promise<string> {
    return (this.providerAddress ??= (this.contract.runner as Signer).getAddress());
  }

  private contractAddress(): string {
    return String(this.contract.target).toLowerCase();
  }

  private receipt(hash: string): Promise<TransactionReceipt | null> {
    return this.rpc().getTransactionReceipt(hash);
  }

  private rpc(): Provider {
    return this.contract.runner!.provider!;
  }
}

function requestItem(item: SignedRequest, reason: Reason, held: bigint): SettledItem {
  return { kind: "request", payer: item.payer, token: item.token, amount: reason === Reason.Settled ? item.price : 0n, reason, held };
}

function laneItem(item: SignedLaneVoucher, reason: Reason, amount: bigint, held: bigint): SettledItem {
  return { kind: "lane", payer: item.payer, token: item.token, amount: reason === Reason.Settled ? amount : 0n, reason, held };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Whether a failed send may succeed if tried again: the RPC unreachable, timing out or erroring
 * (5xx, rate limits), or the transaction refused for its nonce or fee. A revert is not.
 */
export function isTransient(error: unknown): boolean {
  const e = error as { code?: unknown; message?: unknown; error?: unknown; cause?: unknown } | undefined;
  if (!e) return false;
  if (e.code === "CALL_EXCEPTION" || e.code === "INSUFFICIENT_FUNDS") return false;
  if (["NETWORK_ERROR", "SERVER_ERROR", "TIMEOUT", "NONCE_EXPIRED", "REPLACEMENT_UNDERPRICED", "ECONNREFUSED", "ECONNRESET", "EPIPE", "UND_ERR_SOCKET"].includes(String(e.code))) return true;
  const text = `${String(e.message ?? "")} ${JSON.stringify(e.error ?? "")} ${String((e.cause as { message?: unknown })?.message ?? "")}`;
  return /nonce too low|nonce has already been used|underpriced|already known|ECONNREFUSED|ECONNRESET|socket hang up|fetch failed|timeout|timed out|rate limit|\b(429|502|503|504)\b|bad response|missing response|connection/i.test(text);
}

/** For `encodePacked` of items `packable` let through: a 65-byte signature only passes it for a payer without code. */
const PAYERS_WITHOUT_CODE = { isContract: () => false };

/**
 * The batch reason code of a contract refusal (a custom error named like a `Reason`, e.g.
 * `InvalidSigner()`), or `undefined` for anything else (a transient failure, to be retried).
 */
function refusalReason(contract: Preflight, error: unknown): Reason | undefined {
  const data = (error as { data?: unknown }).data;
  if (typeof data !== "string") return undefined;
  const parsed = contract.interface.parseError(data);
  if (parsed === null) return undefined;
  const code = (Reason as unknown as Record<string, number | undefined>)[parsed.name];
  return typeof code === "number" ? (code as Reason) : undefined;
}
