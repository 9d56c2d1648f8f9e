/**
 * Reads chain state with the contract's view functions at a given block: what `verifyAsync` uses
 * for state the cache does not know, and what the follower uses to settle state its logs touch but
 * the cache does not know (after a reorg, or when following started late).
 */
import type { Preflight } from "@preflight/sdk/typechain";
import type { GrantFacts, LaneFacts, WithdrawalFacts } from "./types";

export interface AccountRead {
  balance: bigint;
  withdrawal: WithdrawalFacts;
}

export class StateReader {
  /**
   * @param withdrawalWindow the contract's WITHDRAWAL_WINDOW: a withdrawal or lane close lapses this
   * long after it matures (the views return only when it matures)
   */
  constructor(
    private readonly contract: Preflight,
    private readonly provider: string,
    private readonly withdrawalWindow: bigint,
  ) {}

  async account(payer: string, token: string, blockTag: number): Promise<AccountRead> {
    const [balance, pending] = await Promise.all([
      this.contract.balanceOf(payer, token, { blockTag }),
      this.contract.pendingWithdrawal(payer, token, { blockTag }),
    ]);
    const readyAt = pending.readyAt;
    return { balance, withdrawal: { amount: pending.amount, readyAt, expiresAt: readyAt === 0n ? 0n : readyAt + this.withdrawalWindow } };
  }

  word(payer: string, token: string, word: bigint, blockTag: number): Promise<bigint> {
    return this.contract.nonceBitmap(payer, token, word, { blockTag });
  }

  /** The grant's record and hot slot. Its models are not readable as a list: they are read one by one when needed. */
  async grant(payer: string, token: string, delegate: string, blockTag: number): Promise<GrantFacts> {
    const g = await this.contract.grantOf(payer, token, delegate, { blockTag });
    return {
      epoch: BigInt(g.epoch),
      expiry: BigInt(g.expiry),
      provider: g.provider.toLowerCase(),
      maxPrice: g.maxPrice,
      budget: g.budget,
      period: BigInt(g.period),
      periodEnd: BigInt(g.periodEnd),
      remaining: g.budget - g.spent,
      anyModel: g.anyModel,
      models: new Map(),
      modelsComplete: false,
    };
  }

  model(payer: string, token: string, delegate: string, model: string, blockTag: number): Promise<boolean> {
    return this.contract.isModelAllowed(payer, token, delegate, model, { blockTag });
  }

  channel(payer: string, token: string, channel: string, blockTag: number): Promise<bigint> {
    return this.contract.claimedOf(payer, this.provider, token, channel, { blockTag });
  }

  async lane(payer: string, token: string, blockTag: number): Promise<LaneFacts> {
    const l = await this.contract.laneOf(payer, this.provider, token, { blockTag });
    const readyAt = l.closeReadyAt;
    return { claimed: l.claimed, funds: l.funds, closeReadyAt: readyAt, closeExpiresAt: readyAt === 0n ? 0n : readyAt + this.withdrawalWindow };
  }
}
