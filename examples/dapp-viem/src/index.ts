import { getContract, type Address, type LocalAccount, type PublicClient } from "viem";
import { createSignedRequest, keccak256, modelId, NonceAllocator, type SignedRequest } from "@preflight/sdk";
import { preflightAbi } from "@preflight/sdk/abi";

/** dApp side on viem: a session key (granted by the payer) signs one inference request for `provider`. */
export async function signInferenceRequest(
  client: PublicClient, // any viem public client of the chain Preflight is on
  preflightAddress: Address, // e.g. getDeployment(chainId).address from "@preflight/sdk/deployments"
  sessionKey: LocalAccount, // e.g. privateKeyToAccount(key), or a WalletClient
  payer: Address,
  provider: Address,
  token: Address,
  prompt: string,
): Promise<SignedRequest> {
  const preflight = getContract({ address: preflightAddress, abi: preflightAbi, client }); // typed from the ABI
  const domain = { chainId: BigInt(await client.getChainId()), verifyingContract: preflightAddress };
  const nonces = await NonceAllocator.fromReader((word) => preflight.read.nonceBitmap([payer, token, word]));
  const { timestamp } = await client.getBlock(); // chain time, not the local clock
  return createSignedRequest(sessionKey, domain, {
    payer,
    provider,
    token,
    model: modelId("llama-3.1-70b"),
    price: 20_000n, // 0.02 USDC (6 decimals)
    nonce: await nonces.next(),
    deadline: timestamp + 600n,
    inputHash: keccak256(prompt), // commitment to the input
  }); // send it to the provider with the prompt, e.g. as JSON
}
