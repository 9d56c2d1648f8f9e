import type { Signer } from "ethers";
import { BatchSettler, PreflightVerifier, reasonName, type BatchResult, type Preflight, type SignedRequest } from "@preflight/provider";

/** Provider side: preflight every request off-chain, serve it, settle in batches. */
export async function startProvider(preflight: Preflight, signer: Signer, token: string, deployBlock: number) {
  const provider = await signer.getAddress();
  const verifier = await PreflightVerifier.create({ contract: preflight, provider, fromBlock: deployBlock });
  verifier.start(2_000); // follow the contract's events every 2 s
  const settler = new BatchSettler({ contract: preflight.connect(signer), token, maxBatchSize: 100, maxAgeMs: 30_000 });
  return {
    /** Called for each incoming request, before the model runs. */
    async handle(request: SignedRequest, prompt: string): Promise<string> {
      const decision = verifier.verify(request); // no RPC: signature, grant, nonce, balance
      if (!decision.accepted) throw new Error(`refused: ${reasonName(decision.reason)}`);
      void settler.add(request); // settled with the next batch
      return `completion for ${prompt.length} characters`;
    },
    async stop(): Promise<BatchResult[]> {
      verifier.stop();
      return settler.close(); // settle what is still queued
    },
  };
}
