/**
 * The contract's `Reason` codes as tasks report them: the name (the SDK's `Reason` enum, mirroring
 * contracts/interfaces/IPreflightTypes.sol) and one sentence a person can act on.
 */
import { Reason, reasonName as sdkReasonName } from "@preflight/sdk";
// The module itself, not the package index (see tasks/signedData.ts).
import { contractRefusal } from "../../packages/provider/src/gateway/refusals";

/** "PriceAboveCap" for 9. */
export function reasonName(code: number): string {
  return sdkReasonName(code as Reason);
}

/** Where lanes differ from the shared balance, the sentence says so. */
const LANE_SENTENCES: Partial<Record<Reason, string>> = {
  [Reason.InsufficientBalance]: "the lane's funds do not cover this claim: the payer must fund the lane (lane-fund)",
  [Reason.NothingToClaim]: "the voucher's total does not exceed what the lane already paid",
};

/**
 * What a skipped item's reason means, in one sentence (the gateway's wording, with lane wording for
 * lane claims).
 * @example reasonSentence(Reason.GrantRevoked) // "the delegate's grant was revoked by the payer"
 */
export function reasonSentence(code: number, lane = false): string {
  return (lane ? LANE_SENTENCES[code as Reason] : undefined) ?? contractRefusal(code as Reason).message;
}

/**
 * The exit-code rule of every task: 0 when the command did what was asked, including "nothing to
 * do"; non-zero when anything was refused or failed. For settlements, an item whose nonce is already
 * used (it settled before, or the payer cancelled it) or whose voucher channel or lane already paid
 * its total needs nothing more: that is "nothing to do", not a refusal.
 */
export const NOTHING_LEFT_TO_DO: ReadonlySet<string> = new Set<string>(["NonceUsed", "NothingToClaim"]);

/** The items a settlement refused (any reason but Settled and the "nothing to do" ones). */
export function refusedItems<T extends { index: number; reason: string }>(outcomes: readonly T[]): T[] {
  return outcomes.filter((o) => o.reason !== "Settled" && !NOTHING_LEFT_TO_DO.has(o.reason));
}
