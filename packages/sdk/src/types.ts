/**
 * Plain TypeScript mirrors of the contract's calldata structs and reason codes, strictly typed
 * (bigint amounts, hex strings), assignable to the typechain `*Struct` parameter types.
 */

/**
 * Why a request or voucher did not settle inside a batch, exactly the contract's `Reason` enum
 * (`contracts/interfaces/IPreflightTypes.sol`); `Settled` (0) means it settled / would settle.
 * @example
 * const [reason] = await preflight.settleBatch.staticCall(token, [signed]);
 * if (Number(reason) === Reason.NonceUsed) console.log("already settled");
 */
export enum Reason {
  Settled = 0,
  Expired = 1,
  SignatureLength = 2,
  SignatureMalleable = 3,
  InvalidSigner = 4,
  GrantRevoked = 5,
  GrantExpired = 6,
  ProviderNotAllowed = 7,
  ModelNotAllowed = 8,
  PriceAboveCap = 9,
  BudgetExceeded = 10,
  NonceUsed = 11,
  InsufficientBalance = 12,
  NothingToClaim = 13,
  TokenMismatch = 14,
  NonceOutOfRange = 15,
}

/**
 * The name of a reason code, e.g. `reasonName(9) === "PriceAboveCap"`.
 * @example
 * console.log(reasonName(Reason.NonceUsed)); // "NonceUsed"
 */
export function reasonName(reason: Reason): string {
  return Reason[reason] ?? `Reason(${String(reason)})`;
}

/**
 * Reasons that can change without a new signature (the payer deposits, or a budget period rolls
 * over): an item skipped for one of these may be settled later. Every other reason is final.
 * @example
 * if (isRetryable(Reason.InsufficientBalance)) queueForLater(item);
 */
export function isRetryable(reason: Reason): boolean {
  return reason === Reason.InsufficientBalance || reason === Reason.BudgetExceeded;
}

/** A signed request as the provider submits it (the contract's `SignedRequest`). */
export interface SignedRequest {
  payer: string;
  token: string;
  model: string;
  price: bigint;
  nonce: bigint;
  deadline: bigint;
  inputHash: string;
  signature: string;
}

/** A signed lane voucher (the contract's `LaneVoucher`). */
export interface SignedLaneVoucher {
  payer: string;
  token: string;
  model: string;
  cumulativeAmount: bigint;
  signature: string;
}

/** A signed cumulative voucher (the contract's `SignedVoucher`). */
export interface SignedVoucher {
  payer: string;
  token: string;
  model: string;
  channel: string;
  cumulativeAmount: bigint;
  signature: string;
}
