/**
 * Why the gateway refuses a call, as HTTP status, a reason (the contract's code where the contract
 * decided, or the gateway's own name) and one sentence a person can act on.
 */
import { Reason, reasonName, reasonSentence } from "@preflight/sdk";

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
  return { status: FORBIDDEN.has(reason) ? 403 : 402, code: reason, name: reasonName(reason), message: reasonSentence(reason) };
}

/**
 * A refusal decided by the gateway itself.
 * @example
 * gatewayRefusal("CreditLimit", "the lane owes 5000 unpaid: pay the reported total");
 */
export function gatewayRefusal(name: GatewayReason, message: string, status: 402 | 403 = 402): Refusal {
  return { status, name, message };
}
