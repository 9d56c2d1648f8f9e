/**
 * One sentence per contract reason code, saying what went wrong and what cures it. The gateway puts
 * it in every 402/403 body and the paying fetch reads it back (`readPaymentRefusal`), so a payer and
 * a provider always see the same words for the same code.
 */
import { Reason } from "./types";

const SENTENCES: Record<Reason, string> = {
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
  [Reason.InsufficientBalance]: "the funds do not cover this payment (the escrow balance, or for a lane voucher the lane's funds): deposit or fund the lane",
  [Reason.NothingToClaim]: "the voucher does not raise its lane or channel above what it already paid",
  [Reason.TokenMismatch]: "the payment is in a token this gateway does not accept",
  [Reason.NonceOutOfRange]: "the nonce is 2^64 or more (nonces are 64-bit on chain): sign with a smaller nonce",
};

/**
 * The sentence for a contract reason code (a generic one for a code this SDK does not know).
 * @example
 * reasonSentence(Reason.NonceUsed); // "this nonce was already used: sign the request with a new nonce"
 */
export function reasonSentence(reason: Reason | number): string {
  return SENTENCES[reason as Reason] ?? `refused by the contract's rules (reason code ${String(reason)})`;
}
