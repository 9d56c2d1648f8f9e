import { expect } from "chai";
import { ethers, network } from "hardhat";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { Wallet } from "ethers";
import { requestsSettled } from "../helpers/logs";
import { deployPreflightFixture, NOTICE_PERIOD } from "../helpers/fixtures";
import { makeRequest, signedRequest, signedVoucher, MODEL_A } from "../helpers/requests";
import { fastRequestSigner, maxTransactionGas, Reason, terms, TX_GAS_CAP } from "../helpers/security";
import type { SignedRequestStruct } from "../../typechain-types/contracts/Preflight";

const U128_MAX = 2n ** 128n - 1n;
const U96_MAX = 2n ** 96n - 1n;
const U88_MAX = 2n ** 88n - 1n;
const U32_MAX = 2n ** 32n - 1n;

/** The usual fixture plus an 18-decimal token and a second payer. */
async function deployBoundsFixture() {
  const base = await deployPreflightFixture();
  const { preflight, payer, other } = base;
  const big = await ethers.deployContract("TestToken", ["Big", "BIG", 18]);
  const address = await preflight.getAddress();
  for (const who of [payer, other]) {
    await big.mint(who.address, U128_MAX);
    await big.connect(who).approve(address, ethers.MaxUint256);
  }
  return { ...base, big, bigToken: await big.getAddress(), token: await base.usdc.getAddress() };
}

describe("Security: bounds", function () {
  describe("type maxima", function () {
    it("balances hold up to 2^128 - 1 and refuse to overflow; withdrawing 'everything' clamps to it", async function () {
      const { preflight, payer, big, bigToken } = await loadFixture(deployBoundsFixture);
      await big.mint(payer.address, 10n);
      await preflight.connect(payer).deposit(payer.address, bigToken, U128_MAX - 1n);
      await expect(preflight.connect(payer).deposit(payer.address, bigToken, 2n))
        .to.be.revertedWithCustomError(preflight, "BalanceOverflow")
        .withArgs(U128_MAX - 1n, 2n);
      await preflight.connect(payer).deposit(payer.address, bigToken, 1n);
      expect(await preflight.balanceOf(payer.address, bigToken)).to.equal(U128_MAX);
      await preflight.connect(payer).requestWithdrawal(bigToken, ethers.MaxUint256);
      expect((await preflight.pendingWithdrawal(payer.address, bigToken)).amount).to.equal(U128_MAX);
      await time.increase(NOTICE_PERIOD);
      await expect(preflight.connect(payer).withdraw(bigToken, payer.address))
        .to.emit(preflight, "Withdrawn")
        .withArgs(payer.address, bigToken, payer.address, U128_MAX);
      // Native ETH too.
      await network.provider.send("hardhat_setBalance", [payer.address, ethers.toBeHex(2n ** 130n)]);
      await preflight.connect(payer).depositETH(payer.address, { value: U128_MAX });
      await expect(preflight.connect(payer).depositETH(payer.address, { value: 1n })).to.be.revertedWithCustomError(
        preflight,
        "BalanceOverflow",
      );
    });

    it("settles the largest price, nonce and voucher without overflow", async function () {
      const { preflight, payer, other, provider, bigToken, domain } = await loadFixture(deployBoundsFixture);
      await preflight.connect(payer).deposit(payer.address, bigToken, U128_MAX);
      await preflight.connect(other).deposit(other.address, bigToken, U128_MAX);
      const request = await makeRequest({
        payer: payer.address,
        provider: provider.address,
        token: bigToken,
        price: U96_MAX,
        nonce: 2n ** 64n - 1n,
        deadline: ethers.MaxUint256,
      });
      await preflight.connect(provider).settle(await signedRequest(payer, domain, request));
      expect(await preflight.nonceBitmap(payer.address, bigToken, (2n ** 64n - 1n) >> 6n)).to.equal(1n << 63n);
      // Nonces are 64-bit (in logs and packed calldata): a larger one is refused, never truncated.
      const tooLarge = await makeRequest({ payer: payer.address, provider: provider.address, token: bigToken, price: 1n, nonce: 2n ** 64n });
      await expect(preflight.connect(provider).settle(await signedRequest(payer, domain, tooLarge)))
        .to.be.revertedWithCustomError(preflight, "NonceOutOfRange")
        .withArgs(2n ** 64n);
      const vouchers = [];
      for (const who of [payer, other]) {
        vouchers.push(
          await signedVoucher(who, domain, {
            payer: who.address,
            provider: provider.address,
            token: bigToken,
            model: MODEL_A,
            channel: ethers.ZeroHash,
            cumulativeAmount: who === payer ? U128_MAX - U96_MAX : U128_MAX,
          }),
        );
      }
      await preflight.connect(provider).claimVouchers(bigToken, vouchers);
      const gross = 2n * U128_MAX;
      expect(await preflight.earningsOf(provider.address, bigToken)).to.equal(gross);
      expect(await preflight.balanceOf(payer.address, bigToken)).to.equal(0n);
      expect(await preflight.balanceOf(other.address, bigToken)).to.equal(0n);
    });

    it("grant caps, budgets, periods and expiry at their maxima; spending is compared before narrowing", async function () {
      const { preflight, payer, delegate, provider, bigToken, domain } = await loadFixture(deployBoundsFixture);
      await preflight.connect(payer).deposit(payer.address, bigToken, U128_MAX);
      await preflight.connect(payer).grant(terms({ delegate: delegate.address, token: bigToken, maxPrice: U88_MAX, budget: U88_MAX, period: U32_MAX, expiry: U32_MAX }));
      const g = await preflight.grantOf(payer.address, bigToken, delegate.address);
      expect(g.periodEnd).to.equal(U32_MAX); // now + 2^32 - 1 is capped
      const base = { payer: payer.address, provider: provider.address, token: bigToken, deadline: ethers.MaxUint256 };
      const overCap = await signedRequest(delegate, domain, await makeRequest({ ...base, price: U88_MAX + 1n, nonce: 1n }));
      await expect(preflight.connect(provider).settle(overCap))
        .to.be.revertedWithCustomError(preflight, "PriceAboveCap")
        .withArgs(U88_MAX + 1n, U88_MAX);
      await preflight.connect(provider).settle(await signedRequest(delegate, domain, await makeRequest({ ...base, price: U88_MAX, nonce: 2n })));
      // A voucher far above 88 bits must not wrap into the budget.
      const voucher = await signedVoucher(delegate, domain, { ...base, model: MODEL_A, channel: ethers.ZeroHash, cumulativeAmount: 2n ** 88n * 5n });
      await expect(preflight.connect(provider).claimVoucher(voucher))
        .to.be.revertedWithCustomError(preflight, "BudgetExceeded")
        .withArgs(U88_MAX + 2n ** 88n * 5n, U88_MAX);
      expect((await preflight.grantOf(payer.address, bigToken, delegate.address)).spent).to.equal(U88_MAX);
    });

    it("nonces anywhere in 64 bits, and a deadline equal to the block time, settle", async function () {
      const { preflight, payer, provider, token, domain } = await loadFixture(deployBoundsFixture);
      const base = { payer: payer.address, provider: provider.address, token };
      for (const nonce of [0n, 63n, 64n, 2n ** 40n, 2n ** 64n - 1n]) {
        const signed = await signedRequest(payer, domain, await makeRequest({ ...base, nonce, deadline: ethers.MaxUint256 }));
        await preflight.connect(provider).settle(signed);
        await expect(preflight.connect(provider).settle(signed)).to.be.revertedWithCustomError(preflight, "NonceAlreadyUsed");
      }
      const now = BigInt(await time.latest()) + 5n;
      const atDeadline = await signedRequest(payer, domain, await makeRequest({ ...base, nonce: 1n, deadline: now }));
      const late = await signedRequest(payer, domain, await makeRequest({ ...base, nonce: 2n, deadline: now }));
      await time.setNextBlockTimestamp(now);
      await preflight.connect(provider).settle(atDeadline);
      await expect(preflight.connect(provider).settle(late)).to.be.revertedWithCustomError(preflight, "RequestExpired").withArgs(now);
      expect(await preflight.connect(provider).settleBatch.staticCall(token, [late])).to.deep.equal([Reason.Expired]);
    });
    it("a voucher beyond the payer's balance pays nothing and leaves its channel where it was", async function () {
      const { preflight, payer, provider, token, domain } = await loadFixture(deployBoundsFixture);
      const balance = await preflight.balanceOf(payer.address, token);
      const voucher = await signedVoucher(payer, domain, {
        payer: payer.address,
        provider: provider.address,
        token,
        model: MODEL_A,
        channel: ethers.ZeroHash,
        cumulativeAmount: balance + 1n,
      });
      await expect(preflight.connect(provider).claimVoucher(voucher))
        .to.be.revertedWithCustomError(preflight, "InsufficientBalance")
        .withArgs(balance, balance + 1n);
      expect(await preflight.connect(provider).claimVouchers.staticCall(token, [voucher])).to.deep.equal([Reason.InsufficientBalance]);
      expect(await preflight.claimedOf(payer.address, provider.address, token, ethers.ZeroHash)).to.equal(0n);
    });

    it("a nonce below the payer's nonce window (a full, passed word) is used", async function () {
      const { preflight, payer, provider, token, domain } = await loadFixture(deployBoundsFixture);
      await preflight.connect(payer).invalidateNonces(token, 0n, (1n << 64n) - 1n); // word 0 full: the window moves to word 1
      expect(await preflight.nonceBitmap(payer.address, token, 0n)).to.equal((1n << 64n) - 1n);
      const old = await signedRequest(payer, domain, await makeRequest({ payer: payer.address, provider: provider.address, token, nonce: 5n }));
      await expect(preflight.connect(provider).settle(old)).to.be.revertedWithCustomError(preflight, "NonceAlreadyUsed").withArgs(payer.address, 5n);
      const next = await signedRequest(payer, domain, await makeRequest({ payer: payer.address, provider: provider.address, token, nonce: 64n }));
      await preflight.connect(provider).settle(next);
      expect(await preflight.nonceBitmap(payer.address, token, 1n)).to.equal(1n);
    });
  });

  describe("zero amounts and addresses", function () {
    it("refuses zero deposits, withdrawals and earnings payouts, and zero addresses", async function () {
      const { preflight, payer, provider, delegate, token } = await loadFixture(deployBoundsFixture);
      await expect(preflight.connect(payer).deposit(payer.address, token, 0n)).to.be.revertedWithCustomError(preflight, "ZeroAmount");
      await expect(preflight.connect(payer).depositETH(payer.address)).to.be.revertedWithCustomError(preflight, "ZeroAmount");
      await expect(preflight.connect(payer).deposit(ethers.ZeroAddress, token, 1n)).to.be.revertedWithCustomError(preflight, "ZeroAddress");
      await expect(preflight.connect(payer).deposit(payer.address, ethers.ZeroAddress, 1n)).to.be.revertedWithCustomError(
        preflight,
        "ZeroAddress",
      );
      await expect(preflight.connect(payer).requestWithdrawal(token, 0n)).to.be.revertedWithCustomError(preflight, "ZeroAmount");
      await expect(preflight.connect(provider).withdrawEarnings(token, provider.address)).to.be.revertedWithCustomError(preflight, "ZeroAmount");
      await expect(preflight.connect(provider).withdrawEarnings(token, ethers.ZeroAddress)).to.be.revertedWithCustomError(preflight, "ZeroAddress");
      await expect(preflight.connect(payer).withdraw(token, ethers.ZeroAddress)).to.be.revertedWithCustomError(preflight, "ZeroAddress");
      await expect(preflight.connect(payer).grant(terms({ delegate: ethers.ZeroAddress, token }))).to.be.revertedWithCustomError(
        preflight,
        "ZeroAddress",
      );
      // A withdrawal cannot be requested from an empty balance (it could be armed before a deposit).
      await expect(preflight.connect(delegate).requestWithdrawal(token, 5n)).to.be.revertedWithCustomError(preflight, "ZeroAmount");
      await expect(preflight.connect(delegate).withdraw(token, delegate.address)).to.be.revertedWithCustomError(preflight, "NoWithdrawalRequested");
    });

    it("a zero-price request uses its nonce and moves nothing; a zero voucher pays nothing", async function () {
      const { preflight, payer, provider, token, domain } = await loadFixture(deployBoundsFixture);
      const balance = await preflight.balanceOf(payer.address, token);
      const free = await signedRequest(payer, domain, await makeRequest({ payer: payer.address, provider: provider.address, token, price: 0n, nonce: 9n }));
      await expect(preflight.connect(provider).settle(free)).to.emit(preflight, "RequestsSettled");
      await expect(preflight.connect(provider).settle(free)).to.be.revertedWithCustomError(preflight, "NonceAlreadyUsed");
      const zero = await signedVoucher(payer, domain, {
        payer: payer.address,
        provider: provider.address,
        token,
        model: MODEL_A,
        channel: ethers.ZeroHash,
        cumulativeAmount: 0n,
      });
      await expect(preflight.connect(provider).claimVoucher(zero)).to.be.revertedWithCustomError(preflight, "NothingToClaim").withArgs(0n, 0n);
      expect(await preflight.connect(provider).claimVouchers.staticCall(token, [zero])).to.deep.equal([Reason.NothingToClaim]);
      expect(await preflight.balanceOf(payer.address, token)).to.equal(balance);
      expect(await preflight.earningsOf(provider.address, token)).to.equal(0n);
    });
  });

  it("a payer that is its own provider moves its balance into its earnings, conserving funds (like any provider)", async function () {
    const { preflight, usdc, payer, token, domain } = await loadFixture(deployBoundsFixture);
    const balance = await preflight.balanceOf(payer.address, token);
    const self = await signedRequest(payer, domain, await makeRequest({ payer: payer.address, provider: payer.address, token, price: 1_000n }));
    await preflight.connect(payer).settle(self);
    expect(await preflight.balanceOf(payer.address, token)).to.equal(balance - 1_000n);
    expect(await preflight.earningsOf(payer.address, token)).to.equal(1_000n);
    expect(
      (await preflight.balanceOf(payer.address, token)) + (await preflight.earningsOf(payer.address, token)),
    ).to.equal(await usdc.balanceOf(await preflight.getAddress()));
  });

  it("an empty batch or multi-claim changes nothing and emits nothing", async function () {
    const { preflight, provider, token } = await loadFixture(deployBoundsFixture);
    expect(await preflight.connect(provider).settleBatch.staticCall(token, [])).to.deep.equal([]);
    expect(await preflight.connect(provider).claimVouchers.staticCall(token, [])).to.deep.equal([]);
    const receipts = [
      await (await preflight.connect(provider).settleBatch(token, [])).wait(),
      await (await preflight.connect(provider).claimVouchers(token, [])).wait(),
    ];
    for (const receipt of receipts) {
      // One settlement log with no records: a follower sees the call, and that it did nothing.
      expect(receipt!.logs).to.have.length(1);
      expect(receipt!.logs[0]!.data).to.equal("0x");
    }
    expect(await preflight.earningsOf(provider.address, token)).to.equal(0n);
  });

  it("the largest batch one transaction can carry settles every item (measured, not assumed) @gas", async function () {
    this.timeout(600_000);
    const { preflight, usdc, provider, token, domain } = await loadFixture(deployBoundsFixture);
    // The cheapest item is one signed by its payer with a 64-byte signature: that gives the largest batch.
    const payer = new Wallet(ethers.id("largest batch payer"), ethers.provider);
    await network.provider.send("hardhat_setBalance", [payer.address, ethers.toBeHex(10n ** 20n)]);
    await usdc.mint(payer.address, 10n ** 15n);
    await usdc.connect(payer).approve(await preflight.getAddress(), ethers.MaxUint256);
    await preflight.connect(payer).deposit(payer.address, token, 10n ** 15n);
    const cap = await maxTransactionGas();
    expect(cap).to.be.lessThanOrEqual(TX_GAS_CAP);
    const signFast = fastRequestSigner(payer.privateKey, domain);
    const items: SignedRequestStruct[] = [];
    const sign = (n: number) => {
      while (items.length < n) {
        const i = items.length;
        const request = { payer: payer.address, provider: provider.address, token, model: MODEL_A, price: 1n, nonce: BigInt(i), deadline: ethers.MaxUint256, inputHash: ethers.id(`prompt ${i}`) };
        items.push(signFast(request));
      }
      return items.slice(0, n);
    };
    /** Gas used by a batch of the first `n` items, or undefined if it does not fit; the chain is left unchanged. */
    const gasUsed = async (n: number): Promise<bigint | undefined> => {
      const snapshot = await network.provider.send("evm_snapshot", []);
      try {
        const receipt = await (await preflight.connect(provider).settleBatch(token, sign(n), { gasLimit: cap })).wait();
        return receipt!.status === 1 ? receipt!.gasUsed : undefined;
      } catch {
        return undefined;
      } finally {
        await network.provider.send("evm_revert", [snapshot]);
      }
    };
    // Extrapolate from two sizes (whole nonce words), measure just below the estimate, extrapolate the
    // rest with the marginal cost there, then step to the exact boundary.
    const [g1, g2] = [(await gasUsed(128))!, (await gasUsed(256))!];
    const perItem = (g2 - g1) / 128n;
    let low = 256 + Number((cap - g2) / perItem) - 64;
    let gLow = await gasUsed(low);
    while (gLow === undefined) gLow = await gasUsed((low -= 64));
    const marginal = (gLow - g2) / BigInt(low - 256);
    let n = low + Number((cap - gLow) / marginal);
    while ((await gasUsed(n)) === undefined) n -= 1;
    while ((await gasUsed(n + 1)) !== undefined) n += 1;
    const receipt = await (await preflight.connect(provider).settleBatch(token, sign(n), { gasLimit: cap })).wait();
    const { records } = await requestsSettled(receipt!);
    expect(records.filter((r) => r.reason === 0).length).to.equal(n);
    expect(receipt!.gasUsed).to.be.lessThanOrEqual(cap);
    expect(await preflight.earningsOf(provider.address, token)).to.equal(BigInt(n));
    console.log(`      largest batch: ${n} requests in ${receipt!.gasUsed} gas (transaction cap ${cap}, ~${marginal} per item)`);
  });
});
