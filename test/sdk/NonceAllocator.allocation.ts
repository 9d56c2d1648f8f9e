import { expectNoSkips } from "../helpers/logs";
import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { NonceAllocator } from "@preflight/provider";
import { expectSdkError } from "../helpers/sdk";
import { deployPreflightFixture } from "../helpers/fixtures";
import { makeRequest, signedRequest } from "../helpers/requests";

const FULL = (1n << 64n) - 1n;

describe("NonceAllocator", function () {
  describe("allocation over a bitmap", function () {
    it("hands out consecutive free bits of the lowest non-full word, skipping used ones", async function () {
      const words = new Map<bigint, bigint>([[0n, FULL], [1n, 0b1011n]]);
      const reads: bigint[] = [];
      const nonces = await NonceAllocator.fromReader(async (w) => {
        reads.push(w);
        return words.get(w) ?? 0n;
      });
      expect(await nonces.take(4)).to.deep.equal([64n + 2n, 64n + 4n, 64n + 5n, 64n + 6n]);
      expect(nonces.currentWord).to.equal(1n);
      expect(reads).to.deep.equal([0n, 1n]);
    });

    it("moves to the next word only when the current one is exhausted, and never repeats a nonce", async function () {
      let reads = 0;
      const nonces = await NonceAllocator.fromReader(async (w) => {
        reads++;
        return w === 2n ? 1n : 0n;
      });
      const all = await nonces.take(200);
      expect(new Set(all).size).to.equal(200);
      expect(all.slice(0, 64)).to.deep.equal([...Array(64).keys()].map(BigInt));
      expect(all).to.not.include(128n); // used on-chain in word 2
      expect(all[64]).to.equal(64n);
      expect(reads).to.equal(4); // words 0..3, each read once
    });

    it("rejects bad arguments with typed errors", async function () {
      await expectSdkError(() => NonceAllocator.fromReader(async () => 0n, -1n), "INVALID_OPTION");
      const nonces = await NonceAllocator.fromReader(async () => 0n);
      await expectSdkError(() => nonces.take(-1), "INVALID_OPTION");
    });
  });

  describe("against the contract", function () {
    it("resumes after nonces used on-chain and keeps every request inside the payer's window word", async function () {
      const { preflight, usdc, domain, payer, provider } = await loadFixture(deployPreflightFixture);
      const token = await usdc.getAddress();
      const base = { payer: payer.address, provider: provider.address, token };
      for (const nonce of [0n, 1n, 3n]) await preflight.connect(provider).settle(await signedRequest(payer, domain, await makeRequest({ ...base, nonce })));
      const nonces = await NonceAllocator.create(preflight, payer.address, token);
      const next = await nonces.take(61);
      expect(next.slice(0, 3)).to.deep.equal([2n, 4n, 5n]);
      expect(next.every((n) => n < 64n)).to.equal(true);
      const batch = await Promise.all(next.map(async (nonce) => signedRequest(payer, domain, await makeRequest({ ...base, nonce }), true)));
      const receipt = await (await preflight.connect(provider).settleBatch(token, batch)).wait();
      await expectNoSkips(receipt!);
      // The window word is full now: the allocator continues in word 1 (where the window moved).
      expect(await preflight.nonceBitmap(payer.address, token, 0n)).to.equal(FULL);
      expect(await nonces.next()).to.equal(64n);
      const fresh = await NonceAllocator.create(preflight, payer.address, token);
      expect(await fresh.next()).to.equal(64n);
      expect(ethers.toBigInt(await preflight.nonceBitmap(payer.address, token, 1n))).to.equal(0n);
    });
  });
});
