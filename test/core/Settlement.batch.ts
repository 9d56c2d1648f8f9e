import { requestsSettled } from "../helpers/logs";
import { expectSkippedRequest, expectBatchTotals } from "../helpers/logs";
import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { deployPreflightFixture } from "../helpers/fixtures";
import { makeRequest, signedRequest, MODEL_A, MODEL_B } from "../helpers/requests";
import { makeGrant } from "../helpers/grants";
import { highS, Reason } from "../helpers/signatures";
import type { Request } from "@preflight/sdk";
import type { Signer } from "ethers";
import type { SignedRequestStruct } from "../../typechain-types/contracts/Preflight";

const PRICE = 1_000n;

/**
 * A payer with a scoped delegate (this provider, model A, price <= 5,000, budget 8,000), plus a revoked
 * delegate, an expired one and one scoped to another provider.
 */
async function deployBatchFixture() {
  const base = await deployPreflightFixture();
  const { preflight, payer, provider, delegate, other, domain } = base;
  const [, , , , , , revokedKey, expiredKey, elsewhereKey] = await ethers.getSigners();
  const token = await base.usdc.getAddress();
  const grant = (fields: Parameters<typeof makeGrant>[0]) => makeGrant(fields).then((t) => preflight.connect(payer).grant(t));
  await grant({ delegate: delegate.address, token, provider: provider.address, maxPrice: 5_000n, budget: 8_000n, models: [MODEL_A] });
  await grant({ delegate: revokedKey.address, token });
  await preflight.connect(payer).revoke(token, revokedKey.address);
  await grant({ delegate: expiredKey.address, token, expiry: BigInt(await time.latest()) + 60n });
  await grant({ delegate: elsewhereKey.address, token, provider: other.address });
  await time.increase(120n);
  const request = (fields: Partial<Request> = {}) =>
    makeRequest({ payer: payer.address, provider: provider.address, token, price: PRICE, ...fields });
  const sign = async (signer: Signer, fields: Partial<Request> = {}) => signedRequest(signer, domain, await request(fields));
  return { ...base, token, revokedKey, expiredKey, elsewhereKey, request, sign };
}

describe("Settlement: batches", function () {
  describe("Mixed valid and invalid items", function () {
    async function mixedBatch() {
      const f = await loadFixture(deployBatchFixture);
      const { payer, delegate, feeRecipient, revokedKey, expiredKey, elsewhereKey, sign, preflight, token } = f;
      const balance = await preflight.balanceOf(payer.address, token);
      const now = BigInt(await time.latest());
      const items: [SignedRequestStruct, bigint][] = [];
      const add = async (reason: bigint, signer: Signer, fields: Partial<Request>) =>
        items.push([await sign(signer, { nonce: BigInt(100 + items.length), ...fields }), reason]);
      await add(Reason.Settled, payer, { nonce: 0n });
      await add(Reason.Expired, payer, { deadline: now - 1n });
      const valid = await sign(payer, { nonce: 102n });
      items.push([{ ...valid, signature: ethers.dataSlice(valid.signature as string, 0, 63) }, Reason.SignatureLength]);
      const twin = await sign(payer, { nonce: 103n });
      items.push([{ ...twin, signature: highS(twin.signature as string) }, Reason.SignatureMalleable]);
      await add(Reason.InvalidSigner, feeRecipient, {});
      await add(Reason.GrantRevoked, revokedKey, {});
      await add(Reason.GrantExpired, expiredKey, {});
      await add(Reason.ProviderNotAllowed, elsewhereKey, {});
      await add(Reason.ModelNotAllowed, delegate, { model: MODEL_B });
      await add(Reason.PriceAboveCap, delegate, { price: 5_001n });
      await add(Reason.Settled, delegate, { price: 5_000n });
      await add(Reason.BudgetExceeded, delegate, { price: 4_000n });
      await add(Reason.NonceUsed, payer, { nonce: 0n });
      await add(Reason.InsufficientBalance, payer, { price: balance });
      await add(Reason.NonceOutOfRange, payer, { nonce: 2n ** 64n });
      await add(Reason.TokenMismatch, payer, { token: ethers.ZeroAddress });
      await add(Reason.Settled, payer, { price: 2n * PRICE });
      return { ...f, requests: items.map(([r]) => r), expected: items.map(([, reason]) => reason), balance };
    }

    it("returns one reason per item, covering every skip reason a request can have", async function () {
      const { preflight, provider, token, requests, expected } = await mixedBatch();
      const reasons = await preflight.connect(provider).settleBatch.staticCall(token, requests);
      expect(reasons).to.deep.equal(expected);
      const covered = new Set(expected);
      for (const reason of Object.values(Reason)) {
        if (reason !== Reason.NothingToClaim) expect(covered.has(reason), `reason ${reason}`).to.equal(true);
      }
    });

    it("logs every item in one RequestsSettled: the skipped ones with their reason, the settled ones with their price", async function () {
      const { preflight, payer, provider, token, requests, expected } = await mixedBatch();
      const tx = await preflight.connect(provider).settleBatch(token, requests);
      for (const [i, reason] of expected.entries()) {
        if (reason === Reason.Settled) continue;
        // A nonce of 2^64 or more is logged as the largest 64-bit nonce (logs carry 8 bytes).
        const nonce = BigInt(requests[i]!.nonce) >= 2n ** 64n ? 2n ** 64n - 1n : BigInt(requests[i]!.nonce);
        await expectSkippedRequest(tx, provider.address, i, payer.address, nonce, reason);
      }
      await expectBatchTotals(tx, provider.address, token, 3n, 8_000n);
      const receipt = (await tx.wait())!;
      expect(receipt.logs).to.have.length(1); // one event for the whole batch
      expect((await requestsSettled(receipt)).records.map((r) => r.reason)).to.deep.equal(expected.map(Number));
    });

    it("debits only the valid items and credits the provider their total once", async function () {
      const { preflight, payer, provider, delegate, token, requests, balance } = await mixedBatch();
      await preflight.connect(provider).settleBatch(token, requests);
      expect(await preflight.balanceOf(payer.address, token)).to.equal(balance - 8_000n);
      expect(await preflight.earningsOf(provider.address, token)).to.equal(8_000n);
      expect((await preflight.grantOf(payer.address, token, delegate.address)).spent).to.equal(5_000n);
      // Skipped items used no nonce: the expired one (nonce 101) can still be settled afresh.
      expect((await preflight.nonceBitmap(payer.address, token, 1n)) & (1n << (101n - 64n))).to.equal(0n);
    });
  });

  describe("Edge cases", function () {
    it("an empty batch returns no reasons, changes nothing and logs an empty RequestsSettled", async function () {
      const { preflight, provider, token } = await loadFixture(deployBatchFixture);
      expect(await preflight.connect(provider).settleBatch.staticCall(token, [])).to.deep.equal([]);
      const tx = await preflight.connect(provider).settleBatch(token, []);
      expect((await requestsSettled(tx)).records).to.have.length(0);
      expect(await preflight.earningsOf(provider.address, token)).to.equal(0n);
    });

    it("a batch where nothing settles credits nothing and reports a zero total", async function () {
      const { preflight, payer, provider, feeRecipient, token, sign } = await loadFixture(deployBatchFixture);
      const tx = preflight.connect(provider).settleBatch(token, [await sign(feeRecipient), await sign(feeRecipient, { nonce: 1n })]);
      await expectBatchTotals(tx, provider.address, token, 0n, 0n);
      expect(await preflight.earningsOf(provider.address, token)).to.equal(0n);
      expect(await preflight.nonceBitmap(payer.address, token, 0n)).to.equal(0n);
    });

    it("a nonce repeated inside one batch settles once", async function () {
      const { preflight, payer, provider, token, sign } = await loadFixture(deployBatchFixture);
      const first = await sign(payer, { nonce: 9n });
      const again = await sign(payer, { nonce: 9n, price: 2n * PRICE });
      const batch = [first, again, first];
      expect(await preflight.connect(provider).settleBatch.staticCall(token, batch)).to.deep.equal([
        Reason.Settled,
        Reason.NonceUsed,
        Reason.NonceUsed,
      ]);
      await expectBatchTotals(preflight.connect(provider).settleBatch(token, batch), provider.address, token, 1n, PRICE);
    });

    it("TokenMismatch for items in another token than the batch's", async function () {
      const { preflight, payer, provider, token, sign } = await loadFixture(deployBatchFixture);
      await preflight.connect(payer).depositETH(payer.address, { value: 10_000n });
      const batch = [await sign(payer, { nonce: 0n }), await sign(payer, { nonce: 1n, token: ethers.ZeroAddress })];
      expect(await preflight.connect(provider).settleBatch.staticCall(ethers.ZeroAddress, batch)).to.deep.equal([
        Reason.TokenMismatch,
        Reason.Settled,
      ]);
      await preflight.connect(provider).settleBatch(ethers.ZeroAddress, batch);
      expect(await preflight.earningsOf(provider.address, ethers.ZeroAddress)).to.equal(PRICE);
      expect(await preflight.earningsOf(provider.address, token)).to.equal(0n);
    });

    it("a delegate's budget is counted item by item within the batch", async function () {
      const { preflight, payer, provider, delegate, token, sign } = await loadFixture(deployBatchFixture);
      const batch = [0n, 1n, 2n].map((nonce) => sign(delegate, { nonce, price: 3_000n }));
      expect(await preflight.connect(provider).settleBatch.staticCall(token, await Promise.all(batch))).to.deep.equal([
        Reason.Settled,
        Reason.Settled,
        Reason.BudgetExceeded,
      ]);
      await preflight.connect(provider).settleBatch(token, await Promise.all(batch));
      expect((await preflight.grantOf(payer.address, token, delegate.address)).spent).to.equal(6_000n);
    });

    it("settles items from many payers, 64- and 65-byte signatures mixed", async function () {
      const { preflight, usdc, provider, other, domain, token, payer, request } = await loadFixture(deployBatchFixture);
      await usdc.mint(other.address, 10_000n);
      await usdc.connect(other).approve(await preflight.getAddress(), ethers.MaxUint256);
      await preflight.connect(other).deposit(other.address, token, 10_000n);
      const batch = [
        await signedRequest(payer, domain, await request(), true),
        await signedRequest(other, domain, await request({ payer: other.address })),
        await signedRequest(other, domain, await request({ payer: other.address, nonce: 1n }), true),
      ];
      await expectBatchTotals(preflight.connect(provider).settleBatch(token, batch), provider.address, token, 3n, 3n * PRICE);
      expect(await preflight.balanceOf(other.address, token)).to.equal(10_000n - 2n * PRICE);
    });
  });
});
