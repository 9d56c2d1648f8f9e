/**
 * A `fetch` that pays. On a `402 Payment Required` from a Preflight gateway it signs what the
 * gateway asks for with the session key (a request per call, or a cumulative voucher on a lane for
 * metered models), retries once, and remembers what it learnt so the next call to the same model
 * pays up front without a 402 round trip. Browser and Node (only Web APIs: fetch, streams, crypto).
 */
import { keccak_256 } from "@noble/hashes/sha3";
import { REQUEST_TYPES, VOUCHER_TYPES } from "../eip712";
import {
  PAYMENT_REQUIRED_HEADER,
  PAYMENT_RESPONSE_HEADER,
  PAYMENT_SIGNATURE_HEADER,
  REQUEST_SCHEME,
  STREAM_PAYMENT_FIELD,
  VOUCHER_SCHEME,
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
  /** Never sign a voucher above this cumulative total on one lane; without it, metered models are not paid. */
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

/** What the paying fetch knows about one metered lane. */
export interface LaneView {
  origin: string;
  model: string;
  channel: string;
  /** Total the gateway last reported as charged. */
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
  requirement: PaymentRequirements;
  channel: string;
  owed: bigint;
  signed: bigint;
  /** The last signed voucher's header, reused while the total it covers is still current. */
  header?: string;
  /** Prices accepted when the lane opened: the gateway's later reports must match them. */
  pricePerInputToken: bigint;
  pricePerOutputToken: bigint;
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
  const lanes = new Map<string, Lane>(); // origin|model -> lane
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
    const deadline = BigInt(Math.floor(now) + Math.min(req.maxTimeoutSeconds, 300));
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

  async function payVoucher(key: string, req: PaymentRequirements): Promise<string> {
    if (options.maxLaneTotal === undefined) throw new PayingFetchError("LANE_LIMIT", "metered models need maxLaneTotal");
    let lane = lanes.get(key);
    if (!lane) {
      lane = {
        requirement: req,
        channel: req.extra.lane?.channel ?? hex(randomBytes(32)),
        owed: BigInt(req.extra.lane?.owed ?? "0"),
        signed: 0n,
        pricePerInputToken: BigInt(req.extra.pricePerInputToken ?? "0"),
        pricePerOutputToken: BigInt(req.extra.pricePerOutputToken ?? "0"),
      };
      lanes.set(key, lane);
    }
    // Cover what was served; a new lane opens with the gateway's smallest opening amount.
    let total = lane.owed > lane.signed ? lane.owed : lane.signed;
    const open = BigInt(req.extra.openAmount ?? "0");
    if (total < open) total = open;
    if (total > options.maxLaneTotal) {
      throw new PayingFetchError("LANE_LIMIT", `lane ${lane.channel} would reach ${total}, above maxLaneTotal ${options.maxLaneTotal}`);
    }
    if (lane.header && total === lane.signed) return lane.header;
    const payer = await payerOf();
    const voucher = { payer, provider: req.payTo, token: req.asset, model: req.extra.modelId, channel: lane.channel, cumulativeAmount: total };
    const signature = await options.signer.signTypedData({ domain: domainOf(req), types: VOUCHER_TYPES, primaryType: "Voucher", message: voucher });
    const payload: PaymentPayload = {
      x402Version: X402_VERSION,
      accepted: req,
      payload: {
        voucher: { payer, token: req.asset, model: req.extra.modelId, channel: lane.channel, cumulativeAmount: total.toString(), signature },
      },
    };
    lane.signed = total;
    lane.header = encodeHeader(payload);
    return lane.header;
  }

  function choose(accepts: PaymentRequirements[]): PaymentRequirements | undefined {
    const usable = accepts.filter((a) => a.scheme === REQUEST_SCHEME || (a.scheme === VOUCHER_SCHEME && options.maxLaneTotal !== undefined));
    const preferred = options.prefer ?? REQUEST_SCHEME;
    return usable.find((a) => a.scheme === preferred) ?? usable[0];
  }

  async function paymentFor(key: string, req: PaymentRequirements, body: Uint8Array): Promise<string> {
    return req.scheme === VOUCHER_SCHEME ? payVoucher(key, req) : payRequest(req, body);
  }

  /** Adopts a payment response: the lane's new total, checked against the prices it opened with. */
  function adopt(key: string, response: PaymentResponse, usage: Usage | undefined): void {
    options.onPaymentResponse?.(response);
    const lane = lanes.get(key);
    if (!lane || !response.lane || response.lane.channel !== lane.channel) return;
    const owed = BigInt(response.lane.owed);
    if (usage) {
      const expected = BigInt(usage.prompt_tokens ?? 0) * lane.pricePerInputToken + BigInt(usage.completion_tokens ?? 0) * lane.pricePerOutputToken;
      if (BigInt(response.amount) > expected) {
        // A gateway charging more than the usage it reported is not paid for the difference.
        lanes.delete(key);
        throw new PayingFetchError("OVERCHARGED", `charged ${response.amount} for usage worth ${expected}; lane ${lane.channel} dropped`);
      }
    }
    if (owed > lane.owed) lane.owed = owed;
  }

  const payingFetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : input.toString());
    const body = await bodyBytes(input, init);
    const key = `${url.origin}|${modelOf(body)}`;
    const send = (payment: string | undefined) => {
      const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
      if (payment) headers.set(PAYMENT_SIGNATURE_HEADER, payment);
      return inner(input instanceof Request ? input.url : input, { ...init, method: init?.method ?? (input instanceof Request ? input.method : undefined), headers, body: body.length > 0 ? (body as Uint8Array<ArrayBuffer>) : undefined });
    };
    const cached = known.get(key);
    const upFront = cached ? choose(cached) : undefined;
    let response = await send(upFront ? await paymentFor(key, upFront, body) : undefined);
    if (response.status === 402) {
      const required = await readRequired(response);
      if (!required) return response;
      known.set(key, required.accepts);
      const req = choose(required.accepts);
      if (!req) return response;
      const lane = lanes.get(key);
      // The gateway's view of the lane wins (another tab or replica may have moved it).
      if (lane && req.extra.lane?.channel === lane.channel) {
        const owed = BigInt(req.extra.lane.owed);
        if (owed > lane.owed) lane.owed = owed;
      }
      // A refusal (a reason code) of a payment that was already current is final: do not retry it.
      const final = upFront !== undefined && required.reason !== undefined && !(req.scheme === VOUCHER_SCHEME && lane && lane.owed > lane.signed);
      if (!final) response = await send(await paymentFor(key, req, body));
    }
    if (options.onRefusal === "throw" && (response.status === 402 || response.status === 403)) {
      const refusal = await readPaymentRefusal(response);
      if (refusal) throw new PayingFetchError("REFUSED", `${refusal.name} (${refusal.code}): ${refusal.message}`, refusal);
    }
    return observe(key, response);
  };

  /** Reads the payment response of a success: from the header, or from a stream's last event. */
  async function observe(key: string, response: Response): Promise<Response> {
    const header = response.headers.get(PAYMENT_RESPONSE_HEADER);
    const streaming = (response.headers.get("content-type") ?? "").includes("text/event-stream");
    if (header) {
      const parsed = decodeHeader<PaymentResponse>(header);
      let usage: Usage | undefined;
      if (parsed.lane && (response.headers.get("content-type") ?? "").includes("json")) {
        usage = ((await response.clone().json().catch(() => undefined)) as { usage?: Usage } | undefined)?.usage;
      }
      adopt(key, parsed, usage);
    }
    if (!streaming || !response.body) return response;
    return new Response(response.body.pipeThrough(streamObserver((event, usage) => adopt(key, event, usage))), {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  }

  return Object.assign(payingFetch, {
    lanes: (): LaneView[] =>
      [...lanes.entries()].map(([key, l]) => ({ origin: key.split("|")[0] ?? "", model: l.requirement.extra.model, channel: l.channel, owed: l.owed, signed: l.signed })),
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
