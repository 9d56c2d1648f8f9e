import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { deployPreflightFixture, NOTICE_PERIOD } from "../helpers/fixtures";
import { makeRequest, signedRequest } from "../helpers/requests";

const PRICE = 1_000n;

/** The provider has earned 2 x PRICE in USDC and PRICE wei in ETH. */
async function deployEarningsFixture() {
  const base = await deployPreflightFixture();
  const { preflight, payer, provider, domain, usdc } = base;
  const token = await usdc.getAddress();
  await preflight.connect(payer).depositETH(payer.address, { value: ethers.parseEther("1") });
  const parties = { payer: payer.address, provider: provider.address, price: PRICE };
  for (const nonce of [0n, 1n]) {
    await preflight.connect(provider).settle(await signedRequest(payer, domain, await makeRequest({ ...parties, token, nonce })));
  }
  await preflight
    .connect(provider)
    .settle(await signedRequest(payer, domain, await makeRequest({ ...parties, token: ethers.ZeroAddress, nonce: 0n })));
  const receiver = await ethers.deployContract("EthReceiverMock");
  return { ...base, token, receiver };
}

describe("Escrow: provider earnings", function () {
  describe("earningsOf", function () {
    it("accumulates what settlements credited, per provider and token", async function () {
      const { preflight, provider, other, token } = await loadFixture(deployEarningsFixture);
      expect(await preflight.earningsOf(provider.address, token)).to.equal(2n * PRICE);
      expect(await preflight.earningsOf(provider.address, ethers.ZeroAddress)).to.equal(PRICE);
      expect(await preflight.earningsOf(other.address, token)).to.equal(0n);
    });
  });

  describe("withdrawEarnings", function () {
    it("sends every earned token to `to`, returns the amount and zeroes the earnings", async function () {
      const { preflight, usdc, provider, other, token } = await loadFixture(deployEarningsFixture);
      expect(await preflight.connect(provider).withdrawEarnings.staticCall(token, other.address)).to.equal(2n * PRICE);
      const tx = preflight.connect(provider).withdrawEarnings(token, other.address);
      await expect(tx).to.emit(preflight, "EarningsWithdrawn").withArgs(provider.address, token, other.address, 2n * PRICE, 0n);
      await expect(tx).to.changeTokenBalances(usdc, [preflight, other, provider], [-2n * PRICE, 2n * PRICE, 0n]);
      expect(await preflight.earningsOf(provider.address, token)).to.equal(0n);
    });

    it("sends native ETH earnings", async function () {
      const { preflight, provider } = await loadFixture(deployEarningsFixture);
      await expect(preflight.connect(provider).withdrawEarnings(ethers.ZeroAddress, provider.address)).to.changeEtherBalances(
        [preflight, provider],
        [-PRICE, PRICE],
        { includeFee: false },
      );
    });

    it("works at any time, also while the payer's withdrawal is pending", async function () {
      const { preflight, payer, provider, token } = await loadFixture(deployEarningsFixture);
      await preflight.connect(payer).requestWithdrawal(token, ethers.MaxUint256);
      await expect(preflight.connect(provider).withdrawEarnings(token, provider.address)).to.emit(
        preflight,
        "EarningsWithdrawn",
      );
      await time.increase(NOTICE_PERIOD);
      await preflight.connect(payer).withdraw(token, payer.address);
      expect(await preflight.balanceOf(payer.address, token)).to.equal(0n);
    });

    describe("Validations", function () {
      it("reverts with ZeroAmount when there is nothing to withdraw (also right after a withdrawal)", async function () {
        const { preflight, provider, other, token } = await loadFixture(deployEarningsFixture);
        await expect(preflight.connect(other).withdrawEarnings(token, other.address)).to.be.revertedWithCustomError(
          preflight,
          "ZeroAmount",
        );
        await preflight.connect(provider).withdrawEarnings(token, provider.address);
        await expect(preflight.connect(provider).withdrawEarnings(token, provider.address)).to.be.revertedWithCustomError(
          preflight,
          "ZeroAmount",
        );
      });

      it("reverts with ZeroAddress for a zero recipient", async function () {
        const { preflight, provider, token } = await loadFixture(deployEarningsFixture);
        await expect(
          preflight.connect(provider).withdrawEarnings(token, ethers.ZeroAddress),
        ).to.be.revertedWithCustomError(preflight, "ZeroAddress");
      });

      it("reverts with EthTransferFailed when the recipient refuses ETH, and keeps the earnings", async function () {
        const { preflight, provider, receiver } = await loadFixture(deployEarningsFixture);
        const receiverAddress = await receiver.getAddress();
        await receiver.setRefuse(true);
        await expect(preflight.connect(provider).withdrawEarnings(ethers.ZeroAddress, receiverAddress))
          .to.be.revertedWithCustomError(preflight, "EthTransferFailed")
          .withArgs(receiverAddress);
        expect(await preflight.earningsOf(provider.address, ethers.ZeroAddress)).to.equal(PRICE);
      });
    });
  });
});
