/**
 * Reads a transaction's settlement logs (packed data, see docs/log-format.md) with the SDK decoders,
 * so tests assert on what a follower of the chain sees.
 */
import type { ContractTransactionResponse, TransactionReceipt } from "ethers";
import {
  LANES_CLAIMED_TOPIC,
  LANES_COLLECTED_TOPIC,
  REQUESTS_SETTLED_TOPIC,
  VOUCHERS_CLAIMED_TOPIC,
  decodeLanesClaimed,
  decodeLanesCollected,
  decodeRequestsSettled,
  decodeVouchersClaimed,
  type ClaimRecord,
  type CollectedRecord,
  type SettledRequestRecord,
  type SettlementLog,
} from "@preflight/sdk";

type Tx = ContractTransactionResponse | Promise<ContractTransactionResponse> | TransactionReceipt;

async function receiptOf(tx: Tx): Promise<TransactionReceipt> {
  const t = await tx;
  if ("logs" in t && "blockHash" in t && !("wait" in t)) return t;
  const receipt = await (t as ContractTransactionResponse).wait();
  if (receipt === null) throw new Error("no receipt");
  return receipt;
}

function only<T>(receipt: TransactionReceipt, topic: string, decode: (log: { topics: readonly string[]; data: string }) => SettlementLog<T>): SettlementLog<T> {
  const logs = receipt.logs.filter((l) => l.topics[0] === topic);
  if (logs.length !== 1) throw new Error(`expected one settlement log, found ${logs.length}`);
  return decode(logs[0]!);
}

/** The one `RequestsSettled` log of `tx`. */
export async function requestsSettled(tx: Tx): Promise<SettlementLog<SettledRequestRecord>> {
  return only(await receiptOf(tx), REQUESTS_SETTLED_TOPIC, decodeRequestsSettled);
}

/** The one `VouchersClaimed` log of `tx`. */
export async function vouchersClaimed(tx: Tx): Promise<SettlementLog<ClaimRecord>> {
  return only(await receiptOf(tx), VOUCHERS_CLAIMED_TOPIC, decodeVouchersClaimed);
}

/** The one `LanesClaimed` log of `tx`. */
export async function lanesClaimed(tx: Tx): Promise<SettlementLog<ClaimRecord>> {
  return only(await receiptOf(tx), LANES_CLAIMED_TOPIC, decodeLanesClaimed);
}

/** The one `LanesCollected` log of `tx`. */
export async function lanesCollected(tx: Tx): Promise<SettlementLog<CollectedRecord>> {
  return only(await receiptOf(tx), LANES_COLLECTED_TOPIC, decodeLanesCollected);
}

/** The reasons of a `RequestsSettled` log, in item order (0 = settled). */
export async function reasonsOf(tx: Tx): Promise<number[]> {
  return (await requestsSettled(tx)).records.map((r) => r.reason);
}

const same = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase();

/** Asserts that `tx` settled exactly one request, (payer, nonce, price), to `provider` in `token`. */
export async function expectSettledRequest(tx: Tx, payer: string, provider: string, token: string, nonce: bigint | number, price: bigint | number): Promise<void> {
  const log = await requestsSettled(tx);
  const settled = log.records.filter((r) => r.reason === 0);
  if (!same(log.provider, provider) || !same(log.token, token)) throw new Error(`RequestsSettled for ${log.provider}/${log.token}, expected ${provider}/${token}`);
  if (settled.length !== 1 || !same(settled[0]!.payer, payer) || settled[0]!.nonce !== BigInt(nonce) || settled[0]!.price !== BigInt(price)) {
    throw new Error(`RequestsSettled records ${JSON.stringify(log.records, (_, v: unknown) => (typeof v === "bigint" ? v.toString() : v))}, expected one settled (${payer}, ${nonce}, ${price})`);
  }
}

/** Asserts that item `index` of the settlement `tx` was skipped for `reason`, naming (payer, nonce). */
export async function expectSkippedRequest(tx: Tx, provider: string, index: number | bigint, payer: string, nonce: import("ethers").BigNumberish, reason: number | bigint): Promise<void> {
  const log = await requestsSettled(tx);
  const r = log.records[Number(index)];
  if (!same(log.provider, provider) || r === undefined || !same(r.payer, payer) || r.nonce !== BigInt(nonce) || r.reason !== Number(reason)) {
    throw new Error(`item ${index} of RequestsSettled is ${JSON.stringify(r, (_, v: unknown) => (typeof v === "bigint" ? v.toString() : v))}, expected (${payer}, ${nonce}) skipped for ${reason}`);
  }
}

/** Asserts the totals of the settlement `tx`: `settled` items for `total` to `provider` in `token`. */
export async function expectBatchTotals(tx: Tx, provider: string, token: string, settled: bigint | number, total: bigint | number): Promise<void> {
  const log = await requestsSettled(tx);
  const ok = log.records.filter((r) => r.reason === 0);
  const sum = ok.reduce((a, r) => a + r.price, 0n);
  if (!same(log.provider, provider) || !same(log.token, token) || ok.length !== Number(settled) || sum !== BigInt(total)) {
    throw new Error(`RequestsSettled settled ${ok.length} items for ${sum} to ${log.provider}/${log.token}, expected ${settled} for ${total} to ${provider}/${token}`);
  }
}

/** Asserts that the settlement `tx` skipped nothing. */
export async function expectNoSkips(tx: Tx): Promise<void> {
  const skipped = (await requestsSettled(tx)).records.filter((r) => r.reason !== 0);
  if (skipped.length !== 0) throw new Error(`${skipped.length} items skipped, reasons ${skipped.map((r) => r.reason).join(",")}`);
}

/** Asserts that the channel claim `tx` paid exactly one voucher (payer, channel, cumulative, amount) to `provider` in `token`. */
export async function expectVoucherPaid(tx: Tx, payer: string, provider: string, token: string, channel: string, cumulativeAmount: bigint | number, amount: bigint | number): Promise<void> {
  const log = await vouchersClaimed(tx);
  const paid = log.records.filter((r) => r.reason === 0);
  const r = paid[0];
  if (!same(log.provider, provider) || !same(log.token, token) || paid.length !== 1 || !same(r!.payer, payer) || r!.channel !== channel.toLowerCase() || r!.cumulativeAmount !== BigInt(cumulativeAmount) || r!.amount !== BigInt(amount)) {
    throw new Error(`VouchersClaimed records ${JSON.stringify(log.records, (_, v: unknown) => (typeof v === "bigint" ? v.toString() : v))}, expected one paid (${payer}, ${channel}, ${cumulativeAmount}, ${amount})`);
  }
}

/** The reasons of a `VouchersClaimed` log, in claim order (0 = paid). */
export async function voucherReasonsOf(tx: Tx): Promise<number[]> {
  return (await vouchersClaimed(tx)).records.map((r) => r.reason);
}
