import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import type { Wallet } from "ethers";
import { PreflightVerifier, NonceAllocator, Reason, reasonName, type SignedRequest, type SignedVoucher } from "@preflight/provider";
import type { GrantTerms, Request } from "@preflight/sdk";
import { deployPreflightFixture, USDC } from "../helpers/fixtures";
import { MODEL_A, MODEL_B } from "../helpers/requests";
import { Random } from "../helpers/random";
import { budget } from "../helpers/timeouts";
import { reasonsOf, voucherReasonsOf } from "../helpers/logs";
import { fundedWallet, grantBySignature, latestTimestamp, malleate, signRequestFast, signVoucherFast } from "../helpers/sdk";

const SEED = 0x5eed2026;
/**
 * Batches of random requests: 24 by default (DIFF_ROUNDS for a longer or shorter run). At
 * least 5: with this seed, fewer batches do not exercise every reason the test expects to see.
 */
const ROUNDS = Math.max(5, Number(process.env.DIFF_ROUNDS ?? 24));
const BATCH = 100;
const MODEL_C = ethers.id("model-c");

/** Four payers with different balances, six delegates with different scopes, one verifier. */
async function deployDifferentialFixture() {
  const base = await deployPreflightFixture();
  const { preflight, usdc, domain, owner, provider, other } = base;
  const token = await usdc.getAddress();
  const payers: Wallet[] = [];
  for (let i = 0; i < 4; i++) payers.push(await fundedWallet(i));
  const delegates: Wallet[] = [];
  for (let i = 0; i < 6; i++) delegates.push(await fundedWallet(100 + i));
  const stranger = await fundedWallet(200);
  // Every block from here on gets an explicit timestamp, so that a run replays exactly.
  let clock = (await latestTimestamp()) + 10n;
  const tick = async (): Promise<void> => {
    clock += 1n;
    await ethers.provider.send("evm_setNextBlockTimestamp", [Number(clock)]);
  };
  await tick();
  await usdc.mint(owner.address, 1_000_000n * USDC);
  await tick();
  await usdc.approve(await preflight.getAddress(), ethers.MaxUint256);
  const deposits = [2_500_000n, 1_500_000n, 1_000_000n, 6_000n];
  for (let i = 0; i < 4; i++) {
    await tick();
    await preflight.deposit(payers[i].address, token, deposits[i]);
  }
  const now = clock;
  const terms = (delegate: Wallet, over: Partial<GrantTerms>): GrantTerms => ({
    delegate: delegate.address,
    token,
    provider: provider.address,
    maxPrice: 5_000n,
    budget: 60_000n,
    period: 3_600n,
    expiry: now + 100_000n,
    models: [MODEL_A, MODEL_B],
    ...over,
  });
  // Scoped to this provider and two models; another provider; anything but a short period;
  // one that expires mid-run; one that gets revoked and re-granted; a tight budget.
  await tick();
  await grantBySignature(preflight, domain, payers[0], other, terms(delegates[0], {}));
  await tick();
  await grantBySignature(preflight, domain, payers[0], other, terms(delegates[1], { provider: other.address }));
  await tick();
  await grantBySignature(preflight, domain, payers[1], other, terms(delegates[2], { provider: ethers.ZeroAddress, models: [], maxPrice: 10_000n, budget: 30_000n, period: 600n }));
  await tick();
  await grantBySignature(preflight, domain, payers[1], other, terms(delegates[3], { expiry: now + 2_500n }));
  await tick();
  await grantBySignature(preflight, domain, payers[2], other, terms(delegates[4], { models: [MODEL_B] }));
  await tick();
  await grantBySignature(preflight, domain, payers[2], other, terms(delegates[5], { budget: 8_000n, period: 0n }));
  return { ...base, token, payers, delegates, stranger, terms, startTime: clock };
}

describe("PreflightVerifier differential (verifier decision == contract outcome)", function () {
  // 24 batches of 100 take under a minute on a busy machine; the budget grows with the batches.
  this.timeout(budget(Math.max(120_000, ROUNDS * 15_000)));
  it(`agrees with settleBatch on ${ROUNDS * BATCH} random valid and corrupted requests`, async function () {
    const { preflight, domain, provider, other, token, payers, delegates, stranger, terms, startTime } =
      await loadFixture(deployDifferentialFixture);
    let clock = startTime;
    const tick = async (seconds = 1n): Promise<void> => {
      clock += seconds;
      await ethers.provider.send("evm_setNextBlockTimestamp", [Number(clock)]);
    };
    // A verifier is in-process state: build it after loadFixture (which reverts the chain, not the heap).
    const verifier = await PreflightVerifier.create({ contract: preflight, provider: provider.address });
    const rng = new Random(SEED);
    const allocators = await Promise.all(payers.map((p) => NonceAllocator.create(preflight, p.address, token)));
    const usedNonces: bigint[][] = payers.map(() => []);
    const delegatesOf: Wallet[][] = [[delegates[0], delegates[1]], [delegates[2], delegates[3]], [delegates[4], delegates[5]], []];
    const seen = new Map<Reason, number>();
    let mismatches = 0;
    const asProvider = preflight.connect(provider);

    for (let round = 0; round < ROUNDS; round++) {
      // ---------------------------------------------------------------- chain-side events between batches
      if (rng.chance(0.3)) {
        await tick();
        await (await preflight.connect(payers[2]).revoke(token, delegates[4].address)).wait();
      } else if (rng.chance(0.3)) {
        await tick();
        await grantBySignature(preflight, domain, payers[2], other, terms(delegates[4], { models: [MODEL_B], expiry: clock + 50_000n }));
      }
      if (rng.chance(0.25)) {
        const word = rng.big(0n, 3n);
        const mask = rng.big(1n, (1n << 53n) - 1n);
        await tick();
        await (await preflight.connect(payers[0]).invalidateNonces(token, word, mask)).wait();
      }
      if (rng.chance(0.3)) {
        await tick();
        await (await preflight.deposit(payers[3].address, token, rng.big(1_000n, 8_000n))).wait();
      }
      if (round === ROUNDS - 3) {
        await tick();
        await (await preflight.connect(payers[1]).requestWithdrawal(token, 40_000n)).wait();
      }
      if (round === ROUNDS - 1) {
        await tick(3n * 24n * 3600n + 1n); // past the notice period
        await (await preflight.connect(payers[1]).withdraw(token, payers[1].address)).wait();
      }
      await verifier.sync();

      // ---------------------------------------------------------------- a batch of random requests
      const at = clock + (rng.chance(0.25) ? rng.big(300n, 1_500n) : rng.big(1n, 20n));
      clock = at;
      const batch: SignedRequest[] = [];
      const batchNonces: bigint[][] = payers.map(() => []);
      for (let i = 0; i < BATCH; i++) {
        const p = rng.int(4);
        const payer = payers[p];
        let nonce: bigint;
        const nonceKind = rng.next();
        if (nonceKind < 0.75 || usedNonces[p].length === 0) nonce = await allocators[p].next();
        else if (nonceKind < 0.85) nonce = rng.pick(usedNonces[p]);
        else if (nonceKind < 0.93 && batchNonces[p].length > 0) nonce = rng.pick(batchNonces[p]);
        else nonce = rng.big(64n, 255n);
        batchNonces[p].push(nonce);
        usedNonces[p].push(nonce);

        const request: Request = {
          payer: payer.address,
          provider: provider.address,
          token,
          model: rng.pick([MODEL_A, MODEL_A, MODEL_B, MODEL_C]),
          price: rng.chance(0.1) ? rng.big(5_001n, 40_000n) : rng.big(1n, 4_000n),
          nonce,
          deadline: rng.chance(0.08) ? at - rng.big(1n, 100n) : at + rng.big(0n, 3_000n),
          inputHash: ethers.toBeHex(rng.big(0n, 1n << 50n), 32),
        };
        const signerKind = rng.next();
        const signer =
          signerKind < 0.35 || delegatesOf[p].length === 0
            ? payer
            : signerKind < 0.9
              ? rng.pick(delegatesOf[p])
              : signerKind < 0.95
                ? rng.pick(delegates)
                : stranger;
        const signedFor = rng.chance(0.03) ? { ...request, provider: other.address } : request;
        const signed = signRequestFast(signer, domain, signedFor, rng.chance(0.4));
        const corrupt = rng.next();
        if (corrupt < 0.04 && signed.signature.length === 132) signed.signature = malleate(signed.signature);
        else if (corrupt < 0.06) signed.signature = signed.signature + "00";
        else if (corrupt < 0.08) signed.signature = signed.signature.slice(0, -4);
        else if (corrupt < 0.09 && signed.signature.length === 132) signed.signature = signed.signature.slice(0, -2) + "1d";
        else if (corrupt < 0.1) signed.signature = "0x" + "00".repeat(32) + signed.signature.slice(66);
        batch.push(signed);
      }

      const expected = batch.map((item) => verifier.verify(item, { at }).reason);
      await ethers.provider.send("evm_setNextBlockTimestamp", [Number(at)]);
      const receipt = await (await asProvider.settleBatch(token, batch)).wait();
      const actual = (await reasonsOf(receipt!)) as Reason[];
      for (let i = 0; i < BATCH; i++) {
        seen.set(actual[i], (seen.get(actual[i]) ?? 0) + 1);
        if (expected[i] !== actual[i]) {
          mismatches++;
          console.log(`round ${round} item ${i}: verifier ${reasonName(expected[i])}, contract ${reasonName(actual[i])}`, batch[i]);
        }
      }

      // ---------------------------------------------------------------- the cache tracks the chain exactly
      await verifier.sync();
      expect(verifier.pendingCount).to.equal(0);
      for (const payer of payers) {
        expect(verifier.accountOf(payer.address, token).balance).to.equal(await preflight.balanceOf(payer.address, token));
        for (const delegate of delegates) {
          const onChain = await preflight.grantOf(payer.address, token, delegate.address);
          const cached = verifier.grantOf(payer.address, token, delegate.address);
          if (onChain.epoch === 0n) continue;
          expect([cached?.spent, cached?.periodEnd, cached?.expiry, cached?.epoch]).to.deep.equal([
            onChain.spent,
            BigInt(onChain.periodEnd),
            BigInt(onChain.expiry),
            BigInt(onChain.epoch),
          ]);
        }
        for (let word = 0n; word < 4n; word++) {
          const bits = await preflight.nonceBitmap(payer.address, token, word);
          for (let bit = 0n; bit < 64n; bit++) {
            expect(verifier.isNonceUsed(payer.address, token, word * 64n + bit)).to.equal(((bits >> bit) & 1n) === 1n);
          }
        }
      }
    }
    const summary = [...seen.entries()].sort((a, b) => a[0] - b[0]).map(([r, n]) => `${reasonName(r)} ${n}`);
    console.log(`      outcomes: ${summary.join(", ")}`);
    expect(mismatches).to.equal(0);
    // Every kind of bad input was exercised.
    for (const reason of [
      Reason.Settled,
      Reason.Expired,
      Reason.SignatureLength,
      Reason.SignatureMalleable,
      Reason.InvalidSigner,
      Reason.GrantRevoked,
      Reason.GrantExpired,
      Reason.ProviderNotAllowed,
      Reason.ModelNotAllowed,
      Reason.PriceAboveCap,
      Reason.BudgetExceeded,
      Reason.NonceUsed,
      Reason.InsufficientBalance,
    ]) {
      expect(seen.get(reason) ?? 0, reasonName(reason)).to.be.greaterThan(0);
    }
  });

  it("agrees with claimVouchers on random vouchers, and reserves accepted excess", async function () {
    const { preflight, domain, provider, token, payers, delegates, stranger } = await loadFixture(deployDifferentialFixture);
    const verifier = await PreflightVerifier.create({ contract: preflight, provider: provider.address });
    const rng = new Random(SEED + 1);
    const channels = [ethers.ZeroHash, ethers.id("session-1")];
    const cumulative = new Map<string, bigint>();
    const seen = new Map<Reason, number>();
    let mismatches = 0;
    for (let round = 0; round < 16; round++) {
      await verifier.sync();
      const at = (await latestTimestamp()) + rng.big(1n, 400n);
      const vouchers: SignedVoucher[] = [];
      // One voucher per channel per claim: a provider claims the latest voucher of each channel.
      for (let p = 0; p < 4; p++) {
        for (const channel of channels) {
          if (!rng.chance(0.8)) continue;
          const key = `${p}|${channel}`;
          const last = cumulative.get(key) ?? 0n;
          const next = rng.chance(0.15) ? last : last + rng.big(1n, rng.chance(0.15) ? 200_000n : 6_000n);
          cumulative.set(key, next);
          const signer = p === 3 || rng.chance(0.5) ? payers[p] : rng.chance(0.9) ? delegates[2 * p + rng.int(2)] : stranger;
          const voucher = { payer: payers[p].address, provider: provider.address, token, model: rng.pick([MODEL_A, MODEL_B, MODEL_C]), channel, cumulativeAmount: next };
          vouchers.push(signVoucherFast(signer, domain, voucher, rng.chance(0.5)));
        }
      }
      const expected = vouchers.map((v) => verifier.verifyVoucher(v, { at }).reason);
      await ethers.provider.send("evm_setNextBlockTimestamp", [Number(at)]);
      const receipt = await (await preflight.connect(provider).claimVouchers(token, vouchers)).wait();
      const actual = (await voucherReasonsOf(receipt!)) as Reason[];
      vouchers.forEach((v, i) => {
        seen.set(actual[i], (seen.get(actual[i]) ?? 0) + 1);
        if (expected[i] !== actual[i]) {
          mismatches++;
          console.log(`voucher round ${round} item ${i}: verifier ${reasonName(expected[i])}, contract ${reasonName(actual[i])}`, v);
        }
      });
      await verifier.sync();
      for (const payer of payers) {
        expect(verifier.accountOf(payer.address, token).balance).to.equal(await preflight.balanceOf(payer.address, token));
      }
    }
    const summary = [...seen.entries()].sort((a, b) => a[0] - b[0]).map(([r, n]) => `${reasonName(r)} ${n}`);
    console.log(`      outcomes: ${summary.join(", ")}`);
    expect(mismatches).to.equal(0);
    expect(verifier.pendingCount).to.equal(0);
    for (const reason of [Reason.Settled, Reason.NothingToClaim, Reason.InvalidSigner, Reason.ModelNotAllowed, Reason.InsufficientBalance]) {
      expect(seen.get(reason) ?? 0, reasonName(reason)).to.be.greaterThan(0);
    }
  });
});
