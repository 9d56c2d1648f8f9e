/**
 * A `Preflighter` that asks the chain instead of deciding in-process: every item is simulated with
 * one JSON-RPC `eth_call` of `settleBatch` / `claimLane` as the provider, which is what an x402
 * facilitator's verify step does. The benchmark runs the gateway with it to measure what the
 * in-process preflight saves; it is correct, only slow (one round trip per call).
 */
import { VoidSigner, type Provider } from "ethers";
import { DigestComputer } from "../digest";
import { hexToBytes, publicKeyToAddress, recoverSignature, SignatureStatus } from "../crypto";
import { Reason, type SignedLaneVoucher, type SignedRequest } from "@preflight/sdk";
import { Preflight__factory, type Preflight } from "@preflight/sdk/typechain";
import type { PreflightDecision, Preflighter } from "./interfaces";

// The simulation decides funds on its own; the store then only guards nonces (no shared balance view).
const UNBOUNDED = (1n << 255n) - 1n;

/**
 * @example
 * const preflighter = await RpcSimulationPreflighter.create(rpc, contractAddress, providerAddress);
 */
export class RpcSimulationPreflighter implements Preflighter {
  private constructor(
    private readonly contract: Preflight,
    private readonly provider: string,
    private readonly digests: DigestComputer,
  ) {}

  static async create(rpc: Provider, contract: string, provider: string): Promise<RpcSimulationPreflighter> {
    const { chainId } = await rpc.getNetwork();
    return new RpcSimulationPreflighter(Preflight__factory.connect(contract, new VoidSigner(provider, rpc)), provider.toLowerCase(), new DigestComputer({ chainId, verifyingContract: contract }));
  }

  async checkRequest(item: SignedRequest): Promise<PreflightDecision> {
    const [reason] = await this.contract.settleBatch.staticCall(item.token, [item]);
    const r = Number(reason) as Reason;
    return { accepted: r === Reason.Settled, reason: r, amount: item.price, balance: UNBOUNDED };
  }

  async checkLaneVoucher(item: SignedLaneVoucher): Promise<PreflightDecision> {
    const { signer } = this.laneVoucherSigner(item);
    try {
      // claimLane reverts on any refusal, with the error named after the contract's reason.
      const amount = await this.contract.claimLane.staticCall(item);
      return { accepted: true, reason: Reason.Settled, amount, signer, balance: UNBOUNDED, claimed: item.cumulativeAmount - amount };
    } catch (error) {
      const data = (error as { data?: string }).data;
      const name = data ? this.contract.interface.parseError(data)?.name : undefined;
      const code = name !== undefined && name in Reason ? (Reason[name as keyof typeof Reason] as Reason) : Reason.InvalidSigner;
      return { accepted: false, reason: code, amount: 0n, signer, balance: UNBOUNDED };
    }
  }

  /** The signer only: this comparison mode (an x402 facilitator's) does not follow grants between raises. */
  laneVoucherSigner(item: SignedLaneVoucher): { signer?: string; reason: Reason } {
    const recovered = recoverSignature(this.digests.laneVoucher(item, this.provider), hexToBytes(item.signature));
    return { signer: recovered.status === SignatureStatus.Ok && recovered.publicKey ? publicKeyToAddress(recovered.publicKey) : undefined, reason: Reason.Settled };
  }

  async waitForBlock(): Promise<void> {}

  close(): void {}
}
