import { expectSkippedRequest, expectBatchTotals, reasonsOf, requestsSettled } from "../helpers/logs";
import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { deployPreflightFixture, USDC } from "../helpers/fixtures";
import { MODEL_A, MODEL_B, packedItemSigner } from "../helpers/requests";
import { providerGrant } from "../helpers/grants";
import { signRequest, type Request } from "@preflight/sdk";
import { encodePacked, type SignedPackedItem } from "@preflight/sdk";

const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const SETTLED = 0;
const Reason = {
  Expired: 1,
  SignatureMalleable: 3,
  InvalidSigner: 4,
  GrantRevoked: 5,
  GrantExpired: 6,
  ProviderNotAllowed: 7,
  ModelNotAllowed: 8,
  PriceAboveCap: 9,
  BudgetExceeded: 10,
  NonceUsed: 11,
  InsufficientBalance: 12,
} as const;

/** Preflight with a funded payer, plus helpers to sign and pack requests. */
async function deployPackedFixture() {
  const f = await deployPreflightFixture();
  const token = await f.usdc.getAddress();
  const item = packedItemSigner(f.domain, { payer: f.payer.address, provider: f.provider.address, token });
  const grant = (overrides: Partial<{ provider: string; maxPrice: bigint; budget: bigint; expiry: bigint; models: string[] }>) =>
    f.preflight.connect(f.payer).grant(providerGrant({ delegate: f.delegate.address, token, provider: f.provider.address, ...overrides }));
  return { ...f, token, item, grant };
}

type Fixture = Awaited<ReturnType<typeof deployPackedFixture>>;

/**
 * A batch [good nonce 100, bad, good nonce 101]; each item is its own group. `malleate` puts an s in
 * the upper half of the curve order into the bad item's 64-byte signature (the SDK never produces one;
 * a 64-byte signature can carry s up to 2^255).
 */
async function settleAround(f: Fixture, bad: SignedPackedItem, malleate = false) {
  const items = [await f.item(f.payer, { nonce: 100n }), bad, await f.item(f.payer, { nonce: 101n })];
  let packed: string = encodePacked(items);
  if (malleate) {
    const at = 54 + 30 + 96 + 30 + 64; // the bad item's vs word: section, group 1, item 1, group 2, its inputHash and r
    const vs = BigInt(ethers.dataSlice(packed, at, at + 32));
    const parity = vs >> 255n;
    const twin = (parity << 255n) | (SECP256K1_N / 2n + 1n);
    packed = ethers.concat([ethers.dataSlice(packed, 0, at), ethers.toBeHex(twin, 32), ethers.dataSlice(packed, at + 32)]);
  }
  const pf = f.preflight.connect(f.provider);
  const tx = await pf.settlePacked(f.token, packed);
  return { reasons: await reasonsOf(tx), tx };
}

describe("Preflight settlePacked", function () {
  describe("Settlement", function () {
    it("settles every item of several groups and credits the provider once", async function () {
      const f = await loadFixture(deployPackedFixture);
      const items: SignedPackedItem[] = [];
      const deadline = BigInt(await time.latest()) + 3_600n;
      for (let n = 0n; n < 5n; n++) items.push(await f.item(f.payer, { nonce: n, deadline }));
      for (let n = 10n; n < 12n; n++) items.push(await f.item(f.payer, { nonce: n, deadline, model: MODEL_B, price: 2_000n }));
      await f.grant({});
      items.push(await f.item(f.delegate, { nonce: 12n, deadline, model: MODEL_B, price: 2_000n }));
      const packed = encodePacked(items);
      // Two sections (model A at 1,000; model B at 2,000) of one group each: nonce 12 joins the second group.
      expect(ethers.dataLength(packed)).to.equal(2 * 54 + 2 * 30 + 8 * 96);
      const pf = f.preflight.connect(f.provider);
      const tx = await pf.settlePacked(f.token, packed);
      expect(await reasonsOf(tx)).to.deep.equal(Array(8).fill(SETTLED));
      await expectBatchTotals(tx, f.provider.address, f.token, 8, 11_000n);
      const { records } = await requestsSettled(tx);
      expect(records.map((r) => r.nonce)).to.deep.equal([0n, 1n, 2n, 3n, 4n, 10n, 11n, 12n]);
      expect(records[7]!.delegate).to.equal(f.delegate.address); // the log says who signed
      expect(records.slice(0, 7).every((r) => r.delegate === undefined)).to.equal(true);
      expect(await f.preflight.earningsOf(f.provider.address, f.token)).to.equal(11_000n);
      expect(await f.preflight.balanceOf(f.payer.address, f.token)).to.equal(1_000n * USDC - 11_000n);
      expect(await f.preflight.nonceBitmap(f.payer.address, f.token, 0n)).to.equal(0b1_1100_0001_1111n);
      const [, , , spent] = await f.preflight.grantOf(f.payer.address, f.token, f.delegate.address);
      expect(spent).to.equal(2_000n);
    });

    it("shares the nonce space with settle and settleBatch: nothing settles twice", async function () {
      const f = await loadFixture(deployPackedFixture);
      const first = await f.item(f.payer, { nonce: 7n });
      await f.preflight.connect(f.provider).settlePacked(f.token, encodePacked([first]));
      const { payer, token, model, price, nonce, deadline, inputHash } = first.request;
      await expect(
        f.preflight.connect(f.provider).settle({ payer, token, model, price, nonce, deadline, inputHash, signature: first.signature }),
      ).to.be.revertedWithCustomError(f.preflight, "NonceAlreadyUsed");
      const { reasons } = await settleAround(f, first);
      expect(reasons).to.deep.equal([SETTLED, Reason.NonceUsed, SETTLED]);
    });

    it("pays only the provider the requests name", async function () {
      const f = await loadFixture(deployPackedFixture);
      const packed = encodePacked([await f.item(f.payer, { nonce: 1n })]);
      const pf = f.preflight.connect(f.other);
      const tx = await pf.settlePacked(f.token, packed);
      expect(await reasonsOf(tx)).to.deep.equal([Reason.InvalidSigner]);
      await expectBatchTotals(tx, f.other.address, f.token, 0, 0);
      expect(await f.preflight.earningsOf(f.other.address, f.token)).to.equal(0n);
    });
  });

  describe("Skipped items", function () {
    const cases: { name: string; reason: number; malleate?: boolean; bad: (f: Fixture) => Promise<SignedPackedItem> }[] = [
      {
        name: "expired",
        reason: Reason.Expired,
        bad: async (f) => f.item(f.payer, { nonce: 1n, deadline: BigInt(await time.latest()) - 1n }),
      },
      {
        name: "with a high-s signature",
        reason: Reason.SignatureMalleable,
        malleate: true,
        bad: async (f) => f.item(f.payer, { nonce: 1n }),
      },
      { name: "signed by a stranger", reason: Reason.InvalidSigner, bad: async (f) => f.item(f.other, { nonce: 1n }) },
      {
        name: "signed for another token",
        reason: Reason.InvalidSigner,
        bad: async (f) => {
          const good = await f.item(f.payer, { nonce: 1n });
          const other = { ...good.request, token: f.other.address };
          return { request: good.request, signature: await signRequest(f.payer, f.domain, other, true) };
        },
      },
      {
        name: "delegate whose grant was revoked",
        reason: Reason.GrantRevoked,
        bad: async (f) => {
          await f.grant({});
          await f.preflight.connect(f.payer).revoke(f.token, f.delegate.address);
          return f.item(f.delegate, { nonce: 1n });
        },
      },
      {
        name: "delegate whose grant expired",
        reason: Reason.GrantExpired,
        bad: async (f) => {
          await f.grant({ expiry: BigInt(await time.latest()) + 100n });
          await time.increase(200);
          return f.item(f.delegate, { nonce: 1n });
        },
      },
      {
        name: "delegate granted another provider",
        reason: Reason.ProviderNotAllowed,
        bad: async (f) => {
          await f.grant({ provider: f.other.address });
          return f.item(f.delegate, { nonce: 1n });
        },
      },
      {
        name: "delegate granted other models",
        reason: Reason.ModelNotAllowed,
        bad: async (f) => {
          await f.grant({ models: [MODEL_B] });
          return f.item(f.delegate, { nonce: 1n, model: MODEL_A });
        },
      },
      {
        name: "delegate above its price cap",
        reason: Reason.PriceAboveCap,
        bad: async (f) => {
          await f.grant({ maxPrice: 999n });
          return f.item(f.delegate, { nonce: 1n });
        },
      },
      {
        name: "delegate over its budget",
        reason: Reason.BudgetExceeded,
        bad: async (f) => {
          await f.grant({ budget: 999n });
          return f.item(f.delegate, { nonce: 1n });
        },
      },
      {
        name: "nonce already used",
        reason: Reason.NonceUsed,
        bad: async (f) => {
          await f.preflight.connect(f.provider).settlePacked(f.token, encodePacked([await f.item(f.payer, { nonce: 1n })]));
          return f.item(f.payer, { nonce: 1n, inputHash: ethers.id("another prompt") });
        },
      },
      {
        name: "price above the payer's balance",
        reason: Reason.InsufficientBalance,
        bad: async (f) => f.item(f.payer, { nonce: 1n, price: 1_000n * USDC + 1n }),
      },
    ];

    for (const c of cases) {
      it(`skips an item ${c.name} and settles the rest`, async function () {
        const f = await loadFixture(deployPackedFixture);
        const bad = await c.bad(f);
        const before = await f.preflight.earningsOf(f.provider.address, f.token);
        const { reasons, tx } = await settleAround(f, bad, c.malleate);
        expect(reasons).to.deep.equal([SETTLED, c.reason, SETTLED]);
        await expectSkippedRequest(tx, f.provider.address, 1, bad.request.payer, bad.request.nonce, c.reason);
        await expectBatchTotals(tx, f.provider.address, f.token, 2, 2_000n);
        expect((await f.preflight.earningsOf(f.provider.address, f.token)) - before).to.equal(2_000n);
      });
    }
  });

  describe("Validations", function () {
    it("reverts on a packed batch that does not parse into whole sections and groups", async function () {
      const f = await loadFixture(deployPackedFixture);
      const packed = encodePacked([await f.item(f.payer, { nonce: 1n }), await f.item(f.payer, { nonce: 2n })]);
      const pf = f.preflight.connect(f.provider);
      const bad = async (data: string, offset: number) =>
        expect(pf.settlePacked(f.token, data)).to.be.revertedWithCustomError(f.preflight, "MalformedPackedBatch").withArgs(offset);
      await bad("0x", 0); // nothing to settle is a provider-side bug, not an empty log
      await bad(ethers.dataSlice(packed, 0, ethers.dataLength(packed) - 1), 54); // the group overruns
      await bad(ethers.concat([packed, "0x00"]), ethers.dataLength(packed)); // a trailing partial section
      await bad(ethers.concat([ethers.dataSlice(packed, 0, 52), "0x0000"]), 0); // a section of no groups
      await bad(ethers.concat([ethers.dataSlice(packed, 0, 54 + 28), "0x0000"]), 54); // a group of no items
      await bad(ethers.dataSlice(packed, 0, 54 + 10), 54); // a truncated group header
      // Nonces stay below 2^64: a group whose nonces would pass it does not parse.
      const high = ethers.concat([ethers.dataSlice(packed, 0, 54 + 20), ethers.toBeHex(2n ** 64n - 1n, 8), ethers.dataSlice(packed, 54 + 28)]);
      await bad(high, 54);
    });

    it("refuses to pack what the compact layout cannot carry", async function () {
      const f = await loadFixture(deployPackedFixture);
      await expect(encodePackedAsync(f, { nonce: 2n ** 64n })).to.be.rejectedWith("fit 64 bits");
      const a = await f.item(f.payer, { nonce: 1n });
      const b = await f.item(f.payer, { nonce: 2n, token: f.other.address });
      expect(() => encodePacked([a, b])).to.throw("same token");
    });
  });
});

async function encodePackedAsync(f: Fixture, fields: Partial<Request>): Promise<string> {
  return encodePacked([await f.item(f.payer, fields)]);
}
