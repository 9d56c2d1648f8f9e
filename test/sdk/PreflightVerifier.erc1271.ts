import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { PreflightVerifier, Reason } from "@preflight/provider";
import { deployPreflightFixture } from "../helpers/fixtures";
import { makeRequest, MODEL_A } from "../helpers/requests";
import { fundedWallet, signRequestFast, signVoucherFast } from "../helpers/sdk";

/** The core fixture plus a contract-wallet payer (ERC-1271) owned by an EOA, with escrowed funds. */
async function deployWalletPayerFixture() {
  const base = await deployPreflightFixture();
  const token = await base.usdc.getAddress();
  const walletOwner = await fundedWallet(300);
  const wallet = await ethers.deployContract("OwnerSignedWallet", [walletOwner.address]);
  const walletAddress = await wallet.getAddress();
  await base.usdc.mint(base.owner.address, 1_000_000n);
  await base.usdc.connect(base.owner).approve(await base.preflight.getAddress(), ethers.MaxUint256);
  await base.preflight.connect(base.owner).deposit(walletAddress, token, 1_000_000n);
  return { ...base, token, walletOwner, walletAddress };
}

describe("PreflightVerifier with ERC-1271 payers", function () {
  it("accepts a contract wallet's signature through verifyAsync (one eth_call), as the contract does", async function () {
    const { preflight, domain, provider, token, walletOwner, walletAddress } = await loadFixture(deployWalletPayerFixture);
    const verifier = await PreflightVerifier.create({ contract: preflight, provider: provider.address });
    const base = { payer: walletAddress, provider: provider.address, token };
    const good = signRequestFast(walletOwner, domain, await makeRequest({ ...base, nonce: 0n }));
    const forged = signRequestFast(await fundedWallet(301), domain, await makeRequest({ ...base, nonce: 1n }));

    // Before the verifier knows the payer has code, the synchronous path treats it as an EOA.
    expect(verifier.verify(good, { reserve: false }).reason).to.equal(Reason.InvalidSigner);
    const accepted = await verifier.verifyAsync(good);
    expect([accepted.accepted, accepted.reason]).to.deep.equal([true, Reason.Settled]);
    const refused = await verifier.verifyAsync(forged);
    expect(refused.reason).to.equal(Reason.InvalidSigner);
    // Now the payer is known to be a contract: verify() asks for the async path instead of guessing.
    expect(verifier.verify(forged, { reserve: false }).needsErc1271).to.equal(true);

    const [goodReason, forgedReason] = await preflight.connect(provider).settleBatch.staticCall(token, [good, forged]);
    expect([Number(goodReason), Number(forgedReason)]).to.deep.equal([Reason.Settled, Reason.InvalidSigner]);
    await preflight.connect(provider).settle(good);
    await verifier.sync();
    expect((await verifier.verifyAsync(good)).reason).to.equal(Reason.NonceUsed);
    expect(verifier.accountOf(walletAddress, token).balance).to.equal(await preflight.balanceOf(walletAddress, token));
  });

  it("accepts a contract wallet's voucher through verifyVoucherAsync", async function () {
    const { preflight, domain, provider, token, walletOwner, walletAddress } = await loadFixture(deployWalletPayerFixture);
    const verifier = await PreflightVerifier.create({ contract: preflight, provider: provider.address });
    const voucher = signVoucherFast(walletOwner, domain, {
      payer: walletAddress,
      provider: provider.address,
      token,
      model: MODEL_A,
      channel: ethers.ZeroHash,
      cumulativeAmount: 5_000n,
    });
    expect((await verifier.verifyVoucherAsync(voucher)).reason).to.equal(Reason.Settled);
    await preflight.connect(provider).claimVoucher(voucher);
    await verifier.sync();
    expect((await verifier.verifyVoucherAsync(voucher)).reason).to.equal(Reason.NothingToClaim);
    expect(verifier.pendingCount).to.equal(0);
  });
});
