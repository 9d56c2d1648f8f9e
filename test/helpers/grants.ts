import { ethers } from "hardhat";
import { time } from "@nomicfoundation/hardhat-network-helpers";
import type { Signer } from "ethers";
import { signGrant, type GrantTerms, type PreflightDomain } from "@preflight/sdk";

export const DAY = 24n * 3600n;

/** Grant terms with sensible defaults (any provider, any model, no period, 30 days); override any field. */
export async function makeGrant(fields: Pick<GrantTerms, "delegate" | "token"> & Partial<GrantTerms>): Promise<GrantTerms> {
  return {
    provider: ethers.ZeroAddress,
    maxPrice: 10_000n,
    budget: 1_000_000n,
    period: 0n,
    expiry: BigInt(await time.latest()) + 30n * DAY,
    models: [],
    ...fields,
  };
}

/**
 * Grant terms for `provider` (any model, no period, an expiry far past any test's clock) with the
 * default cap and budget; override any field. Synchronous, for fixtures that build many of them.
 */
export function providerGrant(fields: Pick<GrantTerms, "delegate" | "token" | "provider"> & Partial<GrantTerms>): GrantTerms {
  return { maxPrice: 10_000n, budget: 1_000_000n, period: 0n, expiry: 4_000_000_000n, models: [], ...fields };
}

/** The payer's EIP-712 signature over `terms` for grant `epoch`, for anyone to submit with `grantBySig`. */
export async function signedGrant(
  payer: Signer,
  domain: PreflightDomain,
  terms: GrantTerms,
  epoch: bigint,
  deadline: bigint,
  payerAddress?: string,
): Promise<string> {
  return signGrant(payer, domain, { ...terms, payer: payerAddress ?? (await payer.getAddress()), epoch, deadline });
}
