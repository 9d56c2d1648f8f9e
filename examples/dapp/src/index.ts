import { id, type Signer } from "ethers";
import { createSignedRequest, getDomain, modelId, NonceAllocator, type SignedRequest } from "@preflight/sdk";
import type { Preflight } from "@preflight/sdk/typechain";

/** dApp side: a session key (granted by the payer) signs one inference request for `provider`. */
export async function signInferenceRequest(preflight: Preflight, sessionKey: Signer, payer: string, provider: string, token: string, prompt: string): Promise<SignedRequest> {
  const domain = await getDomain(preflight); // { chainId, verifyingContract }
  const nonces = await NonceAllocator.create(preflight, payer, token); // fills the payer's cheapest bitmap word
  const latest = await preflight.runner?.provider?.getBlock("latest"); // chain time, not the local clock
  const now = BigInt(latest?.timestamp ?? Math.floor(Date.now() / 1000));
  return createSignedRequest(sessionKey, domain, {
    payer,
    provider,
    token,
    model: modelId("llama-3.1-70b"),
    price: 20_000n, // 0.02 USDC (6 decimals)
    nonce: await nonces.next(),
    deadline: now + 600n,
    inputHash: id(prompt), // commitment to the input
  });
}
