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

/**
 * What a metered call is held for while it runs: an upper bound of its cost where the request gives
 * one. The prompt costs at most a token per byte of the request body (a token is at least one byte),
 * and the answer at most `max_tokens` (or `max_completion_tokens`) times `n` tokens; without such a
 * limit the answer is held for the model's `holdPerCall`. A call is admitted only if this fits the
 * lane's cover and credit limit, so one call cannot run up more than that unnoticed.
 * @example
 * callHold(model, { max_tokens: 256 }, body.length);
 */
export function callHold(model: PricedModel, request: { max_tokens?: unknown; max_completion_tokens?: unknown; n?: unknown }, bodyBytes: number): bigint {
  const count = (v: unknown): bigint | undefined => (typeof v === "number" && Number.isSafeInteger(v) && v >= 0 ? BigInt(v) : undefined);
  const prompt = BigInt(bodyBytes) * (model.perInputToken ?? 0n);
  const maxTokens = count(request.max_completion_tokens) ?? count(request.max_tokens);
  const answers = count(request.n) ?? 1n;
  const answer = maxTokens !== undefined ? maxTokens * (answers > 0n ? answers : 1n) * (model.perOutputToken ?? 0n) : model.holdPerCall;
  return prompt + answer;
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
