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
