/**
 * The HTTP payment protocol shared by the paying fetch (client) and the gateway (provider): x402
 * version 2's transport (status 402, the `PAYMENT-REQUIRED`, `PAYMENT-SIGNATURE` and
 * `PAYMENT-RESPONSE` headers, each base64 of UTF-8 JSON; `network` as a CAIP-2 id) carrying two
 * payment schemes of Preflight's own:
 *
 * - `preflight-request`: one EIP-712 request signed per call, for a fixed price per model; its
 *   `inputHash` is the keccak-256 of the exact request body, so a payment cannot be moved to
 *   another prompt.
 * - `preflight-lane`: metered usage on a lane, funds the payer reserved on chain for this provider
 *   (`fundLane`). Each call carries a cumulative `LaneVoucher` for the total the gateway last
 *   reported; the gateway reports the new total after each response (for streams, in the last
 *   event), claims the latest voucher in the background (`claimLanesPacked`) and refuses new work
 *   once the unpaid amount passes its credit limit.
 *
 * Browser-safe: no Node module, amounts travel as decimal strings.
 */

/** The x402 protocol version whose transport this follows. */
export const X402_VERSION = 2 as const;

/** x402 v2 header names (HTTP header names are case-insensitive). */
export const PAYMENT_REQUIRED_HEADER = "PAYMENT-REQUIRED";
export const PAYMENT_SIGNATURE_HEADER = "PAYMENT-SIGNATURE";
export const PAYMENT_RESPONSE_HEADER = "PAYMENT-RESPONSE";
/** The longest a paying fetch's signed request lives (its deadline is at most this far ahead, in seconds). */
export const MAX_SIGNED_TIMEOUT_SECONDS = 300;

/** The two schemes. */
export const REQUEST_SCHEME = "preflight-request" as const;
export const LANE_SCHEME = "preflight-lane" as const;
export type PreflightScheme = typeof REQUEST_SCHEME | typeof LANE_SCHEME;

/**
 * The key under which a streamed response's last `data:` event (the one carrying `usage`) gets the
 * payment response, as the same base64 string as the header would hold.
 */
export const STREAM_PAYMENT_FIELD = "x402PaymentResponse";

/** What one scheme asks for (x402's `PaymentRequirements`, with Preflight's fields in `extra`). */
export interface PaymentRequirements {
  scheme: PreflightScheme;
  /** CAIP-2 chain id, e.g. `eip155:8453`. */
  network: string;
  /** Atomic units, decimal: the price of one call (`preflight-request`), or what is due now on the lane (`preflight-lane`). */
  amount: string;
  /** The ERC-20 token (or the zero address for native ETH). */
  asset: string;
  /** The provider the signature must name. */
  payTo: string;
  /** How long a signed request may stay valid (its deadline is at most this far ahead). */
  maxTimeoutSeconds: number;
  extra: PreflightExtra;
}

/** Preflight's fields of a requirement. */
export interface PreflightExtra {
  /** The Preflight contract (the EIP-712 `verifyingContract`). */
  contract: string;
  /** EIP-712 domain name and version. */
  name: string;
  version: string;
  /** The model as the client names it, and its bytes32 id (keccak-256 of the name). */
  model: string;
  modelId: string;
  /** `preflight-lane`: atomic units per prompt and per completion token. */
  pricePerInputToken?: string;
  pricePerOutputToken?: string;
  /** `preflight-lane`: how much the gateway serves unpaid before it refuses new work. */
  creditLimit?: string;
  /** `preflight-lane`: what the first voucher of a session must add over the lane's total (it proves the key and the funds). */
  openAmount?: string;
  /** `preflight-lane`: the payer's lane as the gateway sees it (sent once the payer is known: on a refusal, in payment responses). */
  lane?: LaneState;
}

/**
 * A lane's totals as the gateway keeps them (atomic units, decimal). A lane is per (payer,
 * provider, token) and its cumulative total never decreases, so the totals include everything the
 * chain already claimed from it.
 */
export interface LaneState {
  /** Total charged for what was served (at least what the chain claimed). */
  owed: string;
  /** Highest cumulative voucher accepted. */
  covered: string;
}

/** The body of a 402 (x402's `PaymentRequired`); also sent base64 in `PAYMENT-REQUIRED`. */
export interface PaymentRequired {
  x402Version: typeof X402_VERSION;
  /** Why payment is (still) required: a sentence. */
  error: string;
  /** Set when a payment was refused: the contract's reason code and its name. */
  reason?: { code: number; name: string };
  resource: { url: string; description?: string; mimeType?: string };
  accepts: PaymentRequirements[];
}

/** Wire form of a signed request (bigints as decimal strings). */
export interface WireSignedRequest {
  payer: string;
  token: string;
  model: string;
  price: string;
  nonce: string;
  deadline: string;
  inputHash: string;
  signature: string;
}

/** Wire form of a signed lane voucher (`LaneVoucher(payer, provider = payTo, token, model, cumulativeAmount)`). */
export interface WireSignedLaneVoucher {
  payer: string;
  token: string;
  model: string;
  cumulativeAmount: string;
  signature: string;
}

/** What the client sends in `PAYMENT-SIGNATURE` (x402's `PaymentPayload`). */
export type PaymentPayload =
  | { x402Version: typeof X402_VERSION; accepted: PaymentRequirements; payload: { request: WireSignedRequest } }
  | { x402Version: typeof X402_VERSION; accepted: PaymentRequirements; payload: { laneVoucher: WireSignedLaneVoucher } };

/**
 * What the gateway answers in `PAYMENT-RESPONSE` (x402's `SettleResponse`). Settlement is batched,
 * so `transaction` is empty when the payment was accepted and queued.
 */
export interface PaymentResponse {
  success: boolean;
  transaction: string;
  network: string;
  payer: string;
  scheme: PreflightScheme;
  /** What this call cost (atomic units, decimal). */
  amount: string;
  /** `preflight-lane`: the lane after this call; the next call's voucher should cover `owed`. */
  lane?: LaneState;
}

/** Thrown on a header that is not base64 JSON of the expected shape. */
export class PaymentProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PaymentProtocolError";
  }
}

// Node's Buffer where there is one (a gateway decodes a header per call: several times faster than
// atob and a byte loop); the Web APIs in a browser.
const NodeBuffer = (globalThis as { Buffer?: { from(data: string, encoding: string): { toString(encoding: string): string } } }).Buffer;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Base64 of the UTF-8 JSON of `value` (x402's header encoding).
 * @example
 * headers.set(PAYMENT_SIGNATURE_HEADER, encodeHeader(payload));
 */
export function encodeHeader(value: unknown): string {
  const json = JSON.stringify(value);
  if (NodeBuffer) return NodeBuffer.from(json, "utf8").toString("base64");
  const bytes = new TextEncoder().encode(json);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

/**
 * Parses a header written by `encodeHeader`; throws `PaymentProtocolError` when it is not base64 JSON object.
 * @example
 * const required = decodeHeader<PaymentRequired>(response.headers.get(PAYMENT_REQUIRED_HEADER)!);
 */
export function decodeHeader<T>(header: string): T {
  let parsed: unknown;
  try {
    const text = header.trim();
    if (text.length % 4 !== 0 || !BASE64.test(text)) throw new Error("not base64");
    if (NodeBuffer) parsed = JSON.parse(NodeBuffer.from(text, "base64").toString("utf8"));
    else {
      const binary = atob(text);
      const bytes = new Uint8Array(binary.length);
      for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
      parsed = JSON.parse(new TextDecoder().decode(bytes));
    }
  } catch {
    throw new PaymentProtocolError("the payment header is not base64-encoded JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new PaymentProtocolError("the payment header must encode a JSON object");
  }
  return parsed as T;
}

/**
 * The CAIP-2 id of an EVM chain.
 * @example
 * caip2(8453n); // "eip155:8453"
 */
export function caip2(chainId: bigint | number): string {
  return `eip155:${chainId.toString()}`;
}
