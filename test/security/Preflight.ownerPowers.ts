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

/** Every state-changing function of the ABI. */
function mutatingFunctions(preflight: Preflight) {
  const fragments: FunctionFragment[] = [];
  preflight.interface.forEachFunction((f) => {
    if (!f.constant) fragments.push(f);
  });
  return fragments;
}

describe("Security: no owner", function () {
  it("has no owner, no privileged function and no way to change the fee", async function () {
    const { preflight } = await loadFixture(deployOwnerPowersFixture);
    const names = mutatingFunctions(preflight).map((f) => f.name);
    for (const privileged of ["owner", "setFee", "transferOwnership", "acceptOwnership", "renounceOwnership", "pause", "rescue", "upgradeTo"]) {
      expect(names).to.not.include(privileged);
      expect(preflight.interface.getFunction(privileged as never)).to.equal(null);
    }
    // Any new state-changing function must be added here on purpose, with a test that it only moves
    // the caller's own funds (or funds a signature of their owner authorizes).
    expect(names.sort()).to.deep.equal(
      [
        "cancelWithdrawal", "claimLane", "claimLanesPacked", "claimVoucher", "claimVouchers", "closeLane", "collectLanes",
        "deposit", "depositETH", "depositETHToLane", "depositToLane", "depositWithPermit", "fundLane", "grant", "grantBySig",
        "invalidateNonces", "requestLaneClose", "requestWithdrawal", "revoke", "settle", "settleBatch", "settlePacked",
        "withdraw", "withdrawEarnings", "withdrawFees",
      ].sort(),
    );
  });

  it("the fee is fixed at deployment, capped in code, and needs a recipient", async function () {
    const [, recipient] = await ethers.getSigners();
    const { preflight } = await loadFixture(deployOwnerPowersFixture);
    const cap = await preflight.MAX_FEE_BPS();
    expect(cap).to.equal(1_000n);
    expect(await preflight.FEE_BPS()).to.equal(0n);
    const factory = await ethers.getContractFactory("Preflight");
    await expect(factory.deploy(NOTICE_PERIOD, cap + 1n, recipient!.address)).to.be.revertedWithCustomError(factory, "FeeTooHigh").withArgs(cap + 1n, cap);
    await expect(factory.deploy(NOTICE_PERIOD, 65_535, recipient!.address)).to.be.revertedWithCustomError(factory, "FeeTooHigh");
    await expect(factory.deploy(NOTICE_PERIOD, 1, ethers.ZeroAddress)).to.be.revertedWithCustomError(factory, "ZeroAddress");
    const fee = await factory.deploy(NOTICE_PERIOD, cap, recipient!.address);
    expect([await fee.FEE_BPS(), await fee.FEE_RECIPIENT()]).to.deep.equal([cap, recipient!.address]);
  });

  it("the deployer cannot move, freeze or redirect balances or earnings, nor settle, revoke or burn nonces for others", async function () {
    const { preflight, owner, payer, provider, delegate, usdc, token, domain } = await loadFixture(deployOwnerPowersFixture);
    const balance = await preflight.balanceOf(payer.address, token);
    const earnings = await preflight.earningsOf(provider.address, token);
    await expect(preflight.connect(owner).withdraw(token, owner.address)).to.be.revertedWithCustomError(preflight, "NoWithdrawalRequested");
    await expect(preflight.connect(owner).withdrawEarnings(token, owner.address)).to.be.revertedWithCustomError(preflight, "ZeroAmount");
    await expect(preflight.connect(owner).withdrawFees(token)).to.be.revertedWithCustomError(preflight, "ZeroAmount");
    const forged = await signedRequest(owner, domain, await makeRequest({ payer: payer.address, provider: owner.address, token, nonce: 2n }));
    await expect(preflight.connect(owner).settle(forged)).to.be.revertedWithCustomError(preflight, "InvalidSigner");
    await preflight.connect(owner).revoke(token, delegate.address);
    expect((await preflight.grantOf(payer.address, token, delegate.address)).expiry).to.not.equal(0n);
    await preflight.connect(owner).invalidateNonces(token, 0n, (1n << 64n) - 1n);
    expect(await preflight.nonceBitmap(payer.address, token, 0n)).to.equal(1n << 1n);
    // A lane close and a collection act on the caller's own lanes only.
    await expect(preflight.connect(owner).closeLane(provider.address, token, owner.address)).to.be.revertedWithCustomError(preflight, "LaneCloseNotRequested");
    await preflight.connect(owner).collectLanes(token, [payer.address]);
    expect(await preflight.earningsOf(owner.address, token)).to.equal(0n);
    await expect(preflight.connect(provider).withdrawEarnings(token, provider.address)).to.changeTokenBalance(usdc, provider, earnings);
    await preflight.connect(payer).requestWithdrawal(token, ethers.MaxUint256);
    await time.increase(NOTICE_PERIOD);
    await expect(preflight.connect(payer).withdraw(token, payer.address)).to.changeTokenBalance(usdc, payer, balance);
  });
});
