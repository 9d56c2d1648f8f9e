/**
 * `@preflight/sdk/deployments`: where Preflight is deployed, per chain id (from the repository's
 * deployments registry, public chains only), and the EIP-712 domain of each deployment, so a dApp
 * finds Preflight on a chain without copying an address.
 */
import { PreflightSdkError, type PreflightDomain } from "@preflight/sdk";
import { knownDeployments } from "./generated/deployments";

/** One deployment of Preflight. */
export interface PreflightDeployment {
  chainId: number;
  /** the network name it was deployed with (`npm run deploy -- --network <name>`) */
  network: string;
  address: `0x${string}`;
  /** the block and transaction that created it (null when the deployer found it already deployed) */
  block: number | null;
  transactionHash: `0x${string}` | null;
}

/** Every known deployment, by chain id. */
export const deployments: Readonly<Record<string, PreflightDeployment>> = knownDeployments as unknown as Record<string, PreflightDeployment>;

/**
 * The deployment on `chainId`; throws `UNKNOWN_DEPLOYMENT` (listing the known chains) when there is none.
 * @example
 * const { address } = getDeployment(8453);
 */
export function getDeployment(chainId: number | bigint): PreflightDeployment {
  const deployment = deployments[String(chainId)];
  if (deployment === undefined) {
    const known = Object.keys(deployments).join(", ") || "none";
    throw new PreflightSdkError("UNKNOWN_DEPLOYMENT", `no Preflight deployment known on chain ${chainId} (known: ${known}); pass the address with buildDomain({ chainId, verifyingContract })`);
  }
  return deployment;
}

/**
 * The EIP-712 domain of the deployment on `chainId` (what every signature for it commits to).
 * @example
 * const domain = getDeploymentDomain(8453);
 * const signature = await signRequest(account, domain, request);
 */
export function getDeploymentDomain(chainId: number | bigint): PreflightDomain {
  return { chainId: BigInt(chainId), verifyingContract: getDeployment(chainId).address };
}
