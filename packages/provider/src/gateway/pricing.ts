/**
 * What each model costs: a fixed price per request, a price per token (metered on a lane), or both
 * (the client picks). Models not listed are refused.
 */
import { id } from "ethers";

/** A model's prices in the token's atomic units. */
export interface ModelPrice {
  /** Price of one call, paid by a signed request. */
  perRequest?: bigint;
  /** Metered: price per prompt token and per completion token, paid by vouchers on a lane. */
  perInputToken?: bigint;
  perOutputToken?: bigint;
}

/** A model as the gateway prices it. */
export interface PricedModel extends ModelPrice {
  name: string;
  /** keccak-256 of the name: the bytes32 the signatures carry. */
  id: string;
  /** Held on the lane while a metered call runs (default: 1,024 output tokens' worth). */
  holdPerCall: bigint;
}

/** Token counts as OpenAI-compatible servers report them. */
export interface Usage {
  prompt_tokens?: number;
  completion_tokens?: number;
}

/**
 * Indexes a price table by model name.
 * @example
 * const models = priceTable({ "llama-3.1-8b": { perRequest: 1_000n, perInputToken: 1n, perOutputToken: 3n } });
 */
export function priceTable(prices: Record<string, ModelPrice & { holdPerCall?: bigint }>): Map<string, PricedModel> {
  const table = new Map<string, PricedModel>();
  for (const [name, p] of Object.entries(prices)) {
    const metered = p.perInputToken !== undefined || p.perOutputToken !== undefined;
    if (p.perRequest === undefined && !metered) throw new Error(`model ${name}: give perRequest, or perInputToken/perOutputToken`);
    for (const [field, value] of Object.entries(p)) {
      if (value !== undefined && (typeof value !== "bigint" || value < 0n)) throw new Error(`model ${name}: ${field} must be a non-negative integer amount`);
    }
    const perOutputToken = p.perOutputToken ?? 0n;
    table.set(name, {
      name,
      id: id(name),
      perRequest: p.perRequest,
      perInputToken: metered ? (p.perInputToken ?? 0n) : undefined,
      perOutputToken: metered ? perOutputToken : undefined,
      holdPerCall: p.holdPerCall ?? perOutputToken * 1024n,
    });
  }
  return table;
}

/**
 * The metered cost of a response.
 * @example
 * meteredCost(model, { prompt_tokens: 12, completion_tokens: 100 }); // 12 * perInputToken + 100 * perOutputToken
 */
export function meteredCost(model: PricedModel, usage: Usage): bigint {
  const tokens = (n: number | undefined) => (Number.isSafeInteger(n) && (n as number) > 0 ? BigInt(n as number) : 0n);
  return tokens(usage.prompt_tokens) * (model.perInputToken ?? 0n) + tokens(usage.completion_tokens) * (model.perOutputToken ?? 0n);
}

/** A metered call's bound: what it is held for while it runs, and the answer limit that makes it one. */
export interface CallBound {
  /** Held while the call runs: an upper bound of its cost (given a model server that honours `max_tokens`). */
  hold: bigint;
  /**
   * Set when the request gave no answer limit: the `max_tokens` the gateway puts on the forwarded
   * request, the longest answer the model's `holdPerCall` covers (at least one token per answer).
   */
  maxTokens?: number;
}

/** A whole number of tokens as an OpenAI-style request gives it, or undefined. */
function tokenCount(v: unknown): bigint | undefined {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0 ? BigInt(v) : undefined;
}

/**
 * Why a metered request's answer limits cannot be used, or undefined when they can: `max_tokens`
 * and `max_completion_tokens` must be absent, null or whole numbers, and `n` a positive one. The
 * gateway refuses such a request (400) before it holds anything, rather than guess at its bound.
 */
export function answerLimitError(request: { max_tokens?: unknown; max_completion_tokens?: unknown; n?: unknown }): string | undefined {
  for (const field of ["max_tokens", "max_completion_tokens"] as const) {
    const v = request[field];
    if (v !== undefined && v !== null && tokenCount(v) === undefined) return `${field} must be a whole number of tokens`;
  }
  const n = request.n;
  if (n !== undefined && n !== null && !((tokenCount(n) ?? 0n) >= 1n)) return "n must be a whole number of at least 1";
  return undefined;
}

/**
 * What a metered call is held for while it runs: an upper bound of its cost. The prompt costs at
 * most a token per byte of the request body (a token is at least one byte), and the answer at most
 * its token limit times `n`. The limit is the larger of `max_tokens` and `max_completion_tokens`
 * (a model server may honour either). A request without one gets the limit the model's
 * `holdPerCall` covers, which the gateway sets as `max_tokens` on the forwarded request
 * (`maxTokens`): so every call's answer is bounded, not only the ones whose client set a limit. A
 * call is admitted only if its hold fits the lane's cover and credit limit. Call it on a request
 * `answerLimitError` accepts.
 * @example
 * callBound(model, { max_tokens: 256 }, body.length); // { hold: body.length * in + 256n * out }
 * callBound(model, {}, body.length); // { hold: ..., maxTokens: holdPerCall / out }
 */
export function callBound(model: PricedModel, request: { max_tokens?: unknown; max_completion_tokens?: unknown; n?: unknown }, bodyBytes: number): CallBound {
  const prompt = BigInt(bodyBytes) * (model.perInputToken ?? 0n);
  const perToken = model.perOutputToken ?? 0n;
  const answers = tokenCount(request.n) ?? 1n;
  const given = [tokenCount(request.max_tokens), tokenCount(request.max_completion_tokens)].filter((v): v is bigint => v !== undefined);
  if (given.length > 0) {
    const limit = given.reduce((a, b) => (a > b ? a : b));
    return { hold: prompt + limit * answers * perToken };
  }
  // Free answers need no limit; the model's hold still applies.
  if (perToken === 0n) return { hold: prompt + model.holdPerCall };
  let tokens = model.holdPerCall / (perToken * answers);
  if (tokens < 1n) tokens = 1n;
  if (tokens > BigInt(Number.MAX_SAFE_INTEGER)) tokens = BigInt(Number.MAX_SAFE_INTEGER);
  return { hold: prompt + tokens * answers * perToken, maxTokens: Number(tokens) };
}

/**
 * What a metered stream cut short before its usage event costs: the prompt's bound, plus what it
 * passed on (a token per content event) and at least the model's `holdPerCall`, never more than
 * the call was held for. A dropped stream is never cheaper than a finished one of the same length.
 */
export function cutShortCost(model: PricedModel, hold: bigint, bodyBytes: number, deliveredTokens: number): bigint {
  const delivered = meteredCost(model, { completion_tokens: deliveredTokens });
  const cost = BigInt(bodyBytes) * (model.perInputToken ?? 0n) + (delivered > model.holdPerCall ? delivered : model.holdPerCall);
  return cost < hold ? cost : hold;
}
