/**
 * The gateway: an HTTP handler in front of an OpenAI-compatible model server that asks for payment
 * the x402 way, preflights it in-process, forwards to the model server (streams as they arrive),
 * and queues what it served for batched settlement. Mount `gateway.handler` in any Node HTTP
 * server, or run `startGateway` / the CLI.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { pipeline } from "node:stream/promises";
import { keccak256Bytes, toHex } from "../crypto";
import { PreflightSdkError, Reason, type SignedLaneVoucher, type SignedRequest } from "@preflight/sdk";
import {
  LANE_SCHEME,
  PAYMENT_REQUIRED_HEADER,
  PAYMENT_RESPONSE_HEADER,
  REQUEST_SCHEME,
  STREAM_PAYMENT_FIELD,
  X402_VERSION,
  MAX_SIGNED_TIMEOUT_SECONDS,
  caip2,
  encodeHeader,
  type LaneState,
  type PaymentRequired,
  type PaymentRequirements,
  type PaymentResponse,
} from "@preflight/sdk/fetch";
import type { LaneTotals, Preflighter, ReservationStore, SettlementBatch, SettlementQueue } from "./interfaces";
import { GatewayMetrics } from "./metrics";
import { laneFundsPool, laneKeyOf } from "./memoryStore";
import { parsePayment } from "./payment";
import { answerLimitError, callBound, cutShortCost, meteredCost, type PricedModel, type Usage } from "./pricing";
import { Upstream, meterStream, responseHeaders, type UpstreamOptions } from "./proxy";
import { contractRefusal, gatewayRefusal, type Refusal } from "./refusals";
import { corsPolicy, isCorsHeader, type CorsOptions } from "./cors";
import { logsDebug, silentLogger, type Logger } from "./log";
import { LaneRaises } from "./laneRaises";
import { HoldReleases } from "./releases";
import { settledBatchHandler } from "./settledBatches";

/** Everything a gateway needs. */
export interface GatewayOptions {
  /** The model server, e.g. `http://127.0.0.1:8000` (a path prefix such as `/v1` is not needed: clients send `/v1/...`). */
  upstream: string;
  upstreamOptions?: UpstreamOptions;
  /** Preflight deployment and provider. */
  chainId: bigint;
  contract: string;
  provider: string;
  /** The token prices are in. */
  token: string;
  /** Models and their prices (`priceTable`). */
  models: Map<string, PricedModel>;
  preflighter: Preflighter;
  store: ReservationStore;
  settlement: SettlementQueue;
  /** Metered: unpaid amount a lane may run up before new work is refused. */
  creditLimit: bigint;
  /** Metered: what the first voucher accepted on a lane must add over its total (default: the model's `holdPerCall`, at least 1). */
  openAmount?: bigint;
  /** Longest validity a signed request may ask for, in seconds (default 600). */
  maxTimeoutSeconds?: number;
  /**
   * Shortest validity a signed request may have, in seconds (default: the settlement queue's
   * longest wait plus 60 s to send, retry and mine it): a request that expires before its batch
   * reaches the chain is skipped there as Expired, and its call would be served for nothing.
   */
  minTimeoutSeconds?: number;
  /** Largest request body, in bytes (default 1 MiB). */
  maxBodyBytes?: number;
  /** After the chain shows a settlement, keep its funds held this much longer, so that every replica has followed it (default 5,000 ms). */
  releaseGraceMs?: number;
  /** `false` serves without asking for payment (a plain proxy: for measuring, or free models). */
  payment?: boolean;
  /** Browser pages of these origins may call the gateway (CORS; `cors.ts`). Default: none (same-origin only). */
  cors?: CorsOptions;
  logger?: Logger;
  /** Unix seconds (default: the wall clock). */
  clock?: () => bigint;
}

export interface Gateway {
  /** The request handler, for `http.createServer(gateway.handler)` or an existing server's routing. */
  handler: (req: IncomingMessage, res: ServerResponse) => void;
  readonly metrics: GatewayMetrics;
  /** Stops taking paid calls, settles everything queued, waits for the releases, closes the upstream pool and the store. */
  close(): Promise<SettlementBatch[]>;
}

const PAID_ROUTES = new Set(["/v1/chat/completions", "/v1/completions"]);
const FREE_ROUTES = new Set(["/v1/models"]);
/** The contract's reason for each way a reservation can fail. */
const RESERVATION_REASON = { "nonce-used": Reason.NonceUsed, "insufficient-balance": Reason.InsufficientBalance, "budget-exceeded": Reason.BudgetExceeded } as const;
/** Time to send, retry and mine a batch after it leaves the queue. */
const SEND_MARGIN_SECONDS = 60;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Builds a gateway.
 * @example
 * const gateway = createGateway({ upstream: "http://127.0.0.1:8000", chainId, contract, provider, token, models, preflighter, store, settlement, creditLimit: 100_000n });
 * http.createServer(gateway.handler).listen(8402, "127.0.0.1");
 */
export function createGateway(options: GatewayOptions): Gateway {
  const upstream = new Upstream(options.upstream, options.upstreamOptions);
  const metrics = new GatewayMetrics();
  const log = options.logger ?? silentLogger;
  // Whether the logger keeps debug lines (asked once: the accepted path must not build them for nothing).
  const debug = logsDebug(log);
  const clock = options.clock ?? (() => BigInt(Math.floor(Date.now() / 1000)));
  const network = caip2(options.chainId);
  const token = options.token.toLowerCase();
  const maxTimeoutSeconds = options.maxTimeoutSeconds ?? 600;
  const maxBodyBytes = options.maxBodyBytes ?? 1 << 20;
  const releaseGraceMs = options.releaseGraceMs ?? 5_000;
  const paymentOn = options.payment !== false;
  const minTimeoutSeconds = options.minTimeoutSeconds ?? Math.ceil(options.settlement.maxWaitMs / 1000) + SEND_MARGIN_SECONDS;
  // The paying fetch signs for min(maxTimeoutSeconds, 300) s: a minimum above that refuses every request.
  if (paymentOn && minTimeoutSeconds > Math.min(maxTimeoutSeconds, MAX_SIGNED_TIMEOUT_SECONDS)) {
    throw new PreflightSdkError("INVALID_OPTION", `a request must live at least ${minTimeoutSeconds} s to be settled (the settlement queue waits up to ${options.settlement.maxWaitMs} ms), but clients sign for at most ${Math.min(maxTimeoutSeconds, MAX_SIGNED_TIMEOUT_SECONDS)} s: settle more often (--batch-age-ms)`);
  }
  const cors = options.cors ? corsPolicy(options.cors) : undefined;
  // With a policy of its own, the gateway's CORS headers replace the model server's.
  const dropUpstream = cors ? isCorsHeader : undefined;
  const releases = new HoldReleases(options.store, options.preflighter, releaseGraceMs, (e) => log("error", "release-failed", { error: String(e) }));
  let closing = false;
  let inFlight = 0;
  let idle: (() => void) | undefined;

  // A delegate's lane raises, and the grant holds a claim of their lane left uncharged while they ran.
  const forgetLaneGrant = (lane: string): void => laneRaises.forget(lane, () => options.store.forgetLaneGrant(lane), (e) => log("error", "release-failed", { error: String(e) }));
  const laneRaises = new LaneRaises((lane, payer, holds, forget) => {
    releases.release(holds.map(({ pool, amount }) => ({ payer, pool, amount })), undefined, closing);
    if (forget) forgetLaneGrant(lane);
  });
  options.settlement.subscribe(settledBatchHandler({ laneRaises, forgetLaneGrant, settlement: options.settlement, metrics, log, releases, closing: () => closing }));

  function requirementsFor(model: PricedModel, url: string, lane?: LaneState): PaymentRequirements[] {
    const base = { network, asset: options.token, payTo: options.provider, maxTimeoutSeconds };
    const extra = { contract: options.contract, name: "Preflight", version: "1", model: model.name, modelId: model.id };
    const accepts: PaymentRequirements[] = [];
    if (model.perRequest !== undefined) accepts.push({ ...base, scheme: REQUEST_SCHEME, amount: model.perRequest.toString(), extra });
    if (model.perOutputToken !== undefined) {
      const due = lane && BigInt(lane.owed) > BigInt(lane.covered) ? BigInt(lane.owed) - BigInt(lane.covered) : 0n;
      accepts.push({
        ...base,
        scheme: LANE_SCHEME,
        amount: due.toString(),
        extra: {
          ...extra,
          pricePerInputToken: (model.perInputToken ?? 0n).toString(),
          pricePerOutputToken: model.perOutputToken.toString(),
          creditLimit: options.creditLimit.toString(),
          openAmount: openAmountOf(model).toString(),
          lane,
        },
      });
    }
    void url;
    return accepts;
  }

  function openAmountOf(model: PricedModel): bigint {
    const open = options.openAmount ?? model.holdPerCall;
    return open > 0n ? open : 1n;
  }

  // The accepted path's metrics, labelled once (prom-client hashes the labels on every call otherwise).
  const acceptedMetrics = new Map<string, { latency: { observe(v: number): void }; decision: { inc(): void } }>();
  function accepted(scheme: string, started: bigint, payer: string, amount: bigint): void {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    let m = acceptedMetrics.get(scheme);
    if (!m) acceptedMetrics.set(scheme, (m = { latency: metrics.preflightSeconds.labels(scheme), decision: metrics.decisions.labels(scheme, "Settled") }));
    m.latency.observe(seconds);
    m.decision.inc();
    if (debug) log("debug", "accepted", { scheme, payer, amount, preflightUs: Math.round(seconds * 1e6) });
  }

  function refuse(res: ServerResponse, req: IncomingMessage, model: PricedModel, refusal: Refusal, scheme: string, lane?: LaneState): void {
    metrics.decisions.inc({ scheme, reason: refusal.name });
    log("info", "refused", { scheme, reason: refusal.name, code: refusal.code, status: refusal.status });
    const body: PaymentRequired & { message: string } = {
      x402Version: X402_VERSION,
      error: refusal.message,
      message: refusal.message,
      reason: refusal.code !== undefined || refusal.name !== "PaymentRequired" ? { code: refusal.code ?? -1, name: refusal.name } : undefined,
      resource: { url: req.url ?? "", description: `${model.name} inference`, mimeType: "application/json" },
      accepts: requirementsFor(model, req.url ?? "", lane),
    };
    const json = JSON.stringify(body);
    res.writeHead(refusal.status, { "content-type": "application/json", [PAYMENT_REQUIRED_HEADER]: encodeHeader(body), "content-length": Buffer.byteLength(json) });
    res.end(json);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (cors?.apply(req, res)) return; // a preflight, answered
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    if (req.method === "GET" && path === "/healthz") return sendJson(res, closing ? 503 : 200, { status: closing ? "closing" : "ok", queued: options.settlement.queuedCount, settling: options.settlement.settlingCount });
    if (req.method === "GET" && path === "/metrics") {
      metrics.queuedAmount.set(Number(options.settlement.queuedAmount));
      const text = await metrics.registry.metrics();
      res.writeHead(200, { "content-type": metrics.registry.contentType });
      return void res.end(text);
    }
    if (FREE_ROUTES.has(path)) return void (await forward(req, res, await readBody(req, maxBodyBytes)));
    if (req.method !== "POST" || !PAID_ROUTES.has(path)) throw new HttpError(404, `no route for ${req.method ?? "?"} ${path}: the gateway serves POST /v1/chat/completions, POST /v1/completions and GET /v1/models`);
    const body = await readBody(req, maxBodyBytes);
    if (!paymentOn) return void (await forward(req, res, body));
    if (closing) throw new HttpError(503, "the gateway is shutting down");
    const started = process.hrtime.bigint();
    let parsed: { model?: unknown; stream?: unknown; stream_options?: unknown };
    try {
      parsed = JSON.parse(Buffer.from(body).toString("utf8")) as typeof parsed;
    } catch {
      throw new HttpError(400, "the request body must be JSON");
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new HttpError(400, "the request body must be a JSON object");
    // Only a boolean decides how the answer is metered: the model server may read `1` or "true" as a stream too.
    if (parsed.stream !== undefined && typeof parsed.stream !== "boolean") throw new HttpError(400, "stream must be true or false");
    const model = typeof parsed.model === "string" ? options.models.get(parsed.model) : undefined;
    if (!model) throw new HttpError(404, `model ${JSON.stringify(parsed.model)} is not served here; GET /v1/models lists the models`);
    const header = req.headers["payment-signature"];
    if (typeof header !== "string") return refuse(res, req, model, gatewayRefusal("PaymentRequired", `${model.name} requires payment: sign one of the accepted payments and send it in the ${"PAYMENT-SIGNATURE"} header`), "none");
    const payment = parsePayment(header);
    if (payment.scheme === undefined) return refuse(res, req, model, gatewayRefusal("MalformedPayment", payment.error), "none");
    const now = clock();
    // Admitted: a shutdown waits for this call (and queues it) before it settles. A client still
    // sending its body is not waited for: it would hold the settlement of every call until it gave up.
    inFlight++;
    try {
      if (payment.scheme === REQUEST_SCHEME) return await paidByRequest(req, res, body, model, payment.request, now, started);
      return await paidByLane(req, res, body, parsed, model, payment.voucher, now, started);
    } finally {
      if (--inFlight === 0) idle?.();
    }
  }

  async function paidByRequest(req: IncomingMessage, res: ServerResponse, body: Uint8Array, model: PricedModel, item: SignedRequest, now: bigint, started: bigint): Promise<void> {
    const scheme = REQUEST_SCHEME;
    if (model.perRequest === undefined) return refuse(res, req, model, gatewayRefusal("WrongScheme", `${model.name} is metered: pay with a ${LANE_SCHEME} voucher`), scheme);
    if (item.token.toLowerCase() !== token || item.model.toLowerCase() !== model.id.toLowerCase() || item.price < model.perRequest) {
      return refuse(res, req, model, gatewayRefusal("TermsMismatch", `the request must be for ${model.name} in token ${options.token} at a price of at least ${model.perRequest}`), scheme);
    }
    if (item.deadline > now + BigInt(maxTimeoutSeconds)) return refuse(res, req, model, gatewayRefusal("TermsMismatch", `the deadline may be at most ${maxTimeoutSeconds} s ahead`), scheme);
    if (item.deadline < now + BigInt(minTimeoutSeconds)) {
      return refuse(res, req, model, gatewayRefusal("TermsMismatch", `the deadline must be at least ${minTimeoutSeconds} s ahead, so that the request can be settled before it expires`), scheme);
    }
    if ("0x" + toHex(keccak256Bytes(body)) !== item.inputHash.toLowerCase()) {
      return refuse(res, req, model, gatewayRefusal("InputMismatch", "inputHash is not the keccak-256 of this request's body: the payment was signed for another input"), scheme);
    }
    const pending = options.preflighter.checkRequest(item, now);
    const decision = pending instanceof Promise ? await pending : pending;
    if (!decision.accepted) return refuse(res, req, model, contractRefusal(decision.reason), scheme);
    // A delegate's spend is held too: its grant's budget bounds the calls in flight, not each call alone.
    const reserved = await options.store.reserveRequest(item.payer, item.token, item.nonce, item.price, decision.balance, Number(item.deadline - now) + 60, decision.grant);
    if (reserved !== "reserved") return refuse(res, req, model, contractRefusal(RESERVATION_REASON[reserved]), scheme);
    accepted(scheme, started, item.payer, item.price);
    const receipt: PaymentResponse = { success: true, transaction: "", network, payer: item.payer, scheme, amount: item.price.toString() };
    // Served once the model server's answer starts on its way to the client: a client that hangs up
    // before the end of a stream still got the answer (and must not get its payment back to replay).
    let served = false;
    try {
      await forward(req, res, body, { [PAYMENT_RESPONSE_HEADER]: encodeHeader(receipt) }, { onAnswered: () => (served = true) });
    } finally {
      if (served) {
        options.settlement.enqueueRequest(item, item.price, decision.grant?.pool);
      } else {
        // Not served (the model server refused or failed): the payment is not taken and its nonce is free again.
        await options.store.cancelRequest(item.payer, item.token, item.nonce, item.price, decision.grant?.pool);
      }
    }
  }

  async function paidByLane(
    req: IncomingMessage,
    res: ServerResponse,
    body: Uint8Array,
    parsed: { stream?: unknown; stream_options?: unknown; max_tokens?: unknown; max_completion_tokens?: unknown; n?: unknown },
    model: PricedModel,
    voucher: SignedLaneVoucher,
    now: bigint,
    started: bigint,
  ): Promise<void> {
    const scheme = LANE_SCHEME;
    if (model.perOutputToken === undefined) return refuse(res, req, model, gatewayRefusal("WrongScheme", `${model.name} has a fixed price: pay with a ${REQUEST_SCHEME} request`), scheme);
    // Before anything is raised or held: a limit the gateway cannot read is no bound.
    const limitError = answerLimitError(parsed);
    if (limitError) throw new HttpError(400, limitError);
    if (voucher.token.toLowerCase() !== token || voucher.model.toLowerCase() !== model.id.toLowerCase()) {
      return refuse(res, req, model, gatewayRefusal("TermsMismatch", `the voucher must be for ${model.name} in token ${options.token}`), scheme);
    }
    const laneKey = laneKeyOf(voucher.payer, voucher.token);
    let totals = await options.store.lane(laneKey);
    // What the client should sign over: the store's totals, lifted to what the chain already claimed.
    const laneState = (t: LaneTotals, claimed = 0n): LaneState => ({ owed: (t.owed > claimed ? t.owed : claimed).toString(), covered: (t.covered > claimed ? t.covered : claimed).toString() });
    let raised = false;
    if (voucher.cumulativeAmount > totals.covered) {
      const pending = options.preflighter.checkLaneVoucher(voucher, now);
      const decision = pending instanceof Promise ? await pending : pending;
      const claimed = decision.claimed ?? 0n;
      const base = totals.owed > claimed ? totals.owed : claimed;
      if (totals.signer === "" && voucher.cumulativeAmount < base + openAmountOf(model)) {
        return refuse(res, req, model, gatewayRefusal("LaneNotOpen", `the lane's first voucher here must add at least ${openAmountOf(model)} to its total of ${base}: sign one for ${base + openAmountOf(model)}`), scheme, laneState(totals, claimed));
      }
      if (!decision.accepted) return refuse(res, req, model, contractRefusal(decision.reason), scheme, laneState(totals, claimed));
      // A delegate's raise is also held in its grant's pool, with its requests in flight.
      // Queued in the same step as the raise returns, with any grant holds it carried (laneRaises.ts).
      const cover = await laneRaises.run(
        laneKey,
        voucher.payer,
        () => options.store.raiseCover(laneKey, voucher.payer, laneFundsPool(voucher.token), voucher.cumulativeAmount, claimed, decision.balance, decision.signer ?? "", decision.grant),
        (raisedCover, carried) => options.settlement.enqueueLaneVoucher(voucher, raisedCover.held, decision.grant && { pool: decision.grant.pool, amount: raisedCover.grantHeld }, carried),
      );
      if (cover.status === "insufficient-balance") return refuse(res, req, model, contractRefusal(Reason.InsufficientBalance), scheme, laneState(totals, claimed));
      if (cover.status === "budget-exceeded") return refuse(res, req, model, contractRefusal(Reason.BudgetExceeded), scheme, laneState(totals, claimed));
      raised = cover.status === "raised";
      totals = await options.store.lane(laneKey);
    }
    if (!raised) {
      // A voucher that adds nothing still proves who is calling: it must be signed by the key whose
      // voucher (checked with the contract's rules) last raised this lane.
      if (totals.signer === "") return refuse(res, req, model, gatewayRefusal("LaneNotOpen", `the lane's first voucher here must add at least ${openAmountOf(model)} to its total`), scheme, laneState(totals));
      const pendingSigner = options.preflighter.laneVoucherSigner(voucher, now);
      const { signer, reason } = pendingSigner instanceof Promise ? await pendingSigner : pendingSigner;
      if (!signer || signer !== totals.signer) return refuse(res, req, model, gatewayRefusal("WrongLaneSigner", "the voucher is not signed by the key that opened this lane", 403), scheme, laneState(totals));
      // A delegate's grant still bounds what it may use the lane for (model, provider, expiry, revocation).
      if (reason !== Reason.Settled) return refuse(res, req, model, contractRefusal(reason), scheme, laneState(totals));
    }
    // Held for an upper bound of this call's cost (its body, its answer limit), not a flat amount: a
    // very long prompt or answer must fit the lane's cover and credit limit before it runs. A
    // request without an answer limit is forwarded with the one its hold covers.
    const bound = callBound(model, parsed, body.length);
    const hold = bound.hold;
    const limited = bound.maxTokens === undefined ? parsed : { ...parsed, max_tokens: bound.maxTokens };
    const admitted = await options.store.admit(laneKey, hold, options.creditLimit);
    if (!admitted.admitted) {
      const t = admitted.totals;
      return refuse(res, req, model, gatewayRefusal("CreditLimit", `the lane owes ${t.owed - t.covered} unpaid (${t.held} held for calls in flight) against a credit limit of ${options.creditLimit}: send a voucher for ${t.owed}`), scheme, laneState(t));
    }
    accepted(scheme, started, voucher.payer, voucher.cumulativeAmount);
    let charged = false;
    let answered = false;
    const progress = { events: 0 }; // content events a stream has passed on so far
    // Usage the model server did not report (no JSON, no `usage`) costs the call's hold: unmetered is not free.
    const charge = async (usage: Usage | undefined): Promise<PaymentResponse> => {
      const cost = usage ? meteredCost(model, usage) : hold;
      charged = true;
      const after = await options.store.charge(laneKey, hold, cost);
      return { success: true, transaction: "", network, payer: voucher.payer, scheme, amount: cost.toString(), lane: laneState(after) };
    };
    try {
      if (parsed.stream === true) {
        // Ask the model server for the token counts in the stream's last event.
        const forwarded = Buffer.from(JSON.stringify({ ...limited, stream_options: { ...(parsed.stream_options as object | undefined), include_usage: true } }));
        await forward(req, res, forwarded, {}, { meter: async (usage) => ({ [STREAM_PAYMENT_FIELD]: encodeHeader(await charge(usage)) }), onAnswered: () => (answered = true), progress });
      } else {
        await forwardMetered(req, res, limited === parsed ? body : Buffer.from(JSON.stringify(limited)), charge);
      }
    } finally {
      // A stream cut short after it started (the client hung up, the model server broke off) never
      // reached its usage event: it costs its prompt and what it passed on (cutShortCost).
      if (!charged) await options.store.charge(laneKey, hold, answered ? cutShortCost(model, hold, body.length, progress.events) : 0n);
    }
  }

  /**
   * Forwards to the model server and streams its answer back. When the model server answered (below
   * 400), `onAnswered` runs just before the answer is written: the call counts as served from then
   * on, even if the client hangs up before its end. With `meter`, an SSE answer is metered, and
   * `progress.events` counts its content events as they pass.
   */
  async function forward(
    req: IncomingMessage,
    res: ServerResponse,
    body: Uint8Array,
    extraHeaders: Record<string, string> = {},
    { meter, onAnswered, progress }: { meter?: (usage: Usage) => Promise<Record<string, unknown>>; onAnswered?: () => void; progress?: { events: number } } = {},
  ): Promise<void> {
    const t0 = process.hrtime.bigint();
    const answer = await upstream.request(req.method ?? "GET", req.url ?? "/", req.headers, body);
    metrics.upstreamSeconds.observe(Number(process.hrtime.bigint() - t0) / 1e9);
    // Paid only for an answer: the model server's refusals (4xx: a bad request, its rate limit, its
    // key) and failures (5xx) are not charged, as in the metered path (forwardMetered).
    const served = answer.statusCode < 400;
    const headers = responseHeaders(answer.headers, dropUpstream);
    const isStream = String(answer.headers["content-type"] ?? "").includes("text/event-stream");
    const out = served ? { ...headers, ...extraHeaders } : headers;
    if (!isStream) {
      // A whole answer: one write with its length (cheaper than a stream pipeline per call).
      const whole = Buffer.from(await answer.body.arrayBuffer());
      if (served) onAnswered?.();
      res.writeHead(answer.statusCode, { ...out, "content-length": whole.length });
      res.end(whole);
      return;
    }
    if (served) onAnswered?.();
    res.writeHead(answer.statusCode, out);
    if (meter && served) await pipeline(answer.body, meterStream((usage) => meter(usage), progress), res);
    else await pipeline(answer.body, res);
  }

  /** A non-streamed metered answer: read it, charge its usage, then answer with the payment response header. */
  async function forwardMetered(req: IncomingMessage, res: ServerResponse, body: Uint8Array, charge: (usage: Usage | undefined) => Promise<PaymentResponse>): Promise<void> {
    const answer = await upstream.request(req.method ?? "POST", req.url ?? "/", req.headers, body);
    const text = await answer.body.text();
    const headers = responseHeaders(answer.headers, dropUpstream);
    if (answer.statusCode >= 400) {
      res.writeHead(answer.statusCode, headers);
      return void res.end(text);
    }
    let usage: Usage | undefined;
    try {
      const reported = (JSON.parse(text) as { usage?: unknown } | null)?.usage;
      if (typeof reported === "object" && reported !== null) usage = reported as Usage;
    } catch {
      // not JSON: no usage to meter (the charge falls back to the hold)
    }
    const receipt = await charge(usage);
    res.writeHead(answer.statusCode, { ...headers, [PAYMENT_RESPONSE_HEADER]: encodeHeader(receipt), "content-length": Buffer.byteLength(text) });
    res.end(text);
  }

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    handle(req, res)
      .catch((error: unknown) => {
      const status = error instanceof HttpError ? error.status : 502;
      const message = error instanceof HttpError ? error.message : `the model server could not be reached: ${(error as Error)?.message ?? String(error)}`;
      if (!(error instanceof HttpError)) log("warn", "upstream-error", { error: message });
      if (res.headersSent) return void res.destroy();
      sendJson(res, status, { error: { message, type: status === 502 ? "upstream_error" : "invalid_request_error" } });
      });
  };

  let closed: Promise<SettlementBatch[]> | undefined;
  const close = async (): Promise<SettlementBatch[]> => {
    closing = true;
    // Calls already admitted finish (and are queued) before the last settlement.
    if (inFlight > 0) await new Promise<void>((resolve) => (idle = resolve));
    const batches = await options.settlement.close();
    await releases.settled();
    await laneRaises.close();
    options.preflighter.close();
    await upstream.close();
    await options.store.close();
    log("info", "closed", { batches: batches.length });
    return batches;
  };
  return { handler, metrics, close: () => (closed ??= close()) };
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const json = JSON.stringify(value);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(json) });
  res.end(json);
}

/** The whole request body (one chunk in the common case), refusing more than `limit` bytes. */
function readBody(req: IncomingMessage, limit: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners("data");
        req.resume();
        return reject(new HttpError(413, `the request body is larger than ${limit} bytes`));
      }
      chunks.push(chunk);
    });
    req.once("end", () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
    req.once("error", reject);
  });
}
