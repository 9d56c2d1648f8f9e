/**
 * Deploys the Preflight system with plain `ethers.deployContract` (in-process chain or any
 * configured network): the Preflight contract and, for demos, a 6-decimal EIP-2612 test token.
 */
import { ethers } from "hardhat";
import type { Signer } from "ethers";
import type { Preflight, TestToken } from "../typechain-types";

export interface DeploySystemOptions {
  /** Who deploys and owns Preflight (default: the first account). */
  deployer?: Signer;
  /** Seconds between a payer's withdrawal request and its execution (default 1 day). */
  noticePeriod?: bigint;
  /** Protocol fee in basis points (default 0). */
  feeBps?: number;
  /** Who receives the fee (default: the deployer when a fee is set). */
  feeRecipient?: string;
}

export interface DeployedSystem {
  preflight: Preflight;
  token: TestToken;
  /** Block of the Preflight deployment: where a verifier starts replaying events. */
  deployBlock: number;
}

/**
 * @example
 * const { preflight, token, deployBlock } = await deploySystem({ feeBps: 50 });
 */
export async function deploySystem(options: DeploySystemOptions = {}): Promise<DeployedSystem> {
  const deployer = options.deployer ?? (await ethers.getSigners())[0];
  const owner = await deployer.getAddress();
  const feeBps = options.feeBps ?? 0;
  const feeRecipient = options.feeRecipient ?? (feeBps > 0 ? owner : ethers.ZeroAddress);
  const preflight = (await ethers.deployContract(
    "Preflight",
    [owner, options.noticePeriod ?? 24n * 3600n, feeBps, feeRecipient],
    deployer,
  )) as unknown as Preflight;
  const receipt = await preflight.deploymentTransaction()!.wait();
  const token = (await ethers.deployContract("TestToken", ["USD Coin", "USDC", 6], deployer)) as unknown as TestToken;
  await token.waitForDeployment();
  return { preflight, token, deployBlock: receipt!.blockNumber };
}
