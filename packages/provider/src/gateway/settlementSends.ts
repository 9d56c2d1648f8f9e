/**
 * How a settlement batch goes on chain, and what the chain said about each item, read from the
 * transaction's logs (never from calldata): requests of payers without code through `settlePacked`
 * and lane claims through `claimLanesPacked`, as raw transactions signed in-process when a
 * `RawTransactionSender` is given; contract payers' requests through `BatchSettler`'s `settleBatch`
 * (with their wallets' gas budget); a contract payer's lane voucher through `claimLane`, one at a
 * time; claimed lanes into the provider's earnings through `collectLanes`. When and how often to
 * send, retries and reconciliation are the queue's (`chainSettlement.ts`).
 */
import { BatchSettler } from "../settler";
import { addressBytesCall, type RawReceipt, type RawTransactionSender } from "./rawSender";
import {
  LANES_CLAIMED_TOPIC,
  REQUESTS_SETTLED_TOPIC,
  Reason,
  decodeLanesClaimed,
  decodeRequestsSettled,
  encodeLaneClaims,
  encodePacked,
  isPackable,
  type SignedLaneVoucher,
  type SignedRequest,
} from "@preflight/sdk";
import type { Preflight } from "@preflight/sdk/typechain";
import type { Provider, Signer, TransactionReceipt } from "ethers";
import type { GrantHold, SettledItem } from "./interfaces";

/** A queued item and what the gateway holds for it. */
export interface Queued<T> {
  item: T;
  held: bigint;
  /** What delegates' grant pools hold for it (a request: its price in its delegate's pool). */
  grantHolds?: GrantHold[];
}

export type QueuedRequest = Queued<SignedRequest>;
export type QueuedLane = Queued<SignedLaneVoucher>;

/** One attempt's outcome: done (with what the chain said), or an error. */
export type Attempt<T> = { done: SettledItem[]; rest: T[]; txHash?: string; blockNumber?: number; gasUsed: bigint; collected?: bigint } | { error: unknown };

/**
 * @example
 * const sends = new SettlementSends(preflight.connect(providerWallet), token, rawSender);
 * const attempt = await sends.requests(batch);
 */
export class SettlementSends {
  private providerAddress: Promise<string> | undefined;
  /** Payers known to have code (contract payers settle through settleBatch, with their wallets' gas budget). */
  private readonly hasCode = new Map<string, boolean>();

  constructor(
    private readonly contract: Preflight,
    private readonly token: string,
    private readonly sender?: RawTransactionSender,
  ) {}

  /**
   * Sends a batch of requests: those of payers without code whose signatures pack unchanged in one
   * `settlePacked` (sorted so that a payer's consecutive nonces share a group), the rest through
   * `BatchSettler`. Each item's outcome comes from the logs, in order.
   */
  async requests(batch: QueuedRequest[]): Promise<Attempt<QueuedRequest>> {
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
        const sorted = packed
          .map((b) => ({ b, payer: b.item.payer.toLowerCase() }))
          .sort((x, y) => (x.payer < y.payer ? -1 : x.payer > y.payer ? 1 : x.b.item.nonce < y.b.item.nonce ? -1 : 1))
          .map((k) => k.b);
        // The batch is built in pieces with the event loop let in between (each is milliseconds for
        // 500 items): paid calls arriving meanwhile are decided, not held behind the whole build.
        await nextTurn();
        const encoded = encodePacked(sorted.map((b) => ({ request: { ...b.item, provider: this.sender!.address }, signature: b.item.signature })), PAYERS_WITHOUT_CODE);
        await nextTurn();
        const data = addressBytesCall(this.contract.interface.getFunction("settlePacked").selector, this.token, encoded);
        const receipt = await this.sender!.send(this.contractAddress(), data);
        const records = this.logsOf(receipt, REQUESTS_SETTLED_TOPIC).flatMap((l) => decodeRequestsSettled(l).records);
        if (records.length !== sorted.length) throw new Error(`${receipt.hash} logged ${records.length} requests, sent ${sorted.length}`);
        sorted.forEach((b, i) => done.push(requestItem(b, records[i]!.reason as Reason)));
        last = { txHash: receipt.hash, blockNumber: receipt.blockNumber };
        gasUsed += receipt.gasUsed;
      }
      if (other.length > 0) {
        const viaSettler = await this.viaSettler(other);
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

  private async viaSettler(batch: QueuedRequest[]): Promise<Attempt<QueuedRequest>> {
    // A fresh settler per attempt: one whose attempt failed midway holds nothing back.
    const settler = new BatchSettler({ contract: this.contract, token: this.token, maxBatchSize: Number.MAX_SAFE_INTEGER, maxAgeMs: 2 ** 31 - 1 });
    const queued = new Map(batch.map((b) => [b.item, b]));
    const outcomes = batch.map((b) => settler.add(b.item));
    const results = await settler.flush();
    const failed = results.find((r) => r.error !== undefined);
    if (failed || results.length === 0) return { error: failed?.error ?? new Error("nothing sent") };
    const items: SettledItem[] = (await Promise.all(outcomes)).map((o) => requestItem(queued.get(o.item) ?? { item: o.item, held: 0n }, o.reason));
    const last = results[results.length - 1]!;
    const receipt = last.txHash ? await this.receipt(last.txHash) : null;
    return { done: items, rest: [], txHash: last.txHash, blockNumber: receipt?.blockNumber, gasUsed: results.reduce((g, r) => g + r.gasUsed, 0n) };
  }

  /** Sends a batch of one model's lane vouchers (one per lane), each claim's outcome and amount from the logs. */
  async lanes(batch: QueuedLane[]): Promise<Attempt<QueuedLane>> {
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
        packed.forEach((b, index) => items.push(laneItem(b, records[index]!.reason as Reason, records[index]!.amount)));
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
          items.push(laneItem(b, refused, 0n));
          continue;
        }
        // A wallet may refuse when the claim is sent what it accepted in the static call (it changed
        // in between, or it tells the two apart): that refusal is this voucher's alone, not the batch's.
        let receipt: TransactionReceipt | null;
        try {
          receipt = await (await this.contract.claimLane(voucher)).wait();
        } catch (error) {
          // Reverted in the gas estimate (the contract's error names the reason) or once mined: the
          // wallet refused during the claim. Anything else fails the attempt, to be retried.
          const refusal = refusalReason(this.contract, error) ?? ((error as { code?: unknown }).code === "CALL_EXCEPTION" ? Reason.InvalidSigner : undefined);
          if (refusal === undefined) throw error;
          items.push(laneItem(b, refusal, 0n));
          continue;
        }
        if (!receipt) throw new Error(`no receipt for claimLane of ${b.item.payer}`);
        const record = this.logsOf(receipt, LANES_CLAIMED_TOPIC).flatMap((l) => decodeLanesClaimed(l).records)[0];
        items.push(laneItem(b, (record?.reason ?? Reason.Settled) as Reason, record?.amount ?? 0n));
        last = receipt;
        gasUsed += receipt.gasUsed;
      }
      return { done: items, rest: [], txHash: last?.hash, blockNumber: last?.blockNumber, gasUsed };
    } catch (error) {
      return { error };
    }
  }

  /** `collectLanes` for `payers`: the receipt, or throws. */
  async collectLanes(payers: string[]): Promise<TransactionReceipt> {
    const tx = await this.contract.collectLanes(this.token, payers);
    const receipt = await tx.wait();
    if (!receipt) throw new Error("no receipt for collectLanes");
    return receipt;
  }

  logsOf(receipt: { logs: readonly { address: string; topics: readonly string[]; data: string }[] }, topic: string) {
    const address = this.contractAddress();
    return receipt.logs.filter((l) => l.address.toLowerCase() === address && l.topics[0] === topic);
  }

  async providerLogs(topic: string, fromBlock: number) {
    const provider = (await this.providerAddressOf()).toLowerCase();
    const pad = (a: string) => "0x" + a.slice(2).toLowerCase().padStart(64, "0");
    return this.rpc().getLogs({ address: this.contractAddress(), fromBlock, toBlock: "latest", topics: [topic, pad(provider), pad(this.token)] });
  }

  /** The provider's address (it signs the settlements). */
  providerAddressOf(): Promise<string> {
    return (this.providerAddress ??= (this.contract.runner as Signer).getAddress());
  }

  private contractAddress(): string {
    return String(this.contract.target).toLowerCase();
  }

  private receipt(hash: string): Promise<TransactionReceipt | null> {
    return this.rpc().getTransactionReceipt(hash);
  }

  rpc(): Provider {
    return this.contract.runner!.provider!;
  }
}

export function requestItem({ item, held, grantHolds }: QueuedRequest, reason: Reason): SettledItem {
  return { kind: "request", payer: item.payer, token: item.token, amount: reason === Reason.Settled ? item.price : 0n, reason, held, grantHolds };
}

export function laneItem({ item, held, grantHolds }: QueuedLane, reason: Reason, amount: bigint): SettledItem {
  return { kind: "lane", payer: item.payer, token: item.token, amount: reason === Reason.Settled ? amount : 0n, reason, held, grantHolds };
}

/** For `encodePacked` of items `packable` let through: a 65-byte signature only passes it for a payer without code. */
const PAYERS_WITHOUT_CODE = { isContract: () => false };

/** Resolves after the I/O already waiting has been handled (`setImmediate`). */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

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
