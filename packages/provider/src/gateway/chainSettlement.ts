/**
 * The `SettlementQueue` over today's contract: requests through the SDK's `BatchSettler`
 * (`settleBatch`), the latest voucher of each channel through `claimVouchers`. Batches go out when
 * `maxBatchSize` items are queued or the oldest has waited `maxAgeMs`, one transaction at a time
 * per provider key across replicas (the store's lock), and on `close` before the gateway exits.
 */
import { BatchSettler } from "../settler";
import { Reason, VOUCHERS_CLAIMED_TOPIC, decodeVouchersClaimed, type SignedRequest, type SignedVoucher } from "@preflight/sdk";
import type { Preflight } from "@preflight/sdk/typechain";
import type { ReservationStore, SettlementBatch, SettlementQueue, SettledItem } from "./interfaces";

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
  /** Called after every batch transaction (or failure). */
  onBatch?: (batch: SettlementBatch) => void;
}

interface QueuedVoucher {
  voucher: SignedVoucher;
  held: bigint;
}

/**
 * @example
 * const queue = new ChainSettlementQueue({ contract: preflight.connect(providerWallet), token, store, maxBatchSize: 100, maxAgeMs: 5_000 });
 */
export class ChainSettlementQueue implements SettlementQueue {
  private readonly settler: BatchSettler;
  private readonly contract: Preflight;
  private readonly token: string;
  private readonly store: ReservationStore;
  private readonly maxBatchSize: number;
  private readonly maxAgeMs: number;
  private readonly listeners: ((batch: SettlementBatch) => void)[] = [];
  private requests: { item: SignedRequest; held: bigint }[] = [];
  private vouchers = new Map<string, QueuedVoucher>();
  private amount = 0n;
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(options: ChainSettlementQueueOptions) {
    this.contract = options.contract;
    this.token = options.token;
    this.store = options.store;
    this.maxBatchSize = options.maxBatchSize ?? 100;
    this.maxAgeMs = options.maxAgeMs ?? 10_000;
    if (options.onBatch) this.listeners.push(options.onBatch);
    // This queue decides when to send; the settler only builds, sends and reads back each batch.
    this.settler = new BatchSettler({ contract: options.contract, token: options.token, maxBatchSize: Number.MAX_SAFE_INTEGER, maxAgeMs: 2 ** 31 - 1 });
  }

  subscribe(listener: (batch: SettlementBatch) => void): void {
    this.listeners.push(listener);
  }

  private emit(batch: SettlementBatch): SettlementBatch {
    for (const listener of this.listeners) listener(batch);
    return batch;
  }

  get queuedCount(): number {
    return this.requests.length + this.vouchers.size;
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

  enqueueVoucher(item: SignedVoucher, held: bigint): void {
    this.assertOpen();
    const key = `${item.payer.toLowerCase()}|${item.channel.toLowerCase()}`;
    const previous = this.vouchers.get(key);
    // Only the highest cumulative voucher of a channel is worth claiming; it carries every increase held so far.
    const next = previous && previous.voucher.cumulativeAmount > item.cumulativeAmount ? previous.voucher : item;
    this.vouchers.set(key, { voucher: next, held: (previous?.held ?? 0n) + held });
    this.amount += held;
    this.schedule();
  }

  flush(): Promise<SettlementBatch[]> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const requests = this.requests;
    const vouchers = [...this.vouchers.values()];
    this.requests = [];
    this.vouchers = new Map();
    const run = this.chain.then(async () => {
      const batches: SettlementBatch[] = [];
      for (let i = 0; i < requests.length; i += this.maxBatchSize) {
        batches.push(await this.store.withLock("settle", 120_000, () => this.sendRequests(requests.slice(i, i + this.maxBatchSize))));
      }
      for (let i = 0; i < vouchers.length; i += this.maxBatchSize) {
        batches.push(await this.store.withLock("settle", 120_000, () => this.sendVouchers(vouchers.slice(i, i + this.maxBatchSize))));
      }
      return batches;
    });
    this.chain = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<SettlementBatch[]> {
    this.closed = true;
    return this.flush();
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

  private async sendRequests(batch: { item: SignedRequest; held: bigint }[]): Promise<SettlementBatch> {
    const held = new Map(batch.map((b) => [b.item, b.held]));
    const outcomes = batch.map((b) => this.settler.add(b.item));
    const [result] = await this.settler.flush();
    for (const b of batch) this.amount -= b.held;
    if (!result || result.error) {
      const failed: SettlementBatch = { kind: "request", gasUsed: 0n, items: [], error: result?.error ?? new Error("nothing sent") };
      return this.emit(failed);
    }
    const items: SettledItem[] = [];
    for (const outcome of await Promise.all(outcomes)) {
      const h = held.get(outcome.item) ?? 0n;
      items.push({ kind: "request", payer: outcome.item.payer, token: outcome.item.token, amount: outcome.reason === Reason.Settled ? outcome.item.price : 0n, reason: outcome.reason, held: h });
    }
    const receipt = result.txHash ? await this.contract.runner!.provider!.getTransactionReceipt(result.txHash) : null;
    const done: SettlementBatch = { kind: "request", txHash: result.txHash, blockNumber: receipt?.blockNumber, gasUsed: result.gasUsed, items };
    return this.emit(done);
  }

  private async sendVouchers(batch: QueuedVoucher[]): Promise<SettlementBatch> {
    for (const b of batch) this.amount -= b.held;
    try {
      const tx = await this.contract.claimVouchers(this.token, batch.map((b) => b.voucher));
      const receipt = await tx.wait();
      if (!receipt) throw new Error(`no receipt for ${tx.hash}`);
      // The one VouchersClaimed log lists every voucher of the call in order: paid (reason 0, with
      // the amount) or skipped with its reason (docs/log-format.md). Nothing is read from calldata.
      const address = (await this.contract.getAddress()).toLowerCase();
      const log = receipt.logs.find((l) => l.address.toLowerCase() === address && l.topics[0] === VOUCHERS_CLAIMED_TOPIC);
      if (!log) throw new Error(`no VouchersClaimed log in ${tx.hash}`);
      const { records } = decodeVouchersClaimed(log);
      const paid = new Map<number, bigint>();
      const skipped = new Map<number, Reason>();
      records.forEach((r, index) => (r.reason === Reason.Settled ? paid.set(index, r.amount) : skipped.set(index, r.reason as Reason)));
      const items: SettledItem[] = batch.map((b, index) => ({
        kind: "voucher",
        payer: b.voucher.payer,
        token: b.voucher.token,
        amount: paid.get(index) ?? 0n,
        reason: skipped.get(index) ?? Reason.Settled,
        held: b.held,
      }));
      const done: SettlementBatch = { kind: "voucher", txHash: receipt.hash, blockNumber: receipt.blockNumber, gasUsed: receipt.gasUsed, items };
      return this.emit(done);
    } catch (error) {
      const failed: SettlementBatch = { kind: "voucher", gasUsed: 0n, items: [], error };
      return this.emit(failed);
    }
  }
}
