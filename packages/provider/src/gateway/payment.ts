/**
 * Reading a client's `PAYMENT-SIGNATURE` into typed, validated items. Malformed input is a value
 * (`undefined` with a sentence), never an exception that escapes the request.
 */
import {
  LANE_SCHEME,
  REQUEST_SCHEME,
  decodeHeader,
  type PaymentPayload,
  type WireSignedLaneVoucher,
  type WireSignedRequest,
} from "@preflight/sdk/fetch";
import type { SignedLaneVoucher, SignedRequest } from "@preflight/sdk";
import { validateLaneVoucher, validateRequest } from "../verifier/input";

const ADDRESS = /^0x[0-9a-fA-F]{40}$/;
const BYTES32 = /^0x[0-9a-fA-F]{64}$/;
const SIGNATURE = /^0x([0-9a-fA-F]{128}|[0-9a-fA-F]{130})$/;
const UINT = /^(0|[1-9][0-9]{0,77})$/;

export type ParsedPayment =
  | { scheme: typeof REQUEST_SCHEME; request: SignedRequest }
  | { scheme: typeof LANE_SCHEME; voucher: SignedLaneVoucher }
  | { scheme: undefined; error: string };

/**
 * Decodes and validates a payment header.
 * @example
 * const p = parsePayment(req.headers["payment-signature"]);
 * if (p.scheme === undefined) refuse(p.error);
 */
export function parsePayment(header: string): ParsedPayment {
  let payload: PaymentPayload;
  try {
    payload = decodeHeader<PaymentPayload>(header);
  } catch (e) {
    return { scheme: undefined, error: (e as Error).message };
  }
  const body = (payload as { payload?: unknown }).payload as { request?: WireSignedRequest; laneVoucher?: WireSignedLaneVoucher } | undefined;
  if (payload.x402Version !== 2) return { scheme: undefined, error: "x402Version must be 2" };
  if (body?.request) {
    const r = body.request;
    const bad = check([["payer", r.payer, ADDRESS], ["token", r.token, ADDRESS], ["model", r.model, BYTES32], ["price", r.price, UINT], ["nonce", r.nonce, UINT], ["deadline", r.deadline, UINT], ["inputHash", r.inputHash, BYTES32], ["signature", r.signature, SIGNATURE]]);
    if (bad) return { scheme: undefined, error: bad };
    const request: SignedRequest = { payer: r.payer, token: r.token, model: r.model, price: BigInt(r.price), nonce: BigInt(r.nonce), deadline: BigInt(r.deadline), inputHash: r.inputHash, signature: r.signature };
    // The contract's widths (price uint96, ...): the verifier's own input check, as a refusal.
    const range = outOfRange(() => validateRequest(request));
    return range ? { scheme: undefined, error: range } : { scheme: REQUEST_SCHEME, request };
  }
  if (body?.laneVoucher) {
    const v = body.laneVoucher;
    const bad = check([["payer", v.payer, ADDRESS], ["token", v.token, ADDRESS], ["model", v.model, BYTES32], ["cumulativeAmount", v.cumulativeAmount, UINT], ["signature", v.signature, SIGNATURE]]);
    if (bad) return { scheme: undefined, error: bad };
    const voucher: SignedLaneVoucher = { payer: v.payer, token: v.token, model: v.model, cumulativeAmount: BigInt(v.cumulativeAmount), signature: v.signature };
    const range = outOfRange(() => validateLaneVoucher(voucher));
    return range ? { scheme: undefined, error: range } : { scheme: LANE_SCHEME, voucher };
  }
  return { scheme: undefined, error: "the payload holds neither a request nor a laneVoucher" };
}

/** The sentence for an item the verifier's input check refuses (a number wider than the contract's type). */
function outOfRange(validate: () => void): string | undefined {
  try {
    validate();
    return undefined;
  } catch (e) {
    return `payload field out of range: ${(e as Error).message.replace(/^[A-Z_]+: /, "")}`;
  }
}

function check(fields: [string, unknown, RegExp][]): string | undefined {
  for (const [name, value, re] of fields) {
    if (typeof value !== "string" || !re.test(value)) return `payload field ${name} is missing or malformed`;
  }
  return undefined;
}
