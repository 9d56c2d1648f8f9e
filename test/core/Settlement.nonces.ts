import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { deployPreflightFixture } from "../helpers/fixtures";
import { makeRequest, signedRequest } from "../helpers/requests";
import { Reason } from "../helpers/signatures";
import type { Request } from "@preflight/sdk";

const FULL = 2n ** 64n - 1n;
const PRICE = 10n;

async function deployNoncesFixture() {
  const base = await deployPreflightFixture();
  const { preflight, payer, provider, domain } = base;
  const token = await base.usdc.getAddress();
  await preflight.connect(payer).depositETH(payer.address, { value: 10_000n });
  const signed = async (nonce: bigint, fields: Partial<Request> = {}) =>
    signedRequest(payer, domain, await makeRequest({ payer: payer.address, provider: provider.address, token, price: PRICE, nonce, ...fields }));
  const settle = async (nonce: bigint, fields: Partial<Request> = {}) =>
    preflight.connect(provider).settle(await signed(nonce, fields));
  const bitmap = (word: bigint, t = token) => preflight.nonceBitmap(payer.address, t, word);
  return { ...base, token, signed, settle, bitmap };
}

describe("Settlement: unordered nonces", function () {
  it("accepts nonces in any order and records each as one bit", async function () {
    const { settle, bitmap } = await loadFixture(deployNoncesFixture);
    for (const nonce of [5n, 2n, 0n, 63n]) await settle(nonce);
    expect(await bitmap(0n)).to.equal((1n << 5n) | (1n << 2n) | 1n | (1n << 63n));
    await settle(1n); // a gap below used nonces is still usable
    expect(await bitmap(0n)).to.equal((1n << 5n) | (1n << 2n) | 3n | (1n << 63n));
  });

  it("slides the window after 64 uses: the used word stays full, the next word opens", async function () {
    const { preflight, payer, provider, token, signed, settle, bitmap } = await loadFixture(deployNoncesFixture);
    const batch = await Promise.all(Array.from({ length: 64 }, (_, i) => signed(BigInt(i))));
    const reasons = await preflight.connect(provider).settleBatch.staticCall(token, batch);
    expect(reasons.every((r) => r === Reason.Settled)).to.equal(true);
    await preflight.connect(provider).settleBatch(token, batch);
    expect(await bitmap(0n)).to.equal(FULL);
    expect(await bitmap(1n)).to.equal(0n);
    await settle(64n);
    expect(await bitmap(1n)).to.equal(1n);
    await expect(settle(10n)).to.be.revertedWithCustomError(preflight, "NonceAlreadyUsed").withArgs(payer.address, 10n);
    expect(await bitmap(0n)).to.equal(FULL);
  });

  it("keeps nonces above the window in spilled words, and carries them when the window reaches them", async function () {
    const { preflight, payer, token, settle, bitmap } = await loadFixture(deployNoncesFixture);
    const far = 3n * 64n + 5n; // word 3, bit 5
    await settle(far);
    expect(await bitmap(3n)).to.equal(1n << 5n);
    await expect(settle(far)).to.be.revertedWithCustomError(preflight, "NonceAlreadyUsed").withArgs(payer.address, far);
    // Fill word 1 (spilled) first, then words 0 and 2: the window slides from 0 across the full
    // spilled word 1 and the now-full word 2 to word 3, picking up word 3's spilled bit.
    await preflight.connect(payer).invalidateNonces(token, 1n, FULL);
    await preflight.connect(payer).invalidateNonces(token, 2n, FULL);
    await preflight.connect(payer).invalidateNonces(token, 0n, FULL);
    for (const word of [0n, 1n, 2n]) expect(await bitmap(word)).to.equal(FULL);
    expect(await bitmap(3n)).to.equal(1n << 5n);
    await expect(settle(far)).to.be.revertedWithCustomError(preflight, "NonceAlreadyUsed").withArgs(payer.address, far);
    await settle(far - 1n);
    expect(await bitmap(3n)).to.equal(3n << 4n);
  });

  it("accepts the largest nonce, once", async function () {
    const { preflight, payer, token, settle, bitmap } = await loadFixture(deployNoncesFixture);
    const nonce = 2n ** 64n - 1n; // nonces are 64-bit (in logs and packed calldata)
    await settle(nonce);
    expect(await bitmap(nonce >> 6n)).to.equal(1n << 63n);
    await expect(settle(nonce)).to.be.revertedWithCustomError(preflight, "NonceAlreadyUsed").withArgs(payer.address, nonce);
    expect(await preflight.nonceBitmap(payer.address, token, 0n)).to.equal(0n);
  });

  it("keeps nonces per (payer, token)", async function () {
    const { preflight, usdc, payer, provider, other, domain, token, settle, bitmap } = await loadFixture(deployNoncesFixture);
    await settle(0n);
    await settle(0n, { token: ethers.ZeroAddress }); // same payer, native ETH
    await usdc.mint(other.address, 100n);
    await usdc.connect(other).approve(await preflight.getAddress(), 100n);
    await preflight.connect(other).deposit(other.address, token, 100n);
    const fromOther = await makeRequest({ payer: other.address, provider: provider.address, token, price: PRICE, nonce: 0n });
    await preflight.connect(provider).settle(await signedRequest(other, domain, fromOther)); // another payer
    expect(await bitmap(0n)).to.equal(1n);
    expect(await bitmap(0n, ethers.ZeroAddress)).to.equal(1n);
    expect(await preflight.nonceBitmap(other.address, token, 0n)).to.equal(1n);
    await preflight.connect(payer).invalidateNonces(token, 0n, FULL);
    expect(await bitmap(0n, ethers.ZeroAddress)).to.equal(1n);
  });

  describe("window catch-up after words filled far ahead", function () {
    it("a settlement slides at most 8 words; the payer's invalidateNonces(token, 0, 0) catches the rest up", async function () {
      const { preflight, payer, provider, token, settle, bitmap } = await loadFixture(deployNoncesFixture);
      for (let word = 1n; word <= 20n; word++) await preflight.connect(payer).invalidateNonces(token, word, FULL);
      await preflight.connect(payer).invalidateNonces(token, 0n, FULL >> 1n); // all of word 0 but nonce 63
      await settle(63n); // completes word 0: the window slides over words 1..8 and stops, still on a full word
      const gasOf = async (nonce: bigint) => (await (await settle(nonce)).wait())!.gasUsed;
      await settle(21n * 64n + 1n); // word 21 is above the window: it gets a spilled slot of its own
      const beyondWindow = await gasOf(21n * 64n + 2n); // reads and rewrites that extra slot
      await preflight.connect(payer).invalidateNonces(token, 0n, 0n); // words 9..16
      await preflight.connect(payer).invalidateNonces(token, 0n, 0n); // words 17..21: stops on the first non-full word
      const inWindow = await gasOf(21n * 64n + 3n); // now in the payer's account slot: no extra slot
      expect(inWindow).to.be.lessThan(beyondWindow - 4_000n);
      // Nothing was lost or revived on the way.
      for (let word = 0n; word <= 20n; word++) expect(await bitmap(word)).to.equal(FULL);
      expect(await bitmap(21n)).to.equal(0b1110n);
      await expect(settle(21n * 64n + 1n)).to.be.revertedWithCustomError(preflight, "NonceAlreadyUsed");
      await expect(settle(21n * 64n)).to.emit(preflight, "RequestsSettled");
      expect(provider.address).to.not.equal(payer.address);
    });
  });

  describe("invalidateNonces", function () {
    it("burns the nonces of the mask and emits NoncesInvalidated", async function () {
      const { preflight, payer, token, settle, bitmap } = await loadFixture(deployNoncesFixture);
      const mask = (1n << 3n) | (1n << 40n);
      await expect(preflight.connect(payer).invalidateNonces(token, 0n, mask))
        .to.emit(preflight, "NoncesInvalidated")
        .withArgs(payer.address, token, 0n, mask);
      expect(await bitmap(0n)).to.equal(mask);
      await expect(settle(40n)).to.be.revertedWithCustomError(preflight, "NonceAlreadyUsed").withArgs(payer.address, 40n);
      await settle(4n);
    });

    it("accepts bits already used, keeping them used", async function () {
      const { preflight, payer, token, settle, bitmap } = await loadFixture(deployNoncesFixture);
      await settle(1n);
      await settle(2n);
      await expect(preflight.connect(payer).invalidateNonces(token, 0n, 0b1110n)).to.emit(preflight, "NoncesInvalidated");
      expect(await bitmap(0n)).to.equal(0b1110n);
      await preflight.connect(payer).invalidateNonces(token, 0n, 0b0110n); // every bit already used
      expect(await bitmap(0n)).to.equal(0b1110n);
    });

    it("works above the window and is a no-op below it or with an empty mask", async function () {
      const { preflight, payer, token, settle, bitmap } = await loadFixture(deployNoncesFixture);
      await preflight.connect(payer).invalidateNonces(token, 7n, 1n << 9n);
      expect(await bitmap(7n)).to.equal(1n << 9n);
      await expect(settle(7n * 64n + 9n)).to.be.revertedWithCustomError(preflight, "NonceAlreadyUsed");
      await preflight.connect(payer).invalidateNonces(token, 0n, FULL); // window moves to word 1
      await expect(preflight.connect(payer).invalidateNonces(token, 0n, 1n)).to.emit(preflight, "NoncesInvalidated");
      await expect(preflight.connect(payer).invalidateNonces(token, 1n, 0n)).to.emit(preflight, "NoncesInvalidated");
      expect(await bitmap(0n)).to.equal(FULL);
      expect(await bitmap(1n)).to.equal(0n);
      await settle(64n);
    });
  });
});
