import { vouchersClaimed } from "../helpers/logs";
import { expectVoucherPaid } from "../helpers/logs";
import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { deployPreflightFixture } from "../helpers/fixtures";
import { signedVoucher, MODEL_A, MODEL_B } from "../helpers/requests";
import { makeGrant } from "../helpers/grants";
import { highS, unrecoverable, Reason } from "../helpers/signatures";
import { hashVoucher, signVoucher, type Voucher } from "@preflight/sdk";
import type { Signer } from "ethers";

const CHANNEL = ethers.ZeroHash;
const OTHER_CHANNEL = ethers.id("session-2");

/** The payer's delegate may spend 10,000 on model A with any provider, no price cap on vouchers. */
async function deployVouchersFixture() {
  const base = await deployPreflightFixture();
  const { preflight, payer, provider, delegate, domain } = base;
  const token = await base.usdc.getAddress();
  await preflight.connect(payer).grant(await makeGrant({ delegate: delegate.address, token, maxPrice: 1n, budget: 10_000n, models: [MODEL_A] }));
  const fields = (f: Partial<Voucher> = {}): Voucher => ({
    payer: payer.address,
    provider: provider.address,
    token,
    model: MODEL_A,
    channel: CHANNEL,
    cumulativeAmount: 0n,
    ...f,
  });
  const voucher = (signer: Signer, cumulativeAmount: bigint, f: Partial<Voucher> = {}) =>
    signedVoucher(signer, domain, fields({ cumulativeAmount, ...f }));
  return { ...base, token, fields, voucher };
}

describe("Settlement: cumulative vouchers", function () {
  describe("claimVoucher", function () {
    it("pays the cumulative amount, records it and emits VoucherClaimed", async function () {
      const { preflight, payer, provider, token, voucher } = await loadFixture(deployVouchersFixture);
      const before = await preflight.balanceOf(payer.address, token);
      const v = await voucher(payer, 5_000n);
      expect(await preflight.connect(provider).claimVoucher.staticCall(v)).to.equal(5_000n);
      await expectVoucherPaid(preflight.connect(provider).claimVoucher(v), payer.address, provider.address, token, CHANNEL, 5_000n, 5_000n);
      expect(await preflight.claimedOf(payer.address, provider.address, token, CHANNEL)).to.equal(5_000n);
      expect(await preflight.balanceOf(payer.address, token)).to.equal(before - 5_000n);
      expect(await preflight.earningsOf(provider.address, token)).to.equal(5_000n);
    });

    it("pays only the increase over what the channel already paid; skipped vouchers are superseded", async function () {
      const { preflight, payer, provider, token, voucher } = await loadFixture(deployVouchersFixture);
      const v1 = await voucher(payer, 1_000n);
      const v2 = await voucher(payer, 2_500n);
      const v3 = await voucher(payer, 6_000n);
      await preflight.connect(provider).claimVoucher(v1);
      // v2 is never submitted: v3 covers it.
      await expectVoucherPaid(preflight.connect(provider).claimVoucher(v3), payer.address, provider.address, token, CHANNEL, 6_000n, 5_000n);
      await expect(preflight.connect(provider).claimVoucher(v2))
        .to.be.revertedWithCustomError(preflight, "NothingToClaim")
        .withArgs(2_500n, 6_000n);
      expect(await preflight.earningsOf(provider.address, token)).to.equal(6_000n);
    });

    it("accepts a 64-byte signature and a native-ETH channel", async function () {
      const { preflight, payer, provider, domain, fields } = await loadFixture(deployVouchersFixture);
      await preflight.connect(payer).depositETH(payer.address, { value: 1_000n });
      const v = fields({ token: ethers.ZeroAddress, cumulativeAmount: 700n });
      const signature = await signVoucher(payer, domain, v, true);
      expect(ethers.dataLength(signature)).to.equal(64);
      // Settlement moves no ETH out: it only moves the escrow's internal ledger.
      await expect(preflight.connect(provider).claimVoucher({ ...v, signature })).to.changeEtherBalance(preflight, 0n);
      expect(await preflight.balanceOf(payer.address, ethers.ZeroAddress)).to.equal(300n);
      expect(await preflight.earningsOf(provider.address, ethers.ZeroAddress)).to.equal(700n);
    });

    describe("Validations", function () {
      it("NothingToClaim for a voucher already claimed, or a zero one", async function () {
        const { preflight, payer, provider, voucher } = await loadFixture(deployVouchersFixture);
        const v = await voucher(payer, 3_000n);
        await preflight.connect(provider).claimVoucher(v);
        await expect(preflight.connect(provider).claimVoucher(v))
          .to.be.revertedWithCustomError(preflight, "NothingToClaim")
          .withArgs(3_000n, 3_000n);
        await expect(preflight.connect(provider).claimVoucher(await voucher(payer, 0n, { channel: OTHER_CHANNEL })))
          .to.be.revertedWithCustomError(preflight, "NothingToClaim")
          .withArgs(0n, 0n);
      });

      it("InsufficientBalance when the increase exceeds the payer's balance", async function () {
        const { preflight, payer, provider, token, voucher } = await loadFixture(deployVouchersFixture);
        const balance = await preflight.balanceOf(payer.address, token);
        await preflight.connect(provider).claimVoucher(await voucher(payer, 10n));
        await expect(preflight.connect(provider).claimVoucher(await voucher(payer, balance + 11n)))
          .to.be.revertedWithCustomError(preflight, "InsufficientBalance")
          .withArgs(balance - 10n, balance + 1n);
      });

      it("InvalidSigner for a stranger, for another provider, and for nobody", async function () {
        const { preflight, payer, provider, other, feeRecipient, domain, fields, voucher } =
          await loadFixture(deployVouchersFixture);
        await expect(preflight.connect(provider).claimVoucher(await voucher(feeRecipient, 1n)))
          .to.be.revertedWithCustomError(preflight, "InvalidSigner")
          .withArgs(feeRecipient.address);
        const v = await voucher(payer, 1n);
        await expect(preflight.connect(other).claimVoucher(v))
          .to.be.revertedWithCustomError(preflight, "InvalidSigner")
          .withArgs(ethers.recoverAddress(hashVoucher(domain, fields({ provider: other.address, cumulativeAmount: 1n })), v.signature as string));
        await expect(preflight.connect(provider).claimVoucher({ ...v, signature: unrecoverable(v.signature as string) }))
          .to.be.revertedWithCustomError(preflight, "InvalidSigner")
          .withArgs(ethers.ZeroAddress);
      });

      it("MalleableSignature and InvalidSignatureLength", async function () {
        const { preflight, payer, provider, voucher } = await loadFixture(deployVouchersFixture);
        const v = await voucher(payer, 1n);
        await expect(
          preflight.connect(provider).claimVoucher({ ...v, signature: highS(v.signature as string) }),
        ).to.be.revertedWithCustomError(preflight, "MalleableSignature");
        await expect(preflight.connect(provider).claimVoucher({ ...v, signature: "0x1234" }))
          .to.be.revertedWithCustomError(preflight, "InvalidSignatureLength")
          .withArgs(2n);
      });
    });
  });

  describe("Delegate vouchers", function () {
    it("are paid within the grant's budget, ignoring the per-request price cap", async function () {
      const { preflight, payer, provider, delegate, token, voucher } = await loadFixture(deployVouchersFixture);
      await expectVoucherPaid(preflight.connect(provider).claimVoucher(await voucher(delegate, 4_000n)), payer.address, provider.address, token, CHANNEL, 4_000n, 4_000n);
      await preflight.connect(provider).claimVoucher(await voucher(delegate, 10_000n));
      expect((await preflight.grantOf(payer.address, token, delegate.address)).spent).to.equal(10_000n);
    });

    it("BudgetExceeded counts only the increase against the budget", async function () {
      const { preflight, provider, delegate, voucher } = await loadFixture(deployVouchersFixture);
      await preflight.connect(provider).claimVoucher(await voucher(delegate, 6_000n));
      await expect(preflight.connect(provider).claimVoucher(await voucher(delegate, 10_001n)))
        .to.be.revertedWithCustomError(preflight, "BudgetExceeded")
        .withArgs(10_001n, 10_000n);
    });

    it("ModelNotAllowed and RevokedGrant apply to vouchers too", async function () {
      const { preflight, payer, provider, delegate, token, voucher } = await loadFixture(deployVouchersFixture);
      await expect(preflight.connect(provider).claimVoucher(await voucher(delegate, 1n, { model: MODEL_B })))
        .to.be.revertedWithCustomError(preflight, "ModelNotAllowed")
        .withArgs(MODEL_B);
      await preflight.connect(payer).revoke(token, delegate.address);
      await expect(preflight.connect(provider).claimVoucher(await voucher(delegate, 1n)))
        .to.be.revertedWithCustomError(preflight, "RevokedGrant")
        .withArgs(delegate.address);
    });
  });

  describe("Channels", function () {
    it("are independent per channel id and per provider", async function () {
      const { preflight, payer, provider, other, token, voucher } = await loadFixture(deployVouchersFixture);
      await preflight.connect(provider).claimVoucher(await voucher(payer, 5_000n));
      await expectVoucherPaid(preflight.connect(provider).claimVoucher(await voucher(payer, 3_000n, { channel: OTHER_CHANNEL })), payer.address, provider.address, token, OTHER_CHANNEL, 3_000n, 3_000n);
      await expectVoucherPaid(preflight.connect(other).claimVoucher(await voucher(payer, 2_000n, { provider: other.address })), payer.address, other.address, token, CHANNEL, 2_000n, 2_000n);
      expect(await preflight.claimedOf(payer.address, provider.address, token, CHANNEL)).to.equal(5_000n);
      expect(await preflight.claimedOf(payer.address, provider.address, token, OTHER_CHANNEL)).to.equal(3_000n);
      expect(await preflight.claimedOf(payer.address, other.address, token, CHANNEL)).to.equal(2_000n);
    });
  });

  describe("claimVouchers", function () {
    it("claims several vouchers, skips invalid ones with a reason, and credits the total once", async function () {
      const { preflight, payer, provider, feeRecipient, token, voucher } = await loadFixture(deployVouchersFixture);
      await preflight.connect(provider).claimVoucher(await voucher(payer, 1_000n, { channel: OTHER_CHANNEL }));
      const balance = await preflight.balanceOf(payer.address, token);
      const list = [
        await voucher(payer, 2_000n), // pays 2,000
        await voucher(payer, 1_000n, { channel: OTHER_CHANNEL }), // already paid
        await voucher(feeRecipient, 500n, { channel: ethers.id("x") }), // not the payer
        await voucher(payer, 500n, { token: ethers.ZeroAddress }), // another token
        await voucher(payer, 3_500n), // same channel again: pays the 1,500 increase
        await voucher(payer, balance + 1n, { channel: ethers.id("big") }), // more than the balance left
      ];
      const expected = [
        Reason.Settled,
        Reason.NothingToClaim,
        Reason.InvalidSigner,
        Reason.TokenMismatch,
        Reason.Settled,
        Reason.InsufficientBalance,
      ];
      expect(await preflight.connect(provider).claimVouchers.staticCall(token, list)).to.deep.equal(expected);
      const tx = await preflight.connect(provider).claimVouchers(token, list);
      const { records } = await vouchersClaimed(tx);
      expect(records.map((r) => r.reason)).to.deep.equal(expected.map(Number));
      records.forEach((r, i) => {
        expect(r.payer).to.equal(list[i]!.payer);
        expect(r.channel).to.equal(String(list[i]!.channel).toLowerCase());
        if (r.reason !== 0) expect(r.amount).to.equal(0n);
      });
      expect([records[0]!.amount, records[4]!.cumulativeAmount, records[4]!.amount]).to.deep.equal([2_000n, 3_500n, 1_500n]);
      expect(await preflight.earningsOf(provider.address, token)).to.equal(1_000n + 3_500n);
      expect(await preflight.balanceOf(payer.address, token)).to.equal(balance - 3_500n);
    });

    it("an empty list claims nothing", async function () {
      const { preflight, provider, token } = await loadFixture(deployVouchersFixture);
      expect(await preflight.connect(provider).claimVouchers.staticCall(token, [])).to.deep.equal([]);
      expect((await vouchersClaimed(preflight.connect(provider).claimVouchers(token, []))).records).to.have.length(0);
    });
  });
});
