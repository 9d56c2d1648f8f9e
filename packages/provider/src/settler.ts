/**
 * Collects a provider's signed requests in one token and settles them with `settleBatch` (or
 * `settlePacked`) when a size or age threshold is reached (and on `flush`). Items the contract
 * skipped are reported with their reason (read from the batch's `RequestsSettled` log); nothing that
 * settled or was refused for good is ever submitted again.
 *
 * A contract (ERC-1271) payer's wallet decides at inclusion how much of its 200,000-gas allowance it
 * burns, so an estimate made while it was cheap proves nothing: every batch is sent with the
 * estimate plus each contract payer's worst case, and split so that worst case fits `maxGasPerTx`.
 * Contract payers always settle through `settleBatch`, which hands their wallets the signature bytes
 * they signed; `settlePacked` carries 64-byte signatures only.
 */
import type { ContractTransactionReceipt, ContractTransactionResponse, Provider } from "ethers";
import type { Preflight } from "@preflight/sdk/typechain";
import { encodePacked, isPackable, PreflightSdkError } from "@preflight/sdk";
import { decodeRequestsSettled, isRetryable, Reason, REQUESTS_SETTLED_TOPIC, type SignedRequest } from "@preflight/sdk";
import { ERC1271_GAS_LIMIT } from "./verifier/erc1271";


/**
 * Gas a contract payer's item can cost beyond what it cost at estimation: the wallet's whole
 * allowance, the 1/64 the caller must keep to give it that much (EIP-150), and the cold call.
 */
export const CONTRACT_PAYER_WORST_CASE_GAS = ERC1271_GAS_LIMIT + ERC1271_GAS_LIMIT / 63n + 2_600n + 1_000n;
const DEFAULT_MAX_GAS_PER_TX = 15_000_000n;
const DEFAULT_MAX_FINISHED = 100_000;
/** Payers known to have code, remembered (a payer without code is looked up again for every batch: code can appear). */
const MAX_CONTRACT_PAYERS = 10_000;
const UINT64 = 2n ** 64n;
const UINT96 = 2n ** 96n;

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
  /**
   * Most gas one batch transaction may need in the worst case (default 15,000,000): a batch whose
   * contract payers could make it need more is split.
   */
  maxGasPerTx?: bigint;
  /**
   * Most finished items remembered to refuse resubmission (default 100,000); the oldest are
   * forgotten first, and items past their deadline (which the contract refuses anyway) at once.
   */
  maxFinished?: number;
  /**
   * `"abi"` (default): every batch through `settleBatch`. `"packed"`: items of payers without code
   * whose signature packs unchanged (`isPackable`) and whose fields fit the layout go through
   * `settlePacked` (about a quarter of the calldata); contract payers, and any other item, through
   * `settleBatch` in a transaction of their own.
   */
  encoding?: "abi" | "packed";
}

/** The outcome of one item. */
export interface ItemResult {
  item: SignedRequest;
  /** `Reason.Settled` when it settled, else why the contract skipped it. */
  reason: Reason;
  /** Index of the item in its batch. */
  index: number;
  /**
   * Whether a later attempt could succeed: `InsufficientBalance`, `BudgetExceeded`, and a contract
   * payer's item the contract refused without asking its wallet (see `BatchResult.resent`). The
   * settler re-sends only the last kind, once, on its own; the caller decides for the others.
   */
  retryable: boolean;
}

/** The outcome of one batch transaction. */
export interface BatchResult {
  /** Transaction hash (undefined when sending failed). */
  txHash?: string;
  /** gasUsed of the transaction, from its receipt. */
  gasUsed: bigint;
  /** The gas limit it was sent with: the estimate plus every contract payer's worst case. */
  gasLimit: bigint;
  /** Calldata size of the transaction in bytes. */
  calldataBytes: number;
  /** Items that settled. */
  settled: ItemResult[];
  /** Items the contract skipped, with their reasons. */
  skipped: ItemResult[];
  /** Sum of the settled prices (debited from payers; the provider gets it less the fee). */
  total: bigint;
  /**
   * Items of contract payers the contract refused without asking their wallet: a wallet that refuses
   * one item is not asked again in the same transaction, so its later items there tell nothing.
   * They are sent again, once, in a transaction of their own (their outcome is in its result).
   */
  resent: SignedRequest[];
  /** Which entry point the transaction called. */
  method: "settleBatch" | "settlePacked";
  /** Set when the transaction could not be sent or reverted; its items may be added again. */
  error?: unknown;
}

interface Pending {
  item: SignedRequest;
  resolve: (r: ItemResult) => void;
  reject: (e: unknown) => void;
  /** Already re-sent once because its wallet was not asked. */
  resent?: boolean;
}

/** A signature-shaped skip: for a contract payer, the wallet refused (or was not asked). */
const SIGNATURE_REASONS = new Set<Reason>([Reason.SignatureLength, Reason.SignatureMalleable, Reason.InvalidSigner]);

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
  private readonly maxGasPerTx: bigint;
  private readonly maxFinished: number;
  private readonly encoding: "abi" | "packed";
  private providerAddress: string | undefined;
  private queue: Pending[] = [];
  private readonly queued = new Set<string>();
  /** key -> how it ended, and until when that matters (its deadline); oldest first */
  private readonly final = new Map<string, { reason: Reason; deadline: bigint }>();
  private lastSweepMs = Number.NEGATIVE_INFINITY;
  /** payers known to have code (bounded; a payer without code is looked up again for each batch) */
  private readonly contractPayers = new Set<string>();
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
    const maxGasPerTx = options.maxGasPerTx ?? DEFAULT_MAX_GAS_PER_TX;
    if (typeof maxGasPerTx !== "bigint" || maxGasPerTx < 2n * CONTRACT_PAYER_WORST_CASE_GAS) {
      throw new PreflightSdkError("INVALID_OPTION", `maxGasPerTx ${String(maxGasPerTx)} (at least ${2n * CONTRACT_PAYER_WORST_CASE_GAS})`);
    }
    const maxFinished = options.maxFinished ?? DEFAULT_MAX_FINISHED;
    if (!Number.isInteger(maxFinished) || maxFinished < 1) throw new PreflightSdkError("INVALID_OPTION", `maxFinished ${maxFinished}`);
    const encoding = options.encoding ?? "abi";
    if (encoding !== "abi" && encoding !== "packed") throw new PreflightSdkError("INVALID_OPTION", `encoding ${String(encoding)} (abi or packed)`);
    this.encoding = encoding;
    this.maxGasPerTx = maxGasPerTx;
    this.maxFinished = maxFinished;
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
      throw new PreflightSdkError("ALREADY_FINAL", `nonce ${item.nonce} of ${item.payer} already ended as ${Reason[final.reason]}`);
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
      for (const batch of batches) results.push(...(await this.settle(batch)));
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

  /**
   * Number of finished items remembered (bounded by `maxFinished`).
   * @example
   * console.log(settler.finishedCount);
   */
  get finishedCount(): number {
    return this.final.size;
  }

  /**
   * Settles one batch: with `encoding: "packed"`, what packs unchanged through `settlePacked`; the
   * rest (and always every contract payer's item) through `settleBatch`, split for gas; then, once,
   * the contract payers' items that were refused without their wallet being asked.
   */
  private async settle(batch: Pending[]): Promise<BatchResult[]> {
    const results: BatchResult[] = [];
    const contracts = await this.contractPayersOf(batch);
    let rest = batch;
    if (this.encoding === "packed") {
      const packed = batch.filter((p) => !contracts.has(p.item.payer.toLowerCase()) && fitsPacked(p.item));
      if (packed.length > 0) {
        results.push(await this.sendPacked(packed));
        const sent = new Set(packed);
        rest = batch.filter((p) => !sent.has(p));
      }
    }
    for (const part of this.splitForGas(rest, contracts)) {
      const { result, again } = await this.send(part.items, part.contractItems, contracts);
      results.push(result);
      if (again.length > 0) results.push(...(await this.settle(again)));
    }
    return results;
  }

  /**
   * Splits a batch so that each part's worst case fits `maxGasPerTx`: every contract payer's item may
   * cost its whole ERC-1271 allowance at inclusion, whatever it cost at estimation.
   */
  private splitForGas(batch: Pending[], contracts: ReadonlySet<string>): { items: Pending[]; contractItems: number }[] {
    const parts: { items: Pending[]; contractItems: number }[] = [];
    // Leave room for everything but the wallets (a generous 200,000 for the batch's own gas).
    const perPart = Number((this.maxGasPerTx - 200_000n) / CONTRACT_PAYER_WORST_CASE_GAS);
    let current: { items: Pending[]; contractItems: number } = { items: [], contractItems: 0 };
    for (const p of batch) {
      const isContract = contracts.has(p.item.payer.toLowerCase());
      if (isContract && current.contractItems >= perPart) {
        parts.push(current);
        current = { items: [], contractItems: 0 };
      }
      current.items.push(p);
      if (isContract) current.contractItems++;
    }
    if (current.items.length > 0) parts.push(current);
    return parts;
  }

  private async send(batch: Pending[], contractItems: number, contracts: ReadonlySet<string>): Promise<{ result: BatchResult; again: Pending[] }> {
    const items = batch.map((p) => p.item);
    let gasLimit = 0n;
    return this.transact(batch, "settleBatch", () => gasLimit, async () => {
      const worstCase = BigInt(contractItems) * CONTRACT_PAYER_WORST_CASE_GAS;
      let estimate: bigint;
      try {
        estimate = await this.contract.settleBatch.estimateGas(this.token, items);
      } catch (estimateError) {
        // A contract payer whose check depends on the gas it gets can make a node's estimate fail
        // (Hardhat's probes above Osaka's 2^24 per-transaction cap). Without contract payers that is
        // a real failure; with them the batch gets its whole budget, once a call at that budget
        // shows it does not revert.
        if (contractItems === 0) throw estimateError;
        await this.contract.settleBatch.staticCall(this.token, items, { gasLimit: this.maxGasPerTx });
        estimate = this.maxGasPerTx - worstCase;
      }
      gasLimit = estimate + worstCase;
      return this.contract.settleBatch(this.token, items, { gasLimit });
    }, contracts);
  }

  /** Sends items of payers without code, each with a signature that packs unchanged, through `settlePacked`. */
  private async sendPacked(batch: Pending[]): Promise<BatchResult> {
    let gasLimit = 0n;
    const { result } = await this.transact(batch, "settlePacked", () => gasLimit, async () => {
      const provider = await this.provider();
      // Every payer here was just seen without code, and every signature is 64 bytes or packs to
      // exactly what ECDSA recovers from it: nothing the contract verifies changes.
      const packed = encodePacked(
        batch.map(({ item }) => ({ request: { ...item, provider }, signature: item.signature })),
        { isContract: () => false },
      );
      gasLimit = await this.contract.settlePacked.estimateGas(this.token, packed);
      return this.contract.settlePacked(this.token, packed, { gasLimit });
    }, new Set());
    return result;
  }

  /**
   * Sends one transaction and resolves its items from its log. An item is remembered as final when
   * it settled (its nonce is spent for every signature) or was refused for good in exactly this form;
   * a contract payer's item refused without its wallet being asked is handed back to re-send once.
   */
  private async transact(
    batch: Pending[],
    method: BatchResult["method"],
    gasLimitOf: () => bigint,
    submit: () => Promise<ContractTransactionResponse>,
    contracts: ReadonlySet<string>,
  ): Promise<{ result: BatchResult; again: Pending[] }> {
    let receipt: ContractTransactionReceipt | null;
    let calldataBytes = 0;
    try {
      const tx = await submit();
      calldataBytes = (tx.data.length - 2) / 2;
      receipt = await tx.wait();
      if (!receipt) throw new PreflightSdkError("UNEXPECTED_TRANSACTION", `no receipt for ${tx.hash}`);
    } catch (error) {
      // Nothing settled: the items may be added again (the settler does not resubmit on its own).
      for (const p of batch) {
        this.queued.delete(itemKey(p.item));
        p.reject(error);
      }
      const failed: BatchResult = { gasUsed: 0n, gasLimit: gasLimitOf(), calldataBytes, settled: [], skipped: [], resent: [], total: 0n, method, error };
      this.onBatch?.(failed);
      return { result: failed, again: [] };
    }
    const reasons = await this.reasonsOf(receipt, batch.length);
    const result: BatchResult = { txHash: receipt.hash, gasUsed: receipt.gasUsed, gasLimit: gasLimitOf(), calldataBytes, settled: [], skipped: [], resent: [], total: 0n, method };
    const again: Pending[] = [];
    /** contract payers whose wallet refused an item of this transaction: it was not asked again */
    const refusedBy = new Set<string>();
    batch.forEach((p, index) => {
      const reason = reasons[index];
      const payer = p.item.payer.toLowerCase();
      const signatureSkip = contracts.has(payer) && SIGNATURE_REASONS.has(reason);
      const walletNotAsked = signatureSkip && refusedBy.has(payer);
      if (signatureSkip) refusedBy.add(payer);
      if (walletNotAsked && !p.resent) {
        p.resent = true; // stays queued: its outcome comes from the next transaction
        result.resent.push(p.item);
        again.push(p);
        return;
      }
      const retryable = isRetryable(reason) || walletNotAsked;
      const key = itemKey(p.item);
      this.queued.delete(key);
      // A settled nonce is spent for every signature; a refused item is final in exactly this form.
      if (reason === Reason.Settled) this.remember(key, reason, p.item.deadline);
      else if (!retryable) this.remember(exactKey(p.item), reason, p.item.deadline);
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
    return { result, again };
  }

  /** Each item's outcome, from the batch's RequestsSettled log (item order is call order). */
  private async reasonsOf(receipt: ContractTransactionReceipt, count: number): Promise<Reason[]> {
    const address = (await this.contract.getAddress()).toLowerCase();
    const log = receipt.logs.find((l) => l.address.toLowerCase() === address && l.topics[0] === REQUESTS_SETTLED_TOPIC);
    const records = log === undefined ? [] : decodeRequestsSettled(log).records;
    if (records.length !== count) throw new PreflightSdkError("UNEXPECTED_TRANSACTION", `batch ${receipt.hash} logged ${records.length} items, sent ${count}`);
    return records.map((r) => r.reason as Reason);
  }

  /**
   * Remembers a finished item. Over `maxFinished`, forgets first what can no longer matter (items
   * past their deadline: the contract refuses them anyway; swept at most once a minute), then the oldest.
   */
  private remember(key: string, reason: Reason, deadline: bigint): void {
    this.final.delete(key);
    this.final.set(key, { reason, deadline });
    if (this.final.size <= this.maxFinished) return;
    const nowMs = Date.now();
    if (nowMs - this.lastSweepMs >= 60_000) {
      this.lastSweepMs = nowMs;
      const now = BigInt(Math.floor(nowMs / 1000));
      for (const [k, f] of this.final) if (f.deadline < now) this.final.delete(k);
    }
    for (const k of this.final.keys()) {
      if (this.final.size <= this.maxFinished) break;
      this.final.delete(k);
    }
  }

  private rpc(): Provider {
    const rpc = this.contract.runner?.provider;
    if (!rpc) throw new PreflightSdkError("INVALID_OPTION", "the contract must be connected to a signer with a provider");
    return rpc;
  }

  /** The provider's address (the signer's, `msg.sender`), which every packed item names. */
  private async provider(): Promise<string> {
    if (this.providerAddress === undefined) {
      const runner = this.contract.runner as { getAddress?: () => Promise<string> } | null;
      if (typeof runner?.getAddress !== "function") throw new PreflightSdkError("INVALID_OPTION", "the contract must be connected to the provider's signer");
      this.providerAddress = await runner.getAddress();
    }
    return this.providerAddress;
  }

  /**
   * The batch's payers that have code now. A payer seen with code is remembered (bounded); one seen
   * without is looked up again for every batch, because code can appear at an address (a
   * counterfactual wallet deployed, an EIP-7702 delegation set) after it first paid as a key.
   */
  private async contractPayersOf(batch: Pending[]): Promise<Set<string>> {
    const rpc = this.rpc();
    const payers = [...new Set(batch.map((p) => p.item.payer.toLowerCase()))];
    const contracts = new Set<string>();
    await Promise.all(
      payers.map(async (payer) => {
        if (this.contractPayers.has(payer) || (await rpc.getCode(payer)) !== "0x") contracts.add(payer);
      }),
    );
    for (const payer of contracts) {
      this.contractPayers.delete(payer);
      this.contractPayers.add(payer);
    }
    for (const payer of this.contractPayers) {
      if (this.contractPayers.size <= MAX_CONTRACT_PAYERS) break;
      this.contractPayers.delete(payer);
    }
    return contracts;
  }
}

/** Whether `item` fits `settlePacked`'s layout with its signature unchanged (its payer has no code). */
function fitsPacked(item: SignedRequest): boolean {
  return item.nonce >= 0n && item.nonce < UINT64 && item.deadline >= 0n && item.deadline < UINT64 && item.price >= 0n && item.price < UINT96 && isPackable(item.signature, false);
}

function itemKey(item: SignedRequest): string {
  return `${item.payer.toLowerCase()}|${item.nonce.toString()}`;
}

function exactKey(item: SignedRequest): string {
  return [item.payer, item.token, item.model, item.price, item.nonce, item.deadline, item.inputHash, item.signature]
    .map((v) => String(v).toLowerCase())
    .join("|");
}
