import type { TransactionReceipt } from "ethers";
import { decodeLanesClaimed, decodeRequestsSettled, decodeVouchersClaimed, LANES_CLAIMED_TOPIC, Reason, REQUESTS_SETTLED_TOPIC, VOUCHERS_CLAIMED_TOPIC } from "@preflight/sdk";

function logOf(receipt: TransactionReceipt | null, preflight: string, topic: string) {
  const log = receipt?.logs.find((l) => l.address.toLowerCase() === preflight.toLowerCase() && l.topics[0] === topic);
  if (!log) throw new Error("no settlement log of the contract in the receipt");
  return log;
}

/** The contract's reason for each request of the settlement in `receipt` (from its RequestsSettled log), in call order. */
export function requestReasons(receipt: TransactionReceipt | null, preflight: string): Reason[] {
  return decodeRequestsSettled(logOf(receipt, preflight, REQUESTS_SETTLED_TOPIC)).records.map((r) => r.reason as Reason);
}

/** The contract's reason for each voucher of the claim in `receipt` (VouchersClaimed, or LanesClaimed with `lanes`). */
export function claimReasons(receipt: TransactionReceipt | null, preflight: string, lanes = false): Reason[] {
  const log = logOf(receipt, preflight, lanes ? LANES_CLAIMED_TOPIC : VOUCHERS_CLAIMED_TOPIC);
  return (lanes ? decodeLanesClaimed(log) : decodeVouchersClaimed(log)).records.map((r) => r.reason as Reason);
}
