import type { TransactionReceipt } from "ethers";
import { Reason } from "@preflight/sdk";
import { claimRecords, SETTLEMENT_TOPICS, settledRequests } from "../../packages/provider/src/verifier/events";

/** The contract's reason for each request of the settlement in `receipt` (from its RequestsSettled log), in call order. */
export function requestReasons(receipt: TransactionReceipt | null, preflight: string): Reason[] {
  const log = receipt?.logs.find((l) => l.address.toLowerCase() === preflight.toLowerCase() && l.topics[0] === SETTLEMENT_TOPICS.requests);
  if (!log) throw new Error("no RequestsSettled log in the receipt");
  return settledRequests(log).map((r) => r.reason as Reason);
}

/** The contract's reason for each voucher of the claim in `receipt` (VouchersClaimed, or LanesClaimed with `lanes`). */
export function claimReasons(receipt: TransactionReceipt | null, preflight: string, lanes = false): Reason[] {
  const topic = lanes ? SETTLEMENT_TOPICS.lanes : SETTLEMENT_TOPICS.vouchers;
  const log = receipt?.logs.find((l) => l.address.toLowerCase() === preflight.toLowerCase() && l.topics[0] === topic);
  if (!log) throw new Error("no claim log in the receipt");
  return claimRecords(log, !lanes).map((r) => r.reason as Reason);
}
