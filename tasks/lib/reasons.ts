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
