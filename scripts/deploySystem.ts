/**
 * Deploys the Preflight system for the demo through the same path as `npm run deploy`: CreateX CREATE2
 * with the default salt (so the addresses equal the deploy task's), reusing a system already deployed at
 * those addresses, and writing the deployments registry. On top of Preflight, a 6-decimal EIP-2612
 * test token is deployed (or reused) as the demo's USDC.
 */
import hre, { ethers } from "hardhat";
import type { Preflight, TestToken } from "../typechain-types";
import { deploySystem as deployWithCreate2 } from "../tasks/lib/deploy";

export interface DeploySystemOptions {
  /** Seconds between a payer's withdrawal request and its execution (default 1 day). */
  noticePeriod?: bigint;
  /** Protocol fee in basis points (default 0). */
  feeBps?: number;
  /** Who receives the fee (default: the deployer, the first account, when a fee is set). */
  feeRecipient?: string;
  /** Where progress lines go (default: nowhere). */
  log?: (line: string) => void;
}

export interface DeployedSystem {
  preflight: Preflight;
  token: TestToken;
  /** Block of the Preflight deployment (0 when it was found deployed): where a verifier starts replaying events. */
  deployBlock: number;
  /** Whether an existing deployment at the CREATE2 address was reused. */
  reused: boolean;
}

/**
 * @example
 * const { preflight, token, deployBlock } = await deploySystem({ feeBps: 50 });
 */
export async function deploySystem(options: DeploySystemOptions = {}): Promise<DeployedSystem> {
  const [deployer] = await ethers.getSigners();
  const feeBps = options.feeBps ?? 0;
  const record = await deployWithCreate2(
    hre,
    {
      feeBps: String(feeBps),
      feeRecipient: options.feeRecipient ?? (feeBps > 0 ? deployer.address : undefined),
      noticePeriod: String(options.noticePeriod ?? 24n * 3600n),
      testToken: "yes",
      tokenName: "USD Coin",
      tokenSymbol: "USDC",
      tokenDecimals: "6",
      skipVerify: true,
      noCompile: true,
    },
    options.log ?? (() => undefined),
  );
  const tokenRecord = record.contracts.TestToken;
  if (tokenRecord === undefined) throw new Error("the deployment did not include the demo's test token");
  return {
    preflight: await ethers.getContractAt("Preflight", record.contracts.Preflight.address),
    token: await ethers.getContractAt("TestToken", tokenRecord.address),
    deployBlock: record.contracts.Preflight.block ?? 0,
    reused: record.contracts.Preflight.reused,
  };
}
