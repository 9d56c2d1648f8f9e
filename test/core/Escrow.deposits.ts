import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { deployPreflightFixture, NOTICE_PERIOD, USDC } from "../helpers/fixtures";
import { signPermit } from "../helpers/signatures";

const MAX_UINT128 = 2n ** 128n - 1n;

async function deployDepositsFixture() {
  const base = await deployPreflightFixture();
  const taxed = await ethers.deployContract("FeeOnTransferToken");
  await taxed.mint(base.payer.address, 1_000_000n);
  await taxed.connect(base.payer).approve(await base.preflight.getAddress(), ethers.MaxUint256);
  // `other` holds USDC but has not approved Preflight: it deposits with a permit.
  await base.usdc.mint(base.other.address, 1_000n * USDC);
  return { ...base, taxed, preflightAddress: await base.preflight.getAddress(), token: await base.usdc.getAddress() };
}

describe("Escrow: deposits", function () {
  describe("Deployment", function () {
    it("sets the notice period, the fee cap and no fee", async function () {
      const { preflight } = await loadFixture(deployDepositsFixture);
      expect(await preflight.NOTICE_PERIOD()).to.equal(NOTICE_PERIOD);
      expect(await preflight.MAX_FEE_BPS()).to.equal(1_000);
      expect([await preflight.FEE_BPS(), await preflight.FEE_RECIPIENT()]).to.deep.equal([0n, ethers.ZeroAddress]);
    });

    it("starts every account empty", async function () {
      const { preflight, other, token } = await loadFixture(deployDepositsFixture);
      expect(await preflight.balanceOf(other.address, token)).to.equal(0);
      expect(await preflight.balanceOf(other.address, ethers.ZeroAddress)).to.equal(0);
      expect(await preflight.pendingWithdrawal(other.address, token)).to.deep.equal([0n, 0n, 0n]);
    });
  });

  describe("deposit", function () {
    it("pulls the tokens from the caller and credits the payer", async function () {
      const { preflight, usdc, payer, token } = await loadFixture(deployDepositsFixture);
      const before = await preflight.balanceOf(payer.address, token);
      await expect(preflight.connect(payer).deposit(payer.address, token, 250n * USDC)).to.changeTokenBalances(
        usdc,
        [payer, preflight],
        [-250n * USDC, 250n * USDC],
      );
      expect(await preflight.balanceOf(payer.address, token)).to.equal(before + 250n * USDC);
    });

    it("deposits for another payer: the caller pays, the payer is credited", async function () {
      const { preflight, usdc, payer, other, token } = await loadFixture(deployDepositsFixture);
      const tx = preflight.connect(payer).deposit(other.address, token, 40n * USDC);
      await expect(tx).to.emit(preflight, "Deposited").withArgs(other.address, token, payer.address, 40n * USDC);
      await expect(tx).to.changeTokenBalances(usdc, [payer, other], [-40n * USDC, 0n]);
      expect(await preflight.balanceOf(other.address, token)).to.equal(40n * USDC);
    });

    it("credits a fee-on-transfer token by the amount actually received", async function () {
      const { preflight, taxed, payer } = await loadFixture(deployDepositsFixture);
      const taxedAddress = await taxed.getAddress();
      await expect(preflight.connect(payer).deposit(payer.address, taxedAddress, 10_000n))
        .to.emit(preflight, "Deposited")
        .withArgs(payer.address, taxedAddress, payer.address, 9_900n);
      expect(await preflight.balanceOf(payer.address, taxedAddress)).to.equal(9_900n);
      expect(await taxed.balanceOf(await preflight.getAddress())).to.equal(9_900n);
    });
  });

  describe("depositETH", function () {
    it("credits msg.value to the payer's native-ETH balance", async function () {
      const { preflight, payer } = await loadFixture(deployDepositsFixture);
      const value = ethers.parseEther("1.5");
      const tx = preflight.connect(payer).depositETH(payer.address, { value });
      await expect(tx).to.emit(preflight, "Deposited").withArgs(payer.address, ethers.ZeroAddress, payer.address, value);
      await expect(tx).to.changeEtherBalances([payer, preflight], [-value, value]);
      expect(await preflight.balanceOf(payer.address, ethers.ZeroAddress)).to.equal(value);
    });

    it("deposits ETH for another payer", async function () {
      const { preflight, payer, other } = await loadFixture(deployDepositsFixture);
      await preflight.connect(payer).depositETH(other.address, { value: 7n });
      expect(await preflight.balanceOf(other.address, ethers.ZeroAddress)).to.equal(7n);
      expect(await preflight.balanceOf(payer.address, ethers.ZeroAddress)).to.equal(0n);
    });
  });

  describe("depositWithPermit", function () {
    it("approves through the permit and deposits in one transaction", async function () {
      const { preflight, usdc, other, token, preflightAddress } = await loadFixture(deployDepositsFixture);
      const deadline = BigInt(await time.latest()) + 3600n;
      const sig = await signPermit(usdc, other, preflightAddress, 100n * USDC, deadline);
      const tx = preflight
        .connect(other)
        .depositWithPermit(other.address, token, 100n * USDC, deadline, sig.v, sig.r, sig.s);
      await expect(tx).to.emit(preflight, "Deposited").withArgs(other.address, token, other.address, 100n * USDC);
      await expect(tx).to.changeTokenBalances(usdc, [other, preflight], [-100n * USDC, 100n * USDC]);
      expect(await usdc.allowance(other.address, preflightAddress)).to.equal(0n);
    });

    it("still deposits when someone front-ran the permit", async function () {
      const { preflight, usdc, other, payer, token, preflightAddress } = await loadFixture(deployDepositsFixture);
      const deadline = BigInt(await time.latest()) + 3600n;
      const sig = await signPermit(usdc, other, preflightAddress, 100n * USDC, deadline);
      // A griefer copies the permit from the mempool and submits it first.
      await usdc.connect(payer).permit(other.address, preflightAddress, 100n * USDC, deadline, sig.v, sig.r, sig.s);
      await expect(
        preflight.connect(other).depositWithPermit(other.address, token, 100n * USDC, deadline, sig.v, sig.r, sig.s),
      ).to.changeTokenBalances(usdc, [other, preflight], [-100n * USDC, 100n * USDC]);
      expect(await preflight.balanceOf(other.address, token)).to.equal(100n * USDC);
    });

    it("fails on the transfer when the permit is invalid and there is no allowance", async function () {
      const { preflight, usdc, other, payer, token, preflightAddress } = await loadFixture(deployDepositsFixture);
      const deadline = BigInt(await time.latest()) + 3600n;
      const sig = await signPermit(usdc, payer, preflightAddress, 100n * USDC, deadline); // signed by the wrong key
      await expect(
        preflight.connect(other).depositWithPermit(other.address, token, 100n * USDC, deadline, sig.v, sig.r, sig.s),
      )
        .to.be.revertedWithCustomError(usdc, "ERC20InsufficientAllowance")
        .withArgs(preflightAddress, 0n, 100n * USDC);
    });
  });

  describe("Validations", function () {
    it("reverts with BalanceOverflow past 128 bits", async function () {
      const { preflight, usdc, other, token, preflightAddress } = await loadFixture(deployDepositsFixture);
      await usdc.mint(other.address, MAX_UINT128);
      await usdc.connect(other).approve(preflightAddress, ethers.MaxUint256);
      await preflight.connect(other).deposit(other.address, token, MAX_UINT128 - 5n);
      await expect(preflight.connect(other).deposit(other.address, token, 6n))
        .to.be.revertedWithCustomError(preflight, "BalanceOverflow")
        .withArgs(MAX_UINT128 - 5n, 6n);
      await preflight.connect(other).deposit(other.address, token, 5n); // exactly 2^128 - 1 fits
      expect(await preflight.balanceOf(other.address, token)).to.equal(MAX_UINT128);
    });

    it("reverts with ZeroAmount for a zero deposit of any kind", async function () {
      const { preflight, usdc, payer, other, token, preflightAddress } = await loadFixture(deployDepositsFixture);
      await expect(preflight.connect(payer).deposit(payer.address, token, 0n)).to.be.revertedWithCustomError(
        preflight,
        "ZeroAmount",
      );
      await expect(preflight.connect(payer).depositETH(payer.address, { value: 0n })).to.be.revertedWithCustomError(
        preflight,
        "ZeroAmount",
      );
      const deadline = BigInt(await time.latest()) + 3600n;
      const sig = await signPermit(usdc, other, preflightAddress, 0n, deadline);
      await expect(
        preflight.connect(other).depositWithPermit(other.address, token, 0n, deadline, sig.v, sig.r, sig.s),
      ).to.be.revertedWithCustomError(preflight, "ZeroAmount");
    });

    it("reverts with ZeroAddress for a zero payer or ETH passed as an ERC-20", async function () {
      const { preflight, payer, token } = await loadFixture(deployDepositsFixture);
      await expect(preflight.connect(payer).deposit(ethers.ZeroAddress, token, 1n)).to.be.revertedWithCustomError(
        preflight,
        "ZeroAddress",
      );
      await expect(
        preflight.connect(payer).depositETH(ethers.ZeroAddress, { value: 1n }),
      ).to.be.revertedWithCustomError(preflight, "ZeroAddress");
      await expect(
        preflight.connect(payer).deposit(payer.address, ethers.ZeroAddress, 1n),
      ).to.be.revertedWithCustomError(preflight, "ZeroAddress");
    });

    it("lets the token's own error through when the caller lacks allowance", async function () {
      const { preflight, usdc, other, token, preflightAddress } = await loadFixture(deployDepositsFixture);
      await expect(preflight.connect(other).deposit(other.address, token, 1n))
        .to.be.revertedWithCustomError(usdc, "ERC20InsufficientAllowance")
        .withArgs(preflightAddress, 0n, 1n);
    });
  });
});
