import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { NOTICE_PERIOD, USDC } from "../helpers/fixtures";
import { makeRequest, signedRequest } from "../helpers/requests";
import type { Preflight, TestToken } from "../../typechain-types";

const FEE_BPS = 1_000n; // 10%, the cap

/** A deployment with a 10% fee paid to `recipient`, and a payer holding 1,000 USDC in escrow. */
async function deployFeeFixture() {
  const [, payer, provider, recipient, other] = await ethers.getSigners();
  const preflight = (await ethers.deployContract("Preflight", [NOTICE_PERIOD, FEE_BPS, recipient!.address])) as unknown as Preflight;
  const usdc = (await ethers.deployContract("TestToken", ["USD Coin", "USDC", 6])) as unknown as TestToken;
  const token = await usdc.getAddress();
  await usdc.mint(payer!.address, 10_000n * USDC);
  await usdc.connect(payer!).approve(await preflight.getAddress(), ethers.MaxUint256);
  await preflight.connect(payer!).deposit(payer!.address, token, 1_000n * USDC);
  const { chainId } = await ethers.provider.getNetwork();
  const domain = { chainId, verifyingContract: await preflight.getAddress() };
  let nonce = 0n;
  const request = async (price: bigint) =>
    signedRequest(payer!, domain, await makeRequest({ payer: payer!.address, provider: provider!.address, token, price, nonce: nonce++ }));
  return { preflight, usdc, token, domain, payer: payer!, provider: provider!, recipient: recipient!, other: other!, request };
}

describe("Escrow: protocol fee", function () {
  describe("Deployment", function () {
    it("refuses a notice period of zero or above MAX_NOTICE_PERIOD (withdrawals could be instant or frozen)", async function () {
      const factory = await ethers.getContractFactory("Preflight");
      const max = 365n * 24n * 3600n;
      for (const noticePeriod of [0n, max + 1n, 2n ** 40n]) {
        await expect(factory.deploy(noticePeriod, 0n, ethers.ZeroAddress)).to.be.revertedWithCustomError(factory, "InvalidNoticePeriod").withArgs(noticePeriod, max);
      }
      const longest = await factory.deploy(max, 0n, ethers.ZeroAddress);
      expect(await longest.NOTICE_PERIOD()).to.equal(await longest.MAX_NOTICE_PERIOD());
    });

    it("fixes the fee and its recipient", async function () {
      const { preflight, recipient } = await loadFixture(deployFeeFixture);
      expect(await preflight.FEE_BPS()).to.equal(FEE_BPS);
      expect(await preflight.FEE_RECIPIENT()).to.equal(recipient.address);
    });
  });

  describe("Settlement", function () {
    it("credits the provider the gross amount: the fee is not read on the hot path", async function () {
      const { preflight, provider, token, request } = await loadFixture(deployFeeFixture);
      await preflight.connect(provider).settle(await request(9n));
      expect(await preflight.earningsOf(provider.address, token)).to.equal(9n);
      expect(await preflight.feesOf(token)).to.equal(0n);
    });
  });

  describe("Withdrawal", function () {
    it("takes the fee rounded up on the whole amount withdrawn, and accrues it", async function () {
      const { preflight, usdc, provider, token, request } = await loadFixture(deployFeeFixture);
      await preflight.connect(provider).settle(await request(1_005n));
      await expect(preflight.connect(provider).withdrawEarnings(token, provider.address))
        .to.emit(preflight, "EarningsWithdrawn")
        .withArgs(provider.address, token, provider.address, 904n, 101n); // ceil(100.5) = 101
      expect(await usdc.balanceOf(provider.address)).to.equal(904n);
      expect(await preflight.feesOf(token)).to.equal(101n);
      expect(await preflight.earningsOf(provider.address, token)).to.equal(0n);
    });

    it("splitting a payment into many small settlements never avoids the fee", async function () {
      const { preflight, provider, token, request } = await loadFixture(deployFeeFixture);
      // v1 rounded down per settlement: ten 9-unit settlements at 10% paid nothing.
      for (let i = 0; i < 10; i++) await preflight.connect(provider).settle(await request(9n));
      await preflight.connect(provider).withdrawEarnings(token, provider.address);
      expect(await preflight.feesOf(token)).to.equal(9n);
      // Withdrawing after every 9-unit settlement pays more (1 each), never less.
      for (let i = 0; i < 3; i++) {
        await preflight.connect(provider).settle(await request(9n));
        await preflight.connect(provider).withdrawEarnings(token, provider.address);
      }
      expect(await preflight.feesOf(token)).to.equal(12n);
    });

    it("a 1-unit withdrawal pays its 1-unit fee and sends nothing", async function () {
      const { preflight, usdc, provider, token, request } = await loadFixture(deployFeeFixture);
      await preflight.connect(provider).settle(await request(1n));
      await expect(preflight.connect(provider).withdrawEarnings(token, provider.address)).to.changeTokenBalance(usdc, provider, 0n);
      expect(await preflight.feesOf(token)).to.equal(1n);
    });

    it("sends accrued fees only to the fixed recipient, whoever calls", async function () {
      const { preflight, usdc, provider, recipient, other, token, request } = await loadFixture(deployFeeFixture);
      await expect(preflight.connect(other).withdrawFees(token)).to.be.revertedWithCustomError(preflight, "ZeroAmount");
      await preflight.connect(provider).settle(await request(100n));
      await preflight.connect(provider).withdrawEarnings(token, provider.address);
      await expect(preflight.connect(other).withdrawFees(token))
        .to.emit(preflight, "FeesWithdrawn")
        .withArgs(token, recipient.address, 10n);
      expect(await usdc.balanceOf(recipient.address)).to.equal(10n);
      expect(await preflight.feesOf(token)).to.equal(0n);
    });

    it("keeps the provider's earnings slot non-zero after a withdrawal (the next settlement does not create it)", async function () {
      const { preflight, provider, token, request } = await loadFixture(deployFeeFixture);
      await preflight.connect(provider).settle(await request(100n));
      await preflight.connect(provider).withdrawEarnings(token, provider.address);
      await expect(preflight.connect(provider).withdrawEarnings(token, provider.address)).to.be.revertedWithCustomError(preflight, "ZeroAmount");
      await preflight.connect(provider).settle(await request(50n));
      expect(await preflight.earningsOf(provider.address, token)).to.equal(50n);
    });
  });
});
