import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture, takeSnapshot, time } from "@nomicfoundation/hardhat-network-helpers";
import { deployPreflightFixture, USDC } from "../helpers/fixtures";
import { MODEL_A, MODEL_B, packedItemSigner, toSignedRequest } from "../helpers/requests";
import { reasonsOf, requestsSettled } from "../helpers/logs";
import { encodePacked, type Request, type SignedPackedItem } from "@preflight/sdk";
import type { Signer } from "ethers";

const SETTLED = 0;
const InvalidSigner = 4;
const NonceUsed = 11;
const InsufficientBalance = 12;
const FULL_WORD = 2n ** 64n - 1n;

/** Preflight with a funded payer, and helpers to sign requests and to settle them both ways. */
async function deployRunFixture() {
  const f = await deployPreflightFixture();
  const token = await f.usdc.getAddress();
  const item = packedItemSigner(f.domain, { payer: f.payer.address, provider: f.provider.address, token });
  /**
   * What settling `items` did: the log's reasons and records (payer, nonce, price, reason, delegate
   * of each item), and every piece of state a settlement moves, the grants of `f.delegate` included.
   */
  const outcome = async (send: () => Promise<import("ethers").ContractTransactionResponse>, payers: string[]) => {
    const tx = await send();
    const state: unknown[] = [await f.preflight.earningsOf(f.provider.address, token)];
    for (const p of payers) {
      state.push(await f.preflight.balanceOf(p, token));
      for (let w = 0n; w < 4n; w++) state.push(await f.preflight.nonceBitmap(p, token, w));
      state.push([...(await f.preflight.grantOf(p, token, f.delegate.address))]);
    }
    return { reasons: await reasonsOf(tx), records: (await requestsSettled(tx)).records, state };
  };
  /**
   * Settles `items` through `settleBatch` (the readable entry point: the shared rules, item by item)
   * and, from the same state, through `settlePacked` (the payer-signed fast path), and expects the
   * same outcome. Returns it.
   */
  const bothWays = async (items: SignedPackedItem[]) => {
    const payers = [...new Set(items.map((i) => i.request.payer))];
    const pf = f.preflight.connect(f.provider);
    const snapshot = await takeSnapshot();
    const readable = await outcome(() => pf.settleBatch(token, items.map((i) => toSignedRequest(i.request, i.signature))), payers);
    await snapshot.restore();
    const packed = await outcome(() => pf.settlePacked(token, encodePacked(items)), payers);
    expect(packed).to.deep.equal(readable);
    return packed;
  };
  return { ...f, token, item, bothWays };
}

describe("Preflight settlePacked: the payer-signed fast path accepts exactly what the rules accept", function () {
  it("stops where the balance runs out: the rest are skipped for want of balance", async function () {
    const f = await loadFixture(deployRunFixture);
    const items = [];
    for (let n = 0n; n < 5n; n++) items.push(await f.item(f.payer, { nonce: n, price: 300n * USDC }));
    const { reasons } = await f.bothWays(items);
    expect(reasons).to.deep.equal([SETTLED, SETTLED, SETTLED, InsufficientBalance, InsufficientBalance]);
  });

  it("settles free requests (price 0) without a balance bound", async function () {
    const f = await loadFixture(deployRunFixture);
    const items = [];
    for (let n = 0n; n < 4n; n++) items.push(await f.item(f.payer, { nonce: n, price: 0n }));
    const { reasons } = await f.bothWays(items);
    expect(reasons).to.deep.equal(Array(4).fill(SETTLED));
  });

  it("crosses a nonce word: the nonce that fills the window slides it, and the run goes on in the next word", async function () {
    const f = await loadFixture(deployRunFixture);
    await f.preflight.connect(f.payer).invalidateNonces(f.token, 0n, (1n << 60n) - 1n); // nonces 0..59 used
    const items = [];
    for (let n = 60n; n < 70n; n++) items.push(await f.item(f.payer, { nonce: n }));
    const { reasons, state } = await f.bothWays(items);
    expect(reasons).to.deep.equal(Array(10).fill(SETTLED));
    expect(state.slice(2, 4)).to.deep.equal([FULL_WORD, 0b11_1111n]); // word 0 full, word 1: nonces 64..69
  });

  it("skips a used nonce in the middle of a run and settles the items around it", async function () {
    const f = await loadFixture(deployRunFixture);
    await f.preflight.connect(f.payer).invalidateNonces(f.token, 0n, 1n << 3n);
    const items = [];
    for (let n = 0n; n < 7n; n++) items.push(await f.item(f.payer, { nonce: n }));
    const { reasons } = await f.bothWays(items);
    expect(reasons).to.deep.equal([SETTLED, SETTLED, SETTLED, NonceUsed, SETTLED, SETTLED, SETTLED]);
  });

  it("leaves nonces above the window (spilled words) to the rules", async function () {
    const f = await loadFixture(deployRunFixture);
    const items = [];
    for (let n = 130n; n < 133n; n++) items.push(await f.item(f.payer, { nonce: n }));
    const { reasons, state } = await f.bothWays(items);
    expect(reasons).to.deep.equal(Array(3).fill(SETTLED));
    expect(state[4]).to.equal(0b11100n); // word 2: nonces 130..132 (bits 2..4)
  });

  it("hands a stranger's item in a run to the rules, settles a delegate's within its grant, then resumes", async function () {
    const f = await loadFixture(deployRunFixture);
    await f.preflight.connect(f.payer).grant({
      delegate: f.delegate.address,
      token: f.token,
      provider: f.provider.address,
      maxPrice: 10_000n,
      budget: 1_000_000n,
      period: 0n,
      expiry: 4_000_000_000n,
      models: [],
    });
    const items = [
      await f.item(f.payer, { nonce: 0n }),
      await f.item(f.other, { nonce: 1n }),
      await f.item(f.payer, { nonce: 2n }),
      await f.item(f.delegate, { nonce: 3n }),
      await f.item(f.payer, { nonce: 4n }),
    ];
    const { reasons } = await f.bothWays(items);
    expect(reasons).to.deep.equal([SETTLED, InvalidSigner, SETTLED, SETTLED, SETTLED]);
  });

  it("never accepts for the zero payer, whatever recovery returns", async function () {
    const f = await loadFixture(deployRunFixture);
    const items = [await f.item(f.other, { payer: ethers.ZeroAddress, nonce: 0n }), await f.item(f.other, { payer: ethers.ZeroAddress, nonce: 1n })];
    const { reasons } = await f.bothWays(items);
    expect(reasons).to.deep.equal([InvalidSigner, InvalidSigner]);
  });
});

describe("Preflight settlePacked: a delegate's items in the fast path settle exactly as the rules settle them", function () {
  const GrantRevoked = 5;
  const GrantExpired = 6;
  const ProviderNotAllowed = 7;
  const ModelNotAllowed = 8;
  const PriceAboveCap = 9;
  const BudgetExceeded = 10;

  /** The run fixture with `f.delegate` granted by the payer (any model, this provider, no period) and `overrides`. */
  async function withGrant(overrides: Partial<{ provider: string; maxPrice: bigint; budget: bigint; period: bigint; expiry: bigint; models: string[] }> = {}) {
    const f = await loadFixture(deployRunFixture);
    await f.preflight.connect(f.payer).grant({
      delegate: f.delegate.address,
      token: f.token,
      provider: f.provider.address,
      maxPrice: 10_000n,
      budget: 1_000_000n,
      period: 0n,
      expiry: 4_000_000_000n,
      models: [],
      ...overrides,
    });
    return f;
  }
  const signedBy = async (f: Awaited<ReturnType<typeof withGrant>>, signers: Signer[], fields: Partial<Request> = {}, from = 0n) => {
    const items: SignedPackedItem[] = [];
    for (const [i, s] of signers.entries()) items.push(await f.item(s, { nonce: from + BigInt(i), ...fields }));
    return items;
  };

  it("settles a run of a delegate's items and the payer's around them, logging the delegate, spending the grant", async function () {
    const f = await withGrant();
    const { reasons, records } = await f.bothWays(await signedBy(f, [f.delegate, f.delegate, f.payer, f.delegate, f.payer]));
    expect(reasons).to.deep.equal(Array(5).fill(SETTLED));
    expect(records.map((r) => r.delegate ?? null)).to.deep.equal([f.delegate.address, f.delegate.address, null, f.delegate.address, null]);
  });

  it("stops at the budget: the item that would pass it is the rules' (BudgetExceeded), and so are the rest", async function () {
    const f = await withGrant({ budget: 2_500n });
    const { reasons } = await f.bothWays(await signedBy(f, [f.delegate, f.delegate, f.delegate, f.payer, f.delegate]));
    expect(reasons).to.deep.equal([SETTLED, SETTLED, BudgetExceeded, SETTLED, BudgetExceeded]);
  });

  it("leaves a price above the cap, a model outside a restricted set, and another provider's grant to the rules", async function () {
    let f = await withGrant({ maxPrice: 999n });
    expect((await f.bothWays(await signedBy(f, [f.delegate, f.payer]))).reasons).to.deep.equal([PriceAboveCap, SETTLED]);
    f = await withGrant({ models: [MODEL_A] });
    const models = [await f.item(f.delegate, { nonce: 0n, model: MODEL_A }), await f.item(f.delegate, { nonce: 1n, model: MODEL_B })];
    expect((await f.bothWays(models)).reasons).to.deep.equal([SETTLED, ModelNotAllowed]);
    f = await withGrant({ provider: f.other.address });
    expect((await f.bothWays(await signedBy(f, [f.delegate]))).reasons).to.deep.equal([ProviderNotAllowed]);
  });

  it("settles under a grant for any provider (through the rules) exactly as under one for this provider", async function () {
    const f = await withGrant({ provider: ethers.ZeroAddress });
    const { reasons, records } = await f.bothWays(await signedBy(f, [f.delegate, f.delegate]));
    expect(reasons).to.deep.equal([SETTLED, SETTLED]);
    expect(records.map((r) => r.delegate)).to.deep.equal([f.delegate.address, f.delegate.address]);
  });

  it("refuses a revoked or an expired grant, and rolls a period over as the rules do", async function () {
    let f = await withGrant();
    await f.preflight.connect(f.payer).revoke(f.token, f.delegate.address);
    expect((await f.bothWays(await signedBy(f, [f.delegate, f.payer]))).reasons).to.deep.equal([GrantRevoked, SETTLED]);
    const now = BigInt(await time.latest());
    f = await withGrant({ expiry: now + 100n });
    await time.increase(200);
    expect((await f.bothWays(await signedBy(f, [f.delegate], { deadline: now + 10_000n })))).to.deep.include({ reasons: [GrantExpired] });
    // A budget of two requests a period: the third waits for the next period, which the rules roll over to.
    f = await withGrant({ budget: 2_000n, period: 3_600n });
    const start = BigInt(await time.latest());
    const deadline = start + 100_000n;
    await f.preflight.connect(f.provider).settlePacked(f.token, encodePacked(await signedBy(f, [f.delegate, f.delegate], { deadline })));
    expect((await f.bothWays(await signedBy(f, [f.delegate], { deadline }, 2n))).reasons).to.deep.equal([BudgetExceeded]);
    await time.increase(3_600);
    expect((await f.bothWays(await signedBy(f, [f.delegate, f.delegate, f.delegate], { deadline }, 2n))).reasons).to.deep.equal([SETTLED, SETTLED, BudgetExceeded]);
    // Budget left over from an ended period is not spent: the new period starts with the full budget
    // (and a new period end), which `bothWays` compares through `grantOf`.
    f = await withGrant({ budget: 3_000n, period: 3_600n });
    await f.preflight.connect(f.provider).settlePacked(f.token, encodePacked(await signedBy(f, [f.delegate], { deadline })));
    await time.increase(3_600);
    expect((await f.bothWays(await signedBy(f, [f.delegate], { deadline }, 1n))).reasons).to.deep.equal([SETTLED]);
  });

  it("stops a delegate's run where the balance runs out", async function () {
    const f = await withGrant({ maxPrice: 1_000n * USDC, budget: 10_000n * USDC });
    const { reasons } = await f.bothWays(await signedBy(f, [f.delegate, f.delegate, f.delegate, f.delegate], { price: 300n * USDC }));
    expect(reasons).to.deep.equal([SETTLED, SETTLED, SETTLED, InsufficientBalance]);
  });
});
