/**
 * Typed errors thrown by the SDK for bad input or misuse. Decisions about signed requests are never
 * thrown: the verifier returns them as values (see `Decision`).
 */

/** What went wrong, as a stable machine-readable code. */
export type PreflightSdkErrorCode =
  | "INVALID_ADDRESS"
  | "INVALID_HEX"
  | "INVALID_AMOUNT"
  | "INVALID_OPTION"
  | "TOKEN_MISMATCH"
  | "PROVIDER_MISMATCH"
  | "DUPLICATE_ITEM"
  | "ALREADY_FINAL"
  | "SETTLER_CLOSED"
  | "UNEXPECTED_TRANSACTION"
  | "SIGNATURE_NOT_PACKABLE"
  | "CHAIN_MISMATCH"
  | "UNKNOWN_DEPLOYMENT";

/**
 * The one error class the SDK throws for bad input, with a `code` to branch on.
 * @example
 * try {
 *   settler.add(item);
 * } catch (e) {
 *   if (e instanceof PreflightSdkError && e.code === "ALREADY_FINAL") console.log("settled before");
 * }
 */
export class PreflightSdkError extends Error {
  /** A stable code naming the failure. */
  readonly code: PreflightSdkErrorCode;

  constructor(code: PreflightSdkErrorCode, message: string) {
    super(`${code}: ${message}`);
    this.name = "PreflightSdkError";
    this.code = code;
  }
}
