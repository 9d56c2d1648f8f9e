import { expect } from "chai";
import { ethers } from "hardhat";
import type { FunctionFragment } from "ethers";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { deployPreflightFixture, NOTICE_PERIOD } from "../helpers/fixtures";
import { makeRequest, signedRequest } from "../helpers/requests";
import { terms } from "../helpers/security";
import type { Preflight } from "../../typechain-types";

/** The usual fixture, with the payer's request settled once (so the provider has earnings) and a grant made. */
async function deployOwnerPowersFixture() {
  const base = await deployPreflightFixture();
  const { preflight, payer, provider, delegate, usdc, domain } = base;
  const token = await usdc.getAddress();
  const request = await makeRequest({ payer: payer.address, provider: provider.address, token, price: 100_000n, nonce: 1n });
  await preflight.connect(provider).settle(await signedRequest(payer, domain, request));
  await preflight.connect(payer).grant(terms({ delegate: delegate.address, token }));
  return { ...base, token };
}

/** Every state-changing function of the ABI, with arguments of the right types (zeros). */
function mutatingFunctions(preflight: Preflight) {
  const fragments: FunctionFragment[] = [];
  preflight.interface.forEachFunction((f) => {
    if (!f.constant) fragments.push(f);
  });
  return fragments;
}

describe("Security: owner powers", function () {
  it("the only privileged functions are the fee and ownership itself", async function () {
    const { preflight, other } = await loadFixture(deployOwnerPowersFixture);
    const gated: string[] = [];
    for (const fragment of mutatingFunctions(preflight)) {
      const args = fragment.inputs.map((input) => ethers.AbiCoder.defaultAbiCoder().getDefaultValue([input])[0] as unknown);
      const data = fragment.selector + ethers.AbiCoder.defaultAbiCoder().encode(fragment.inputs, args).slice(2);
      try {
        await other.call({ to: await preflight.getAddress(), data });
      } catch (e) {
        const revert = (e as { data?: string }).data;
        const parsed = revert && revert.length >= 10 ? preflight.interface.parseError(revert) : null;
        if (parsed?.name === "OwnableUnauthorizedAccount") gated.push(fragment.name);
      }
    }
    // (acceptOwnership is gated to the pending owner, with the same error.) Any new privileged function
    // must be added here on purpose, with its own test showing it cannot touch funds.
    expect(gated.sort()).to.deep.equal(["acceptOwnership", "renounceOwnership", "setFee", "transferOwnership"]);
  });

  it("the fee is capped in code, and needs a recipient", async function () {
    const { preflight, owner, feeRecipient } = await loadFixture(deployOwnerPowersFixture);
    const cap = await preflight.MAX_FEE_BPS();
    expect(cap).to.equal(1_000n);
    await expect(preflight.connect(owner).setFee(cap + 1n, feeRecipient.address))
      .to.be.revertedWithCustomError(preflight, "FeeTooHigh")
      .withArgs(cap + 1n, cap);
    await expect(preflight.connect(owner).setFee(65_535, feeRecipient.address)).to.be.revertedWithCustomError(preflight, "FeeTooHigh");
    await expect(preflight.connect(owner).setFee(1, ethers.ZeroAddress)).to.be.revertedWithCustomError(preflight, "ZeroAddress");
    await expect(
      ethers.deployContract("Preflight", [owner.address, NOTICE_PERIOD, cap + 1n, feeRecipient.address]),
    ).to.be.revertedWithCustomError(preflight, "FeeTooHigh");
  });

  it("the owner cannot move, freeze or redirect balances or earnings, nor settle, revoke or burn nonces for others", async function () {
    const { preflight, owner, payer, provider, delegate, feeRecipient, usdc, token, domain } = await loadFixture(deployOwnerPowersFixture);
    const balance = await preflight.balanceOf(payer.address, token);
    const earnings = await preflight.earningsOf(provider.address, token);
    // withdraw and withdrawEarnings act on the caller's own account only.
    await expect(preflight.connect(owner).withdraw(token, owner.address)).to.be.revertedWithCustomError(preflight, "NoWithdrawalRequested");
    await expect(preflight.connect(owner).withdrawEarnings(token, owner.address)).to.be.revertedWithCustomError(preflight, "ZeroAmount");
    // Settling needs the payer's signature: the owner's own is refused.
    const forged = await signedRequest(owner, domain, await makeRequest({ payer: payer.address, provider: owner.address, token, nonce: 2n }));
    await expect(preflight.connect(owner).settle(forged)).to.be.revertedWithCustomError(preflight, "InvalidSigner");
    // revoke and invalidateNonces touch the caller's own grants and nonces.
    await preflight.connect(owner).revoke(token, delegate.address);
    expect((await preflight.grantOf(payer.address, token, delegate.address)).expiry).to.not.equal(0n);
    await preflight.connect(owner).invalidateNonces(token, 0n, (1n << 64n) - 1n);
    expect(await preflight.nonceBitmap(payer.address, token, 0n)).to.equal(1n << 1n);
    // The maximum fee, with the owner as recipient, changes nothing already credited and charges no withdrawal.
    await preflight.connect(owner).setFee(1_000, owner.address);
    expect(await preflight.earningsOf(provider.address, token)).to.equal(earnings);
    expect(await preflight.earningsOf(owner.address, token)).to.equal(0n);
    await expect(preflight.connect(provider).withdrawEarnings(token, provider.address)).to.changeTokenBalance(usdc, provider, earnings);
    await preflight.connect(payer).requestWithdrawal(token, ethers.MaxUint256);
    await time.increase(NOTICE_PERIOD);
    await expect(preflight.connect(payer).withdraw(token, payer.address)).to.changeTokenBalance(usdc, payer, balance);
    // Changing the recipient later does not move fees already credited to the previous one.
    await preflight.connect(owner).setFee(500, feeRecipient.address);
    expect(await preflight.earningsOf(feeRecipient.address, token)).to.equal(0n);
  });

  it("the fee applies to later settlements only, at the rate set, and goes to the recipient as earnings", async function () {
    const { preflight, owner, payer, provider, feeRecipient, token, domain } = await loadFixture(deployOwnerPowersFixture);
    await expect(preflight.connect(owner).setFee(1_000, feeRecipient.address)).to.emit(preflight, "FeeChanged").withArgs(1_000n, feeRecipient.address);
    expect(await preflight.fee()).to.deep.equal([1_000n, feeRecipient.address]);
    const request = await makeRequest({ payer: payer.address, provider: provider.address, token, price: 10_000n, nonce: 3n });
    const before = await preflight.earningsOf(provider.address, token);
    await preflight.connect(provider).settle(await signedRequest(payer, domain, request));
    expect(await preflight.earningsOf(provider.address, token)).to.equal(before + 9_000n);
    expect(await preflight.earningsOf(feeRecipient.address, token)).to.equal(1_000n);
    await expect(preflight.connect(feeRecipient).withdrawEarnings(token, feeRecipient.address)).to.emit(preflight, "EarningsWithdrawn");
  });

  it("ownership moves in two steps; once renounced, nobody can change the fee and everything else works", async function () {
    const { preflight, owner, other, payer, token } = await loadFixture(deployOwnerPowersFixture);
    await preflight.connect(owner).transferOwnership(other.address);
    await expect(preflight.connect(other).setFee(1, other.address)).to.be.revertedWithCustomError(preflight, "OwnableUnauthorizedAccount");
    await preflight.connect(other).acceptOwnership();
    await expect(preflight.connect(owner).setFee(1, owner.address)).to.be.revertedWithCustomError(preflight, "OwnableUnauthorizedAccount");
    await preflight.connect(other).renounceOwnership();
    expect(await preflight.owner()).to.equal(ethers.ZeroAddress);
    await expect(preflight.connect(other).setFee(0, ethers.ZeroAddress)).to.be.revertedWithCustomError(preflight, "OwnableUnauthorizedAccount");
    await preflight.connect(payer).requestWithdrawal(token, 1n);
    await time.increase(NOTICE_PERIOD);
    await expect(preflight.connect(payer).withdraw(token, payer.address)).to.emit(preflight, "Withdrawn");
  });
});
