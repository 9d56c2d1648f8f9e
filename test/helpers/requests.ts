import { ethers } from "hardhat";
import type { Signer } from "ethers";
import { signRequest, signVoucher, type PreflightDomain, type Request, type SignedPackedItem, type Voucher } from "@preflight/sdk";
import type { SignedRequestStruct, SignedVoucherStruct } from "../../typechain-types/contracts/Preflight";

export const MODEL_A = ethers.id("model-a");
export const MODEL_B = ethers.id("model-b");

/** A request with sensible defaults; override any field. */
export async function makeRequest(
  fields: Pick<Request, "payer" | "provider" | "token"> & Partial<Request>,
): Promise<Request> {
  const latest = await ethers.provider.getBlock("latest");
  return {
    model: MODEL_A,
    price: 1_000n,
    nonce: 0n,
    deadline: BigInt(latest!.timestamp) + 3600n,
    inputHash: ethers.id("prompt"),
    ...fields,
  };
}

/** Signs `request` with `signer` and shapes it as the contract's `SignedRequest` calldata struct. */
export async function signedRequest(
  signer: Signer,
  domain: PreflightDomain,
  request: Request,
  compact = false,
): Promise<SignedRequestStruct> {
  const signature = await signRequest(signer, domain, request, compact);
  return toSignedRequest(request, signature);
}

/**
 * A signer of packed items for `payer`'s requests to `provider` in `token` (other fields from
 * `makeRequest`'s defaults, overridable), each with a 64-byte signature as `settlePacked` carries it.
 */
export function packedItemSigner(domain: PreflightDomain, base: Pick<Request, "payer" | "provider" | "token">) {
  return async (signer: Signer, fields: Partial<Request>): Promise<SignedPackedItem> => {
    const request = await makeRequest({ ...base, ...fields });
    return { request, signature: await signRequest(signer, domain, request, true) };
  };
}

export function toSignedRequest(request: Request, signature: string): SignedRequestStruct {
  const { payer, token, model, price, nonce, deadline, inputHash } = request;
  return { payer, token, model, price, nonce, deadline, inputHash, signature };
}

/** Signs `voucher` and shapes it as the contract's `SignedVoucher` calldata struct. */
export async function signedVoucher(signer: Signer, domain: PreflightDomain, voucher: Voucher): Promise<SignedVoucherStruct> {
  const signature = await signVoucher(signer, domain, voucher);
  const { payer, token, model, channel, cumulativeAmount } = voucher;
  return { payer, token, model, channel, cumulativeAmount, signature };
}
