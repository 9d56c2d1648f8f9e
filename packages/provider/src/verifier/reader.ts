/**
 * Reads chain state with the contract's view functions at a given block: what the follower uses to
 * settle what the logs leave open, and what `verifyAsync` uses for state the cache does not know.
 */
import type { Preflight } from "../../../../typechain-types";
import type { GrantFacts, WithdrawalFacts } from "./types";

export interface AccountRead {
  balance: bigint;
  withdrawal: WithdrawalFacts;
}

export class StateReader {
  constructor(
    private readonly contract: Preflight,
    private readonly provider: string,
  ) {}

  async account(payer: string, token: string, blockTag: number): Promise<AccountRead> {
    const [balance, pending] = await Promise.all([
      this.contract.balanceOf(payer, token, { blockTag }),
      this.contract.pendingWithdrawal(payer, token, { blockTag }),
    ]);
    return { balance, withdrawal: { amount: pending.amount, readyAt: pending.readyAt } };
  }

  word(payer: string, token: string, word: bigint, blockTag: number): Promise<bigint> {
    return this.contract.nonceBitmap(payer, token, word, { blockTag });
  }

  /**
   * The grant's slot. Its models are not readable as a list: `previous` (the cached grant of the
   * same epoch) keeps the models it knew; otherwise they are read one by one when needed (`model`).
   */
  async grant(payer: string, token: string, delegate: string, blockTag: number, previous?: GrantFacts): Promise<GrantFacts> {
    const g = await this.contract.grantOf(payer, token, delegate, { blockTag });
    const epoch = BigInt(g.epoch);
    const keep = previous !== undefined && previous.epoch === epoch;
    return {
      epoch,
      expiry: BigInt(g.expiry),
      provider: g.provider.toLowerCase(),
      maxPrice: g.maxPrice,
      budget: g.budget,
      period: BigInt(g.period),
      periodEnd: BigInt(g.periodEnd),
      spent: g.spent,
      anyModel: g.anyModel,
      models: keep ? previous.models : new Map(),
      modelsComplete: keep ? previous.modelsComplete : false,
    };
  }

  model(payer: string, token: string, delegate: string, model: string, blockTag: number): Promise<boolean> {
    return this.contract.isModelAllowed(payer, token, delegate, model, { blockTag });
  }

  channel(payer: string, token: string, channel: string, blockTag: number): Promise<bigint> {
    return this.contract.claimedOf(payer, this.provider, token, channel, { blockTag });
  }
}
