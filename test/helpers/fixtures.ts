import { ethers } from "hardhat";
import type { Preflight, TestToken } from "../../typechain-types";
import type { HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/signers";
import type { PreflightDomain } from "@preflight/sdk";

export const NOTICE_PERIOD = 3n * 24n * 3600n;
export const USDC = 10n ** 6n;

export interface PreflightFixture {
  preflight: Preflight;
  usdc: TestToken;
  domain: PreflightDomain;
  owner: HardhatEthersSigner;
  payer: HardhatEthersSigner;
  provider: HardhatEthersSigner;
  delegate: HardhatEthersSigner;
  other: HardhatEthersSigner;
  feeRecipient: HardhatEthersSigner;
}

/** Preflight with no fee, a 6-decimal token, and a payer holding 1,000 USDC in escrow. */
export async function deployPreflightFixture(): Promise<PreflightFixture> {
  const [owner, payer, provider, delegate, other, feeRecipient] = await ethers.getSigners();
  const preflight = await ethers.deployContract("Preflight", [NOTICE_PERIOD, 0, ethers.ZeroAddress]);
  const usdc = await ethers.deployContract("TestToken", ["USD Coin", "USDC", 6]);
  await usdc.mint(payer.address, 10_000n * USDC);
  await usdc.connect(payer).approve(await preflight.getAddress(), ethers.MaxUint256);
  await preflight.connect(payer).deposit(payer.address, await usdc.getAddress(), 1_000n * USDC);
  const { chainId } = await ethers.provider.getNetwork();
  const domain = { chainId, verifyingContract: await preflight.getAddress() };
  return { preflight, usdc, domain, owner, payer, provider, delegate, other, feeRecipient };
}
