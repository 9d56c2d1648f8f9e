/**
 * Why the gateway refuses a call, as HTTP status, a reason (the contract's code where the contract
 * decided, or the gateway's own name) and one sentence a person can act on.
 */
import { Reason } from "@preflight/sdk";

/** Reasons the gateway decides itself (no contract code). */
export type GatewayReason =
  | "PaymentRequired"
  | "MalformedPayment"
  | "WrongScheme"
  | "UnknownModel"
  | "TermsMismatch"
  | "InputMismatch"
  | "LaneNotOpen"
  | "WrongLaneSigner"
  | "CreditLimit";

export interface Refusal {
  status: 402 | 403;
  /** The contract's reason code, when the contract's rules refused. */
  code?: Reason;
  name: string;
  message: string;
}

const CONTRACT_SENTENCES: Record<Reason, string> = {
  [Reason.Settled]: "accepted",
  [Reason.Expired]: "the signed request's deadline has passed: sign a new one",
  [Reason.SignatureLength]: "the signature is neither 64 nor 65 bytes",
  [Reason.SignatureMalleable]: "the signature's s value is in the upper half of the curve order (malleable)",
  [Reason.InvalidSigner]: "the signature was not made by the payer or by a delegate with a grant from the payer",
  [Reason.GrantRevoked]: "the delegate's grant was revoked by the payer",
  [Reason.GrantExpired]: "the delegate's grant has expired",
  [Reason.ProviderNotAllowed]: "the delegate's grant does not allow this provider",
  [Reason.ModelNotAllowed]: "the delegate's grant does not allow this model",
  [Reason.PriceAboveCap]: "the price is above the delegate's grant's maximum price",
  [Reason.BudgetExceeded]: "the delegate's grant has no budget left in this period",
  [Reason.NonceUsed]: "this nonce was already used: sign the request with a new nonce",
  [Reason.InsufficientBalance]: "the payer's escrow balance does not cover this payment: deposit more",
  [Reason.NothingToClaim]: "the voucher does not raise its channel above what it already paid",
  [Reason.TokenMismatch]: "the payment is in a token this gateway does not accept",
  [Reason.NonceOutOfRange]: "the nonce is 2^64 or more (nonces are 64-bit on chain): sign with a smaller nonce",
};

// Refusals that a new signature or a deposit can cure are 402; those that say the key may not pay
// (bad signature, grant scope) are 403.
const FORBIDDEN = new Set<Reason>([
  Reason.SignatureLength,
  Reason.SignatureMalleable,
  Reason.InvalidSigner,
  Reason.GrantRevoked,
  Reason.GrantExpired,
  Reason.ProviderNotAllowed,
  Reason.ModelNotAllowed,
  Reason.PriceAboveCap,
  Reason.BudgetExceeded,
]);

/**
 * The refusal for a contract reason code.
 * @example
 * contractRefusal(Reason.NonceUsed); // { status: 402, code: 11, name: "NonceUsed", message: "..." }
 */
export function contractRefusal(reason: Reason): Refusal {
  return { status: FORBIDDEN.has(reason) ? 403 : 402, code: reason, name: Reason[reason] ?? `Reason(${reason})`, message: CONTRACT_SENTENCES[reason] ?? "refused by the contract's rules" };
}

/**
 * A refusal decided by the gateway itself.
 * @example
 * gatewayRefusal("CreditLimit", "the lane owes 5000 unpaid: pay the reported total");
 */
export function gatewayRefusal(name: GatewayReason, message: string, status: 402 | 403 = 402): Refusal {
  return { status, name, message };
}
