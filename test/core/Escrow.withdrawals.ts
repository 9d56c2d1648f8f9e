import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { deployPreflightFixture, NOTICE_PERIOD, USDC } from "../helpers/fixtures";
import { makeRequest, signedRequest } from "../helpers/requests";

const DEPOSIT = 1_000n * USDC;

async function deployWithdrawalsFixture() {
  const base = await deployPreflightFixture();
  await base.preflight.connect(base.payer).depositETH(base.payer.address, { value: ethers.parseEther("2") });
  const receiver = await ethers.deployContract("EthReceiverMock");
  return { ...base, receiver, token: await base.usdc.getAddress() };
}

describe("Escrow: withdrawals", function () {
  describe("requestWithdrawal", function () {
    it("records the amount and when it becomes ready, and emits WithdrawalRequested", async function () {
      const { preflight, payer, token } = await loadFixture(deployWithdrawalsFixture);
      const tx = await preflight.connect(payer).requestWithdrawal(token, 100n * USDC);
      const readyAt = BigInt((await tx.getBlock())!.timestamp) + NOTICE_PERIOD;
      await expect(tx).to.emit(preflight, "WithdrawalRequested").withArgs(payer.address, token, 100n * USDC, readyAt, readyAt + 7n * 86_400n);
      expect(await preflight.pendingWithdrawal(payer.address, token)).to.deep.equal([100n * USDC, readyAt, 0n]);
    });

    it("replaces an earlier request and restarts the notice period", async function () {
      const { preflight, payer, token } = await loadFixture(deployWithdrawalsFixture);
      await preflight.connect(payer).requestWithdrawal(token, 100n * USDC);
      await time.increase(NOTICE_PERIOD / 2n);
      const tx = await preflight.connect(payer).requestWithdrawal(token, 30n * USDC);
      const readyAt = BigInt((await tx.getBlock())!.timestamp) + NOTICE_PERIOD;
      expect(await preflight.pendingWithdrawal(payer.address, token)).to.deep.equal([30n * USDC, readyAt, 0n]);
    });

    it("caps the amount at the balance when asked, so 'everything' means the balance now", async function () {
      const { preflight, payer, token } = await loadFixture(deployWithdrawalsFixture);
      const balance = await preflight.balanceOf(payer.address, token);
      await expect(preflight.connect(payer).requestWithdrawal(token, ethers.MaxUint256))
        .to.emit(preflight, "WithdrawalRequested")
        .withArgs(payer.address, token, balance, (v: bigint) => v > 0n, (v: bigint) => v > 0n);
      await time.increase(NOTICE_PERIOD);
      await expect(preflight.connect(payer).withdraw(token, payer.address))
        .to.emit(preflight, "Withdrawn")
        .withArgs(payer.address, token, payer.address, DEPOSIT);
    });

    it("reverts with ZeroAmount for a zero request", async function () {
      const { preflight, payer, token } = await loadFixture(deployWithdrawalsFixture);
      await expect(preflight.connect(payer).requestWithdrawal(token, 0n)).to.be.revertedWithCustomError(
        preflight,
        "ZeroAmount",
      );
    });
  });

  describe("cancelWithdrawal", function () {
    it("clears the request and emits WithdrawalCancelled", async function () {
      const { preflight, payer, token } = await loadFixture(deployWithdrawalsFixture);
      await preflight.connect(payer).requestWithdrawal(token, 100n * USDC);
      await expect(preflight.connect(payer).cancelWithdrawal(token))
        .to.emit(preflight, "WithdrawalCancelled")
        .withArgs(payer.address, token);
      expect(await preflight.pendingWithdrawal(payer.address, token)).to.deep.equal([0n, 0n, 0n]);
      await time.increase(NOTICE_PERIOD);
      await expect(preflight.connect(payer).withdraw(token, payer.address)).to.be.revertedWithCustomError(
        preflight,
        "NoWithdrawalRequested",
      );
    });

    it("reverts with NoWithdrawalRequested when nothing is pending", async function () {
      const { preflight, payer, other, token } = await loadFixture(deployWithdrawalsFixture);
      await expect(preflight.connect(payer).cancelWithdrawal(token)).to.be.revertedWithCustomError(
        preflight,
        "NoWithdrawalRequested",
      );
      // A request belongs to its payer and its token only.
      await preflight.connect(payer).requestWithdrawal(token, 1n);
      await expect(preflight.connect(other).cancelWithdrawal(token)).to.be.revertedWithCustomError(
        preflight,
        "NoWithdrawalRequested",
      );
      await expect(preflight.connect(payer).cancelWithdrawal(ethers.ZeroAddress)).to.be.revertedWithCustomError(
        preflight,
        "NoWithdrawalRequested",
      );
    });
  });

  describe("withdraw", function () {
    it("pays the requested amount to `to` once the notice period has elapsed, exactly at readyAt", async function () {
      const { preflight, usdc, payer, other, token } = await loadFixture(deployWithdrawalsFixture);
      await preflight.connect(payer).requestWithdrawal(token, 400n * USDC);
      const [, readyAt] = await preflight.pendingWithdrawal(payer.address, token);
      await time.setNextBlockTimestamp(readyAt);
      const tx = preflight.connect(payer).withdraw(token, other.address);
      await expect(tx).to.emit(preflight, "Withdrawn").withArgs(payer.address, token, other.address, 400n * USDC);
      await expect(tx).to.changeTokenBalances(usdc, [preflight, other, payer], [-400n * USDC, 400n * USDC, 0n]);
      expect(await preflight.balanceOf(payer.address, token)).to.equal(DEPOSIT - 400n * USDC);
      expect(await preflight.pendingWithdrawal(payer.address, token)).to.deep.equal([0n, 0n, 0n]);
    });

    it("never pays deposits made after the request: it pays what is left of the balance under notice", async function () {
      const { preflight, usdc, payer, other, token } = await loadFixture(deployWithdrawalsFixture);
      await preflight.connect(payer).requestWithdrawal(token, 600n * USDC);
      // Anyone's deposit for the payer, after the request, is counted in it.
      await usdc.mint(other.address, 300n * USDC);
      await usdc.connect(other).approve(await preflight.getAddress(), 300n * USDC);
      await preflight.connect(other).deposit(payer.address, token, 300n * USDC);
      expect((await preflight.pendingWithdrawal(payer.address, token)).depositedSince).to.equal(300n * USDC);
      // The payer moves 700 of its 1,300 away (as a settlement would): 300 of the noticed 1,000 are left.
      await preflight.connect(payer).fundLane(other.address, token, 700n * USDC);
      await time.increase(NOTICE_PERIOD);
      await expect(preflight.connect(payer).withdraw(token, payer.address))
        .to.emit(preflight, "Withdrawn")
        .withArgs(payer.address, token, payer.address, 300n * USDC);
      expect(await preflight.balanceOf(payer.address, token)).to.equal(300n * USDC);
    });

    it("returns the amount paid", async function () {
      const { preflight, payer, token } = await loadFixture(deployWithdrawalsFixture);
      await preflight.connect(payer).requestWithdrawal(token, 5n);
      await time.increase(NOTICE_PERIOD);
      expect(await preflight.connect(payer).withdraw.staticCall(token, payer.address)).to.equal(5n);
    });

    it("withdraws native ETH", async function () {
      const { preflight, payer, other } = await loadFixture(deployWithdrawalsFixture);
      const amount = ethers.parseEther("0.5");
      await preflight.connect(payer).requestWithdrawal(ethers.ZeroAddress, amount);
      await time.increase(NOTICE_PERIOD);
      await expect(preflight.connect(payer).withdraw(ethers.ZeroAddress, other.address)).to.changeEtherBalances(
        [preflight, other],
        [-amount, amount],
      );
      expect(await preflight.balanceOf(payer.address, ethers.ZeroAddress)).to.equal(ethers.parseEther("1.5"));
    });

    it("pays only what settlements during the notice period left", async function () {
      const { preflight, usdc, payer, provider, domain, token } = await loadFixture(deployWithdrawalsFixture);
      await preflight.connect(payer).requestWithdrawal(token, DEPOSIT);
      const price = 300n * USDC;
      const request = await makeRequest({ payer: payer.address, provider: provider.address, token, price });
      await preflight.connect(provider).settle(await signedRequest(payer, domain, request));
      await time.increase(NOTICE_PERIOD);
      const tx = preflight.connect(payer).withdraw(token, payer.address);
      await expect(tx).to.emit(preflight, "Withdrawn").withArgs(payer.address, token, payer.address, DEPOSIT - price);
      await expect(tx).to.changeTokenBalance(usdc, payer, DEPOSIT - price);
      expect(await preflight.balanceOf(payer.address, token)).to.equal(0n);
    });

    describe("Validations", function () {
      it("reverts with NoticePeriodActive(readyAt) before the notice period has elapsed", async function () {
        const { preflight, payer, token } = await loadFixture(deployWithdrawalsFixture);
        await preflight.connect(payer).requestWithdrawal(token, 1n);
        const [, readyAt] = await preflight.pendingWithdrawal(payer.address, token);
        await time.setNextBlockTimestamp(readyAt - 1n);
        await expect(preflight.connect(payer).withdraw(token, payer.address))
          .to.be.revertedWithCustomError(preflight, "NoticePeriodActive")
          .withArgs(readyAt);
      });

      it("reverts with NoWithdrawalRequested without a request, and after the request was paid", async function () {
        const { preflight, payer, token } = await loadFixture(deployWithdrawalsFixture);
        await expect(preflight.connect(payer).withdraw(token, payer.address)).to.be.revertedWithCustomError(
          preflight,
          "NoWithdrawalRequested",
        );
        await preflight.connect(payer).requestWithdrawal(token, 1n);
        await time.increase(NOTICE_PERIOD);
        await preflight.connect(payer).withdraw(token, payer.address);
        await expect(preflight.connect(payer).withdraw(token, payer.address)).to.be.revertedWithCustomError(
          preflight,
          "NoWithdrawalRequested",
        );
      });

      it("reverts with ZeroAddress for a zero recipient", async function () {
        const { preflight, payer, token } = await loadFixture(deployWithdrawalsFixture);
        await preflight.connect(payer).requestWithdrawal(token, 1n);
        await time.increase(NOTICE_PERIOD);
        await expect(preflight.connect(payer).withdraw(token, ethers.ZeroAddress)).to.be.revertedWithCustomError(
          preflight,
          "ZeroAddress",
        );
      });

      it("reverts with ZeroAmount when settlements drained the balance", async function () {
        const { preflight, payer, provider, domain, token } = await loadFixture(deployWithdrawalsFixture);
        await preflight.connect(payer).requestWithdrawal(token, 1n);
        const request = await makeRequest({ payer: payer.address, provider: provider.address, token, price: DEPOSIT });
        await preflight.connect(provider).settle(await signedRequest(payer, domain, request));
        await time.increase(NOTICE_PERIOD);
        await expect(preflight.connect(payer).withdraw(token, payer.address)).to.be.revertedWithCustomError(
          preflight,
          "ZeroAmount",
        );
      });

      it("reverts with EthTransferFailed when the recipient refuses ETH, and keeps the balance", async function () {
        const { preflight, payer, receiver } = await loadFixture(deployWithdrawalsFixture);
        const receiverAddress = await receiver.getAddress();
        await receiver.setRefuse(true);
        await preflight.connect(payer).requestWithdrawal(ethers.ZeroAddress, 1n);
        await time.increase(NOTICE_PERIOD);
        await expect(preflight.connect(payer).withdraw(ethers.ZeroAddress, receiverAddress))
          .to.be.revertedWithCustomError(preflight, "EthTransferFailed")
          .withArgs(receiverAddress);
        expect(await preflight.balanceOf(payer.address, ethers.ZeroAddress)).to.equal(ethers.parseEther("2"));
        await expect(preflight.connect(payer).withdraw(ethers.ZeroAddress, payer.address)).to.changeEtherBalance(
          payer,
          1n,
          { includeFee: false },
        );
      });
    });
  });
});
