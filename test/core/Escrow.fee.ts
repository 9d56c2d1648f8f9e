import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { deployPreflightFixture, NOTICE_PERIOD } from "../helpers/fixtures";
import { makeRequest, signedRequest, signedVoucher, MODEL_A } from "../helpers/requests";

const FEE_BPS = 250n; // 2.5%
const MAX_FEE_BPS = 1_000n;

/** The default deployment with a 2.5% fee paid to `feeRecipient`. */
async function deployFeeFixture() {
  const base = await deployPreflightFixture();
  await base.preflight.connect(base.owner).setFee(FEE_BPS, base.feeRecipient.address);
  const token = await base.usdc.getAddress();
  const parties = { payer: base.payer.address, provider: base.provider.address, token };
  return { ...base, token, parties };
}

function feeOf(gross: bigint, bps = FEE_BPS): bigint {
  return (gross * bps) / 10_000n;
}

describe("Escrow: protocol fee and ownership", function () {
  describe("Deployment", function () {
    it("takes an initial fee within the cap", async function () {
      const [owner, recipient] = await ethers.getSigners();
      const preflight = await ethers.deployContract("Preflight", [owner.address, NOTICE_PERIOD, MAX_FEE_BPS, recipient.address]);
      expect(await preflight.fee()).to.deep.equal([MAX_FEE_BPS, recipient.address]);
    });

    it("refuses a notice period of zero or above MAX_NOTICE_PERIOD (withdrawals could be instant or frozen)", async function () {
      const [owner] = await ethers.getSigners();
      const factory = await ethers.getContractFactory("Preflight");
      const max = 365n * 24n * 3600n;
      for (const noticePeriod of [0n, max + 1n, 2n ** 40n]) {
        await expect(factory.deploy(owner.address, noticePeriod, 0n, ethers.ZeroAddress))
          .to.be.revertedWithCustomError(factory, "InvalidNoticePeriod")
          .withArgs(noticePeriod, max);
      }
      const longest = await factory.deploy(owner.address, max, 0n, ethers.ZeroAddress);
      expect(await longest.NOTICE_PERIOD()).to.equal(await longest.MAX_NOTICE_PERIOD());
    });

    it("refuses a zero initial owner", async function () {
      const factory = await ethers.getContractFactory("Preflight");
      await expect(factory.deploy(ethers.ZeroAddress, NOTICE_PERIOD, 0n, ethers.ZeroAddress))
        .to.be.revertedWithCustomError(factory, "OwnableInvalidOwner")
        .withArgs(ethers.ZeroAddress);
    });

    it("refuses an initial fee above the cap, or a fee without a recipient", async function () {
      const [owner, recipient] = await ethers.getSigners();
      const factory = await ethers.getContractFactory("Preflight");
      await expect(factory.deploy(owner.address, NOTICE_PERIOD, MAX_FEE_BPS + 1n, recipient.address))
        .to.be.revertedWithCustomError(factory, "FeeTooHigh")
        .withArgs(MAX_FEE_BPS + 1n, MAX_FEE_BPS);
      await expect(factory.deploy(owner.address, NOTICE_PERIOD, 1n, ethers.ZeroAddress)).to.be.revertedWithCustomError(
        factory,
        "ZeroAddress",
      );
    });
  });

  describe("setFee", function () {
    it("sets the fee and recipient and emits FeeChanged", async function () {
      const { preflight, owner, other } = await loadFixture(deployFeeFixture);
      await expect(preflight.connect(owner).setFee(MAX_FEE_BPS, other.address))
        .to.emit(preflight, "FeeChanged")
        .withArgs(MAX_FEE_BPS, other.address);
      expect(await preflight.fee()).to.deep.equal([MAX_FEE_BPS, other.address]);
      await preflight.connect(owner).setFee(0n, ethers.ZeroAddress); // no fee needs no recipient
      expect(await preflight.fee()).to.deep.equal([0n, ethers.ZeroAddress]);
    });

    describe("Validations", function () {
      it("reverts with FeeTooHigh above MAX_FEE_BPS", async function () {
        const { preflight, owner, other } = await loadFixture(deployFeeFixture);
        await expect(preflight.connect(owner).setFee(MAX_FEE_BPS + 1n, other.address))
          .to.be.revertedWithCustomError(preflight, "FeeTooHigh")
          .withArgs(MAX_FEE_BPS + 1n, MAX_FEE_BPS);
      });

      it("reverts with ZeroAddress for a non-zero fee without a recipient", async function () {
        const { preflight, owner } = await loadFixture(deployFeeFixture);
        await expect(preflight.connect(owner).setFee(1n, ethers.ZeroAddress)).to.be.revertedWithCustomError(
          preflight,
          "ZeroAddress",
        );
      });

      it("is owner-only", async function () {
        const { preflight, other } = await loadFixture(deployFeeFixture);
        await expect(preflight.connect(other).setFee(0n, ethers.ZeroAddress))
          .to.be.revertedWithCustomError(preflight, "OwnableUnauthorizedAccount")
          .withArgs(other.address);
      });
    });
  });

  describe("Fee split", function () {
    it("splits a single settlement between provider and fee recipient", async function () {
      const { preflight, payer, provider, feeRecipient, domain, token, parties } = await loadFixture(deployFeeFixture);
      const price = 10_000n;
      const before = await preflight.balanceOf(payer.address, token);
      await preflight.connect(provider).settle(await signedRequest(payer, domain, await makeRequest({ ...parties, price })));
      expect(await preflight.balanceOf(payer.address, token)).to.equal(before - price);
      expect(await preflight.earningsOf(provider.address, token)).to.equal(price - feeOf(price));
      expect(await preflight.earningsOf(feeRecipient.address, token)).to.equal(feeOf(price));
      await expect(preflight.connect(feeRecipient).withdrawEarnings(token, feeRecipient.address))
        .to.emit(preflight, "EarningsWithdrawn")
        .withArgs(feeRecipient.address, token, feeRecipient.address, feeOf(price));
    });

    it("takes the fee once on a batch's total, rounding down", async function () {
      const { preflight, payer, provider, feeRecipient, domain, token, parties } = await loadFixture(deployFeeFixture);
      const prices = [1_001n, 2_003n, 39n];
      const batch = await Promise.all(
        prices.map(async (price, i) => signedRequest(payer, domain, await makeRequest({ ...parties, price, nonce: BigInt(i) }))),
      );
      const total = prices.reduce((a, b) => a + b, 0n);
      await expect(preflight.connect(provider).settleBatch(token, batch))
        .to.emit(preflight, "BatchSettled")
        .withArgs(provider.address, token, 3n, total, feeOf(total));
      expect(await preflight.earningsOf(provider.address, token)).to.equal(total - feeOf(total));
      expect(await preflight.earningsOf(feeRecipient.address, token)).to.equal(feeOf(total));
    });

    it("takes the fee on what a voucher pays, and on the total of a multi-claim", async function () {
      const { preflight, payer, provider, feeRecipient, domain, token, parties } = await loadFixture(deployFeeFixture);
      const voucher = { ...parties, model: MODEL_A, channel: ethers.ZeroHash };
      await preflight.connect(provider).claimVoucher(await signedVoucher(payer, domain, { ...voucher, cumulativeAmount: 4_000n }));
      expect(await preflight.earningsOf(feeRecipient.address, token)).to.equal(feeOf(4_000n));
      const more = [
        await signedVoucher(payer, domain, { ...voucher, cumulativeAmount: 10_000n }), // pays 6,000
        await signedVoucher(payer, domain, { ...voucher, channel: ethers.id("b"), cumulativeAmount: 3_000n }),
      ];
      await preflight.connect(provider).claimVouchers(token, more);
      expect(await preflight.earningsOf(feeRecipient.address, token)).to.equal(feeOf(4_000n) + feeOf(9_000n));
      expect(await preflight.earningsOf(provider.address, token)).to.equal(13_000n - feeOf(4_000n) - feeOf(9_000n));
    });

    it("applies a new fee to later settlements only, and none when it is zero", async function () {
      const { preflight, owner, payer, provider, feeRecipient, domain, token, parties } = await loadFixture(deployFeeFixture);
      await preflight.connect(provider).settle(await signedRequest(payer, domain, await makeRequest({ ...parties, price: 10_000n })));
      await preflight.connect(owner).setFee(0n, ethers.ZeroAddress);
      await preflight
        .connect(provider)
        .settle(await signedRequest(payer, domain, await makeRequest({ ...parties, price: 10_000n, nonce: 1n })));
      expect(await preflight.earningsOf(feeRecipient.address, token)).to.equal(feeOf(10_000n));
      expect(await preflight.earningsOf(provider.address, token)).to.equal(20_000n - feeOf(10_000n));
    });
  });

  describe("Ownership (Ownable2Step)", function () {
    it("hands ownership over only when the new owner accepts", async function () {
      const { preflight, owner, other } = await loadFixture(deployFeeFixture);
      await expect(preflight.connect(owner).transferOwnership(other.address))
        .to.emit(preflight, "OwnershipTransferStarted")
        .withArgs(owner.address, other.address);
      expect(await preflight.owner()).to.equal(owner.address);
      expect(await preflight.pendingOwner()).to.equal(other.address);
      await preflight.connect(owner).setFee(1n, other.address); // still the owner until accepted
      await expect(preflight.connect(other).acceptOwnership())
        .to.emit(preflight, "OwnershipTransferred")
        .withArgs(owner.address, other.address);
      expect(await preflight.owner()).to.equal(other.address);
      expect(await preflight.pendingOwner()).to.equal(ethers.ZeroAddress);
      await expect(preflight.connect(owner).setFee(0n, ethers.ZeroAddress))
        .to.be.revertedWithCustomError(preflight, "OwnableUnauthorizedAccount")
        .withArgs(owner.address);
      await preflight.connect(other).setFee(0n, ethers.ZeroAddress);
    });

    it("refuses acceptance by anyone but the pending owner, and transfers by anyone but the owner", async function () {
      const { preflight, owner, other, payer } = await loadFixture(deployFeeFixture);
      await preflight.connect(owner).transferOwnership(other.address);
      await expect(preflight.connect(payer).acceptOwnership())
        .to.be.revertedWithCustomError(preflight, "OwnableUnauthorizedAccount")
        .withArgs(payer.address);
      await expect(preflight.connect(other).transferOwnership(other.address))
        .to.be.revertedWithCustomError(preflight, "OwnableUnauthorizedAccount")
        .withArgs(other.address);
    });

    it("freezes the fee for good once ownership is renounced", async function () {
      const { preflight, owner } = await loadFixture(deployFeeFixture);
      await preflight.connect(owner).renounceOwnership();
      expect(await preflight.owner()).to.equal(ethers.ZeroAddress);
      await expect(preflight.connect(owner).setFee(0n, ethers.ZeroAddress))
        .to.be.revertedWithCustomError(preflight, "OwnableUnauthorizedAccount")
        .withArgs(owner.address);
    });
  });
});
