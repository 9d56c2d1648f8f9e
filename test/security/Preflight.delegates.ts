import { expectSettledRequest } from "../helpers/logs";
import { expect } from "chai";
import { ethers, network } from "hardhat";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { deployPreflightFixture } from "../helpers/fixtures";
import { makeRequest, signedRequest, signedVoucher, MODEL_A, MODEL_B } from "../helpers/requests";
import { Reason, signedGrant, terms } from "../helpers/security";
import type { Request } from "@preflight/sdk";

const MAX_PRICE = 2_000n;
const BUDGET = 5_000n;
const PERIOD = 3_600n;

/** The payer grants `delegate` MODEL_A with `provider` only, 2,000 per request, 5,000 per hour, for a day. */
async function deployDelegatesFixture() {
  const base = await deployPreflightFixture();
  const { preflight, payer, delegate, provider, usdc } = base;
  const token = await usdc.getAddress();
  const expiry = BigInt(await time.latest()) + 86_400n;
  const scope = terms({
    delegate: delegate.address,
    token,
    provider: provider.address,
    maxPrice: MAX_PRICE,
    budget: BUDGET,
    period: PERIOD,
    expiry,
    models: [MODEL_A],
  });
  await preflight.connect(payer).grant(scope);
  let nonce = 100n;
  /** A request signed by the delegate (fresh nonce each time). */
  const byDelegate = async (fields: Partial<Request> = {}) =>
    signedRequest(
      delegate,
      base.domain,
      await makeRequest({ payer: payer.address, provider: provider.address, token, nonce: nonce++, deadline: 2n ** 40n, ...fields }),
    );
  return { ...base, token, scope, expiry, byDelegate };
}

describe("Security: delegates beyond their scope", function () {
  it("settles within scope, debiting the payer and counting against the budget", async function () {
    const { preflight, provider, payer, delegate, token, byDelegate } = await loadFixture(deployDelegatesFixture);
    await expectSettledRequest(preflight.connect(provider).settle(await byDelegate({ price: MAX_PRICE })), payer.address, provider.address, token, 100n, MAX_PRICE);
    expect((await preflight.grantOf(payer.address, token, delegate.address)).spent).to.equal(MAX_PRICE);
  });

  it("refuses a model outside the grant", async function () {
    const { preflight, provider, token, byDelegate } = await loadFixture(deployDelegatesFixture);
    const item = await byDelegate({ model: MODEL_B });
    await expect(preflight.connect(provider).settle(item)).to.be.revertedWithCustomError(preflight, "ModelNotAllowed").withArgs(MODEL_B);
    expect(await preflight.connect(provider).settleBatch.staticCall(token, [item])).to.deep.equal([Reason.ModelNotAllowed]);
  });

  it("refuses a provider outside the grant", async function () {
    const { preflight, other, payer, delegate, token, domain, byDelegate } = await loadFixture(deployDelegatesFixture);
    const item = await byDelegate({ provider: other.address });
    await expect(preflight.connect(other).settle(item)).to.be.revertedWithCustomError(preflight, "ProviderNotAllowed").withArgs(other.address);
    expect(await preflight.connect(other).settleBatch.staticCall(token, [item])).to.deep.equal([Reason.ProviderNotAllowed]);
    const voucher = await signedVoucher(delegate, domain, {
      payer: payer.address,
      provider: other.address,
      token,
      model: MODEL_A,
      channel: ethers.ZeroHash,
      cumulativeAmount: 1n,
    });
    await expect(preflight.connect(other).claimVoucher(voucher)).to.be.revertedWithCustomError(preflight, "ProviderNotAllowed");
  });

  it("refuses a price over the cap per request", async function () {
    const { preflight, provider, token, byDelegate } = await loadFixture(deployDelegatesFixture);
    const item = await byDelegate({ price: MAX_PRICE + 1n });
    await expect(preflight.connect(provider).settle(item))
      .to.be.revertedWithCustomError(preflight, "PriceAboveCap")
      .withArgs(MAX_PRICE + 1n, MAX_PRICE);
    expect(await preflight.connect(provider).settleBatch.staticCall(token, [item])).to.deep.equal([Reason.PriceAboveCap]);
  });

  it("refuses spending past the budget, by requests and by vouchers, alone and in a batch", async function () {
    const { preflight, provider, payer, delegate, token, domain, byDelegate } = await loadFixture(deployDelegatesFixture);
    await preflight.connect(provider).settle(await byDelegate({ price: 2_000n }));
    await preflight.connect(provider).settle(await byDelegate({ price: 2_000n }));
    await expect(preflight.connect(provider).settle(await byDelegate({ price: 1_001n })))
      .to.be.revertedWithCustomError(preflight, "BudgetExceeded")
      .withArgs(5_001n, BUDGET);
    // In a batch the budget is consumed item by item: the third item would exceed it.
    const batch = [await byDelegate({ price: 600n }), await byDelegate({ price: 400n }), await byDelegate({ price: 1n })];
    expect(await preflight.connect(provider).settleBatch.staticCall(token, batch)).to.deep.equal([
      Reason.Settled,
      Reason.Settled,
      Reason.BudgetExceeded,
    ]);
    await preflight.connect(provider).settleBatch(token, batch);
    const voucher = await signedVoucher(delegate, domain, {
      payer: payer.address,
      provider: provider.address,
      token,
      model: MODEL_A,
      channel: ethers.id("session"),
      cumulativeAmount: 1n,
    });
    await expect(preflight.connect(provider).claimVoucher(voucher))
      .to.be.revertedWithCustomError(preflight, "BudgetExceeded")
      .withArgs(BUDGET + 1n, BUDGET);
    expect((await preflight.grantOf(payer.address, token, delegate.address)).spent).to.equal(BUDGET);
  });

  it("resets the budget only when a period rolls over, keeping periods aligned to the grant", async function () {
    const { preflight, provider, payer, delegate, token, byDelegate } = await loadFixture(deployDelegatesFixture);
    const start = (await preflight.grantOf(payer.address, token, delegate.address)).periodEnd - PERIOD;
    for (let i = 0; i < 3; i++) await preflight.connect(provider).settle(await byDelegate({ price: i < 2 ? 2_000n : 1_000n }));
    const late = await byDelegate({ price: 1n });
    // One second before the period ends: still the same period, still over budget.
    await time.setNextBlockTimestamp(start + PERIOD - 1n);
    await expect(preflight.connect(provider).settle(late)).to.be.revertedWithCustomError(preflight, "BudgetExceeded");
    // At the boundary the budget is fresh, once: a full budget, then nothing more.
    await time.setNextBlockTimestamp(start + PERIOD);
    await preflight.connect(provider).settle(late);
    let g = await preflight.grantOf(payer.address, token, delegate.address);
    expect([g.spent, g.periodEnd]).to.deep.equal([1n, start + 2n * PERIOD]);
    await preflight.connect(provider).settle(await byDelegate({ price: 2_000n }));
    await preflight.connect(provider).settle(await byDelegate({ price: 2_000n }));
    await expect(preflight.connect(provider).settle(await byDelegate({ price: 1_000n }))).to.be.revertedWithCustomError(
      preflight,
      "BudgetExceeded",
    );
    // Skipping several idle periods lands in the period containing now, still aligned.
    await time.setNextBlockTimestamp(start + 5n * PERIOD + 17n);
    await preflight.connect(provider).settle(await byDelegate({ price: 2_000n }));
    g = await preflight.grantOf(payer.address, token, delegate.address);
    expect([g.spent, g.periodEnd]).to.deep.equal([2_000n, start + 6n * PERIOD]);
  });

  it("refuses an expired grant", async function () {
    const { preflight, provider, delegate, token, expiry, byDelegate } = await loadFixture(deployDelegatesFixture);
    const item = await byDelegate({ deadline: expiry + 10n });
    await time.setNextBlockTimestamp(expiry);
    await expect(preflight.connect(provider).settle(item))
      .to.be.revertedWithCustomError(preflight, "GrantExpired")
      .withArgs(delegate.address, expiry);
    expect(await preflight.connect(provider).settleBatch.staticCall(token, [item])).to.deep.equal([Reason.GrantExpired]);
  });

  it("refuses everything a revoked delegate signed, even what it signed before the revoke", async function () {
    const { preflight, provider, payer, delegate, token, domain, byDelegate } = await loadFixture(deployDelegatesFixture);
    const signedBefore = await byDelegate();
    const voucherBefore = await signedVoucher(delegate, domain, {
      payer: payer.address,
      provider: provider.address,
      token,
      model: MODEL_A,
      channel: ethers.ZeroHash,
      cumulativeAmount: 10n,
    });
    await preflight.connect(payer).revoke(token, delegate.address);
    await expect(preflight.connect(provider).settle(signedBefore))
      .to.be.revertedWithCustomError(preflight, "RevokedGrant")
      .withArgs(delegate.address);
    await expect(preflight.connect(provider).claimVoucher(voucherBefore)).to.be.revertedWithCustomError(preflight, "RevokedGrant");
    expect(await preflight.connect(provider).settleBatch.staticCall(token, [signedBefore])).to.deep.equal([Reason.GrantRevoked]);
    expect(await preflight.connect(provider).claimVouchers.staticCall(token, [voucherBefore])).to.deep.equal([Reason.GrantRevoked]);
  });

  it("a signed grant applies once, and never after a revoke (re-used by signature)", async function () {
    const { preflight, payer, other, token, domain, scope } = await loadFixture(deployDelegatesFixture);
    const t = { ...scope, delegate: other.address };
    const deadline = BigInt(await time.latest()) + 3_600n;
    const signature = await signedGrant(preflight, payer, domain, t, deadline);
    // Anyone may submit it (gasless onboarding)...
    await expect(preflight.connect(other).grantBySig(payer.address, t, deadline, signature)).to.emit(preflight, "GrantSet");
    // ...once.
    await expect(preflight.grantBySig(payer.address, t, deadline, signature)).to.be.revertedWithCustomError(preflight, "InvalidSigner");
    await preflight.connect(payer).revoke(token, other.address);
    await expect(preflight.grantBySig(payer.address, t, deadline, signature)).to.be.revertedWithCustomError(preflight, "InvalidSigner");
    expect((await preflight.grantOf(payer.address, token, other.address)).expiry).to.equal(0n);

    // A signed grant never submitted dies with a revoke made before it is used.
    const pending = await signedGrant(preflight, payer, domain, t, deadline);
    await preflight.connect(payer).revoke(token, other.address);
    await expect(preflight.grantBySig(payer.address, t, deadline, pending)).to.be.revertedWithCustomError(preflight, "InvalidSigner");
    // A stale deadline is refused before anything else.
    const fresh = await signedGrant(preflight, payer, domain, t, deadline);
    await time.setNextBlockTimestamp(deadline + 1n);
    await expect(preflight.grantBySig(payer.address, t, deadline, fresh))
      .to.be.revertedWithCustomError(preflight, "SignatureExpired")
      .withArgs(deadline);
  });

  it("a delegate cannot spend another payer's escrow, another token, or widen its own grant", async function () {
    const { preflight, usdc, provider, payer, delegate, other, token, domain, scope } = await loadFixture(deployDelegatesFixture);
    // Another payer with funds, who granted nothing to this delegate.
    await usdc.mint(other.address, 10n ** 9n);
    await usdc.connect(other).approve(await preflight.getAddress(), ethers.MaxUint256);
    await preflight.connect(other).deposit(other.address, token, 10n ** 9n);
    const forOther = await signedRequest(delegate, domain, await makeRequest({ payer: other.address, provider: provider.address, token }));
    await expect(preflight.connect(provider).settle(forOther))
      .to.be.revertedWithCustomError(preflight, "InvalidSigner")
      .withArgs(delegate.address);
    // Another token of the same payer: the grant is per token.
    await preflight.connect(payer).depositETH(payer.address, { value: 10n ** 18n });
    const inEth = await signedRequest(
      delegate,
      domain,
      await makeRequest({ payer: payer.address, provider: provider.address, token: ethers.ZeroAddress }),
    );
    await expect(preflight.connect(provider).settle(inEth)).to.be.revertedWithCustomError(preflight, "InvalidSigner");
    // `grant` by the delegate only ever grants from the delegate's own escrow.
    await preflight.connect(delegate).grant({ ...scope, delegate: delegate.address, maxPrice: 10n ** 20n, budget: 10n ** 20n, models: [] });
    expect((await preflight.grantOf(payer.address, token, delegate.address)).budget).to.equal(BUDGET);
    // A grant made by a signature the payer never gave fails.
    const deadline = BigInt(await time.latest()) + 3_600n;
    const forged = await signedGrant(preflight, delegate, domain, { ...scope, budget: 10n ** 20n }, deadline);
    await expect(
      preflight.grantBySig(payer.address, { ...scope, budget: 10n ** 20n }, deadline, forged),
    ).to.be.revertedWithCustomError(preflight, "InvalidSigner");
  });

  it("a new grant retires the previous model set; re-granting a revoked key revives its unsettled signatures in the new scope", async function () {
    const { preflight, provider, payer, delegate, token, scope, byDelegate } = await loadFixture(deployDelegatesFixture);
    const modelA = await byDelegate({ model: MODEL_A });
    await preflight.connect(payer).revoke(token, delegate.address);
    await preflight.connect(payer).grant({ ...scope, models: [MODEL_B] });
    expect(await preflight.isModelAllowed(payer.address, token, delegate.address, MODEL_A)).to.equal(false);
    expect(await preflight.isModelAllowed(payer.address, token, delegate.address, MODEL_B)).to.equal(true);
    await expect(preflight.connect(provider).settle(modelA)).to.be.revertedWithCustomError(preflight, "ModelNotAllowed");
    // Known limit (SECURITY.md): requests bind the key, not the grant's epoch. Re-granting the same key
    // makes what it signed earlier settle again if the new scope covers it and its nonce is unused.
    await preflight.connect(payer).grant({ ...scope, models: [] });
    await expect(preflight.connect(provider).settle(modelA)).to.emit(preflight, "RequestsSettled");
  });

  it("a revoke always works, even on a (payer, token, delegate) whose epochs are exhausted", async function () {
    const { preflight, provider, payer, delegate, token, scope, byDelegate } = await loadFixture(deployDelegatesFixture);
    // Find the grant's cold record (mapping payer => token => delegate => GrantRecord) and move its
    // epoch to the last but one, as if the payer had granted and revoked 32,766 times.
    const epochShift = 120n; // record slot 0 packs budget(88) | period(32) | epoch(16)
    const coder = ethers.AbiCoder.defaultAbiCoder();
    const address = await preflight.getAddress();
    let slot: string | undefined;
    for (let base = 0n; base < 64n && slot === undefined; base++) {
      const inner = ethers.keccak256(coder.encode(["address", "uint256"], [payer.address, base]));
      const middle = ethers.keccak256(coder.encode(["address", "bytes32"], [token, inner]));
      const candidate = ethers.keccak256(coder.encode(["address", "bytes32"], [delegate.address, middle]));
      const word = BigInt(await ethers.provider.getStorage(address, candidate));
      if (((word >> epochShift) & 0xffffn) === 1n && (word & ((1n << 88n) - 1n)) === BigInt(scope.budget)) slot = candidate;
    }
    expect(slot, "grant slot").to.not.equal(undefined);
    const word = BigInt(await ethers.provider.getStorage(address, slot!));
    const exhausted = (word & ((1n << epochShift) - 1n)) | (32_766n << epochShift);
    await network.provider.send("hardhat_setStorageAt", [address, slot, ethers.toBeHex(exhausted, 32)]);
    await preflight.connect(payer).grant(scope); // epoch 32,767: the last one the hot slot holds
    expect((await preflight.grantOf(payer.address, token, delegate.address)).epoch).to.equal(32_767n);
    const signed = await byDelegate();
    // The payer must still be able to stop this delegate at once.
    await expect(preflight.connect(payer).revoke(token, delegate.address)).to.emit(preflight, "GrantRevoked");
    await expect(preflight.connect(provider).settle(signed)).to.be.revertedWithCustomError(preflight, "RevokedGrant");
    // It can never be granted again (use another key), and revoking again is harmless.
    await expect(preflight.connect(payer).grant(scope)).to.be.revertedWithCustomError(preflight, "GrantEpochExhausted");
    await preflight.connect(payer).revoke(token, delegate.address);
    expect((await preflight.grantOf(payer.address, token, delegate.address)).expiry).to.equal(0n);
  });

  it("a grant signed for payer address(0) never applies, whatever the signature", async function () {
    const { preflight, scope } = await loadFixture(deployDelegatesFixture);
    const deadline = BigInt(await time.latest()) + 600n;
    for (const signature of [ethers.concat([ethers.ZeroHash, ethers.ZeroHash, "0x1b"]), "0x", ethers.concat([ethers.ZeroHash, ethers.ZeroHash])]) {
      await expect(preflight.grantBySig(ethers.ZeroAddress, scope, deadline, signature)).to.be.reverted;
    }
    expect((await preflight.grantOf(ethers.ZeroAddress, scope.token, scope.delegate)).epoch).to.equal(0n);
  });

  it("an any-model grant allows every model; a budget period near the end of 32-bit time is capped, not wrapped", async function () {
    const { preflight, provider, payer, delegate, token, scope, byDelegate } = await loadFixture(deployDelegatesFixture);
    const period = 2n ** 31n; // ~68 years: the second period would end after 2^32 - 1
    await preflight.connect(payer).grant({ ...scope, models: [], period, expiry: 2n ** 32n - 1n });
    expect(await preflight.isModelAllowed(payer.address, token, delegate.address, MODEL_B)).to.equal(true);
    const { periodEnd } = await preflight.grantOf(payer.address, token, delegate.address);
    await preflight.connect(provider).settle(await byDelegate({ price: 2_000n, deadline: 2n ** 40n }));
    const late = await byDelegate({ price: 2_000n, deadline: 2n ** 40n });
    await time.setNextBlockTimestamp(periodEnd);
    await preflight.connect(provider).settle(late);
    const g = await preflight.grantOf(payer.address, token, delegate.address);
    expect([g.spent, g.periodEnd]).to.deep.equal([2_000n, 2n ** 32n - 1n]);
  });
});
