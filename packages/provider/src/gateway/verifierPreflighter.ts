/**
 * The `Preflighter` over today's `PreflightVerifier`: the contract's rules from an event-synced
 * cache, no RPC per request. The verifier is asked never to reserve (`reserve: false`): the
 * gateway's `ReservationStore` holds what was accepted, shared across replicas.
 */
import { PreflightVerifier, type Decision } from "../verifier";
import { Reason, type SignedLaneVoucher, type SignedRequest } from "@preflight/sdk";
import type { Preflight } from "@preflight/sdk/typechain";
import type { PreflightDecision, Preflighter } from "./interfaces";
import { grantPool } from "./memoryStore";

export interface VerifierPreflighterOptions {
  /** The Preflight contract, connected to an RPC provider. */
  contract: Preflight;
  /** The provider address every signature must name. */
  provider: string;
  /** First block to follow from (the deployment block). */
  fromBlock?: number;
  /** Poll the chain this often (default 1,000 ms). */
  pollMs?: number;
  /** Blocks of depth to wait for before applying (default 0). */
  confirmations?: number;
  /** Called when a poll fails (the next poll retries). */
  onSyncError?: (error: unknown) => void;
}

/**
 * @example
 * const preflighter = await VerifierPreflighter.create({ contract: preflight, provider: providerAddress, fromBlock });
 * const decision = preflighter.checkRequest(signedRequest, BigInt(Math.floor(Date.now() / 1000)));
 */
export class VerifierPreflighter implements Preflighter {
  private constructor(
    /** The underlying verifier (for its views: balances, grants, synced block). */
    readonly verifier: PreflightVerifier,
    private readonly pollMs: number,
  ) {}

  static async create(options: VerifierPreflighterOptions): Promise<VerifierPreflighter> {
    const verifier = await PreflightVerifier.create({
      contract: options.contract,
      provider: options.provider,
      fromBlock: options.fromBlock,
      confirmations: options.confirmations,
    });
    const pollMs = options.pollMs ?? 1_000;
    verifier.start(pollMs, options.onSyncError);
    return new VerifierPreflighter(verifier, pollMs);
  }

  /** Decided in-process, without a promise, unless the refusal may be cured by a newer block (then one sync first). */
  checkRequest(item: SignedRequest, now: bigint): PreflightDecision | Promise<PreflightDecision> {
    const options = { at: now, reserve: false };
    const d = this.verifier.verify(item, options);
    if (!this.mayBeNewer(d.reason)) return this.requestDecision(item, d);
    return this.verifier.sync().then(() => this.requestDecision(item, this.verifier.verify(item, options)));
  }

  private requestDecision(item: SignedRequest, d: Decision): PreflightDecision {
    // The rules' spendable balance (less a withdrawal that can execute before the settlement), not the
    // raw one: the store's holds across calls are checked against it.
    return { accepted: d.accepted, reason: d.reason, amount: d.amount, signer: d.signer, balance: d.spendable ?? 0n, grant: grantOf(item.token, d) };
  }

  async checkLaneVoucher(item: SignedLaneVoucher, now: bigint): Promise<PreflightDecision> {
    const options = { at: now, reserve: false };
    let d = this.verifier.verifyLaneVoucher(item, options);
    // A lane never seen (funded before the followed range) or an ERC-1271 payer: one chain read.
    if (d.needsChainRead || d.needsErc1271) d = await this.verifier.verifyLaneVoucherAsync(item, options);
    if (this.mayBeNewer(d.reason)) {
      await this.verifier.sync();
      d = await this.verifier.verifyLaneVoucherAsync(item, options);
    }
    const lane = this.verifier.laneOf(item.payer, item.token);
    return { accepted: d.accepted, reason: d.reason, amount: d.amount, signer: d.signer, balance: d.spendable ?? 0n, claimed: lane?.claimed, grant: grantOf(item.token, d) };
  }

  /**
   * A refusal that a block newer than the last poll may cure (a deposit, a lane funded, a grant just made): read
   * the chain once before refusing. Concurrent reads share one sync; accepted calls never wait.
   */
  private mayBeNewer(reason: Reason): boolean {
    return reason === Reason.InsufficientBalance || reason === Reason.InvalidSigner;
  }

  /** Without a promise, unless the grant it depends on is not in the cache (then one chain read). */
  laneVoucherSigner(item: SignedLaneVoucher, now: bigint): { signer?: string; reason: Reason } | Promise<{ signer?: string; reason: Reason }> {
    const d = this.verifier.laneVoucherSigner(item, { at: now });
    if (!d.needsChainRead) return { signer: d.signer, reason: d.reason };
    return this.verifier.laneVoucherSignerAsync(item, { at: now }).then((a) => ({ signer: a.signer, reason: a.reason }));
  }

  async waitForBlock(block: number): Promise<void> {
    while (this.verifier.syncedBlock < block) {
      await this.verifier.sync();
      if (this.verifier.syncedBlock < block) await new Promise((r) => setTimeout(r, Math.min(this.pollMs, 100)));
    }
  }

  close(): void {
    this.verifier.stop();
  }
}

/** A delegate's grant pool and what its grant may still spend, for the store to hold against (none for the payer). */
function grantOf(token: string, d: Decision): PreflightDecision["grant"] {
  return d.delegate !== undefined && d.grantRemaining !== undefined ? { pool: grantPool(token, d.delegate), remaining: d.grantRemaining } : undefined;
}
