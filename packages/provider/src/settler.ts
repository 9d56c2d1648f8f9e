/**
 * Collects a provider's signed requests in one token and settles them with `settleBatch` when a
 * size or age threshold is reached (and on `flush`). Items the contract skipped are reported with
 * their reason; nothing that settled or was refused for good is ever submitted again.
 */
import type { ContractTransactionReceipt } from "ethers";
import type { Preflight } from "@preflight/sdk/typechain";
import { PreflightSdkError } from "@preflight/sdk";
import { isRetryable, Reason, type SignedRequest } from "@preflight/sdk";

/** How a settler batches. */
export interface BatchSettlerOptions {
  /** The Preflight contract connected to the provider's signer (the provider is `msg.sender`). */
  contract: Preflight;
  /** The token every item must be in. */
  token: string;
  /** Settle as soon as this many items are queued (default 100). */
  maxBatchSize?: number;
  /** Settle when the oldest queued item has waited this long, in ms (default 10,000). */
  maxAgeMs?: number;
  /** Called after every batch transaction (or failure). */
  onBatch?: (result: BatchResult) => void;
}

/** The outcome of one item. */
export interface ItemResult {
  item: SignedRequest;
  /** `Reason.Settled` when it settled, else why the contract skipped it. */
  reason: Reason;
  /** Index of the item in its batch. */
  index: number;
  /** Whether a later attempt could succeed (`InsufficientBalance`, `BudgetExceeded`); the settler never retries on its own. */
  retryable: boolean;
}

/** The outcome of one batch transaction. */
export interface BatchResult {
  /** Transaction hash (undefined when sending failed). */
  txHash?: string;
  /** gasUsed of the transaction, from its receipt. */
  gasUsed: bigint;
  /** Calldata size of the transaction in bytes. */
  calldataBytes: number;
  /** Items that settled. */
  settled: ItemResult[];
  /** Items the contract skipped, with their reasons. */
  skipped: ItemResult[];
  /** Sum of the settled prices (debited from payers; the provider gets it less the fee). */
  total: bigint;
  /** Set when the transaction could not be sent or reverted; its items may be added again. */
  error?: unknown;
}

interface Pending {
  item: SignedRequest;
  resolve: (r: ItemResult) => void;
  reject: (e: unknown) => void;
}

/**
 * Batches signed requests for `settleBatch`.
 * @example
 * const settler = new BatchSettler({ contract: preflight.connect(providerSigner), token, maxBatchSize: 50, maxAgeMs: 5_000 });
 * const outcome = settler.add(signedRequest);  // resolves when its batch is mined
 * await settler.flush();                        // settle whatever is queued now
 * console.log((await outcome).reason === Reason.Settled);
 */
export class BatchSettler {
  private readonly contract: Preflight;
  private readonly token: string;
  private readonly maxBatchSize: number;
  private readonly maxAgeMs: number;
  private readonly onBatch?: (result: BatchResult) => void;
  private queue: Pending[] = [];
  private readonly queued = new Set<string>();
  private readonly final = new Map<string, Reason>();
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private closed = false;

  /**
   * @example
   * const settler = new BatchSettler({ contract: preflight.connect(provider), token: usdcAddress });
   */
  constructor(options: BatchSettlerOptions) {
    const maxBatchSize = options.maxBatchSize ?? 100;
    const maxAgeMs = options.maxAgeMs ?? 10_000;
    if (!Number.isInteger(maxBatchSize) || maxBatchSize < 1) throw new PreflightSdkError("INVALID_OPTION", `maxBatchSize ${maxBatchSize}`);
    if (!(maxAgeMs >= 0)) throw new PreflightSdkError("INVALID_OPTION", `maxAgeMs ${maxAgeMs}`);
    this.contract = options.contract;
    this.token = options.token.toLowerCase();
    this.maxBatchSize = maxBatchSize;
    this.maxAgeMs = maxAgeMs;
    this.onBatch = options.onBatch;
  }

  /**
   * Queues `item`; the promise resolves with its outcome once its batch is mined (or rejects if the
   * batch transaction failed). Throws `PreflightSdkError` for an item in another token
   * (`TOKEN_MISMATCH`), one already queued (`DUPLICATE_ITEM`) or one that already settled or was
   * refused for good (`ALREADY_FINAL`).
   * @example
   * const result = await settler.add(request);
   * if (result.reason !== Reason.Settled) console.log("skipped:", reasonName(result.reason));
   */
  add(item: SignedRequest): Promise<ItemResult> {
    if (this.closed) throw new PreflightSdkError("SETTLER_CLOSED", "the settler was closed");
    if (item.token.toLowerCase() !== this.token) {
      throw new PreflightSdkError("TOKEN_MISMATCH", `item token ${item.token} is not the settler's ${this.token}`);
    }
    const key = itemKey(item);
    if (this.queued.has(key)) throw new PreflightSdkError("DUPLICATE_ITEM", `nonce ${item.nonce} of ${item.payer} is already queued`);
    const final = this.final.get(key) ?? this.final.get(exactKey(item));
    if (final !== undefined) {
      throw new PreflightSdkError("ALREADY_FINAL", `nonce ${item.nonce} of ${item.payer} already ended as ${Reason[final]}`);
    }
    const outcome = new Promise<ItemResult>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
    });
    // The caller may only await flush(): never let an unobserved outcome crash the process.
    outcome.catch(() => undefined);
    this.queued.add(key);
    if (this.queue.length >= this.maxBatchSize) void this.flush().catch(() => undefined);
    else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.flush().catch(() => undefined);
      }, this.maxAgeMs);
    }
    return outcome;
  }

  /**
   * Settles everything queued now (in batches of at most `maxBatchSize`), after any batch already
   * in flight; resolves with one result per transaction.
   * @example
   * const results = await settler.flush();
   * for (const r of results) console.log(r.txHash, r.gasUsed, r.settled.length, r.skipped.length);
   */
  flush(): Promise<BatchResult[]> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const batches: Pending[][] = [];
    while (this.queue.length > 0) batches.push(this.queue.splice(0, this.maxBatchSize));
    const run = this.chain.then(async () => {
      const results: BatchResult[] = [];
      for (const batch of batches) results.push(await this.send(batch));
      return results;
    });
    this.chain = run.catch(() => undefined);
    return run;
  }

  /**
   * Flushes and refuses further items.
   * @example
   * process.on("SIGTERM", () => void settler.close());
   */
  async close(): Promise<BatchResult[]> {
    this.closed = true;
    return this.flush();
  }

  /**
   * Number of items waiting for a batch.
   * @example
   * if (settler.queuedCount > 0) await settler.flush();
   */
  get queuedCount(): number {
    return this.queue.length;
  }

  private async send(batch: Pending[]): Promise<BatchResult> {
    const items = batch.map((p) => p.item);
    let receipt: ContractTransactionReceipt | null;
    let calldataBytes = 0;
    try {
      const tx = await this.contract.settleBatch(this.token, items);
      calldataBytes = (tx.data.length - 2) / 2;
      receipt = await tx.wait();
      if (!receipt) throw new PreflightSdkError("UNEXPECTED_TRANSACTION", `no receipt for ${tx.hash}`);
    } catch (error) {
      // Nothing settled: the items may be added again (the settler does not resubmit on its own).
      for (const p of batch) {
        this.queued.delete(itemKey(p.item));
        p.reject(error);
      }
      const failed: BatchResult = { gasUsed: 0n, calldataBytes, settled: [], skipped: [], total: 0n, error };
      this.onBatch?.(failed);
      return failed;
    }
    const reasons = new Map<number, Reason>();
    const address = (await this.contract.getAddress()).toLowerCase();
    const provider = receipt.from.toLowerCase();
    for (const log of receipt.logs) {
      if (log.address.toLowerCase() !== address) continue;
      const parsed = this.contract.interface.parseLog(log);
      if (parsed?.name === "RequestSkipped" && String(parsed.args.provider).toLowerCase() === provider) {
        reasons.set(Number(parsed.args.index), Number(parsed.args.reason) as Reason);
      }
    }
    const result: BatchResult = { txHash: receipt.hash, gasUsed: receipt.gasUsed, calldataBytes, settled: [], skipped: [], total: 0n };
    batch.forEach((p, index) => {
      const reason = reasons.get(index) ?? Reason.Settled;
      const retryable = isRetryable(reason);
      const key = itemKey(p.item);
      this.queued.delete(key);
      // A settled nonce is spent for every signature; a refused item is final in exactly this form.
      if (reason === Reason.Settled) this.final.set(key, reason);
      else if (!retryable) this.final.set(exactKey(p.item), reason);
      const itemResult: ItemResult = { item: p.item, reason, index, retryable };
      if (reason === Reason.Settled) {
        result.settled.push(itemResult);
        result.total += p.item.price;
      } else {
        result.skipped.push(itemResult);
      }
      p.resolve(itemResult);
    });
    this.onBatch?.(result);
    return result;
  }
}

function itemKey(item: SignedRequest): string {
  return `${item.payer.toLowerCase()}|${item.nonce.toString()}`;
}

function exactKey(item: SignedRequest): string {
  return [item.payer, item.token, item.model, item.price, item.nonce, item.deadline, item.inputHash, item.signature]
    .map((v) => String(v).toLowerCase())
    .join("|");
}
