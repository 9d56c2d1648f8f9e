import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture, takeSnapshot } from "@nomicfoundation/hardhat-network-helpers";
import { deployPreflightFixture, USDC } from "../helpers/fixtures";
import { packedItemSigner, toSignedRequest } from "../helpers/requests";
import { reasonsOf } from "../helpers/logs";
import { encodePacked, type SignedPackedItem } from "@preflight/sdk";

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
  /** What settling `items` did: the log's reasons and every piece of state a settlement moves. */
  const outcome = async (send: () => Promise<import("ethers").ContractTransactionResponse>, payers: string[]) => {
    const tx = await send();
    const state: bigint[] = [await f.preflight.earningsOf(f.provider.address, token)];
    for (const p of payers) {
      state.push(await f.preflight.balanceOf(p, token));
      for (let w = 0n; w < 4n; w++) state.push(await f.preflight.nonceBitmap(p, token, w));
    }
    return { reasons: await reasonsOf(tx), state };
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

  it("hands a stranger's or a delegate's item in a run to the rules, then resumes", async function () {
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
