/**
 * One test per property under "Properties and where they are tested" in SECURITY.md. Each test is written so that it
 * fails if its property breaks; the deep adversarial suite lives elsewhere (test/security).
 */
import { expectBatchTotals } from "../helpers/logs";
import { expect } from "chai";
import { ethers, network } from "hardhat";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import fc from "fast-check";
import type { Signer } from "ethers";
import { NOTICE_PERIOD, USDC } from "../helpers/fixtures";
import { makeRequest, signedRequest, signedVoucher, toSignedRequest, MODEL_A, MODEL_B } from "../helpers/requests";
import { makeGrant } from "../helpers/grants";
import { highS, Reason } from "../helpers/signatures";
import { signLaneVoucher, signRequest, type PreflightDomain, type Request, type Voucher } from "@preflight/sdk";

const FEE_BPS = 100n;
const DEPOSIT = 1_000n * USDC;

/** Three funded payers (USDC and ETH), two providers, a 1% fee, and a scoped delegate of payer A. */
async function deployPropertiesFixture() {
  const [owner, payerA, provider, delegate, stranger, feeRecipient, payerB, payerC, provider2] = await ethers.getSigners();
  const preflight = await ethers.deployContract("Preflight", [NOTICE_PERIOD, FEE_BPS, feeRecipient.address]);
  const preflightAddress = await preflight.getAddress();
  const usdc = await ethers.deployContract("TestToken", ["USD Coin", "USDC", 6]);
  const token = await usdc.getAddress();
  const payers = [payerA, payerB, payerC];
  for (const p of payers) {
    await usdc.mint(p.address, 10n * DEPOSIT);
    await usdc.connect(p).approve(preflightAddress, ethers.MaxUint256);
    await preflight.connect(p).deposit(p.address, token, DEPOSIT);
    await preflight.connect(p).depositETH(p.address, { value: ethers.parseEther("1") });
  }
  await preflight
    .connect(payerA)
    .grant(await makeGrant({ delegate: delegate.address, token, provider: provider.address, maxPrice: 5_000n, budget: 20_000n, models: [MODEL_A] }));
  const { chainId } = await ethers.provider.getNetwork();
  const domain: PreflightDomain = { chainId, verifyingContract: preflightAddress };
  const request = (fields: Partial<Request> = {}) =>
    makeRequest({ payer: payerA.address, provider: provider.address, token, price: 1_000n, ...fields });
  const sign = async (signer: Signer, fields: Partial<Request> = {}) => signedRequest(signer, domain, await request(fields));
  const voucher = (signer: Signer, cumulativeAmount: bigint, fields: Partial<Voucher> = {}) =>
    signedVoucher(signer, domain, {
      payer: payerA.address,
      provider: provider.address,
      token,
      model: MODEL_A,
      channel: ethers.ZeroHash,
      cumulativeAmount,
      ...fields,
    });
  return {
    preflight, preflightAddress, usdc, token, domain, owner, payerA, payerB, payerC, payers, provider, provider2,
    delegate, stranger, feeRecipient, request, sign, voucher,
  };
}

type Fixture = Awaited<ReturnType<typeof deployPropertiesFixture>>;

/** Payer balances + lanes + provider earnings + accrued fees, for ERC-20 `token` or ETH (ZeroAddress). */
async function ledgerTotal(f: Fixture, token: string): Promise<bigint> {
  let total = await f.preflight.feesOf(token);
  for (const p of f.payers) {
    total += await f.preflight.balanceOf(p.address, token);
    for (const provider of [f.provider, f.provider2]) {
      const lane = await f.preflight.laneOf(p.address, provider.address, token);
      total += lane.funds + lane.uncollected;
    }
  }
  for (const e of [f.provider, f.provider2, f.feeRecipient, f.owner]) total += await f.preflight.earningsOf(e.address, token);
  return total;
}

async function expectConserved(f: Fixture): Promise<void> {
  expect(await ledgerTotal(f, f.token), "USDC ledger vs holdings").to.equal(await f.usdc.balanceOf(f.preflightAddress));
  expect(await ledgerTotal(f, ethers.ZeroAddress), "ETH ledger vs holdings").to.equal(
    await ethers.provider.getBalance(f.preflightAddress),
  );
}

describe("Preflight: properties that must hold", function () {
  describe("Funds move only with a valid signature of the payer, or of a delegate within its grant", function () {
    it("every change to a signed field, and every unauthorized signer, is refused and moves nothing", async function () {
      const f = await loadFixture(deployPropertiesFixture);
      const { preflight, payerA, payerB, provider, delegate, stranger, domain, token, request } = f;
      await preflight.connect(payerB).grant(await makeGrant({ delegate: stranger.address, token })); // B's delegate, not A's
      const signedFields = await request();
      const signature = await signRequest(payerA, domain, signedFields);
      const forged = [
        toSignedRequest({ ...signedFields, payer: payerB.address }, signature),
        toSignedRequest({ ...signedFields, token: ethers.ZeroAddress }, signature),
        toSignedRequest({ ...signedFields, model: MODEL_B }, signature),
        toSignedRequest({ ...signedFields, price: signedFields.price * 2n }, signature),
        toSignedRequest({ ...signedFields, nonce: 1n }, signature),
        toSignedRequest({ ...signedFields, deadline: signedFields.deadline + 1n }, signature),
        toSignedRequest({ ...signedFields, inputHash: ethers.id("another prompt") }, signature),
        await f.sign(stranger), // a delegate of another payer
        await f.sign(delegate, { price: 5_001n }), // A's delegate, outside its grant
      ];
      const before = await ledgerTotal(f, token);
      const balanceA = await preflight.balanceOf(payerA.address, token);
      for (const [i, item] of forged.entries()) {
        const error = i === forged.length - 1 ? "PriceAboveCap" : "InvalidSigner";
        await expect(preflight.connect(provider).settle(item), `item ${i}`).to.be.revertedWithCustomError(preflight, error);
      }
      const reasons = await preflight.connect(provider).settleBatch.staticCall(token, forged);
      expect(reasons.every((r) => r !== Reason.Settled)).to.equal(true);
      await preflight.connect(provider).settleBatch(token, forged);
      await preflight.connect(provider).settleBatch(ethers.ZeroAddress, forged);
      expect(await preflight.balanceOf(payerA.address, token)).to.equal(balanceA);
      expect(await preflight.earningsOf(provider.address, token)).to.equal(0n);
      expect(await ledgerTotal(f, token)).to.equal(before);
      // The genuine item still settles: what was refused was the forgery, not the request.
      await expect(preflight.connect(provider).settle(toSignedRequest(signedFields, signature))).to.emit(preflight, "RequestsSettled");
    });
  });

  describe("No signed item settles twice, on another chain, on another deployment, or for another provider", function () {
    it("a request settles once across the single and batch paths", async function () {
      const { preflight, payerA, provider, token, sign } = await loadFixture(deployPropertiesFixture);
      const first = await sign(payerA, { nonce: 1n });
      const second = await sign(payerA, { nonce: 2n });
      await preflight.connect(provider).settle(first);
      await preflight.connect(provider).settleBatch(token, [second]);
      expect(await preflight.connect(provider).settleBatch.staticCall(token, [first, second])).to.deep.equal([
        Reason.NonceUsed,
        Reason.NonceUsed,
      ]);
      await expect(preflight.connect(provider).settle(second)).to.be.revertedWithCustomError(preflight, "NonceAlreadyUsed");
    });

    it("a voucher pays once across claimVoucher and claimVouchers", async function () {
      const { preflight, payerA, provider, token, voucher } = await loadFixture(deployPropertiesFixture);
      const v = await voucher(payerA, 5_000n);
      await preflight.connect(provider).claimVoucher(v);
      expect(await preflight.connect(provider).claimVouchers.staticCall(token, [v])).to.deep.equal([Reason.NothingToClaim]);
      const w = await voucher(payerA, 7_000n);
      await preflight.connect(provider).claimVouchers(token, [w, w]);
      expect(await preflight.claimedOf(payerA.address, provider.address, token, ethers.ZeroHash)).to.equal(7_000n);
      await expect(preflight.connect(provider).claimVoucher(w)).to.be.revertedWithCustomError(preflight, "NothingToClaim");
    });

    it("a signature for another chain id is refused", async function () {
      const { preflight, payerA, provider, domain, request } = await loadFixture(deployPropertiesFixture);
      const otherChain = { ...domain, chainId: domain.chainId + 1n };
      const signed = await signedRequest(payerA, otherChain, await request());
      await expect(preflight.connect(provider).settle(signed)).to.be.revertedWithCustomError(preflight, "InvalidSigner");
      const v = await signedVoucher(payerA, otherChain, {
        payer: payerA.address, provider: provider.address, token: signed.token as string, model: MODEL_A,
        channel: ethers.ZeroHash, cumulativeAmount: 1n,
      });
      await expect(preflight.connect(provider).claimVoucher(v)).to.be.revertedWithCustomError(preflight, "InvalidSigner");
    });

    it("a signature for this deployment is refused by another deployment with the same payer and funds", async function () {
      const { preflight, payerA, provider, feeRecipient, token, usdc, sign, voucher } = await loadFixture(deployPropertiesFixture);
      const twin = await ethers.deployContract("Preflight", [NOTICE_PERIOD, FEE_BPS, feeRecipient.address]);
      await usdc.connect(payerA).approve(await twin.getAddress(), ethers.MaxUint256);
      await twin.connect(payerA).deposit(payerA.address, token, DEPOSIT);
      const signed = await sign(payerA);
      const v = await voucher(payerA, 1_000n);
      await expect(twin.connect(provider).settle(signed)).to.be.revertedWithCustomError(twin, "InvalidSigner");
      await expect(twin.connect(provider).claimVoucher(v)).to.be.revertedWithCustomError(twin, "InvalidSigner");
      await preflight.connect(provider).settle(signed);
      await preflight.connect(provider).claimVoucher(v);
      expect(await twin.balanceOf(payerA.address, token)).to.equal(DEPOSIT);
    });

    it("another provider cannot settle a request or claim a voucher signed for this one", async function () {
      const { preflight, payerA, provider, provider2, token, sign, voucher } = await loadFixture(deployPropertiesFixture);
      const signed = await sign(payerA);
      const v = await voucher(payerA, 1_000n);
      await expect(preflight.connect(provider2).settle(signed)).to.be.revertedWithCustomError(preflight, "InvalidSigner");
      expect(await preflight.connect(provider2).settleBatch.staticCall(token, [signed])).to.deep.equal([Reason.InvalidSigner]);
      await expect(preflight.connect(provider2).claimVoucher(v)).to.be.revertedWithCustomError(preflight, "InvalidSigner");
      await preflight.connect(provider).settle(signed);
      await preflight.connect(provider).claimVoucher(v);
      expect(await preflight.earningsOf(provider2.address, token)).to.equal(0n);
    });
  });

  describe("Nothing is lost", function () {
    it("payer balances + earnings + fees == tokens held, after any mix of operations (fast-check)", async function () {
      // Each operation may fail (e.g. a price above the balance); the ledger must match holdings after every step.
      const op = fc.oneof(
        fc.record({ kind: fc.constant("deposit" as const), payer: fc.nat(2), amount: fc.bigInt(1n, 500n * USDC) }),
        fc.record({ kind: fc.constant("depositETH" as const), payer: fc.nat(2), amount: fc.bigInt(1n, 10n ** 17n) }),
        fc.record({ kind: fc.constant("settle" as const), payer: fc.nat(2), price: fc.bigInt(0n, 400n * USDC), eth: fc.boolean() }),
        fc.record({ kind: fc.constant("delegate" as const), price: fc.bigInt(0n, 6_000n) }),
        fc.record({ kind: fc.constant("batch" as const), prices: fc.array(fc.bigInt(0n, 300n * USDC), { maxLength: 5 }) }),
        fc.record({ kind: fc.constant("voucher" as const), payer: fc.nat(2), step: fc.bigInt(0n, 300n * USDC) }),
        fc.record({ kind: fc.constant("withdraw" as const), payer: fc.nat(2), amount: fc.bigInt(1n, 2n * DEPOSIT), eth: fc.boolean() }),
        fc.record({ kind: fc.constant("earnings" as const), who: fc.nat(2), eth: fc.boolean() }),
        fc.record({ kind: fc.constant("fees" as const) }),
        fc.record({ kind: fc.constant("lane" as const), payer: fc.nat(2), amount: fc.bigInt(1n, 300n * USDC), claim: fc.bigInt(0n, 300n * USDC) }),
      );
      await fc.assert(
        fc.asyncProperty(fc.array(op, { minLength: 8, maxLength: 16 }), async (ops) => {
          const f = await loadFixture(deployPropertiesFixture);
          const { preflight, provider, domain, token } = f;
          const nonces = new Map<string, bigint>();
          const next = (key: string) => {
            const n = nonces.get(key) ?? 0n;
            nonces.set(key, n + 1n);
            return n;
          };
          const cumulative = new Map<string, bigint>();
          const attempt = async (tx: () => Promise<unknown>) => {
            try {
              await tx();
            } catch {
              // A refused operation is fine; losing or creating value is not.
            }
          };
          for (const o of ops) {
            switch (o.kind) {
              case "deposit":
                await attempt(() => preflight.connect(f.payers[o.payer]).deposit(f.payers[o.payer].address, token, o.amount));
                break;
              case "depositETH":
                await attempt(() => preflight.connect(f.payers[o.payer]).depositETH(f.payers[o.payer].address, { value: o.amount }));
                break;
              case "settle": {
                const p = f.payers[o.payer];
                const t = o.eth ? ethers.ZeroAddress : token;
                const r = await f.sign(p, { payer: p.address, token: t, price: o.price, nonce: next(p.address + t) });
                await attempt(() => preflight.connect(provider).settle(r));
                break;
              }
              case "delegate": {
                const r = await f.sign(f.delegate, { price: o.price, nonce: next(f.payerA.address + token) });
                await attempt(() => preflight.connect(provider).settle(r));
                break;
              }
              case "batch": {
                const items = [];
                for (const [i, price] of o.prices.entries()) {
                  const p = f.payers[i % 3];
                  items.push(await f.sign(p, { payer: p.address, price, nonce: next(p.address + token) }));
                }
                await preflight.connect(f.provider2).settleBatch(token, items);
                break;
              }
              case "voucher": {
                const p = f.payers[o.payer];
                const total = (cumulative.get(p.address) ?? 0n) + o.step;
                const v = await signedVoucher(p, domain, {
                  payer: p.address, provider: provider.address, token, model: MODEL_A, channel: ethers.ZeroHash, cumulativeAmount: total,
                });
                await attempt(async () => {
                  await preflight.connect(provider).claimVoucher(v);
                  cumulative.set(p.address, total);
                });
                break;
              }
              case "withdraw": {
                const p = f.payers[o.payer];
                const t = o.eth ? ethers.ZeroAddress : token;
                await attempt(() => preflight.connect(p).requestWithdrawal(t, o.amount)); // refused on an empty balance
                await time.increase(NOTICE_PERIOD);
                await attempt(() => preflight.connect(p).withdraw(t, p.address));
                break;
              }
              case "earnings": {
                const who = [provider, f.provider2, f.feeRecipient][o.who];
                await attempt(() => preflight.connect(who).withdrawEarnings(o.eth ? ethers.ZeroAddress : token, who.address));
                break;
              }
              case "fees":
                await attempt(() => preflight.withdrawFees(token));
                break;
              case "lane": {
                // Reserve funds for the provider, claim part of them with a lane voucher, collect.
                const p = f.payers[o.payer]!;
                await attempt(() => preflight.connect(p).fundLane(provider.address, token, o.amount));
                const lane = await preflight.laneOf(p.address, provider.address, token);
                const cumulativeAmount = lane.claimed + o.claim;
                const signature = await signLaneVoucher(p, f.domain, { payer: p.address, provider: provider.address, token, model: MODEL_A, cumulativeAmount });
                await attempt(() => preflight.connect(provider).claimLane({ payer: p.address, token, model: MODEL_A, cumulativeAmount, signature }));
                await attempt(() => preflight.connect(provider).collectLanes(token, [p.address]));
                break;
              }
            }
            await expectConserved(f);
          }
        }),
        { numRuns: 8 },
      );
    });

    it("a fee-on-transfer token is credited by the amount received, so the ledger still matches", async function () {
      const { preflight, preflightAddress, payerA, provider, domain } = await loadFixture(deployPropertiesFixture);
      const taxed = await ethers.deployContract("FeeOnTransferToken");
      const taxedAddress = await taxed.getAddress();
      await taxed.mint(payerA.address, 100_000n);
      await taxed.connect(payerA).approve(preflightAddress, ethers.MaxUint256);
      await preflight.connect(payerA).deposit(payerA.address, taxedAddress, 100_000n);
      const r = await makeRequest({ payer: payerA.address, provider: provider.address, token: taxedAddress, price: 40_000n });
      await preflight.connect(provider).settle(await signedRequest(payerA, domain, r));
      await preflight.connect(provider).withdrawEarnings(taxedAddress, provider.address);
      const ledger =
        (await preflight.balanceOf(payerA.address, taxedAddress)) +
        (await preflight.earningsOf(provider.address, taxedAddress)) +
        (await preflight.feesOf(taxedAddress));
      expect(ledger).to.equal(await taxed.balanceOf(preflightAddress));
      expect(await taxed.balanceOf(preflightAddress)).to.equal(99_000n - 40_000n + 400n); // payer's rest + the fee
    });
  });

  describe("Nobody, the deployer included, can block or seize a withdrawal or earnings", function () {
    it("the deployer's every call leaves a pending withdrawal and earnings untouched", async function () {
      const f = await loadFixture(deployPropertiesFixture);
      const { preflight, usdc, owner, payerA, provider, token, sign } = f;
      // The whole state-changing surface: adding a function here (a pause, a rescue) must be a deliberate decision.
      const mutating = preflight.interface.fragments
        .filter((x) => x.type === "function")
        .map((x) => ethers.FunctionFragment.from(x))
        .filter((x) => !x.constant)
        .map((x) => x.name)
        .sort();
      expect(mutating).to.deep.equal(
        [
          "cancelWithdrawal", "claimLane", "claimLanesPacked", "claimVoucher", "claimVouchers", "closeLane", "collectLanes",
          "deposit", "depositETH", "depositETHToLane", "depositToLane", "depositWithPermit", "fundLane", "grant", "grantBySig",
          "invalidateNonces", "requestLaneClose", "requestWithdrawal", "revoke", "settle", "settleBatch", "settlePacked",
          "withdraw", "withdrawEarnings", "withdrawFees",
        ].sort(),
      );
      await preflight.connect(provider).settle(await sign(payerA, { price: 100n * USDC }));
      const earned = await preflight.earningsOf(provider.address, token);
      await preflight.connect(payerA).requestWithdrawal(token, ethers.MaxUint256);
      const balanceA = await preflight.balanceOf(payerA.address, token);

      // Everything the deployer can call, aimed at the payer's and provider's funds.
      await expect(preflight.connect(owner).withdrawFees(token)).to.be.revertedWithCustomError(preflight, "ZeroAmount");
      await expect(preflight.connect(owner).closeLane(provider.address, token, owner.address)).to.be.revertedWithCustomError(preflight, "LaneCloseNotRequested");
      await preflight.connect(owner).collectLanes(token, [payerA.address]);
      await expect(preflight.connect(owner).withdraw(token, owner.address)).to.be.revertedWithCustomError(preflight, "NoWithdrawalRequested");
      await expect(preflight.connect(owner).cancelWithdrawal(token)).to.be.revertedWithCustomError(preflight, "NoWithdrawalRequested");
      await expect(preflight.connect(owner).withdrawEarnings(token, owner.address)).to.be.revertedWithCustomError(preflight, "ZeroAmount");
      await expect(preflight.connect(owner).settle(await sign(payerA, { provider: provider.address, nonce: 5n }))).to.be.revertedWithCustomError(
        preflight,
        "InvalidSigner",
      );
      await preflight.connect(owner).invalidateNonces(token, 0n, 2n ** 64n - 1n); // the owner's own nonces only
      await preflight.connect(owner).revoke(token, provider.address);

      expect(await preflight.earningsOf(provider.address, token)).to.equal(earned);
      expect(await preflight.balanceOf(payerA.address, token)).to.equal(balanceA);
      await time.increase(NOTICE_PERIOD);
      await expect(preflight.connect(payerA).withdraw(token, payerA.address)).to.changeTokenBalance(usdc, payerA, balanceA);
      const fee = (earned * FEE_BPS + 9_999n) / 10_000n; // taken on withdrawal, rounded up
      await expect(preflight.connect(provider).withdrawEarnings(token, provider.address)).to.changeTokenBalance(usdc, provider, earned - fee);
    });
  });

  describe("One bad item never holds a batch hostage", function () {
    it("payers revoking, burning nonces and withdrawing before the batch lands only skip their own items", async function () {
      const { preflight, payerA, payerB, payerC, provider, delegate, token, sign } = await loadFixture(deployPropertiesFixture);
      const deadline = BigInt(await time.latest()) + 2n * NOTICE_PERIOD;
      const batch = [
        await sign(payerA, { nonce: 0n, deadline }),
        await sign(delegate, { nonce: 1n, deadline }),
        await sign(payerB, { payer: payerB.address, nonce: 0n, price: 600n * USDC, deadline }),
        await sign(payerC, { payer: payerC.address, nonce: 0n, price: 2_000n, deadline }),
        await sign(payerC, { payer: payerC.address, nonce: 1n, price: 3_000n, deadline }),
      ];
      await preflight.connect(payerB).requestWithdrawal(token, 500n * USDC);
      await time.increase(NOTICE_PERIOD);
      // The griefing, front-running the provider's batch:
      await preflight.connect(payerA).invalidateNonces(token, 0n, 1n);
      await preflight.connect(payerA).revoke(token, delegate.address);
      await preflight.connect(payerB).withdraw(token, payerB.address);
      expect(await preflight.connect(provider).settleBatch.staticCall(token, batch)).to.deep.equal([
        Reason.NonceUsed,
        Reason.GrantRevoked,
        Reason.InsufficientBalance,
        Reason.Settled,
        Reason.Settled,
      ]);
      await expectBatchTotals(preflight.connect(provider).settleBatch(token, batch), provider.address, token, 2n, 5_000n);
      expect(await preflight.earningsOf(provider.address, token)).to.equal(5_000n); // gross: the fee is taken on withdrawal
    });
  });

  describe("Malformed and out-of-scope signatures are rejected with a specific error or reason", function () {
    it("each kind has its own custom error alone, and its own reason code in a batch", async function () {
      const { preflight, payerA, provider, provider2, delegate, token, sign } = await loadFixture(deployPropertiesFixture);
      const valid = await sign(payerA, { nonce: 50n });
      await preflight.connect(payerA).grant(await makeGrant({ delegate: provider2.address, token })); // to be revoked
      await preflight.connect(payerA).revoke(token, provider2.address);
      const cases: [string, bigint, Awaited<ReturnType<typeof sign>>][] = [
        ["MalleableSignature", Reason.SignatureMalleable, { ...valid, signature: highS(valid.signature as string) }],
        ["InvalidSigner", Reason.InvalidSigner, { ...valid, signature: ethers.concat([ethers.dataSlice(valid.signature as string, 0, 64), "0x05"]) }],
        ["InvalidSignatureLength", Reason.SignatureLength, { ...valid, signature: ethers.dataSlice(valid.signature as string, 0, 60) }],
        ["RequestExpired", Reason.Expired, await sign(payerA, { nonce: 51n, deadline: BigInt(await time.latest()) - 1n })],
        ["PriceAboveCap", Reason.PriceAboveCap, await sign(delegate, { nonce: 52n, price: 5_001n })],
        ["BudgetExceeded", Reason.BudgetExceeded, await sign(delegate, { nonce: 53n, price: 5_000n })],
        ["RevokedGrant", Reason.GrantRevoked, await sign(provider2, { nonce: 54n })],
        ["ModelNotAllowed", Reason.ModelNotAllowed, await sign(delegate, { nonce: 55n, model: MODEL_B })],
      ];
      // Spend the delegate's whole budget (4 x 5,000 of 20,000) so that 5,000 more is over it.
      for (const nonce of [60n, 61n, 62n, 63n]) await preflight.connect(provider).settle(await sign(delegate, { nonce, price: 5_000n }));
      for (const [error, , item] of cases) {
        await expect(preflight.connect(provider).settle(item), error).to.be.revertedWithCustomError(preflight, error);
      }
      // Wrong provider: a grant scoped to `provider` used through provider2.
      const elsewhere = await sign(delegate, { nonce: 56n, provider: provider2.address });
      await expect(preflight.connect(provider2).settle(elsewhere)).to.be.revertedWithCustomError(preflight, "ProviderNotAllowed");
      expect(await preflight.connect(provider2).settleBatch.staticCall(token, [elsewhere])).to.deep.equal([Reason.ProviderNotAllowed]);

      const reasons = await preflight.connect(provider).settleBatch.staticCall(token, cases.map(([, , item]) => item));
      expect(reasons).to.deep.equal(cases.map(([, reason]) => reason));
      expect(new Set(cases.map(([error]) => error)).size).to.equal(cases.length);
    });
  });

  describe("Smart-account payers work; EIP-7702-delegated EOAs work through ecrecover", function () {
    it("an ERC-1271 wallet pays single requests, batches and vouchers with its owner's signature", async function () {
      const { preflight, payerA, provider, stranger, domain, token, request } = await loadFixture(deployPropertiesFixture);
      const wallet = await ethers.deployContract("ERC1271Wallet", [stranger.address]);
      const walletAddress = await wallet.getAddress();
      await preflight.connect(payerA).deposit(walletAddress, token, 100_000n);
      await preflight.connect(provider).settle(await signedRequest(stranger, domain, await request({ payer: walletAddress })));
      const batch = [await signedRequest(stranger, domain, await request({ payer: walletAddress, nonce: 1n }))];
      expect(await preflight.connect(provider).settleBatch.staticCall(token, batch)).to.deep.equal([Reason.Settled]);
      await preflight.connect(provider).settleBatch(token, batch);
      const v = await signedVoucher(stranger, domain, {
        payer: walletAddress, provider: provider.address, token, model: MODEL_A, channel: ethers.ZeroHash, cumulativeAmount: 3_000n,
      });
      await preflight.connect(provider).claimVoucher(v);
      expect(await preflight.balanceOf(walletAddress, token)).to.equal(100_000n - 5_000n);
      // The wallet, not the key, is the payer: the key's own escrow was never touched.
      expect(await preflight.balanceOf(stranger.address, token)).to.equal(0n);
    });

    it("an EOA with EIP-7702 delegation code still settles with its ECDSA signature", async function () {
      const { preflight, payerA, provider, stranger, token, sign, voucher } = await loadFixture(deployPropertiesFixture);
      // Delegate payer A's account to a wallet implementation that accepts only *another* key.
      const impl = await ethers.deployContract("ERC1271Wallet", [stranger.address]);
      const designator = ethers.concat(["0xef0100", await impl.getAddress()]);
      await network.provider.send("hardhat_setCode", [payerA.address, designator]);
      expect(await ethers.provider.getCode(payerA.address)).to.equal(designator.toLowerCase());
      const before = await preflight.balanceOf(payerA.address, token);
      await expect(preflight.connect(provider).settle(await sign(payerA))).to.emit(preflight, "RequestsSettled");
      expect(await preflight.connect(provider).settleBatch.staticCall(token, [await sign(payerA, { nonce: 1n })])).to.deep.equal([
        Reason.Settled,
      ]);
      await preflight.connect(provider).claimVoucher(await voucher(payerA, 2_000n));
      expect(await preflight.balanceOf(payerA.address, token)).to.equal(before - 3_000n);
    });
  });

  describe("A malicious token or ETH receiver cannot re-enter and break accounting", function () {
    it("a token re-entering deposit, withdraw or withdrawEarnings hits the lock (Reentrancy)", async function () {
      const { preflight, preflightAddress, payerA, provider, domain } = await loadFixture(deployPropertiesFixture);
      const evil = await ethers.deployContract("BubblingReentrantToken");
      const evilAddress = await evil.getAddress();
      await evil.mint(payerA.address, 1_000_000n);
      await evil.connect(payerA).approve(preflightAddress, ethers.MaxUint256);
      await preflight.connect(payerA).deposit(payerA.address, evilAddress, 500_000n);
      await preflight
        .connect(provider)
        .settle(await signedRequest(payerA, domain, await makeRequest({ payer: payerA.address, provider: provider.address, token: evilAddress, price: 100_000n })));
      await preflight.connect(payerA).requestWithdrawal(evilAddress, 100_000n);
      await time.increase(NOTICE_PERIOD);

      const reenter = [
        preflight.interface.encodeFunctionData("deposit", [payerA.address, evilAddress, 1n]),
        preflight.interface.encodeFunctionData("withdrawEarnings", [evilAddress, evilAddress]),
        preflight.interface.encodeFunctionData("withdraw", [evilAddress, evilAddress]),
      ];
      for (const data of reenter) {
        await evil.arm(preflightAddress, data);
        await expect(preflight.connect(payerA).deposit(payerA.address, evilAddress, 1n)).to.be.revertedWithCustomError(preflight, "Reentrancy");
        await expect(preflight.connect(provider).withdrawEarnings(evilAddress, provider.address)).to.be.revertedWithCustomError(
          preflight,
          "Reentrancy",
        );
        await expect(preflight.connect(payerA).withdraw(evilAddress, payerA.address)).to.be.revertedWithCustomError(preflight, "Reentrancy");
      }
      await evil.arm(ethers.ZeroAddress, "0x");
      const ledger =
        (await preflight.balanceOf(payerA.address, evilAddress)) +
        (await preflight.earningsOf(provider.address, evilAddress)) +
        (await preflight.feesOf(evilAddress));
      expect(ledger).to.equal(await evil.balanceOf(preflightAddress));
      await preflight.connect(payerA).withdraw(evilAddress, payerA.address); // disarmed: works again
    });

    it("an ETH receiver re-entering during its payout is refused and is paid exactly once", async function () {
      const f = await loadFixture(deployPropertiesFixture);
      const { preflight, preflightAddress, payerA } = f;
      const receiver = await ethers.deployContract("EthReceiverMock");
      const receiverAddress = await receiver.getAddress();
      await preflight.connect(payerA).depositETH(receiverAddress, { value: 10_000n });
      await receiver.call(preflightAddress, preflight.interface.encodeFunctionData("requestWithdrawal", [ethers.ZeroAddress, 4_000n]));
      await time.increase(NOTICE_PERIOD);
      const withdraw = preflight.interface.encodeFunctionData("withdraw", [ethers.ZeroAddress, receiverAddress]);
      await receiver.arm(preflightAddress, withdraw); // on payment, try to withdraw again
      await expect(receiver.call(preflightAddress, withdraw)).to.changeEtherBalances([receiver, preflight], [4_000n, -4_000n]);
      expect(await receiver.reentrySucceeded()).to.equal(false);
      expect(await receiver.reentryResult()).to.equal(preflight.interface.encodeErrorResult("Reentrancy", []));
      expect(await preflight.balanceOf(receiverAddress, ethers.ZeroAddress)).to.equal(6_000n);
      expect((await ledgerTotal(f, ethers.ZeroAddress)) + 6_000n).to.equal(await ethers.provider.getBalance(preflightAddress));
    });
  });
});
