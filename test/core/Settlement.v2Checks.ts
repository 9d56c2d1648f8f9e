import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { deployPreflightFixture } from "../helpers/fixtures";
import { reasonsOf } from "../helpers/logs";
import { makeRequest, signedRequest } from "../helpers/requests";
import { Reason, terms } from "../helpers/security";

/** The usual fixture with a delegate granted for the provider only. */
async function deployChecksFixture() {
  const base = await deployPreflightFixture();
  const token = await base.usdc.getAddress();
  await base.preflight.connect(base.payer).grant(terms({ delegate: base.delegate.address, token, provider: base.provider.address }));
  const sign = async (signer = base.payer, fields: Record<string, unknown> = {}) =>
    signedRequest(signer, base.domain, await makeRequest({ payer: base.payer.address, provider: base.provider.address, token, ...fields }));
  return { ...base, token, sign };
}

describe("Settlement: v2 checks", function () {
  it("a batch item with a nonce of 2^64 or more is skipped as NonceOutOfRange, logged with the largest 64-bit nonce", async function () {
    const { preflight, provider, token, sign } = await loadFixture(deployChecksFixture);
    const tx = await preflight.connect(provider).settleBatch(token, [await sign(undefined, { nonce: 2n ** 64n }), await sign(undefined, { nonce: 1n })]);
    expect(await reasonsOf(tx)).to.deep.equal([Reason.NonceOutOfRange, Reason.Settled].map(Number));
  });

  it("a delegate whose grant for another provider was revoked is refused as revoked, before the provider check", async function () {
    const { preflight, payer, delegate, other, token, sign } = await loadFixture(deployChecksFixture);
    const elsewhere = await sign(delegate, { provider: other.address });
    await expect(preflight.connect(other).settle(elsewhere)).to.be.revertedWithCustomError(preflight, "ProviderNotAllowed").withArgs(other.address);
    await preflight.connect(payer).revoke(token, delegate.address);
    await expect(preflight.connect(other).settle(elsewhere)).to.be.revertedWithCustomError(preflight, "RevokedGrant").withArgs(delegate.address);
    expect(await reasonsOf(preflight.connect(other).settleBatch(token, [elsewhere]))).to.deep.equal([Number(Reason.GrantRevoked)]);
    expect(ethers.ZeroAddress).to.not.equal(other.address);
  });
});
