import { expect } from "chai";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { deployPreflightFixture } from "../helpers/fixtures";
import { makeRequest, signedRequest } from "../helpers/requests";

/** The payer slot's nonce window (fast path) and spilled words (slow path) settle each nonce once. */
describe("Preflight nonce window", function () {
  it("settles nonces in, above and across the window exactly once", async function () {
    const { preflight, usdc, domain, payer, provider } = await loadFixture(deployPreflightFixture);
    const token = await usdc.getAddress();
    const base = { payer: payer.address, provider: provider.address, token };
    const sign = async (nonce: bigint) => signedRequest(payer, domain, await makeRequest({ ...base, nonce }), true);

    // Above the window first (spilled word 1), then fill word 0 so the window slides onto word 1.
    await preflight.connect(provider).settle(await sign(70n));
    expect(await preflight.nonceBitmap(payer.address, token, 1n)).to.equal(1n << 6n);
    const batch = [];
    for (let n = 0n; n < 64n; n++) batch.push(await sign(n));
    await preflight.connect(provider).settleBatch(token, batch);
    expect(await preflight.nonceBitmap(payer.address, token, 0n)).to.equal(2n ** 64n - 1n);
    expect(await preflight.nonceBitmap(payer.address, token, 1n)).to.equal(1n << 6n);

    // Replays fail on every path: below the window, in it (slid onto the spilled bits), above it.
    for (const nonce of [5n, 70n]) {
      await expect(preflight.connect(provider).settle(await sign(nonce)))
        .to.be.revertedWithCustomError(preflight, "NonceAlreadyUsed")
        .withArgs(payer.address, nonce);
    }
    await preflight.connect(provider).settle(await sign(71n));
    await expect(preflight.connect(provider).settle(await sign(71n))).to.be.revertedWithCustomError(preflight, "NonceAlreadyUsed");
    expect(await preflight.nonceBitmap(payer.address, token, 1n)).to.equal((1n << 6n) | (1n << 7n));
    expect(await preflight.earningsOf(provider.address, token)).to.equal(66n * 1_000n);
  });
});
