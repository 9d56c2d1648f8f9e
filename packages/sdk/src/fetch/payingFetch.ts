/**
 * A `fetch` that pays. On a `402 Payment Required` from a Preflight gateway it signs what the
 * gateway asks for with the session key (a request per call, or a cumulative lane voucher for
 * metered models), retries, and remembers what it learnt so the next call to the same model
 * pays up front without a 402 round trip. Browser and Node (only Web APIs: fetch, streams, crypto).
 */
import { keccak_256 } from "@noble/hashes/sha3";
import { LANE_VOUCHER_TYPES, REQUEST_TYPES } from "../eip712";
import {
  MAX_SIGNED_TIMEOUT_SECONDS,
  PAYMENT_REQUIRED_HEADER,
  PAYMENT_RESPONSE_HEADER,
  PAYMENT_SIGNATURE_HEADER,
  LANE_SCHEME,
  REQUEST_SCHEME,
  STREAM_PAYMENT_FIELD,
  X402_VERSION,
  decodeHeader,
  encodeHeader,
  type PaymentPayload,
  type PaymentRequired,
  type PaymentRequirements,
  type PaymentResponse,
  type PreflightScheme,
} from "./protocol";
import type { Hex, PaymentSigner } from "./signer";
import { reasonSentence } from "../reasons";

/** The `fetch` signature (what the `openai` client and others accept). */
export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/** How the paying fetch pays. */
export interface PayingFetchOptions {
  /** The session key (payer or delegate): `fromEthers(wallet)` or `fromViem(account)`. */
  signer: PaymentSigner;
  /** The payer whose escrow pays (default: the signer's own address). */
  payer?: string;
  /** Never sign a request above this price (atomic units). */
  maxPricePerRequest: bigint;
  /**
   * Never sign a lane voucher above this cumulative total (a lane's total counts everything it ever
   * paid the provider, across sessions); without it, metered models are not paid.
   */
  maxLaneTotal?: bigint;
  /** Which scheme to use when a gateway offers both (default: `preflight-request`). */
  prefer?: PreflightScheme;
  /** The fetch to wrap (default: `globalThis.fetch`). */
  fetch?: FetchLike;
  /** The current unix time in seconds, for deadlines (default: the wall clock; give the chain's time when they differ, e.g. on a test chain). */
  now?: () => number;
  /** Called with every payment response the gateway sends (header or last stream event). */
  onPaymentResponse?: (response: PaymentResponse) => void;
  /**
   * What to do when the gateway refuses a payment this fetch signed (a 402/403 with a reason):
   * `"return"` the response as it is (default), or `"throw"` a `PayingFetchError` `REFUSED` whose
   * `refusal` names the reason code and its sentence (`readPaymentRefusal`).
   */
  onRefusal?: "return" | "throw";
}

/** What the paying fetch knows about one metered lane (payer, provider, token) at one gateway. */
export interface LaneView {
  origin: string;
  provider: string;
  token: string;
  /** Total the gateway last reported as charged (everything the lane ever owed, claimed or not). */
  owed: bigint;
  /** Highest cumulative voucher signed so far. */
  signed: bigint;
}

/** The paying fetch, with a view of its lanes. */
export interface PayingFetch extends FetchLike {
  /** The metered lanes opened by this fetch. */
  lanes(): LaneView[];
}

/** Why the paying fetch would not pay (the request was not sent with a payment). */
export class PayingFetchError extends Error {
  readonly code: "PRICE_ABOVE_LIMIT" | "LANE_LIMIT" | "UNSUPPORTED_BODY" | "NO_ACCEPTABLE_SCHEME" | "OVERCHARGED" | "REFUSED";
  /** `REFUSED`: what the gateway said (reason code, name, sentence). */
  readonly refusal?: PaymentRefusal;
  constructor(code: PayingFetchError["code"], message: string, refusal?: PaymentRefusal) {
    super(`${code}: ${message}`);
    this.name = "PayingFetchError";
    this.code = code;
    this.refusal = refusal;
  }
}

/** Why a gateway refused a payment, as its 402/403 said. */
export interface PaymentRefusal {
  status: number;
  /** The contract's reason code, or -1 for a reason the gateway decided itself (`name` says which). */
  code: number;
  name: string;
  /** One sentence: the SDK's own for a contract code (`reasonSentence`), else the gateway's. */
  message: string;
}

/**
 * Reads a 402/403 of a Preflight gateway: why the payment was refused, or undefined when the
 * response is not a refusal (a success, or a plain 402 asking for a first payment).
 * @example
 * const refusal = await readPaymentRefusal(response);
 * if (refusal) console.error(`${refusal.name}: ${refusal.message}`);
 */
export async function readPaymentRefusal(response: Response): Promise<PaymentRefusal | undefined> {
  if (response.status !== 402 && response.status !== 403) return undefined;
  const required = await readRequired(response);
  const reason = required?.reason;
  if (!reason) return undefined;
  const message = reason.code >= 0 ? reasonSentence(reason.code) : required.error;
  return { status: response.status, code: reason.code, name: reason.name, message };
}

interface Lane {
  origin: string;
  provider: string;
  token: string;
  owed: bigint;
  signed: bigint;
  /** A voucher of this session was accepted (until then, the first one adds the opening amount). */
  opened: boolean;
  /** The last signed voucher's header and model, reused while the total it covers is still current. */
  header?: string;
  headerModel?: string;
}

interface NonceCursor {
  word: bigint;
  bit: bigint;
}

// Nonce words a session may start at. Nonces are 64-bit on chain (NonceOutOfRange above), so a
// session starts at a random one of the 2^58 words: collisions between sessions stay negligible.
const WORDS = 1n << 58n;

/**
 * Builds the paying fetch.
 * @example
 * const pay = createPayingFetch({ signer: fromViem(privateKeyToAccount(key)), payer, maxPricePerRequest: 10_000n, maxLaneTotal: 5_000_000n });
 * const openai = new OpenAI({ baseURL: "https://gateway.example/v1", apiKey: "unused", fetch: pay });
 */
export function createPayingFetch(options: PayingFetchOptions): PayingFetch {
  const inner: FetchLike = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  const known = new Map<string, PaymentRequirements[]>(); // origin|model -> requirements
  const lanes = new Map<string, Lane>(); // origin|provider|token -> lane
  const nonces = new Map<string, NonceCursor>(); // payer|token -> next nonce
  let signerAddress: Promise<string> | undefined;
  const address = () => (signerAddress ??= options.signer.getAddress());
  const payerOf = async () => (options.payer ?? (await address())).toLowerCase();

  function nextNonce(payer: string, token: string): bigint {
    const key = `${payer}|${token.toLowerCase()}`;
    let cursor = nonces.get(key);
    // Consecutive nonces share the contract's 64-bit bitmap words (cheap to settle); a random
    // starting word keeps independent sessions of one payer apart.
    if (!cursor) nonces.set(key, (cursor = { word: randomBelow(WORDS), bit: 0n }));
    const nonce = cursor.word * 64n + cursor.bit;
    if (++cursor.bit === 64n) cursor = { word: cursor.word + 1n, bit: 0n };
    nonces.set(key, cursor);
    return nonce;
  }

  async function payRequest(req: PaymentRequirements, body: Uint8Array): Promise<string> {
    const price = BigInt(req.amount);
    if (price > options.maxPricePerRequest) {
      throw new PayingFetchError("PRICE_ABOVE_LIMIT", `${req.extra.model} costs ${price} per request, above maxPricePerRequest ${options.maxPricePerRequest}`);
    }
    const payer = await payerOf();
    const now = options.now ? options.now() : Math.floor(Date.now() / 1000);
    const deadline = BigInt(Math.floor(now) + Math.min(req.maxTimeoutSeconds, MAX_SIGNED_TIMEOUT_SECONDS));
    const request = {
      payer,
      provider: req.payTo,
      token: req.asset,
      model: req.extra.modelId,
      price,
      nonce: nextNonce(payer, req.asset),
      deadline,
      inputHash: hex(keccak_256(body)),
    };
    const signature = await options.signer.signTypedData({
      domain: domainOf(req),
      types: REQUEST_TYPES,
      primaryType: "Request",
      message: request,
    });
    const payload: PaymentPayload = {
      x402Version: X402_VERSION,
      accepted: req,
      payload: {
        request: {
          payer,
          token: req.asset,
          model: req.extra.modelId,
          price: price.toString(),
          nonce: request.nonce.toString(),
          deadline: deadline.toString(),
          inputHash: request.inputHash,
          signature,
        },
      },
    };
    return encodeHeader(payload);
  }

  function laneKeyOf(origin: string, req: PaymentRequirements): string {
    return `${origin}|${req.payTo.toLowerCase()}|${req.asset.toLowerCase()}`;
  }

  /** The lane's next total: what was served, and for a session's first voucher the opening amount on top. */
  function laneTotal(lane: Lane, req: PaymentRequirements): bigint {
    const total = lane.owed > lane.signed ? lane.owed : lane.signed;
    const open = lane.owed + BigInt(req.extra.openAmount ?? "0");
    return !lane.opened && total < open ? open : total;
  }

  function laneOf(origin: string, req: PaymentRequirements): Lane {
    const key = laneKeyOf(origin, req);
    let lane = lanes.get(key);
    if (!lane) lanes.set(key, (lane = { origin, provider: req.payTo.toLowerCase(), token: req.asset.toLowerCase(), owed: 0n, signed: 0n, opened: false }));
    // The gateway's view of the lane wins when it is ahead (another tab or replica, or what the chain already claimed).
    const reported = req.extra.lane;
    if (reported) {
      const owed = BigInt(reported.owed);
      if (owed > lane.owed) lane.owed = owed;
    }
    return lane;
  }

  async function payLane(origin: string, req: PaymentRequirements): Promise<string> {
    if (options.maxLaneTotal === undefined) throw new PayingFetchError("LANE_LIMIT", "metered models need maxLaneTotal");
    const lane = laneOf(origin, req);
    const total = laneTotal(lane, req);
    if (total > options.maxLaneTotal) {
      throw new PayingFetchError("LANE_LIMIT", `the lane to ${lane.provider} would reach ${total}, above maxLaneTotal ${options.maxLaneTotal}`);
    }
    if (lane.header && total === lane.signed && lane.headerModel === req.extra.modelId) return lane.header;
    const payer = await payerOf();
    const voucher = { payer, provider: req.payTo, token: req.asset, model: req.extra.modelId, cumulativeAmount: total };
    const signature = await options.signer.signTypedData({ domain: domainOf(req), types: LANE_VOUCHER_TYPES, primaryType: "LaneVoucher", message: voucher });
    const payload: PaymentPayload = {
      x402Version: X402_VERSION,
      accepted: req,
      payload: { laneVoucher: { payer, token: req.asset, model: req.extra.modelId, cumulativeAmount: total.toString(), signature } },
    };
    lane.signed = total;
    lane.header = encodeHeader(payload);
    lane.headerModel = req.extra.modelId;
    return lane.header;
  }

  function choose(accepts: PaymentRequirements[]): PaymentRequirements | undefined {
    const usable = accepts.filter((a) => a.scheme === REQUEST_SCHEME || (a.scheme === LANE_SCHEME && options.maxLaneTotal !== undefined));
    const preferred = options.prefer ?? REQUEST_SCHEME;
    return usable.find((a) => a.scheme === preferred) ?? usable[0];
  }

  async function paymentFor(origin: string, req: PaymentRequirements, body: Uint8Array): Promise<string> {
    return req.scheme === LANE_SCHEME ? payLane(origin, req) : payRequest(req, body);
  }

  /** Adopts a payment response: the lane's new total, its charge checked against the model's accepted prices. */
  function adopt(origin: string, req: PaymentRequirements | undefined, response: PaymentResponse, usage: Usage | undefined): void {
    options.onPaymentResponse?.(response);
    if (!req || req.scheme !== LANE_SCHEME || !response.lane) return;
    const key = laneKeyOf(origin, req);
    const lane = lanes.get(key);
    if (!lane) return;
    if (usage) {
      const expected = BigInt(usage.prompt_tokens ?? 0) * BigInt(req.extra.pricePerInputToken ?? "0") + BigInt(usage.completion_tokens ?? 0) * BigInt(req.extra.pricePerOutputToken ?? "0");
      if (BigInt(response.amount) > expected) {
        // A gateway charging more than the usage it reported is not paid for the difference.
        lanes.delete(key);
        throw new PayingFetchError("OVERCHARGED", `charged ${response.amount} for usage worth ${expected}; the lane to ${lane.provider} dropped`);
      }
    }
    lane.opened = true;
    const owed = BigInt(response.lane.owed);
    if (owed > lane.owed) lane.owed = owed;
  }

  const payingFetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : input.toString());
    const body = await bodyBytes(input, init);
    const origin = url.origin;
    const key = `${origin}|${modelOf(body)}`;
    const send = (payment: string | undefined) => {
      const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
      if (payment) headers.set(PAYMENT_SIGNATURE_HEADER, payment);
      // A paid call never follows a redirect: fetch would carry the payment header to wherever it points.
      const redirect = payment ? "manual" : (init?.redirect ?? (input instanceof Request ? input.redirect : undefined));
      return inner(input instanceof Request ? input.url : input, { ...init, redirect, method: init?.method ?? (input instanceof Request ? input.method : undefined), headers, body: body.length > 0 ? (body as Uint8Array<ArrayBuffer>) : undefined });
    };
    const cached = known.get(key);
    let req = cached ? choose(cached) : undefined;
    let paid = req !== undefined;
    let response = await send(req ? await paymentFor(origin, req, body) : undefined);
    // A 402 asks for (another) payment: at most two more tries, each only when something changed.
    for (let tries = 0; response.status === 402 && tries < 2; tries++) {
      const required = await readRequired(response);
      if (!required) return response;
      known.set(key, required.accepts);
      const next = choose(required.accepts);
      if (!next) return response;
      // After a paid attempt, sign again only when something changed: a refusal (a reason code) of
      // a payment that was current is final, and so is a plain 402 asking for the terms just paid,
      // unless the lane's total moved (the gateway reported more owed, e.g. what the chain already
      // claimed from the lane). A gateway that answers every payment with a 402 gets one signature.
      if (paid && req) {
        const lane = next.scheme === LANE_SCHEME ? laneOf(origin, next) : undefined;
        const moved = lane !== undefined && laneTotal(lane, next) !== lane.signed;
        if (!moved && (required.reason !== undefined || sameTerms(req, next))) break;
      }
      req = next;
      paid = true;
      response = await send(await paymentFor(origin, req, body));
    }
    if (options.onRefusal === "throw" && (response.status === 402 || response.status === 403)) {
      const refusal = await readPaymentRefusal(response);
      if (refusal) throw new PayingFetchError("REFUSED", `${refusal.name} (${refusal.code}): ${refusal.message}`, refusal);
    }
    return observe(origin, req, response);
  };

  /** Reads the payment response of a success: from the header, or from a stream's last event. */
  async function observe(origin: string, req: PaymentRequirements | undefined, response: Response): Promise<Response> {
    const header = response.headers.get(PAYMENT_RESPONSE_HEADER);
    const streaming = (response.headers.get("content-type") ?? "").includes("text/event-stream");
    if (header) {
      const parsed = decodeHeader<PaymentResponse>(header);
      let usage: Usage | undefined;
      if (parsed.lane && (response.headers.get("content-type") ?? "").includes("json")) {
        usage = ((await response.clone().json().catch(() => undefined)) as { usage?: Usage } | undefined)?.usage;
      }
      adopt(origin, req, parsed, usage);
    }
    if (!streaming || !response.body) return response;
    return new Response(response.body.pipeThrough(streamObserver((event, usage) => adopt(origin, req, event, usage))), {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  }

  return Object.assign(payingFetch, {
    lanes: (): LaneView[] =>
      [...lanes.values()].map((l) => ({ origin: l.origin, provider: l.provider, token: l.token, owed: l.owed, signed: l.signed })),
  });
}

interface Usage {
  prompt_tokens?: number;
  completion_tokens?: number;
}

/** Passes an SSE stream through unchanged, handing the payment response of its last event to `seen`. */
function streamObserver(seen: (response: PaymentResponse, usage: Usage | undefined) => void): TransformStream<Uint8Array, Uint8Array> {
  const decoder = new TextDecoder();
  let buffer = "";
  return new TransformStream({
    transform(chunk, controller) {
      controller.enqueue(chunk);
      buffer += decoder.decode(chunk, { stream: true });
      let newline: number;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        if (!line.startsWith("data:") || !line.includes(STREAM_PAYMENT_FIELD)) continue;
        const event = JSON.parse(line.slice(5)) as { usage?: Usage } & Record<string, unknown>;
        const field = event[STREAM_PAYMENT_FIELD];
        if (typeof field === "string") seen(decodeHeader<PaymentResponse>(field), event.usage);
      }
    },
  });
}

/** Whether two requirements ask for the same payment (scheme, price, provider, token, chain, contract, model). */
function sameTerms(a: PaymentRequirements, b: PaymentRequirements): boolean {
  const key = (r: PaymentRequirements) =>
    [r.scheme, r.amount, r.payTo.toLowerCase(), r.asset.toLowerCase(), r.network, String(r.extra?.contract).toLowerCase(), String(r.extra?.modelId).toLowerCase()].join("|");
  return key(a) === key(b);
}

async function readRequired(response: Response): Promise<PaymentRequired | undefined> {
  const header = response.headers.get(PAYMENT_REQUIRED_HEADER);
  if (header) return decodeHeader<PaymentRequired>(header);
  const body = (await response.clone().json().catch(() => undefined)) as PaymentRequired | undefined;
  return body && Array.isArray(body.accepts) ? body : undefined;
}

async function bodyBytes(input: string | URL | Request, init: RequestInit | undefined): Promise<Uint8Array> {
  const body = init?.body ?? (input instanceof Request ? new Uint8Array(await input.clone().arrayBuffer()) : undefined);
  if (body === undefined || body === null) return new Uint8Array();
  if (typeof body === "string") return new TextEncoder().encode(body);
  if (body instanceof Uint8Array) return body;
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  if (body instanceof Blob) return new Uint8Array(await body.arrayBuffer());
  // The payment signs the exact body, so it must be read before sending (and may be sent twice).
  throw new PayingFetchError("UNSUPPORTED_BODY", "the body must be a string, bytes or a Blob (a stream cannot be signed and replayed)");
}

function modelOf(body: Uint8Array): string {
  if (body.length === 0 || body.length > 1 << 20) return "";
  try {
    const parsed = JSON.parse(new TextDecoder().decode(body)) as { model?: unknown };
    return typeof parsed.model === "string" ? parsed.model : "";
  } catch {
    return "";
  }
}

function domainOf(req: PaymentRequirements): { name: string; version: string; chainId: bigint; verifyingContract: Hex } {
  const chainId = BigInt(req.network.replace(/^eip155:/, ""));
  return { name: req.extra.name, version: req.extra.version, chainId, verifyingContract: req.extra.contract as Hex };
}

function randomBytes(n: number): Uint8Array {
  return globalThis.crypto.getRandomValues(new Uint8Array(n));
}

function randomBelow(bound: bigint): bigint {
  return BigInt(hex(randomBytes(32))) % bound;
}

function hex(bytes: Uint8Array): Hex {
  let out = "0x";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out as Hex;
}
