/**
 * dApp-side helpers: the domain of a deployment, model identifiers, and signing a request straight
 * into the shape the contract and the provider's verifier take.
 */
import { keccak256, type Hex } from "./hex";
import type { PreflightSigner } from "./signers";
import { signRequest, signVoucher, type PreflightDomain, type Request, type Voucher } from "./eip712";
import type { SignedRequest, SignedVoucher } from "./types";
import { PreflightSdkError } from "./errors";

/**
 * What `getDomain` needs of a contract object: an ethers `Contract` (typechain's `Preflight`, for
 * one) connected to a provider. viem users build the domain with `getDeploymentDomain` or `buildDomain`.
 */
export interface ConnectedContractLike {
  getAddress(): Promise<string>;
  readonly runner?: { readonly provider?: { getNetwork(): Promise<{ readonly chainId: bigint }> } | null } | null;
}

/**
 * The EIP-712 domain of a deployed Preflight (chain id from its provider).
 * @example
 * const domain = await getDomain(preflight);
 */
export async function getDomain(contract: ConnectedContractLike): Promise<PreflightDomain> {
  const network = await contract.runner?.provider?.getNetwork();
  if (!network) throw new PreflightSdkError("INVALID_OPTION", "the contract must be connected to a provider");
  return { chainId: network.chainId, verifyingContract: await contract.getAddress() };
}

/**
 * The bytes32 identifier of a model name (keccak-256 of its UTF-8 bytes).
 * @example
 * const model = modelId("llama-3.1-70b");
 */
export function modelId(name: string): Hex {
  return keccak256(name);
}

/**
 * Signs `request` (as the payer or a delegate) and returns the `SignedRequest` the provider verifies
 * and settles. `compact` (default true) gives a 64-byte EIP-2098 signature: 1 calldata word less.
 * @example
 * const signed = await createSignedRequest(sessionKey, domain, { payer, provider, token, model, price, nonce, deadline, inputHash });
 * await fetch(providerUrl, { method: "POST", body: JSON.stringify(signed, (_, v) => (typeof v === "bigint" ? v.toString() : v)) });
 */
export async function createSignedRequest(signer: PreflightSigner, domain: PreflightDomain, request: Request, compact = true): Promise<SignedRequest> {
  const signature = await signRequest(signer, domain, request, compact);
  const { payer, token, model, price, nonce, deadline, inputHash } = request;
  return { payer, token, model, price, nonce, deadline, inputHash, signature };
}

/**
 * Signs a cumulative voucher and returns the `SignedVoucher` the provider claims.
 * @example
 * const v = await createSignedVoucher(sessionKey, domain, { payer, provider, token, model, channel, cumulativeAmount: 5_000n });
 */
export async function createSignedVoucher(signer: PreflightSigner, domain: PreflightDomain, voucher: Voucher, compact = true): Promise<SignedVoucher> {
  const signature = await signVoucher(signer, domain, voucher, compact);
  const { payer, token, model, channel, cumulativeAmount } = voucher;
  return { payer, token, model, channel, cumulativeAmount, signature };
}
