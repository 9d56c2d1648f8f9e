/** Names of the contract's `Reason` enum (contracts/interfaces/IPreflightTypes.sol), in order. */
export const REASONS = [
  "Settled",
  "Expired",
  "SignatureLength",
  "SignatureMalleable",
  "InvalidSigner",
  "GrantRevoked",
  "GrantExpired",
  "ProviderNotAllowed",
  "ModelNotAllowed",
  "PriceAboveCap",
  "BudgetExceeded",
  "NonceUsed",
  "InsufficientBalance",
  "NothingToClaim",
  "TokenMismatch",
] as const;

export type ReasonName = (typeof REASONS)[number];

export function reasonName(code: number): ReasonName | `Reason(${number})` {
  return REASONS[code] ?? `Reason(${code})`;
}

/**
 * The exit-code rule of every task: 0 when the command did what was asked, including "nothing to
 * do"; non-zero when anything was refused or failed. For settlements, an item whose nonce is already
 * used (it settled before, or the payer cancelled it) or whose voucher channel already paid its
 * total needs nothing more: that is "nothing to do", not a refusal.
 */
export const NOTHING_LEFT_TO_DO: ReadonlySet<string> = new Set<string>(["NonceUsed", "NothingToClaim"]);

/** The items a settlement refused (any reason but Settled and the "nothing to do" ones). */
export function refusedItems<T extends { index: number; reason: string }>(outcomes: readonly T[]): T[] {
  return outcomes.filter((o) => o.reason !== "Settled" && !NOTHING_LEFT_TO_DO.has(o.reason));
}
