import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { encodeLaneClaims, signLaneVoucher, type LaneVoucher } from "@preflight/sdk";
import { deployPreflightFixture, NOTICE_PERIOD, USDC } from "../helpers/fixtures";
import { lanesClaimed, lanesCollected } from "../helpers/logs";
import { MODEL_A, MODEL_B } from "../helpers/requests";
import { Reason, terms } from "../helpers/security";

const WINDOW = 7n * 86_400n;
const FUNDS = 100n * USDC;

/** The usual fixture, with the payer's lane for the provider funded from its escrow balance. */
async function deployLanesFixture() {
  const base = await deployPreflightFixture();
  const { preflight, payer, provider } = base;
  const token = await base.usdc.getAddress();
  await preflight.connect(payer).fundLane(provider.address, token, FUNDS);
  const voucher = async (signer = payer, cumulativeAmount = 1_000n, fields: Partial<LaneVoucher> = {}) => {
    const v = { payer: payer.address, provider: provider.address, token, model: MODEL_A, cumulativeAmount, ...fields };
    const signature = await signLaneVoucher(signer, base.domain, v);
    return { payer: v.payer, token: v.token, model: v.model, cumulativeAmount: v.cumulativeAmount, signature };
  };
  return { ...base, token, voucher };
}

describe("Lanes: funds reserved for one provider", function () {
  describe("Funding", function () {
    it("moves escrow balance into the lane and logs it", async function () {
      const { preflight, payer, provider, token } = await loadFixture(deployLanesFixture);
      expect(await preflight.balanceOf(payer.address, token)).to.equal(1_000n * USDC - FUNDS);
      await expect(preflight.connect(payer).fundLane(provider.address, token, 5n))
        .to.emit(preflight, "LaneFunded")
        .withArgs(payer.address, provider.address, token, await preflight.getAddress(), 5n, FUNDS + 5n);
      expect(await preflight.laneOf(payer.address, provider.address, token)).to.deep.equal([0n, FUNDS + 5n, 0n, 0n]);
    });

    it("takes fresh ERC-20 and ETH deposits straight into a lane, for any payer", async function () {
      const { preflight, usdc, payer, provider, other, token } = await loadFixture(deployLanesFixture);
      await usdc.mint(other.address, 50n);
      await usdc.connect(other).approve(await preflight.getAddress(), 50n);
      await expect(preflight.connect(other).depositToLane(payer.address, provider.address, token, 50n))
        .to.emit(preflight, "LaneFunded")
        .withArgs(payer.address, provider.address, token, other.address, 50n, FUNDS + 50n);
      await preflight.connect(other).depositETHToLane(payer.address, provider.address, { value: 7n });
      expect((await preflight.laneOf(payer.address, provider.address, ethers.ZeroAddress)).funds).to.equal(7n);
    });

    it("refuses zero amounts, zero addresses, more than the balance, and lanes past 85 bits", async function () {
      const { preflight, payer, provider, token } = await loadFixture(deployLanesFixture);
      await expect(preflight.connect(payer).fundLane(provider.address, token, 0n)).to.be.revertedWithCustomError(preflight, "ZeroAmount");
      await expect(preflight.connect(payer).fundLane(ethers.ZeroAddress, token, 1n)).to.be.revertedWithCustomError(preflight, "ZeroAddress");
      await expect(preflight.connect(payer).depositETHToLane(payer.address, provider.address)).to.be.revertedWithCustomError(preflight, "ZeroAmount");
      await expect(preflight.connect(payer).depositETHToLane(ethers.ZeroAddress, provider.address, { value: 1n })).to.be.revertedWithCustomError(preflight, "ZeroAddress");
      const balance = await preflight.balanceOf(payer.address, token);
      await expect(preflight.connect(payer).fundLane(provider.address, token, balance + 1n))
        .to.be.revertedWithCustomError(preflight, "InsufficientBalance")
        .withArgs(balance, balance + 1n);
      const max = 2n ** 85n - 1n;
      const big = await ethers.deployContract("TestToken", ["Big", "BIG", 18]);
      await big.mint(payer.address, max + 1n);
      await big.connect(payer).approve(await preflight.getAddress(), ethers.MaxUint256);
      await preflight.connect(payer).depositToLane(payer.address, provider.address, await big.getAddress(), max);
      await expect(preflight.connect(payer).depositToLane(payer.address, provider.address, await big.getAddress(), 1n))
        .to.be.revertedWithCustomError(preflight, "LaneOverflow")
        .withArgs(max, 1n);
    });
  });

  describe("Claims", function () {
    it("pays the increase into the lane's uncollected amount, touching nothing else", async function () {
      const { preflight, payer, provider, token, voucher } = await loadFixture(deployLanesFixture);
      const tx = await preflight.connect(provider).claimLane(await voucher(payer, 1_000n));
      const { records } = await lanesClaimed(tx);
      expect(records).to.deep.equal([{ payer: payer.address, cumulativeAmount: 1_000n, amount: 1_000n, reason: 0 }]);
      expect(await preflight.laneOf(payer.address, provider.address, token)).to.deep.equal([1_000n, FUNDS - 1_000n, 1_000n, 0n]);
      expect(await preflight.earningsOf(provider.address, token)).to.equal(0n);
      await preflight.connect(provider).claimLane(await voucher(payer, 2_500n));
      expect(await preflight.laneOf(payer.address, provider.address, token)).to.deep.equal([2_500n, FUNDS - 2_500n, 2_500n, 0n]);
    });

    it("refuses, with the specific error, what does not pay", async function () {
      const { preflight, payer, provider, other, voucher } = await loadFixture(deployLanesFixture);
      await preflight.connect(provider).claimLane(await voucher(payer, 1_000n));
      await expect(preflight.connect(provider).claimLane(await voucher(payer, 1_000n)))
        .to.be.revertedWithCustomError(preflight, "NothingToClaim")
        .withArgs(1_000n, 1_000n);
      await expect(preflight.connect(provider).claimLane(await voucher(other, 2_000n))).to.be.revertedWithCustomError(preflight, "InvalidSigner");
      await expect(preflight.connect(provider).claimLane(await voucher(payer, FUNDS + 1_001n)))
        .to.be.revertedWithCustomError(preflight, "InsufficientBalance")
        .withArgs(FUNDS - 1_000n, FUNDS + 1n);
      // Only the lane's provider: the voucher names the provider, so for anyone else it is another digest.
      await expect(preflight.connect(other).claimLane(await voucher(payer, 2_000n))).to.be.revertedWithCustomError(preflight, "InvalidSigner");
    });

    it("a channel voucher is not a lane voucher (distinct EIP-712 types)", async function () {
      const { preflight, payer, provider, token, domain } = await loadFixture(deployLanesFixture);
      const { signVoucher } = await import("@preflight/sdk");
      const channel = { payer: payer.address, provider: provider.address, token, model: MODEL_A, channel: ethers.ZeroHash, cumulativeAmount: 1_000n };
      const signature = await signVoucher(payer, domain, channel);
      await expect(preflight.connect(provider).claimLane({ payer: payer.address, token, model: MODEL_A, cumulativeAmount: 1_000n, signature })).to.be.revertedWithCustomError(
        preflight,
        "InvalidSigner",
      );
    });

    it("a delegate's lane vouchers spend its grant's budget, within its models", async function () {
      const { preflight, payer, provider, delegate, token, voucher } = await loadFixture(deployLanesFixture);
      await preflight.connect(payer).grant(terms({ delegate: delegate.address, token, provider: provider.address, budget: 5_000n, models: [MODEL_A] }));
      const tx = await preflight.connect(provider).claimLane(await voucher(delegate, 3_000n));
      expect((await lanesClaimed(tx)).records[0]!.delegate).to.equal(delegate.address);
      expect((await preflight.grantOf(payer.address, token, delegate.address)).spent).to.equal(3_000n);
      await expect(preflight.connect(provider).claimLane(await voucher(delegate, 9_000n))).to.be.revertedWithCustomError(preflight, "BudgetExceeded");
      await expect(preflight.connect(provider).claimLane(await voucher(delegate, 4_000n, { model: MODEL_B })))
        .to.be.revertedWithCustomError(preflight, "ModelNotAllowed")
        .withArgs(MODEL_B);
    });

    it("packed claims skip what does not pay, with its reason, and pay the rest", async function () {
      const { preflight, payer, provider, other, token, domain } = await loadFixture(deployLanesFixture);
      await preflight.connect(other).depositETHToLane(other.address, provider.address, { value: 1n }); // another token: not used
      const sign = async (signer: typeof payer, cumulativeAmount: bigint) => ({
        payer: payer.address,
        cumulativeAmount,
        signature: await signLaneVoucher(signer, domain, { payer: payer.address, provider: provider.address, token, model: MODEL_A, cumulativeAmount }, true),
      });
      const claims = [await sign(payer, 1_000n), await sign(other, 2_000n), await sign(payer, 1_000n), await sign(payer, 1_500n), await sign(payer, FUNDS * 2n)];
      const tx = await preflight.connect(provider).claimLanesPacked(token, encodeLaneClaims(MODEL_A, claims));
      const { records } = await lanesClaimed(tx);
      expect(records.map((r) => r.reason)).to.deep.equal([Reason.Settled, Reason.InvalidSigner, Reason.NothingToClaim, Reason.Settled, Reason.InsufficientBalance].map(Number));
      expect(records.map((r) => r.amount)).to.deep.equal([1_000n, 0n, 0n, 500n, 0n]);
      expect((await preflight.laneOf(payer.address, provider.address, token)).uncollected).to.equal(1_500n);
    });

    it("refuses packed claims that do not parse", async function () {
      const { preflight, provider, token } = await loadFixture(deployLanesFixture);
      const pf = preflight.connect(provider);
      await expect(pf.claimLanesPacked(token, MODEL_A)).to.be.revertedWithCustomError(preflight, "MalformedPackedBatch").withArgs(0);
      const short = ethers.concat([MODEL_A, ethers.ZeroHash, ethers.ZeroHash, ethers.ZeroHash, ethers.zeroPadValue("0x01", 5)]);
      await expect(pf.claimLanesPacked(token, short)).to.be.revertedWithCustomError(preflight, "MalformedPackedBatch").withArgs(133);
    });
  });

  describe("Collection", function () {
    it("moves uncollected claims to the provider's earnings, once, and logs each lane", async function () {
      const { preflight, usdc, payer, provider, other, token, voucher } = await loadFixture(deployLanesFixture);
      await preflight.connect(provider).claimLane(await voucher(payer, 1_200n));
      const tx = await preflight.connect(provider).collectLanes(token, [payer.address, other.address, payer.address]);
      expect((await lanesCollected(tx)).records).to.deep.equal([{ payer: payer.address, amount: 1_200n }]);
      expect(await preflight.earningsOf(provider.address, token)).to.equal(1_200n);
      expect((await preflight.laneOf(payer.address, provider.address, token)).uncollected).to.equal(0n);
      await expect(preflight.connect(provider).withdrawEarnings(token, provider.address)).to.changeTokenBalance(usdc, provider, 1_200n);
    });
  });

  describe("Closing", function () {
    it("returns the remaining funds after the notice, within the window; claims stay the provider's", async function () {
      const { preflight, usdc, payer, provider, token, voucher } = await loadFixture(deployLanesFixture);
      await preflight.connect(provider).claimLane(await voucher(payer, 1_000n));
      await expect(preflight.connect(payer).closeLane(provider.address, token, payer.address)).to.be.revertedWithCustomError(preflight, "LaneCloseNotRequested");
      const tx = await preflight.connect(payer).requestLaneClose(provider.address, token);
      const readyAt = BigInt((await tx.getBlock())!.timestamp) + NOTICE_PERIOD;
      await expect(tx).to.emit(preflight, "LaneCloseRequested").withArgs(payer.address, provider.address, token, readyAt, readyAt + WINDOW);
      await expect(preflight.connect(payer).closeLane(provider.address, token, payer.address))
        .to.be.revertedWithCustomError(preflight, "LaneCloseNotReady")
        .withArgs(readyAt);
      // The provider may still claim during the notice.
      await preflight.connect(provider).claimLane(await voucher(payer, 3_000n));
      await time.increaseTo(readyAt);
      await expect(preflight.connect(payer).closeLane(provider.address, token, ethers.ZeroAddress)).to.be.revertedWithCustomError(preflight, "ZeroAddress");
      await expect(preflight.connect(payer).closeLane(provider.address, token, payer.address))
        .to.emit(preflight, "LaneClosed")
        .withArgs(payer.address, provider.address, token, payer.address, FUNDS - 3_000n);
      expect(await preflight.laneOf(payer.address, provider.address, token)).to.deep.equal([3_000n, 0n, 3_000n, 0n]);
      expect(await usdc.balanceOf(payer.address)).to.equal(9_000n * USDC + FUNDS - 3_000n);
      // An old voucher never pays twice, even after re-funding.
      await preflight.connect(payer).fundLane(provider.address, token, 10n);
      await expect(preflight.connect(provider).claimLane(await voucher(payer, 3_000n))).to.be.revertedWithCustomError(preflight, "NothingToClaim");
      await preflight.connect(provider).collectLanes(token, [payer.address]);
      expect(await preflight.earningsOf(provider.address, token)).to.equal(3_000n);
    });

    it("a close request lapses after the window; funding the lane (by anyone) leaves a pending close alone", async function () {
      const { preflight, payer, provider, token } = await loadFixture(deployLanesFixture);
      const tx = await preflight.connect(payer).requestLaneClose(provider.address, token);
      const readyAt = BigInt((await tx.getBlock())!.timestamp) + NOTICE_PERIOD;
      await time.increaseTo(readyAt + WINDOW);
      await expect(preflight.connect(payer).closeLane(provider.address, token, payer.address))
        .to.be.revertedWithCustomError(preflight, "LaneCloseLapsed")
        .withArgs(readyAt + WINDOW);
      const again = await preflight.connect(payer).requestLaneClose(provider.address, token);
      const readyAgain = BigInt((await again.getBlock())!.timestamp) + NOTICE_PERIOD;
      await preflight.connect(payer).fundLane(provider.address, token, 1n);
      expect((await preflight.laneOf(payer.address, provider.address, token)).closeReadyAt).to.equal(readyAgain);
    });

    it("a close returns only the funds under notice, less claims since; funds added after the request stay claimable", async function () {
      const { preflight, usdc, payer, provider, other, token, voucher } = await loadFixture(deployLanesFixture);
      await preflight.connect(payer).requestLaneClose(provider.address, token); // FUNDS under notice
      // Someone else (here `other`) and the payer add 700 after the request; the provider claims 2,500.
      await usdc.mint(other.address, 500n);
      await usdc.connect(other).approve(await preflight.getAddress(), 500n);
      await preflight.connect(other).depositToLane(payer.address, provider.address, token, 500n);
      await preflight.connect(payer).fundLane(provider.address, token, 200n);
      await preflight.connect(provider).claimLane(await voucher(payer, 2_500n));
      await time.increase(NOTICE_PERIOD);
      const before = await usdc.balanceOf(payer.address);
      await expect(preflight.connect(payer).closeLane(provider.address, token, payer.address))
        .to.emit(preflight, "LaneClosed")
        .withArgs(payer.address, provider.address, token, payer.address, FUNDS - 2_500n);
      expect((await usdc.balanceOf(payer.address)) - before).to.equal(FUNDS - 2_500n);
      // The 700 added without notice still pays the provider.
      await preflight.connect(provider).claimLane(await voucher(payer, 3_200n));
      expect(await preflight.laneOf(payer.address, provider.address, token)).to.deep.equal([3_200n, 0n, 3_200n, 0n]);
    });

    it("claims beyond the funds under notice leave the close nothing to return", async function () {
      const { preflight, payer, provider, token, voucher } = await loadFixture(deployLanesFixture);
      await preflight.connect(payer).requestLaneClose(provider.address, token);
      await preflight.connect(payer).fundLane(provider.address, token, 300n);
      await preflight.connect(provider).claimLane(await voucher(payer, FUNDS + 100n));
      await time.increase(NOTICE_PERIOD);
      await expect(preflight.connect(payer).closeLane(provider.address, token, payer.address))
        .to.emit(preflight, "LaneClosed")
        .withArgs(payer.address, provider.address, token, payer.address, 0n);
      expect((await preflight.laneOf(payer.address, provider.address, token)).funds).to.equal(200n);
    });

    it("an empty lane closes for nothing", async function () {
      const { preflight, payer, other, token } = await loadFixture(deployLanesFixture);
      await preflight.connect(payer).requestLaneClose(other.address, token);
      await time.increase(NOTICE_PERIOD);
      await expect(preflight.connect(payer).closeLane(other.address, token, payer.address)).to.emit(preflight, "LaneClosed").withArgs(payer.address, other.address, token, payer.address, 0n);
    });
  });
});
