import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { BatchSettler, Reason, type BatchResult, type SignedRequest } from "@preflight/provider";
import { CONTRACT_PAYER_WORST_CASE_GAS } from "../../packages/provider/src/settler";
import { deployPreflightFixture, USDC } from "../helpers/fixtures";
import { makeRequest } from "../helpers/requests";
import { expectSdkError, fundedWallet, signRequestFast } from "../helpers/sdk";

/** The core fixture plus a second payer with a small balance, and a request factory. */
async function deploySettlerFixture() {
  const base = await deployPreflightFixture();
  const { preflight, usdc, domain, provider } = base;
  const token = await usdc.getAddress();
  const payer = await fundedWallet(1);
  const poor = await fundedWallet(2);
  await usdc.mint(base.owner.address, 10_000n * USDC);
  await usdc.connect(base.owner).approve(await preflight.getAddress(), ethers.MaxUint256);
  await preflight.connect(base.owner).deposit(payer.address, token, 100n * USDC);
  await preflight.connect(base.owner).deposit(poor.address, token, 1_500n);
  const request = async (signer = payer, fields: Partial<SignedRequest> = {}): Promise<SignedRequest> => {
    const r = await makeRequest({ payer: signer.address, provider: provider.address, token, ...fields });
    return signRequestFast(signer, domain, r, true);
  };
  return { ...base, token, payer, poor, request };
}

describe("BatchSettler", function () {
  describe("thresholds", function () {
    it("settles in one transaction as soon as the size threshold is reached", async function () {
      const { preflight, provider, token, request } = await loadFixture(deploySettlerFixture);
      const batches: BatchResult[] = [];
      const settler = new BatchSettler({ contract: preflight.connect(provider), token, maxBatchSize: 5, maxAgeMs: 60_000, onBatch: (b) => batches.push(b) });
      const outcomes = [];
      for (let nonce = 0n; nonce < 5n; nonce++) outcomes.push(settler.add(await request(undefined, { nonce })));
      const results = await Promise.all(outcomes);
      expect(results.map((r) => r.reason)).to.deep.equal(Array(5).fill(Reason.Settled));
      expect(batches).to.have.length(1);
      const receipt = await ethers.provider.getTransactionReceipt(batches[0].txHash!);
      expect(batches[0].gasUsed).to.equal(receipt!.gasUsed);
      expect(batches[0].total).to.equal(5_000n);
      expect(await preflight.earningsOf(provider.address, token)).to.equal(5_000n);
      expect(settler.queuedCount).to.equal(0);
    });

    it("settles a partial batch once its oldest item reaches the age threshold", async function () {
      const { preflight, provider, token, request } = await loadFixture(deploySettlerFixture);
      const settler = new BatchSettler({ contract: preflight.connect(provider), token, maxBatchSize: 100, maxAgeMs: 50 });
      const [a, b] = await Promise.all([settler.add(await request(undefined, { nonce: 0n })), settler.add(await request(undefined, { nonce: 1n }))]);
      expect([a.reason, b.reason]).to.deep.equal([Reason.Settled, Reason.Settled]);
      expect(await preflight.earningsOf(provider.address, token)).to.equal(2_000n);
    });

    it("sends full batches at the threshold and the remainder on close, then refuses new items", async function () {
      const { preflight, provider, token, request } = await loadFixture(deploySettlerFixture);
      const batches: BatchResult[] = [];
      const settler = new BatchSettler({ contract: preflight.connect(provider), token, maxBatchSize: 4, maxAgeMs: 60_000, onBatch: (b) => batches.push(b) });
      const items: SignedRequest[] = [];
      for (let nonce = 0n; nonce < 6n; nonce++) items.push(await request(undefined, { nonce }));
      const outcomes = items.map((item) => settler.add(item));
      await settler.close();
      await Promise.all(outcomes);
      expect(batches.map((b) => b.settled.length)).to.deep.equal([4, 2]);
      await expectSdkError(() => settler.add(items[0]), "SETTLER_CLOSED");
    });
  });

  describe("skipped items", function () {
    it("reports each skipped item with its reason and settles the rest", async function () {
      const { preflight, provider, token, request, poor } = await loadFixture(deploySettlerFixture);
      const settler = new BatchSettler({ contract: preflight.connect(provider), token, maxAgeMs: 60_000 });
      const expired = await request(undefined, { nonce: 7n, deadline: 1n });
      const good = await request(undefined, { nonce: 8n });
      const broke = await request(poor, { nonce: 0n, price: 2_000n });
      for (const item of [expired, good, broke]) void settler.add(item);
      const [result] = await settler.flush();
      expect(result.settled.map((s) => s.item)).to.deep.equal([good]);
      expect(result.skipped.map((s) => [s.index, s.reason, s.retryable])).to.deep.equal([
        [0, Reason.Expired, false],
        [2, Reason.InsufficientBalance, true],
      ]);
    });

    it("never resubmits what settled or was refused for good; lets a retryable item come back", async function () {
      const { preflight, usdc, owner, provider, token, request, poor } = await loadFixture(deploySettlerFixture);
      const settler = new BatchSettler({ contract: preflight.connect(provider), token, maxAgeMs: 60_000 });
      const good = await request(undefined, { nonce: 1n });
      const expired = await request(undefined, { nonce: 2n, deadline: 1n });
      const broke = await request(poor, { nonce: 0n, price: 2_000n });
      for (const item of [good, expired, broke]) void settler.add(item);
      await settler.flush();
      await expectSdkError(() => settler.add(good), "ALREADY_FINAL");
      await expectSdkError(() => settler.add({ ...good, signature: expired.signature }), "ALREADY_FINAL");
      await expectSdkError(() => settler.add(expired), "ALREADY_FINAL");
      await preflight.connect(owner).deposit(poor.address, await usdc.getAddress(), 1_000n);
      const again = settler.add(broke);
      await settler.flush();
      expect((await again).reason).to.equal(Reason.Settled);
    });

    it("refuses duplicates and items in another token with typed errors", async function () {
      const { preflight, provider, token, request } = await loadFixture(deploySettlerFixture);
      const settler = new BatchSettler({ contract: preflight.connect(provider), token, maxAgeMs: 60_000 });
      const item = await request(undefined, { nonce: 3n });
      void settler.add(item);
      await expectSdkError(() => settler.add(item), "DUPLICATE_ITEM");
      await expectSdkError(() => settler.add({ ...item, nonce: 4n, token: ethers.ZeroAddress }), "TOKEN_MISMATCH");
      await expectSdkError(() => new BatchSettler({ contract: preflight, token, maxBatchSize: 0 }), "INVALID_OPTION");
      await settler.flush();
    });

    it("rejects the outcomes of a batch whose transaction fails, and lets the items be added again", async function () {
      const { preflight, token, request, other } = await loadFixture(deploySettlerFixture);
      const down = async () => Promise.reject(new Error("rpc down"));
      const broken = { ...preflight.connect(other), settleBatch: Object.assign(down, { estimateGas: down }) } as unknown as typeof preflight;
      const settler = new BatchSettler({ contract: Object.setPrototypeOf(broken, preflight) as typeof preflight, token, maxAgeMs: 60_000 });
      const item = await request(undefined, { nonce: 5n });
      const outcome = settler.add(item);
      const [result] = await settler.flush();
      expect(String(result.error)).to.contain("rpc down");
      let failed = false;
      await outcome.catch(() => (failed = true));
      expect(failed).to.equal(true);
      void settler.add(item);
      await settler.flush();
    });
  });

  describe("contract payers and packed encoding", function () {
    it("re-sends, once, a contract payer's items the contract refused without asking its wallet", async function () {
      const { preflight, provider, token, owner, domain } = await loadFixture(deploySettlerFixture);
      const walletOwner = await fundedWallet(4);
      const wallet = await ethers.deployContract("HostileWallet1271", [walletOwner.address]);
      const payer = await wallet.getAddress();
      await preflight.connect(owner).deposit(payer, token, 10_000n);
      const sign = async (signer: typeof walletOwner, nonce: bigint) => signRequestFast(signer, domain, await makeRequest({ payer, provider: provider.address, token, nonce }));
      const stranger = await fundedWallet(5);
      // The wallet refuses 0 (a stranger signed it), and is then not asked about 1 and 2 in that transaction.
      const items = [await sign(stranger, 0n), await sign(walletOwner, 1n), await sign(stranger, 2n), await sign(walletOwner, 3n)];
      const batches: BatchResult[] = [];
      const settler = new BatchSettler({ contract: preflight.connect(provider), token, maxAgeMs: 60_000, onBatch: (b) => batches.push(b) });
      const outcomes = items.map((item) => settler.add(item));
      await settler.flush();
      // Re-sent [1, 2, 3]: 1 settles, the wallet refuses 2, and 3 was not asked again; [3] is not re-sent twice.
      expect(batches.map((b) => [b.settled.length, b.skipped.length, b.resent.length])).to.deep.equal([
        [0, 1, 3],
        [1, 2, 0],
      ]);
      const results = await Promise.all(outcomes);
      expect(results.map((r) => [r.reason, r.retryable])).to.deep.equal([
        [Reason.InvalidSigner, false],
        [Reason.Settled, false],
        [Reason.InvalidSigner, false],
        [Reason.InvalidSigner, true],
      ]);
      await expectSdkError(() => settler.add(items[2]), "ALREADY_FINAL"); // the wallet was asked: final in this form
      const last = settler.add(items[3]); // never asked: may come back, and settles alone
      await settler.flush();
      expect((await last).reason).to.equal(Reason.Settled);
    });

    it("packed encoding: key payers' items through settlePacked, what cannot be packed unchanged through settleBatch", async function () {
      const { preflight, provider, token, request, payer, domain } = await loadFixture(deploySettlerFixture);
      const batches: BatchResult[] = [];
      const settler = new BatchSettler({ contract: preflight.connect(provider), token, maxAgeMs: 60_000, encoding: "packed", onBatch: (b) => batches.push(b) });
      // 64-byte signatures, a key's 65-byte one (the same signer recovers from its packed form), and a nonce the layout cannot carry.
      const long = signRequestFast(payer, domain, await makeRequest({ payer: payer.address, provider: provider.address, token, nonce: 2n }));
      const items = [await request(undefined, { nonce: 0n }), await request(undefined, { nonce: 1n }), long, await request(undefined, { nonce: 2n ** 64n })];
      const outcomes = items.map((item) => settler.add(item));
      await settler.flush();
      expect((await Promise.all(outcomes)).map((o) => o.reason)).to.deep.equal([Reason.Settled, Reason.Settled, Reason.Settled, Reason.NonceOutOfRange]);
      expect(batches.map((b) => [b.method, b.settled.length + b.skipped.length])).to.deep.equal([
        ["settlePacked", 3],
        ["settleBatch", 1],
      ]);
      expect(batches[0].calldataBytes).to.be.below(4 + 32 * 4 + 3 * 96 + 54 + 30 + 32);
      await expectSdkError(() => new BatchSettler({ contract: preflight, token, encoding: "rlp" as "abi" }), "INVALID_OPTION");
    });
  });

  describe("bounds", function () {
    it("gives every contract payer's item its worst case, and splits a batch whose worst case exceeds maxGasPerTx", async function () {
      const { preflight, provider, token, request, owner, domain } = await loadFixture(deploySettlerFixture);
      const walletOwner = await fundedWallet(3);
      const wallets = [await ethers.deployContract("HostileWallet1271", [walletOwner.address]), await ethers.deployContract("HostileWallet1271", [walletOwner.address])];
      const items: SignedRequest[] = [await request(undefined, { nonce: 0n })];
      for (const wallet of wallets) {
        const payer = await wallet.getAddress();
        await preflight.connect(owner).deposit(payer, token, 10_000n);
        const r = await makeRequest({ payer, provider: provider.address, token });
        items.push(signRequestFast(walletOwner, domain, r));
      }
      const batches: BatchResult[] = [];
      const maxGasPerTx = 2n * CONTRACT_PAYER_WORST_CASE_GAS; // room for one contract payer per transaction
      const settler = new BatchSettler({ contract: preflight.connect(provider), token, maxAgeMs: 60_000, maxGasPerTx, onBatch: (b) => batches.push(b) });
      const outcomes = items.map((item) => settler.add(item));
      await settler.flush();
      expect((await Promise.all(outcomes)).map((o) => o.reason)).to.deep.equal([Reason.Settled, Reason.Settled, Reason.Settled]);
      expect(batches.map((b) => b.settled.length)).to.deep.equal([2, 1]);
      for (const b of batches) expect(b.gasLimit - b.gasUsed >= CONTRACT_PAYER_WORST_CASE_GAS).to.equal(true);
      await expectSdkError(() => new BatchSettler({ contract: preflight, token, maxGasPerTx: 1_000_000n / 10n }), "INVALID_OPTION");
    });

    it("remembers at most maxFinished finished items, forgetting those past their deadline first", async function () {
      const { preflight, provider, token, request } = await loadFixture(deploySettlerFixture);
      const settler = new BatchSettler({ contract: preflight.connect(provider), token, maxAgeMs: 60_000, maxFinished: 3 });
      const settle = async (items: SignedRequest[]) => {
        const outcomes = items.map((item) => settler.add(item));
        await settler.flush();
        return (await Promise.all(outcomes)).map((o) => o.reason);
      };
      const expired = [await request(undefined, { nonce: 20n, deadline: 1n }), await request(undefined, { nonce: 21n, deadline: 1n })];
      const good: SignedRequest[] = [];
      for (let nonce = 0n; nonce < 5n; nonce++) good.push(await request(undefined, { nonce }));
      expect(await settle([...expired, good[0]])).to.deep.equal([Reason.Expired, Reason.Expired, Reason.Settled]);
      expect(settler.finishedCount).to.equal(3);
      await settle([good[1]]); // over the bound: the two expired go first, the older good item stays
      expect(settler.finishedCount).to.equal(2);
      await expectSdkError(() => settler.add(good[0]), "ALREADY_FINAL");
      await settle(good.slice(2)); // then the oldest go
      expect(settler.finishedCount).to.equal(3);
      expect(await settle([good[0]])).to.deep.equal([Reason.NonceUsed]); // forgotten: the contract still refuses it
    });
  });
});
