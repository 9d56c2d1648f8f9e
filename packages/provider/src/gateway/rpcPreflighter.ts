/**
 * A `Preflighter` that asks the chain instead of deciding in-process: every item is simulated with
 * one JSON-RPC `eth_call` of `settleBatch` / `claimVouchers` as the provider, which is what an x402
 * facilitator's verify step does. The benchmark runs the gateway with it to measure what the
 * in-process preflight saves; it is correct, only slow (one round trip per call).
 */
import { VoidSigner, type Provider } from "ethers";
import { DigestComputer } from "../digest";
import { hexToBytes, publicKeyToAddress, recoverSignature, SignatureStatus } from "../crypto";
import { Reason, type SignedRequest, type SignedVoucher } from "@preflight/sdk";
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

  async checkVoucher(item: SignedVoucher): Promise<PreflightDecision> {
    const [reason] = await this.contract.claimVouchers.staticCall(item.token, [item]);
    const r = Number(reason) as Reason;
    return { accepted: r === Reason.Settled, reason: r, amount: item.cumulativeAmount, signer: this.voucherSigner(item), balance: UNBOUNDED, claimed: 0n };
  }

  voucherSigner(item: SignedVoucher): string | undefined {
    const recovered = recoverSignature(this.digests.voucher(item, this.provider), hexToBytes(item.signature));
    return recovered.status === SignatureStatus.Ok && recovered.publicKey ? publicKeyToAddress(recovered.publicKey) : undefined;
  }

  async waitForBlock(): Promise<void> {}

  close(): void {}
}
