import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { deployPreflightFixture } from "../helpers/fixtures";
import { makeRequest, signedRequest, MODEL_A, MODEL_B } from "../helpers/requests";
import { makeGrant, DAY } from "../helpers/grants";
import type { Request } from "@preflight/sdk";

const MAX_UINT32 = 2n ** 32n - 1n;
const PRICE = 1_000n;
const FAR_FUTURE = 2n ** 40n;

async function deployGrantsFixture() {
  const base = await deployPreflightFixture();
  const token = await base.usdc.getAddress();
  const { preflight, payer, provider, delegate, domain } = base;
  let nonce = 0n;
  /** The delegate signs a request of the payer; the provider settles it. */
  const settleAsDelegate = async (fields: Partial<Request> = {}) =>
    preflight
      .connect(provider)
      .settle(
        await signedRequest(
          delegate,
          domain,
          await makeRequest({ payer: payer.address, provider: provider.address, token, price: PRICE, nonce: nonce++, deadline: FAR_FUTURE, ...fields }),
        ),
      );
  return { ...base, token, settleAsDelegate };
}

describe("InferencePermissions: grants", function () {
  describe("grant", function () {
    it("stores the scope, emits GrantSet and starts epoch 1", async function () {
      const { preflight, payer, delegate, provider, token } = await loadFixture(deployGrantsFixture);
      const terms = await makeGrant({
        delegate: delegate.address,
        token,
        provider: provider.address,
        maxPrice: 5_000n,
        budget: 20_000n,
        period: DAY,
        models: [MODEL_A],
      });
      const tx = await preflight.connect(payer).grant(terms);
      const now = BigInt((await tx.getBlock())!.timestamp);
      await expect(tx)
        .to.emit(preflight, "GrantSet")
        .withArgs(payer.address, token, delegate.address, 1n, provider.address, 5_000n, 20_000n, DAY, terms.expiry, [MODEL_A]);
      expect(await preflight.grantOf(payer.address, token, delegate.address)).to.deep.equal([
        provider.address,
        5_000n,
        20_000n,
        0n,
        now + DAY,
        DAY,
        terms.expiry,
        1n,
        false,
      ]);
    });

    it("replaces an earlier grant: new epoch, new scope, new model set, spending reset", async function () {
      const { preflight, payer, delegate, token, settleAsDelegate } = await loadFixture(deployGrantsFixture);
      await preflight.connect(payer).grant(await makeGrant({ delegate: delegate.address, token, models: [MODEL_A] }));
      await settleAsDelegate();
      await preflight.connect(payer).grant(await makeGrant({ delegate: delegate.address, token, models: [MODEL_B] }));
      const g = await preflight.grantOf(payer.address, token, delegate.address);
      expect(g.epoch).to.equal(2n);
      expect(g.spent).to.equal(0n);
      expect(await preflight.isModelAllowed(payer.address, token, delegate.address, MODEL_A)).to.equal(false);
      expect(await preflight.isModelAllowed(payer.address, token, delegate.address, MODEL_B)).to.equal(true);
      await expect(settleAsDelegate({ model: MODEL_A }))
        .to.be.revertedWithCustomError(preflight, "ModelNotAllowed")
        .withArgs(MODEL_A);
    });

    it("is scoped to its token: the delegate cannot spend the payer's other assets", async function () {
      const { preflight, payer, delegate, token, settleAsDelegate } = await loadFixture(deployGrantsFixture);
      await preflight.connect(payer).depositETH(payer.address, { value: 10n ** 18n });
      await preflight.connect(payer).grant(await makeGrant({ delegate: delegate.address, token }));
      await expect(settleAsDelegate({ token: ethers.ZeroAddress }))
        .to.be.revertedWithCustomError(preflight, "InvalidSigner")
        .withArgs(delegate.address);
    });

    describe("Validations", function () {
      it("reverts with ZeroAddress for a zero delegate", async function () {
        const { preflight, payer, token } = await loadFixture(deployGrantsFixture);
        await expect(
          preflight.connect(payer).grant(await makeGrant({ delegate: ethers.ZeroAddress, token })),
        ).to.be.revertedWithCustomError(preflight, "ZeroAddress");
      });

      it("reverts with GrantExpiryInPast for an expiry now or earlier", async function () {
        const { preflight, payer, delegate, token } = await loadFixture(deployGrantsFixture);
        const next = BigInt(await time.latest()) + 1n;
        await time.setNextBlockTimestamp(next);
        await expect(preflight.connect(payer).grant(await makeGrant({ delegate: delegate.address, token, expiry: next })))
          .to.be.revertedWithCustomError(preflight, "GrantExpiryInPast")
          .withArgs(next);
        await expect(preflight.connect(payer).grant(await makeGrant({ delegate: delegate.address, token, expiry: 1n })))
          .to.be.revertedWithCustomError(preflight, "GrantExpiryInPast")
          .withArgs(1n);
      });

      // GrantEpochExhausted (65,535 grants of one (payer, token, delegate)) is exercised in
      // test/security/Preflight.delegates.ts by writing the epoch to storage.
    });
  });

  describe("revoke", function () {
    it("ends the grant at once and bumps the epoch", async function () {
      const { preflight, payer, delegate, token, settleAsDelegate } = await loadFixture(deployGrantsFixture);
      await preflight.connect(payer).grant(await makeGrant({ delegate: delegate.address, token }));
      await settleAsDelegate();
      await expect(preflight.connect(payer).revoke(token, delegate.address))
        .to.emit(preflight, "GrantRevoked")
        .withArgs(payer.address, token, delegate.address, 2n);
      const g = await preflight.grantOf(payer.address, token, delegate.address);
      expect(g.expiry).to.equal(0n);
      expect(g.epoch).to.equal(2n);
      await expect(settleAsDelegate()).to.be.revertedWithCustomError(preflight, "RevokedGrant").withArgs(delegate.address);
    });

    it("leaves no model allowed, whatever the revoked grant's model set", async function () {
      const { preflight, payer, delegate, other, token } = await loadFixture(deployGrantsFixture);
      await preflight.connect(payer).grant(await makeGrant({ delegate: delegate.address, token })); // any model
      await preflight.connect(payer).grant(await makeGrant({ delegate: other.address, token, models: [MODEL_A] }));
      await preflight.connect(payer).revoke(token, delegate.address);
      await preflight.connect(payer).revoke(token, other.address);
      expect(await preflight.isModelAllowed(payer.address, token, delegate.address, MODEL_A)).to.equal(false);
      expect(await preflight.isModelAllowed(payer.address, token, other.address, MODEL_A)).to.equal(false);
    });

    it("can be issued before any grant, and a later grant works again", async function () {
      const { preflight, payer, delegate, token, settleAsDelegate } = await loadFixture(deployGrantsFixture);
      await expect(preflight.connect(payer).revoke(token, delegate.address))
        .to.emit(preflight, "GrantRevoked")
        .withArgs(payer.address, token, delegate.address, 1n);
      await preflight.connect(payer).grant(await makeGrant({ delegate: delegate.address, token }));
      await expect(settleAsDelegate()).to.emit(preflight, "RequestsSettled");
    });
  });

  describe("Model sets", function () {
    it("an empty set allows every model", async function () {
      const { preflight, payer, delegate, token, settleAsDelegate } = await loadFixture(deployGrantsFixture);
      await preflight.connect(payer).grant(await makeGrant({ delegate: delegate.address, token, models: [] }));
      expect((await preflight.grantOf(payer.address, token, delegate.address)).anyModel).to.equal(true);
      for (const model of [MODEL_A, MODEL_B, ethers.ZeroHash]) {
        expect(await preflight.isModelAllowed(payer.address, token, delegate.address, model)).to.equal(true);
        await expect(settleAsDelegate({ model })).to.emit(preflight, "RequestsSettled");
      }
    });

    it("a set of one allows that model only", async function () {
      const { preflight, payer, delegate, token, settleAsDelegate } = await loadFixture(deployGrantsFixture);
      await preflight.connect(payer).grant(await makeGrant({ delegate: delegate.address, token, models: [MODEL_A] }));
      expect(await preflight.isModelAllowed(payer.address, token, delegate.address, MODEL_A)).to.equal(true);
      expect(await preflight.isModelAllowed(payer.address, token, delegate.address, MODEL_B)).to.equal(false);
      await expect(settleAsDelegate({ model: MODEL_A })).to.emit(preflight, "RequestsSettled");
      await expect(settleAsDelegate({ model: MODEL_B }))
        .to.be.revertedWithCustomError(preflight, "ModelNotAllowed")
        .withArgs(MODEL_B);
    });

    it("a set of many allows each of them, and nothing else", async function () {
      const { preflight, payer, delegate, token, settleAsDelegate } = await loadFixture(deployGrantsFixture);
      const models = Array.from({ length: 24 }, (_, i) => ethers.id(`model-${i}`));
      await preflight.connect(payer).grant(await makeGrant({ delegate: delegate.address, token, models }));
      for (const model of models) {
        expect(await preflight.isModelAllowed(payer.address, token, delegate.address, model)).to.equal(true);
      }
      expect(await preflight.isModelAllowed(payer.address, token, delegate.address, MODEL_A)).to.equal(false);
      await expect(settleAsDelegate({ model: models[23] })).to.emit(preflight, "RequestsSettled");
      await expect(settleAsDelegate({ model: MODEL_A }))
        .to.be.revertedWithCustomError(preflight, "ModelNotAllowed")
        .withArgs(MODEL_A);
    });

    it("allows nothing once the grant has expired", async function () {
      const { preflight, payer, delegate, token } = await loadFixture(deployGrantsFixture);
      const terms = await makeGrant({ delegate: delegate.address, token, models: [] });
      await preflight.connect(payer).grant(terms);
      expect(await preflight.isModelAllowed(payer.address, token, delegate.address, MODEL_A)).to.equal(true);
      await time.increaseTo(terms.expiry);
      expect(await preflight.isModelAllowed(payer.address, token, delegate.address, MODEL_A)).to.equal(false);
    });

    it("is per delegate and per payer", async function () {
      const { preflight, payer, delegate, other, token } = await loadFixture(deployGrantsFixture);
      await preflight.connect(payer).grant(await makeGrant({ delegate: delegate.address, token, models: [MODEL_A] }));
      expect(await preflight.isModelAllowed(payer.address, token, other.address, MODEL_A)).to.equal(false);
      expect(await preflight.isModelAllowed(other.address, token, delegate.address, MODEL_A)).to.equal(false);
    });
  });

  describe("Budget periods", function () {
    it("rolls the budget over at the end of each period, staying aligned to the grant's start", async function () {
      const { preflight, payer, delegate, token, settleAsDelegate } = await loadFixture(deployGrantsFixture);
      const period = 3600n;
      await preflight.connect(payer).grant(await makeGrant({ delegate: delegate.address, token, budget: 3n * PRICE, period }));
      const { periodEnd: firstEnd } = await preflight.grantOf(payer.address, token, delegate.address);
      for (let i = 0; i < 3; i++) await settleAsDelegate();
      await expect(settleAsDelegate())
        .to.be.revertedWithCustomError(preflight, "BudgetExceeded")
        .withArgs(4n * PRICE, 3n * PRICE);

      await time.setNextBlockTimestamp(firstEnd); // the first second of the next period
      await settleAsDelegate();
      let g = await preflight.grantOf(payer.address, token, delegate.address);
      expect(g.spent).to.equal(PRICE);
      expect(g.periodEnd).to.equal(firstEnd + period);

      // Skip several periods at once, landing mid-period: the end stays on the grid.
      await time.setNextBlockTimestamp(firstEnd + 5n * period + period / 2n);
      await settleAsDelegate({ price: 2n * PRICE });
      g = await preflight.grantOf(payer.address, token, delegate.address);
      expect(g.spent).to.equal(2n * PRICE);
      expect(g.periodEnd).to.equal(firstEnd + 6n * period);
    });

    it("with period 0 the budget never resets", async function () {
      const { preflight, payer, delegate, token, settleAsDelegate } = await loadFixture(deployGrantsFixture);
      await preflight.connect(payer).grant(
        await makeGrant({ delegate: delegate.address, token, budget: 2n * PRICE, period: 0n, expiry: MAX_UINT32 }),
      );
      expect((await preflight.grantOf(payer.address, token, delegate.address)).periodEnd).to.equal(MAX_UINT32);
      await settleAsDelegate();
      await settleAsDelegate();
      await time.increase(3n * 365n * DAY);
      await expect(settleAsDelegate())
        .to.be.revertedWithCustomError(preflight, "BudgetExceeded")
        .withArgs(3n * PRICE, 2n * PRICE);
    });
  });
});
