import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture, setCode, takeSnapshot, time } from "@nomicfoundation/hardhat-network-helpers";
import { deployPreflightFixture, USDC } from "../helpers/fixtures";
import { MODEL_A, MODEL_B, packedItemSigner, toSignedRequest } from "../helpers/requests";
import { providerGrant } from "../helpers/grants";
import { reasonsOf, requestsSettled } from "../helpers/logs";
import { encodePacked, signGrant, type Request, type SignedPackedItem } from "@preflight/sdk";
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
    await f.preflight.connect(f.payer).grant(providerGrant({ delegate: f.delegate.address, token: f.token, provider: f.provider.address }));
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
    await f.preflight.connect(f.payer).grant(providerGrant({ delegate: f.delegate.address, token: f.token, provider: f.provider.address, ...overrides }));
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

/**
 * Adversarial grant cases for the delegate fast path: every case settles the same signed items from
 * one snapshot at one pinned block timestamp through settleBatch and settlePacked, and compares
 * reasons, log records, earnings, balances, nonce bitmaps and the grants (grantOf) of every
 * (payer, delegate) pair involved.
 */
describe("Preflight settlePacked: a delegate's items at the grant's edges settle exactly as settleBatch settles them", function () {
  const GrantRevoked = 5;
  const GrantExpired = 6;
  const ProviderNotAllowed = 7;
  const ModelNotAllowed = 8;
  const PriceAboveCap = 9;
  const BudgetExceeded = 10;
  const Expired = 1;

  type Terms = { delegate: string; token: string; provider: string; maxPrice: bigint; budget: bigint; period: bigint; expiry: bigint; models: string[] };

  async function edgeFixture() {
    const f = await deployRunFixture();
    const terms = (overrides: Partial<Terms> = {}): Terms => providerGrant({ delegate: f.delegate.address, token: f.token, provider: f.provider.address, ...overrides });
    const itemFor = (payer: string) => packedItemSigner(f.domain, { payer, provider: f.provider.address, token: f.token });
    const outcome = async (send: () => Promise<import("ethers").ContractTransactionResponse>, payers: string[], delegates: string[]) => {
      const tx = await send();
      const state: unknown[] = [await f.preflight.earningsOf(f.provider.address, f.token)];
      for (const p of payers) {
        state.push(await f.preflight.balanceOf(p, f.token));
        for (let w = 0n; w < 4n; w++) state.push(await f.preflight.nonceBitmap(p, f.token, w));
        for (const d of delegates) state.push([...(await f.preflight.grantOf(p, f.token, d))]);
      }
      return { reasons: await reasonsOf(tx), records: (await requestsSettled(tx)).records, state };
    };
    /** settleBatch vs settlePacked of `groups` (each a list of items of one payer, packed as given) at block time `at`. */
    const bothAt = async (items: SignedPackedItem[], at?: bigint, delegates: string[] = [f.delegate.address, f.other.address, f.payer.address]) => {
      const payers = [...new Set(items.map((i) => i.request.payer))];
      const pf = f.preflight.connect(f.provider);
      const snapshot = await takeSnapshot();
      if (at !== undefined) await time.setNextBlockTimestamp(at);
      const readable = await outcome(() => pf.settleBatch(f.token, items.map((i) => toSignedRequest(i.request, i.signature))), payers, delegates);
      await snapshot.restore();
      if (at !== undefined) await time.setNextBlockTimestamp(at);
      const packed = await outcome(() => pf.settlePacked(f.token, encodePacked(items)), payers, delegates);
      await snapshot.restore(); // each comparison starts from the state the test set up
      expect(packed).to.deep.equal(readable);
      return packed;
    };
    const deadline = 4_000_000_000n - 1n;
    return { ...f, terms, itemFor, bothAt, deadline };
  }

  it("expiry exactly at the block's timestamp is expired, one second later settles (both ways)", async function () {
    const f = await loadFixture(edgeFixture);
    const now = BigInt(await time.latest());
    const expiry = now + 1_000n;
    await f.preflight.connect(f.payer).grant(f.terms({ expiry }));
    const items = [await f.item(f.delegate, { nonce: 0n, deadline: f.deadline }), await f.item(f.payer, { nonce: 1n, deadline: f.deadline })];
    expect((await f.bothAt(items, expiry)).reasons).to.deep.equal([GrantExpired, SETTLED]);
    expect((await f.bothAt(items, expiry - 1n)).reasons).to.deep.equal([SETTLED, SETTLED]);
  });

  it("a period that ends exactly now rolls over (rules), one second before it spends the old period (fast path)", async function () {
    const f = await loadFixture(edgeFixture);
    await f.preflight.connect(f.payer).grant(f.terms({ budget: 3_000n, period: 1_000n }));
    const [, , , , periodEnd] = await f.preflight.grantOf(f.payer.address, f.token, f.delegate.address);
    // Spend 2 of 3 in the first period.
    await time.setNextBlockTimestamp(periodEnd - 10n);
    await f.preflight.connect(f.provider).settlePacked(f.token, encodePacked([await f.item(f.delegate, { nonce: 0n, deadline: f.deadline }), await f.item(f.delegate, { nonce: 1n, deadline: f.deadline })]));
    const items = [];
    for (let n = 2n; n < 6n; n++) items.push(await f.item(f.delegate, { nonce: n, deadline: f.deadline }));
    // One second before the end: one left, then BudgetExceeded.
    expect((await f.bothAt(items, periodEnd - 1n)).reasons).to.deep.equal([SETTLED, BudgetExceeded, BudgetExceeded, BudgetExceeded]);
    // Exactly at the end: a fresh period of 3 (the fast path must not spend the old one).
    const at = await f.bothAt(items, periodEnd);
    expect(at.reasons).to.deep.equal([SETTLED, SETTLED, SETTLED, BudgetExceeded]);
    // Many periods later: aligned roll-over.
    expect((await f.bothAt(items, periodEnd + 10_500n)).reasons).to.deep.equal([SETTLED, SETTLED, SETTLED, BudgetExceeded]);
  });

  it("price 0 under a zero budget and a zero cap, budget exactly the price, and price just above the remaining", async function () {
    const f = await loadFixture(edgeFixture);
    await f.preflight.connect(f.payer).grant(f.terms({ budget: 0n, maxPrice: 0n }));
    const free = [];
    for (let n = 0n; n < 3n; n++) free.push(await f.item(f.delegate, { nonce: n, price: 0n }));
    expect((await f.bothAt(free)).reasons).to.deep.equal([SETTLED, SETTLED, SETTLED]);
    const paid = [await f.item(f.delegate, { nonce: 3n, price: 1n })];
    expect((await f.bothAt(paid)).reasons).to.deep.equal([PriceAboveCap]);
    await f.preflight.connect(f.payer).grant(f.terms({ budget: 1_000n, maxPrice: 1_000n }));
    const exact = [];
    for (let n = 0n; n < 3n; n++) exact.push(await f.item(f.delegate, { nonce: n, price: 1_000n }));
    expect((await f.bothAt(exact)).reasons).to.deep.equal([SETTLED, BudgetExceeded, BudgetExceeded]);
    await f.preflight.connect(f.payer).grant(f.terms({ budget: 1_999n, maxPrice: 1_000n }));
    expect((await f.bothAt(exact)).reasons).to.deep.equal([SETTLED, BudgetExceeded, BudgetExceeded]);
    // The largest fields: a cap and budget of 2^88 - 1 at a price of 2^88 - 1 (and one above the cap).
    const B88 = 2n ** 88n - 1n;
    await f.usdc.mint(f.payer.address, 2n ** 96n);
    await f.preflight.connect(f.payer).deposit(f.payer.address, f.token, 2n ** 95n);
    await f.preflight.connect(f.payer).grant(f.terms({ budget: B88, maxPrice: B88 }));
    const big = [await f.item(f.delegate, { nonce: 10n, price: B88 }), await f.item(f.delegate, { nonce: 11n, price: 0n }), await f.item(f.delegate, { nonce: 12n, price: B88 + 1n })];
    expect((await f.bothAt(big.slice(0, 2))).reasons).to.deep.equal([SETTLED, SETTLED]);
    expect((await f.bothAt(big.slice(2))).reasons).to.deep.equal([PriceAboveCap]);
  });

  it("a delegate equal to the payer is the payer: its grant is neither checked nor spent", async function () {
    const f = await loadFixture(edgeFixture);
    await f.preflight.connect(f.payer).grant(f.terms({ delegate: f.payer.address, budget: 1n, maxPrice: 1n }));
    const items = [];
    for (let n = 0n; n < 3n; n++) items.push(await f.item(f.payer, { nonce: n, price: 5_000n }));
    const { reasons, records } = await f.bothAt(items);
    expect(reasons).to.deep.equal([SETTLED, SETTLED, SETTLED]);
    expect(records.map((r) => r.delegate ?? null)).to.deep.equal([null, null, null]);
  });

  it("moves between a grant for any provider and one for this provider: only the current hot slot counts", async function () {
    const f = await loadFixture(edgeFixture);
    await f.preflight.connect(f.payer).grant(f.terms({ provider: ethers.ZeroAddress, budget: 2_000n }));
    const items = [];
    for (let n = 0n; n < 3n; n++) items.push(await f.item(f.delegate, { nonce: n }));
    expect((await f.bothAt(items)).reasons).to.deep.equal([SETTLED, SETTLED, BudgetExceeded]);
    // Regranted for this provider: the any-provider slot is deleted, the new one is full.
    await f.preflight.connect(f.payer).grant(f.terms({ budget: 2_000n }));
    expect((await f.bothAt(items)).reasons).to.deep.equal([SETTLED, SETTLED, BudgetExceeded]);
    // Regranted for another provider, then for any provider again.
    await f.preflight.connect(f.payer).grant(f.terms({ provider: f.other.address }));
    expect((await f.bothAt(items)).reasons).to.deep.equal([ProviderNotAllowed, ProviderNotAllowed, ProviderNotAllowed]);
    await f.preflight.connect(f.payer).grant(f.terms({ provider: ethers.ZeroAddress, budget: 1_000n }));
    expect((await f.bothAt(items)).reasons).to.deep.equal([SETTLED, BudgetExceeded, BudgetExceeded]);
    // Another provider's grant that expired: the rules report it expired, not another provider's.
    const now = BigInt(await time.latest());
    await f.preflight.connect(f.payer).grant(f.terms({ provider: f.other.address, expiry: now + 50n }));
    expect((await f.bothAt(items.map((i) => i), now + 50n)).reasons).to.deep.equal([GrantExpired, GrantExpired, GrantExpired]);
  });

  it("revoked, then regranted: a new epoch with the full budget; revoked at a spent budget", async function () {
    const f = await loadFixture(edgeFixture);
    await f.preflight.connect(f.payer).grant(f.terms({ budget: 2_000n }));
    await f.preflight.connect(f.provider).settlePacked(f.token, encodePacked([await f.item(f.delegate, { nonce: 0n })]));
    await f.preflight.connect(f.payer).revoke(f.token, f.delegate.address);
    const items = [];
    for (let n = 1n; n < 5n; n++) items.push(await f.item(n % 2n ? f.delegate : f.payer, { nonce: n }));
    expect((await f.bothAt(items)).reasons).to.deep.equal([GrantRevoked, SETTLED, GrantRevoked, SETTLED]);
    await f.preflight.connect(f.payer).grant(f.terms({ budget: 1_000n }));
    expect((await f.bothAt(items)).reasons).to.deep.equal([SETTLED, SETTLED, BudgetExceeded, SETTLED]);
    // Revoked and regranted for any provider, restricted to a model.
    await f.preflight.connect(f.payer).revoke(f.token, f.delegate.address);
    await f.preflight.connect(f.payer).grant(f.terms({ provider: ethers.ZeroAddress, models: [MODEL_B] }));
    const mixed = [await f.item(f.delegate, { nonce: 1n, model: MODEL_A }), await f.item(f.delegate, { nonce: 2n, model: MODEL_B })];
    expect((await f.bothAt([mixed[0]!])).reasons).to.deep.equal([ModelNotAllowed]);
    expect((await f.bothAt([mixed[1]!])).reasons).to.deep.equal([SETTLED]);
  });

  it("a model-restricted grant whose model is allowed settles through the rules as a plain one does", async function () {
    const f = await loadFixture(edgeFixture);
    await f.preflight.connect(f.payer).grant(f.terms({ models: [MODEL_A, MODEL_B], budget: 3_000n }));
    const items = [];
    for (let n = 0n; n < 5n; n++) items.push(await f.item(f.delegate, { nonce: n, model: MODEL_A }));
    expect((await f.bothAt(items)).reasons).to.deep.equal([SETTLED, SETTLED, SETTLED, BudgetExceeded, BudgetExceeded]);
  });

  it("two delegates of one payer alternate in a run, each spending its own grant; a third party's grant is not the payer's", async function () {
    const f = await loadFixture(edgeFixture);
    await f.preflight.connect(f.payer).grant(f.terms({ budget: 2_000n }));
    await f.preflight.connect(f.payer).grant(f.terms({ delegate: f.other.address, budget: 1_000n }));
    const signers = [f.delegate, f.other, f.delegate, f.other, f.delegate, f.payer];
    const items = [];
    for (const [i, s] of signers.entries()) items.push(await f.item(s, { nonce: BigInt(i) }));
    const { reasons, records } = await f.bothAt(items);
    expect(reasons).to.deep.equal([SETTLED, SETTLED, SETTLED, BudgetExceeded, BudgetExceeded, SETTLED]);
    expect(records.map((r) => r.delegate ?? null)).to.deep.equal([f.delegate.address, f.other.address, f.delegate.address, null, null, null]);
    // f.feeRecipient grants f.owner; f.owner signs for f.payer: f.payer granted it nothing.
    await f.preflight.connect(f.feeRecipient).grant(f.terms({ delegate: f.owner.address }));
    expect((await f.bothAt([await f.item(f.owner, { nonce: 40n })], undefined, [f.owner.address])).reasons).to.deep.equal([InvalidSigner]);
  });

  it("a contract payer (ERC-1271) with a delegate: the grant decides before the wallet, whatever the wallet would say", async function () {
    const f = await loadFixture(edgeFixture);
    // A wallet that checks 64-byte signatures of its owner; granted by signature.
    const wallet = await ethers.deployContract("NestedCheckWallet1271", [f.owner.address]);
    const payer = await wallet.getAddress();
    await f.preflight.connect(f.payer).deposit(payer, f.token, 100n * USDC);
    const terms = f.terms({ budget: 2_000n });
    const deadline = BigInt(await time.latest()) + 3_600n;
    const sig = await signGrant(f.owner, f.domain, { ...terms, payer, epoch: 0n, deadline });
    await f.preflight.grantBySig(payer, terms, deadline, sig);
    const item = f.itemFor(payer);
    const signers = [f.delegate, f.owner, f.delegate, f.delegate, f.owner, f.other, f.owner, f.delegate];
    const items = [];
    for (const [i, s] of signers.entries()) items.push(await item(s, { nonce: BigInt(i) }));
    const { reasons, records } = await f.bothAt(items);
    // The stranger's refusal makes the wallet's later answers "no" without a call (the same both ways).
    expect(reasons).to.deep.equal([SETTLED, SETTLED, SETTLED, BudgetExceeded, SETTLED, InvalidSigner, InvalidSigner, BudgetExceeded]);
    expect(records.map((r) => r.delegate ?? null)).to.deep.equal([f.delegate.address, null, f.delegate.address, null, null, null, null, null]);
  });

  it("a wallet that accepts everything does not rescue a delegate's refused grant, nor spend it", async function () {
    const f = await loadFixture(edgeFixture);
    const wallet = await ethers.deployContract("HostileWallet1271", [f.owner.address]);
    const payer = await wallet.getAddress();
    await wallet.setMode(7); // AcceptAll
    await f.preflight.connect(f.payer).deposit(payer, f.token, 100n * USDC);
    const grant = (t: Terms) => wallet.connect(f.owner).execute(f.domain.verifyingContract, 0n, f.preflight.interface.encodeFunctionData("grant", [t]));
    await grant(f.terms({ budget: 1_000n }));
    const item = f.itemFor(payer);
    const items = [await item(f.delegate, { nonce: 0n }), await item(f.other, { nonce: 1n }), await item(f.delegate, { nonce: 2n }), await item(f.delegate, { nonce: 3n, model: MODEL_B })];
    expect((await f.bothAt(items)).reasons).to.deep.equal([SETTLED, SETTLED, BudgetExceeded, BudgetExceeded]);
    await grant(f.terms({ models: [MODEL_A] }));
    expect((await f.bothAt(items)).reasons).to.deep.equal([SETTLED, SETTLED, SETTLED, ModelNotAllowed]);
    await wallet.connect(f.owner).execute(f.domain.verifyingContract, 0n, f.preflight.interface.encodeFunctionData("revoke", [f.token, f.delegate.address]));
    expect((await f.bothAt(items)).reasons).to.deep.equal([GrantRevoked, SETTLED, GrantRevoked, GrantRevoked]);
  });

  it("mixed payer and delegate items in several groups and sections of one payer share one budget (no double spend)", async function () {
    const f = await loadFixture(edgeFixture);
    await f.preflight.connect(f.payer).grant(f.terms({ budget: 5_000n }));
    // f.other is a second payer that granted the same delegate: its own budget.
    await f.usdc.mint(f.other.address, 10n ** 9n);
    await f.usdc.connect(f.other).approve(f.domain.verifyingContract, ethers.MaxUint256);
    await f.preflight.connect(f.other).deposit(f.other.address, f.token, 10n ** 8n);
    await f.preflight.connect(f.other).grant(f.terms({ budget: 2_000n }));
    const otherItem = f.itemFor(f.other.address);
    const D = f.delegate;
    const items = [
      await f.item(D, { nonce: 0n }), await f.item(f.payer, { nonce: 1n }), await f.item(D, { nonce: 2n }), // group 1
      await otherItem(D, { nonce: 0n }), await otherItem(D, { nonce: 1n }), // another payer
      await f.item(D, { nonce: 10n }), await f.item(D, { nonce: 11n }), // group 2 of f.payer
      await f.item(D, { nonce: 20n, price: 500n }), await f.item(f.payer, { nonce: 21n, price: 500n }), await f.item(D, { nonce: 22n, price: 500n }), // a second section
      await f.item(D, { nonce: 3n }), await f.item(D, { nonce: 4n }), // back to the first section: group 4
      await otherItem(D, { nonce: 2n }), // the other payer's budget is spent
      await f.item(D, { nonce: 2n }), // a replay of a settled nonce
    ];
    const { reasons, records } = await f.bothAt(items, undefined, [D.address]);
    // The grant is checked before the nonce: the replay is refused for the spent budget.
    expect(reasons).to.deep.equal([...Array(10).fill(SETTLED), BudgetExceeded, BudgetExceeded, BudgetExceeded, BudgetExceeded]);
    expect(records.filter((r) => r.delegate === D.address).length).to.equal(8);
  });

  it("a delegate's run across a nonce word: the nonce that fills the word is the rules', spending the grant once", async function () {
    const f = await loadFixture(edgeFixture);
    await f.preflight.connect(f.payer).grant(f.terms({ budget: 3_000n }));
    await f.preflight.connect(f.payer).invalidateNonces(f.token, 0n, (1n << 61n) - 1n); // 0..60 used
    const items = [];
    for (let n = 61n; n < 66n; n++) items.push(await f.item(n === 62n ? f.payer : f.delegate, { nonce: n }));
    // 61 (fast), 62 payer (fast), 63 fills the word (rules), 64 (fast, new word), 65 over budget.
    const { reasons, state } = await f.bothAt(items);
    expect(reasons).to.deep.equal([SETTLED, SETTLED, SETTLED, SETTLED, BudgetExceeded]);
    expect(state.slice(2, 4)).to.deep.equal([FULL_WORD, 1n]);
    // The window left on a full word (invalidated to the top): every delegate item is the rules'.
    await f.preflight.connect(f.payer).invalidateNonces(f.token, 0n, FULL_WORD);
    await f.preflight.connect(f.payer).invalidateNonces(f.token, 1n, FULL_WORD ^ (1n << 63n));
    const top = [await f.item(f.delegate, { nonce: 127n }), await f.item(f.delegate, { nonce: 128n }), await f.item(f.delegate, { nonce: 129n })];
    expect((await f.bothAt(top)).reasons).to.deep.equal([SETTLED, SETTLED, SETTLED]);
  });

  it("a delegate's item refused for its nonce, its balance or its deadline spends nothing of the grant", async function () {
    const f = await loadFixture(edgeFixture);
    await f.preflight.connect(f.payer).grant(f.terms({ budget: 2_000n * USDC, maxPrice: 1_000n * USDC }));
    await f.preflight.connect(f.payer).invalidateNonces(f.token, 0n, 1n << 1n);
    const items = [];
    for (let n = 0n; n < 6n; n++) items.push(await f.item(f.delegate, { nonce: n, price: 300n * USDC }));
    const { reasons } = await f.bothAt(items);
    expect(reasons).to.deep.equal([SETTLED, NonceUsed, SETTLED, SETTLED, InsufficientBalance, InsufficientBalance]);
    const now = BigInt(await time.latest());
    const late = [await f.item(f.delegate, { nonce: 10n, deadline: now + 5n }), await f.item(f.delegate, { nonce: 11n, deadline: now + 5n })];
    expect((await f.bothAt(late, now + 6n)).reasons).to.deep.equal([Expired, Expired]);
    expect((await f.bothAt(late, now + 5n)).reasons).to.deep.equal([SETTLED, SETTLED]);
  });

  it("a grant in another token, or to the zero payer's items, is no grant", async function () {
    const f = await loadFixture(edgeFixture);
    const other = await ethers.deployContract("TestToken", ["Other", "OTH", 6]);
    await f.preflight.connect(f.payer).grant(f.terms({ token: await other.getAddress() }));
    expect((await f.bothAt([await f.item(f.delegate, { nonce: 0n })])).reasons).to.deep.equal([InvalidSigner]);
    const zero = f.itemFor(ethers.ZeroAddress);
    expect((await f.bothAt([await zero(f.delegate, { nonce: 0n }), await zero(f.delegate, { nonce: 1n })], undefined, [f.delegate.address])).reasons).to.deep.equal([InvalidSigner, InvalidSigner]);
  });
});

/**
 * The runtime code of an ERC-1271 wallet that keeps a reserve: it accepts any signature while its own
 * escrow balance (`preflight.balanceOf(this, token)`) is at least `reserve`, and refuses otherwise. It
 * reads Preflight's state during the check (a view call inside the staticcall), as a wallet enforcing
 * a spending policy on its escrow may. Written as raw bytecode (installed with setCode) so that the
 * test adds no contract:
 *   mstore(0, balanceOf selector); mstore(4, address()); mstore(0x24, token)
 *   pop(staticcall(gas(), preflight, 0, 0x44, 0, 0x20))
 *   mstore(0, mul(iszero(lt(mload(0), reserve)), MAGIC)); return(0, 0x20)
 */
function reserveWalletCode(preflight: string, token: string, reserve: bigint): string {
  const word = (hex: string) => hex.slice(2).padEnd(64, "0");
  const a20 = (addr: string) => addr.slice(2).toLowerCase();
  return (
    "0x" +
    "7f" + word("0xf7888aec") + "6000" + "52" + // mstore(0, selector)
    "30" + "6004" + "52" + // mstore(4, address())
    "73" + a20(token) + "6024" + "52" + // mstore(0x24, token)
    "6020" + "6000" + "6044" + "6000" + "73" + a20(preflight) + "5a" + "fa" + "50" + // pop(staticcall(...))
    "6f" + reserve.toString(16).padStart(32, "0") + "6000" + "51" + "10" + "15" + // iszero(lt(mload(0), reserve))
    "7f" + word("0x1626ba7e") + "02" + "6000" + "52" + // mstore(0, ok * MAGIC)
    "6020" + "6000" + "f3" // return(0, 0x20)
  );
}

describe("Preflight settlePacked: a contract payer's wallet that reads its Preflight state while it checks", function () {
  it("sees the same balance in settlePacked as in settleBatch (it is asked item by item in both)", async function () {
    const f = await loadFixture(deployRunFixture);
    const payer = ethers.Wallet.createRandom().address;
    await setCode(payer, reserveWalletCode(f.domain.verifyingContract, f.token, 2_000n));
    await f.preflight.connect(f.payer).deposit(payer, f.token, 3_000n);
    const item = packedItemSigner(f.domain, { payer, provider: f.provider.address, token: f.token });
    // Signed by anyone: the wallet accepts on its balance alone (1,000 a request, a reserve of 2,000).
    const items = [];
    for (let n = 0n; n < 3n; n++) items.push(await item(f.other, { nonce: n, price: 1_000n }));
    // settleBatch: 3,000 >= 2,000 accept; 2,000 >= 2,000 accept; 1,000 < 2,000 refuse.
    const { reasons } = await f.bothWays(items);
    expect(reasons).to.deep.equal([SETTLED, SETTLED, InvalidSigner]);
  });
});
