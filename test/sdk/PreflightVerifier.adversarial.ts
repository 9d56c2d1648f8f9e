import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import fc from "fast-check";
import type { TransactionReceipt, Wallet } from "ethers";
import { PreflightVerifier, Reason, reasonName, type Decision, type SignedRequest, type SignedVoucher } from "@preflight/provider";
import { deployPreflightFixture } from "../helpers/fixtures";
import { MODEL_A, MODEL_B } from "../helpers/requests";
import { Random } from "../helpers/random";
import { fundedWallet, latestTimestamp, malleate, signRequestFast, signVoucherFast } from "../helpers/sdk";
import { reasonsOf, voucherReasonsOf } from "../helpers/logs";

/**
 * Adversarial differential test: random sequences of chain activity by honest and hostile payers,
 * third-party providers and forwarders (plain, XOR-ing, decoy-embedding, reverting), direct and
 * wrapped settlements, malformed ABI encodings, nonce burns, grant, lane and withdrawal moves, while
 * two providers' verifiers follow the chain (one an EOA, one a contract wallet that settles through
 * `execute`), and reorgs that drop the last few actions' blocks and grow another branch. After every
 * block: sync never throws, the cache equals the chain, and every decision either verifier makes
 * equals what the contract does with the same input at that block.
 *
 * Fixed seed in `npm test`; longer runs: FC_RUNS=50 FC_STEPS=40 FC_SEED=$RANDOM npx hardhat test test/sdk/PreflightVerifier.adversarial.ts
 */
const SEED = Number(process.env.FC_SEED ?? 0x0ad5e2026);
const RUNS = Number(process.env.FC_RUNS ?? 3);
const STEPS = Number(process.env.FC_STEPS ?? 12);
const MODEL_C = ethers.id("model-c");
const GAS = 15_000_000n;
/** HostileWallet1271.Mode */
const WALLET_MODES = [0, 1, 2, 3, 5, 6, 7, 8];

async function deployAdversarialFixture() {
  const base = await deployPreflightFixture();
  const { preflight, usdc, owner } = base;
  const token = await usdc.getAddress();
  const target = await preflight.getAddress();
  await usdc.mint(owner.address, 10n ** 12n);
  await usdc.connect(owner).approve(target, ethers.MaxUint256);
  const payers: Wallet[] = [];
  for (let i = 0; i < 3; i++) payers.push(await fundedWallet(1_000 + i));
  const delegates = [await fundedWallet(1_010), await fundedWallet(1_011)];
  const stranger = await fundedWallet(1_020);
  const walletOwner = await fundedWallet(1_030);
  const hostile = await ethers.deployContract("HostileWallet1271", [walletOwner.address]);
  const operatorB = await fundedWallet(1_040);
  const walletB = await ethers.deployContract("OwnerSignedWallet", [operatorB.address]);
  const providerB = await walletB.getAddress();
  const providerC = await fundedWallet(1_050);
  const xor = await ethers.deployContract("ScramblingForwarder");
  const hostilePayer = await hostile.getAddress();
  for (const p of [...payers.map((w) => w.address), hostilePayer]) await preflight.connect(owner).deposit(p, token, 20_000n);
  const expiry = (await latestTimestamp()) + 10_000_000n;
  const grant = (payer: Wallet, delegate: Wallet, provider: string, models: string[] = []) =>
    preflight.connect(payer).grant({ delegate: delegate.address, token, provider, maxPrice: 2_500n, budget: 9_000n, period: 0n, expiry, models });
  await grant(payers[0], delegates[0], base.provider.address);
  await grant(payers[1], delegates[1], ethers.ZeroAddress, [MODEL_A, MODEL_B]);
  await grant(payers[2], delegates[0], providerB);
  await preflight.connect(payers[0]).fundLane(base.provider.address, token, 3_000n);
  return { ...base, token, target, payers, delegates, stranger, walletOwner, hostile, hostilePayer, operatorB, walletB, providerB, providerC, xor, expiry };
}

type Fixture = Awaited<ReturnType<typeof deployAdversarialFixture>>;

/** Actions an adversary (or an honest user) can take, each with a seed for its details. */
const KINDS = [
  "deposit",
  "settleA",
  "settleB",
  "settleC",
  "xorBurn",
  "decoyB",
  "reverting",
  "poisoned",
  "burn",
  "grant",
  "revoke",
  "withdrawal",
  "lane",
  "hostileMode",
  "time",
  "vouchersA",
  "reorg",
] as const;
type Kind = (typeof KINDS)[number];
const actionArb = fc.record({ kind: fc.constantFrom(...KINDS), seed: fc.nat() });

describe("PreflightVerifier adversarial differential (two providers' verifiers == the contract, under hostile chain activity)", function () {
  it(`agrees with the contract after every block of ${RUNS} random sequences of ${STEPS} actions`, async function () {
    let checked = 0;
    let reorgs = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(actionArb, { minLength: STEPS, maxLength: STEPS }), async (actions) => {
        const f = await loadFixture(deployAdversarialFixture);
        const verifierA = await PreflightVerifier.create({ contract: f.preflight, provider: f.provider.address });
        const verifierB = await PreflightVerifier.create({ contract: f.preflight, provider: f.providerB });
        const history: string[] = []; // a snapshot before each action: where a reorg can go back to
        for (const action of actions) {
          const rng = new Random(action.seed);
          if (action.kind === "reorg") await reorg(f, rng, history, [verifierA, verifierB]);
          else {
            history.push((await ethers.provider.send("evm_snapshot", [])) as string);
            await act(f, action.kind, rng, verifierA, verifierB);
          }
          await verifierA.sync(); // never throws, whatever the block held
          await verifierB.sync();
          await expectCacheEqualsChain(f, verifierA);
          checked += await probe(f, verifierA, f.provider.address, rng);
          checked += await probe(f, verifierB, f.providerB, rng);
        }
        reorgs += verifierA.followStats.reorgs;
      }),
      { seed: SEED, numRuns: RUNS, endOnFailure: true },
    );
    console.log(`      ${checked} decisions compared with the contract, across ${reorgs} reorgs`);
  });
});

// ------------------------------------------------------------------ items

/** What each verifier accepted (and reserved) through the provider's own flow. */
const acceptedBy = new WeakMap<PreflightVerifier, { requests: SignedRequest[]; vouchers: SignedVoucher[] }>();
function acceptedList(verifier: PreflightVerifier): { requests: SignedRequest[]; vouchers: SignedVoucher[] } {
  let list = acceptedBy.get(verifier);
  if (list === undefined) acceptedBy.set(verifier, (list = { requests: [], vouchers: [] }));
  return list;
}

/**
 * A reorg: the chain goes back before one of the last three actions and grows another branch of 0-3
 * blocks (later timestamps: every hash differs). The verifiers take the dropped blocks back; what
 * those blocks settled of the providers' accepted items is reserved again, and this provider gives
 * it up (it does not send it again), so that every later decision is the chain's alone.
 */
async function reorg(f: Fixture, rng: Random, history: string[], verifiers: PreflightVerifier[]): Promise<void> {
  if (history.length === 0) return;
  const depth = 1 + rng.int(Math.min(3, history.length));
  const to = history[history.length - depth];
  history.length -= depth; // reverting to a snapshot drops it and every later one
  const dropped = await ethers.provider.getBlock("latest");
  await ethers.provider.send("evm_revert", [to]);
  const blocks = rng.int(4);
  if (blocks > 0) await ethers.provider.send("evm_setNextBlockTimestamp", [dropped!.timestamp + 1 + rng.int(100)]);
  const droppedAny = dropped!.number > (await ethers.provider.getBlockNumber()); // an action may have sent nothing
  for (let i = 0; i < blocks; i++) await ethers.provider.send("evm_mine", []);
  for (const verifier of verifiers) {
    const reorgs = verifier.followStats.reorgs;
    await verifier.sync();
    expect(verifier.followStats.reorgs).to.equal(reorgs + (droppedAny ? 1 : 0));
    const { requests, vouchers } = acceptedList(verifier);
    for (const r of requests.splice(0)) verifier.releaseRequest(r);
    for (const v of vouchers.splice(0)) verifier.releaseVoucher(v);
    expect(verifier.pendingCount).to.equal(0);
  }
}

function signer(f: Fixture, rng: Random, payer: string): Wallet {
  const i = f.payers.findIndex((p) => p.address === payer);
  const roll = rng.next();
  if (payer === f.hostilePayer) return roll < 0.8 ? f.walletOwner : f.stranger;
  if (roll < 0.45) return f.payers[i];
  if (roll < 0.9) return rng.pick(f.delegates);
  return f.stranger;
}

async function requests(f: Fixture, rng: Random, provider: string, count: number): Promise<SignedRequest[]> {
  const now = await latestTimestamp();
  const payers = [...f.payers.map((p) => p.address), f.hostilePayer];
  const out: SignedRequest[] = [];
  for (let i = 0; i < count; i++) {
    const payer = rng.pick(payers);
    const request = {
      payer,
      provider,
      token: f.token,
      model: rng.pick([MODEL_A, MODEL_B, MODEL_C]),
      price: rng.chance(0.1) ? 0n : rng.chance(0.1) ? rng.big(2_501n, 9_000n) : rng.big(1n, 2_500n),
      nonce: rng.chance(0.03) ? (1n << 64n) + rng.big(0n, 5n) : rng.big(0n, 140n),
      // Deadlines stay clear of the block times (the checks compare at a block, not at a second).
      deadline: rng.chance(0.1) ? now - rng.big(200n, 1_000n) : now + rng.big(1_000n, 50_000n),
      inputHash: ethers.toBeHex(rng.big(0n, 1n << 40n), 32),
    };
    const signed = signRequestFast(signer(f, rng, payer), f.domain, request, rng.chance(0.4));
    const corrupt = rng.next();
    if (corrupt < 0.03 && signed.signature.length === 132) signed.signature = malleate(signed.signature);
    else if (corrupt < 0.05) signed.signature = signed.signature + "00";
    else if (corrupt < 0.06) signed.signature = "0x";
    out.push(signed);
  }
  return out;
}

function vouchers(f: Fixture, rng: Random, provider: string, count: number): SignedVoucher[] {
  const out: SignedVoucher[] = [];
  for (let i = 0; i < count; i++) {
    const payer = rng.pick([...f.payers.map((p) => p.address), f.hostilePayer]);
    const voucher = { payer, provider, token: f.token, model: rng.pick([MODEL_A, MODEL_C]), channel: ethers.toBeHex(rng.big(0n, 2n), 32), cumulativeAmount: rng.big(1n, 12_000n) };
    out.push(signVoucherFast(signer(f, rng, payer), f.domain, voucher));
  }
  return out;
}

/** The decision of the async path (reads what is unknown, asks ERC-1271 wallets). */
function decide(verifier: PreflightVerifier, item: SignedRequest, at: bigint) {
  return verifier.verifyAsync(item, { reserve: false, at });
}

// ------------------------------------------------------------------ actions

async function send(promise: Promise<{ wait: () => Promise<unknown> }>): Promise<void> {
  try {
    await (await promise).wait();
  } catch {
    // a reverted transaction is chain activity too
  }
}

/**
 * A provider's own flow: preflight (reserving), settle what it accepted, give up what the contract
 * skipped. Every accepted item must have the contract's outcome, reason for reason.
 *
 * What the verifier refused goes out in a transaction of its own, as chain activity, and its outcomes
 * are not compared item by item: within one transaction the contract does not ask an ERC-1271 wallet
 * again once it refused (so one hostile wallet costs a batch one capped check), which skips that
 * payer's later items with InvalidSigner whatever the verifier, deciding each item alone, would say
 * of them. A provider batches only what it accepted, so that rule never touches its accepted items.
 */
async function settleOwn(f: Fixture, verifier: PreflightVerifier, items: SignedRequest[], via: (data: string) => Promise<unknown>): Promise<void> {
  const at = (await latestTimestamp()) + 1n;
  const decisions: Decision[] = [];
  for (const item of items) decisions.push(await verifier.verifyAsync(item, { at }));
  const accepted = items.filter((_, i) => decisions[i].accepted);
  const refused = items.filter((_, i) => !decisions[i].accepted);
  acceptedList(verifier).requests.push(...accepted);
  if (accepted.length > 0) {
    await ethers.provider.send("evm_setNextBlockTimestamp", [Number(at)]);
    const receipt = (await via(f.preflight.interface.encodeFunctionData("settleBatch", [f.token, accepted]))) as TransactionReceipt;
    const actual = (await reasonsOf(receipt)) as Reason[];
    accepted.forEach((item, i) => {
      expect(reasonName(actual[i]), `accepted item ${i} ${JSON.stringify(item, (_, v) => (typeof v === "bigint" ? v.toString() : v))}`).to.equal(reasonName(Reason.Settled));
      if (actual[i] !== Reason.Settled) verifier.releaseRequest(item);
    });
  }
  if (refused.length > 0) await via(f.preflight.interface.encodeFunctionData("settleBatch", [f.token, refused])).catch(() => undefined);
}

async function act(f: Fixture, kind: Kind, rng: Random, verifierA: PreflightVerifier, verifierB: PreflightVerifier): Promise<void> {
  const { preflight, token, target } = f;
  const mask = (hex: string, key: number): string => ethers.hexlify(ethers.getBytes(hex).map((b) => b ^ key));
  switch (kind) {
    case "deposit":
      return send(preflight.connect(f.owner).deposit(rng.pick([...f.payers.map((p) => p.address), f.hostilePayer]), token, rng.big(1n, 5_000n)));
    case "settleA":
      return settleOwn(f, verifierA, await requests(f, rng, f.provider.address, 1 + rng.int(8)), async (data) =>
        (await f.provider.sendTransaction({ to: target, data, gasLimit: GAS })).wait(),
      );
    case "settleB":
      return settleOwn(f, verifierB, await requests(f, rng, f.providerB, 1 + rng.int(8)), async (data) =>
        (await f.walletB.connect(f.operatorB).execute(target, data, { gasLimit: GAS })).wait(),
      );
    case "settleC": {
      // A third-party provider settles its own requests (same payers and nonces).
      const items = await requests(f, rng, f.providerC.address, 1 + rng.int(8));
      return send(preflight.connect(f.providerC).settleBatch(token, items, { gasLimit: GAS }));
    }
    case "xorBurn": {
      // The forwarder is the provider; its calldata appears nowhere in the transaction.
      const items = await requests(f, rng, await f.xor.getAddress(), 1 + rng.int(10));
      const key = 1 + rng.int(255);
      return send(f.xor.forward(target, mask(preflight.interface.encodeFunctionData("settleBatch", [token, items]), key), ethers.toBeHex(key, 1), { gasLimit: GAS }));
    }
    case "decoyB": {
      // B's wallet call with a decoy settleBatch (items signed for A) encoded ahead of its real one.
      const decoy = await requests(f, rng, f.provider.address, 2);
      const real = await requests(f, rng, f.providerB, 2);
      const word = (n: number) => ethers.toBeHex(n, 32);
      const padded = (hex: string) => hex + "00".repeat((32 - (((hex.length - 2) / 2) % 32)) % 32);
      const decoyCall = padded(preflight.interface.encodeFunctionData("settleBatch", [token, decoy]));
      const realCall = preflight.interface.encodeFunctionData("settleBatch", [token, real]);
      const data = ethers.concat([
        f.walletB.interface.getFunction("execute")!.selector,
        ethers.zeroPadValue(target, 32),
        word(0x40 + (decoyCall.length - 2) / 2),
        decoyCall,
        word((realCall.length - 2) / 2),
        padded(realCall),
      ]);
      return send(f.operatorB.sendTransaction({ to: await f.walletB.getAddress(), data, gasLimit: GAS }));
    }
    case "reverting": {
      // A forwarded settle() of an expired request reverts: the whole transaction fails on chain.
      const [item] = await requests(f, rng, await f.xor.getAddress(), 1);
      const expired = { ...item, deadline: 1n };
      return send(f.xor.forward(target, mask(preflight.interface.encodeFunctionData("settle", [expired]), 7), "0x07", { gasLimit: GAS }));
    }
    case "poisoned": {
      // A settleBatch whose skipped (wrong-token) item has an out-of-range signature offset.
      const [good, bad] = await requests(f, rng, f.provider.address, 2);
      const data = ethers.getBytes(preflight.interface.encodeFunctionData("settleBatch", [token, [good, { ...bad, token: ethers.ZeroAddress }]]));
      const arrayData = 4 + 32 * 3;
      const item1 = arrayData + Number(ethers.toBigInt(data.slice(arrayData + 32, arrayData + 64)));
      data.set(ethers.getBytes(ethers.toBeHex(rng.big(1n << 64n, (1n << 255n) - 1n), 32)), item1 + 7 * 32);
      verifierA.releaseRequest(good); // this is not the provider's preflighted flow
      return send(f.providerC.sendTransaction({ to: target, data: ethers.hexlify(data), gasLimit: GAS }));
    }
    case "burn": {
      const payer = rng.pick(f.payers);
      return send(preflight.connect(payer).invalidateNonces(token, rng.big(0n, 2n), rng.big(1n, (1n << 64n) - 1n) & rng.big(1n, (1n << 64n) - 1n)));
    }
    case "grant": {
      const payer = rng.pick(f.payers);
      const delegate = rng.pick(f.delegates);
      const provider = rng.pick([f.provider.address, f.providerB, ethers.ZeroAddress, f.providerC.address]);
      const models = rng.chance(0.5) ? [] : [rng.pick([MODEL_A, MODEL_B, MODEL_C])];
      return send(preflight.connect(payer).grant({ delegate: delegate.address, token, provider, maxPrice: rng.big(0n, 3_000n), budget: rng.big(0n, 12_000n), period: rng.chance(0.5) ? 0n : 2_000_000n, expiry: f.expiry, models }));
    }
    case "revoke":
      return send(preflight.connect(rng.pick(f.payers)).revoke(token, rng.pick([...f.delegates, f.stranger]).address));
    case "withdrawal": {
      const payer = rng.pick(f.payers);
      const op = rng.int(3);
      if (op === 0) return send(preflight.connect(payer).requestWithdrawal(token, rng.big(1n, 30_000n)));
      if (op === 1) return send(preflight.connect(payer).cancelWithdrawal(token));
      return send(preflight.connect(payer).withdraw(token, payer.address));
    }
    case "lane": {
      const payer = rng.pick(f.payers);
      const provider = rng.pick([f.provider.address, f.providerB]);
      const op = rng.int(3);
      if (op === 0) return send(preflight.connect(payer).fundLane(provider, token, rng.big(1n, 3_000n)));
      if (op === 1) return send(preflight.connect(payer).requestLaneClose(provider, token));
      return send(preflight.connect(payer).closeLane(provider, token, payer.address));
    }
    case "hostileMode":
      return send(f.hostile.setMode(rng.pick(WALLET_MODES)));
    case "time": {
      // Past a notice period now and then (withdrawals and lane closes mature, some lapse).
      const seconds = rng.chance(0.3) ? 3n * 24n * 3600n + rng.big(0n, 8n * 24n * 3600n) : rng.big(1n, 5_000n);
      await ethers.provider.send("evm_increaseTime", [Number(seconds)]);
      await ethers.provider.send("evm_mine", []);
      return;
    }
    case "vouchersA": {
      const items = vouchers(f, rng, f.provider.address, 1 + rng.int(4));
      const at = (await latestTimestamp()) + 1n;
      const decisions: Decision[] = [];
      for (const v of items) decisions.push(await verifierA.verifyVoucherAsync(v, { at }));
      acceptedList(verifierA).vouchers.push(...items.filter((_, i) => decisions[i].accepted));
      await ethers.provider.send("evm_setNextBlockTimestamp", [Number(at)]);
      const receipt = await (await preflight.connect(f.provider).claimVouchers(token, items, { gasLimit: GAS })).wait();
      const actual = (await voucherReasonsOf(receipt!)) as Reason[];
      items.forEach((v, i) => {
        // An accepted voucher superseded by a later one of the same channel in this claim is NothingToClaim.
        if (decisions[i].accepted && actual[i] !== Reason.Settled) verifierA.releaseVoucher(v);
      });
      // Outcomes of a multi-claim depend on item order within it; each single decision is checked by `probe`.
      return;
    }
  }
}

// ------------------------------------------------------------------ checks

async function expectCacheEqualsChain(f: Fixture, verifier: PreflightVerifier): Promise<void> {
  for (const payer of [...f.payers.map((p) => p.address), f.hostilePayer]) {
    expect(verifier.accountOf(payer, f.token).balance).to.equal(await f.preflight.balanceOf(payer, f.token));
    for (let word = 0n; word < 3n; word++) {
      const bits = await f.preflight.nonceBitmap(payer, f.token, word);
      for (const bit of [0n, 1n, 17n, 40n, 63n]) expect(verifier.isNonceUsed(payer, f.token, word * 64n + bit)).to.equal(((bits >> bit) & 1n) === 1n);
    }
  }
  for (const payer of f.payers) {
    for (const delegate of f.delegates) {
      const onChain = await f.preflight.grantOf(payer.address, f.token, delegate.address);
      if (onChain.epoch === 0n) continue;
      const cached = verifier.grantOf(payer.address, f.token, delegate.address);
      expect([cached?.spent, cached?.expiry, cached?.epoch]).to.deep.equal([onChain.spent, BigInt(onChain.expiry), BigInt(onChain.epoch)]);
    }
  }
}

/**
 * The provider's own rule, stricter than the contract's answer now: a pending withdrawal that can
 * execute within the verifier's settlement window (an hour by default) can take the funds before the
 * provider's settlement lands, so they cover nothing (finding 8).
 */
async function leavesFirst(f: Fixture, payer: string, at: bigint, verifierReason: Reason, contractReason: Reason): Promise<boolean> {
  if (verifierReason !== Reason.InsufficientBalance || contractReason !== Reason.Settled) return false;
  const { amount, readyAt } = await f.preflight.pendingWithdrawal(payer, f.token);
  return amount > 0n && readyAt <= at + 3_600n;
}

/**
 * Decisions of `verifier` (reserving nothing) on random requests and vouchers, each compared with
 * the contract's answer to the same item at the synced block (a static call from the provider).
 */
async function probe(f: Fixture, verifier: PreflightVerifier, provider: string, rng: Random): Promise<number> {
  const at = (await latestTimestamp()) + 1n;
  const items = await requests(f, rng, provider, 6);
  const reasons: bigint[] = [];
  // One item per call: items of one batch see each other's effects, a decision sees only the chain's.
  for (const item of items) reasons.push((await f.preflight.connect(ethers.provider).settleBatch.staticCall(f.token, [item], { from: provider, gasLimit: GAS }))[0]);
  for (let i = 0; i < items.length; i++) {
    const d = await decide(verifier, items[i], at);
    expect(d.accepted).to.equal(d.reason === Reason.Settled);
    const it = items[i];
    const context = async () =>
      `probe ${i} for ${provider}: payer ${it.payer} nonce ${it.nonce} price ${it.price}; chain word ${await f.preflight.nonceBitmap(it.payer, f.token, it.nonce >> 6n).catch(() => "-")}, cached used ${verifier.isNonceUsed(it.payer, f.token, it.nonce)}, balance ${await f.preflight.balanceOf(it.payer, f.token)} cached ${verifier.accountOf(it.payer, f.token).balance}`;
    if (d.reason !== Number(reasons[i]) && !(await leavesFirst(f, it.payer, at, d.reason, Number(reasons[i])))) expect.fail(`${reasonName(d.reason)} != contract ${reasonName(Number(reasons[i]) as Reason)}: ${await context()}`);
  }
  const [voucher] = vouchers(f, rng, provider, 1);
  const [voucherReason] = await f.preflight.connect(ethers.provider).claimVouchers.staticCall(f.token, [voucher], { from: provider, gasLimit: GAS });
  const voucherDecision = (await verifier.verifyVoucherAsync(voucher, { reserve: false, at })).reason;
  if (!(await leavesFirst(f, voucher.payer, at, voucherDecision, Number(voucherReason)))) expect(reasonName(voucherDecision)).to.equal(reasonName(Number(voucherReason) as Reason));
  return items.length + 1;
}
