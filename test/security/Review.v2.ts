// Hostile review of the v2 contracts: each `it` began as a proof of concept of one finding (it
// failed on the code it was written against) and now states the behaviour of the fix.
import { expect } from "chai";
import { ethers, network } from "hardhat";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { deployPreflightFixture, NOTICE_PERIOD, USDC } from "../helpers/fixtures";
import { makeRequest, signedRequest, MODEL_A } from "../helpers/requests";
import { reasonsOf } from "../helpers/logs";
import { encodePacked, signLaneVoucher, signRequest } from "@preflight/sdk";
import { Reason, terms, TX_GAS_CAP } from "../helpers/security";
import type { HostileWallet1271 } from "../../typechain-types";
import { underCoverage } from "../helpers/timeouts";

const Mode = { Honest: 0, BurnGas: 3 } as const;

/**
 * Sends `send(gas)` for gas limits from `from` down by `step`, each on a snapshot that is reverted
 * afterwards, and returns the reasons logged by every transaction that succeeded.
 */
async function sweep(from: bigint, step: bigint, steps: number, send: (gas: bigint) => Promise<number[]>): Promise<[bigint, number[]][]> {
  const seen: [bigint, number[]][] = [];
  for (let i = 0; i < steps; i++) {
    const gas = from - BigInt(i) * step;
    const snapshot = await network.provider.send("evm_snapshot");
    try {
      seen.push([gas, await send(gas)]);
    } catch {
      // out of gas: the provider retries with more, nothing is lost
    }
    await network.provider.send("evm_revert", [snapshot]);
  }
  return seen;
}

describe("Security review v2: findings, fixed", function () {
  it("F1: a deposit into a lane by anyone does not cancel the payer's close request; the close pays what was there when requested, less claims", async function () {
    const { preflight, usdc, payer, provider } = await loadFixture(deployPreflightFixture);
    const token = await usdc.getAddress();
    await preflight.connect(payer).fundLane(provider.address, token, 500n * USDC);
    await preflight.connect(payer).requestLaneClose(provider.address, token);
    // The provider (who profits from keeping the funds locked) tops the lane up by 1 unit in the
    // notice period (before the fix this cancelled the close, again after every new request).
    await usdc.mint(provider.address, 10n);
    await usdc.connect(provider).approve(await preflight.getAddress(), ethers.MaxUint256);
    await preflight.connect(provider).depositToLane(payer.address, provider.address, token, 1n);
    await time.increase(NOTICE_PERIOD);
    // The payer gave notice and the provider had the whole notice period to claim: the payer must
    // get the funds it gave notice for back; the unit added later stays in the lane for the provider.
    const before = await usdc.balanceOf(payer.address);
    await preflight.connect(payer).closeLane(provider.address, token, payer.address);
    expect((await usdc.balanceOf(payer.address)) - before).to.equal(500n * USDC);
    expect((await preflight.laneOf(payer.address, provider.address, token)).funds).to.equal(1n);
  });

  it("F2: a withdrawal request never takes a deposit made after it; it pays only what is left of the balance under notice", async function () {
    const { preflight, usdc, domain, payer, provider } = await loadFixture(deployPreflightFixture);
    const token = await usdc.getAddress();
    const sign = async (nonce: bigint) =>
      signedRequest(payer, domain, await makeRequest({ payer: payer.address, provider: provider.address, token, nonce, price: 1_000n * USDC, deadline: 2n ** 40n }));
    // The payer arms a withdrawal of its whole balance, then spends that balance with the provider.
    await preflight.connect(payer).requestWithdrawal(token, 1_000n * USDC);
    await preflight.connect(provider).settle(await sign(1n));
    expect(await preflight.balanceOf(payer.address, token)).to.equal(0n);
    await time.increase(NOTICE_PERIOD);
    // A fresh deposit, served by the provider (the preflight sees 1,000 USDC).
    await preflight.connect(payer).deposit(payer.address, token, 1_000n * USDC);
    const served = await sign(2n);
    // The payer front-runs the settlement: the request armed before the deposit does not cover it.
    expect((await preflight.pendingWithdrawal(payer.address, token)).depositedSince).to.equal(1_000n * USDC);
    await expect(preflight.connect(payer).withdraw(token, payer.address)).to.be.revertedWithCustomError(preflight, "ZeroAmount");
    await preflight.connect(provider).settle(served); // before the fix: InsufficientBalance(0, 1000e6)
    expect(await preflight.earningsOf(provider.address, token)).to.equal(2_000n * USDC);
  });

  it("F3: a hostile ERC-1271 payer with many items costs a batch one capped check: after its wallet refuses, its later items are skipped without a call", async function () {
    const base = await loadFixture(deployPreflightFixture);
    const { preflight, payer, provider, delegate: walletOwner, domain } = base;
    const wallet: HostileWallet1271 = await ethers.deployContract("HostileWallet1271", [walletOwner.address]);
    const walletAddress = await wallet.getAddress();
    const token = ethers.ZeroAddress;
    await preflight.connect(payer).depositETH(walletAddress, { value: 10n ** 18n });
    await preflight.connect(payer).depositETH(payer.address, { value: 10n ** 18n });
    const deadline = 2n ** 40n;
    const honest = await signedRequest(payer, domain, await makeRequest({ payer: payer.address, provider: provider.address, token, deadline }));
    const hostile = [];
    // 90 items at 200,000 gas each would not fit a block; on instrumented bytecode (the coverage run,
    // where no gas bound is asserted) a dozen reach the same branches in a fraction of the time.
    const items = underCoverage() ? 12n : 90n;
    for (let nonce = 0n; nonce < items; nonce++) {
      hostile.push(await signedRequest(walletOwner, domain, await makeRequest({ payer: walletAddress, provider: provider.address, token, nonce, deadline })));
    }
    // Every item passes the preflight (the wallet is honest then)...
    const reasons = await preflight.connect(provider).settleBatch.staticCall(token, [honest, ...hostile]);
    expect(reasons.every((r) => r === BigInt(Reason.Settled))).to.equal(true);
    // ...then the wallet burns the 200,000 gas each check is allowed, 90 times.
    await wallet.setMode(Mode.BurnGas);
    const tx = await preflight.connect(provider).settleBatch(token, [honest, ...hostile], { gasLimit: TX_GAS_CAP });
    expect(await preflight.earningsOf(provider.address, token)).to.equal(honest.price);
    // One check ran to its 200,000 cap; the other items cost no call.
    const { gasUsed } = (await tx.wait())!;
    // A gas bound means nothing on instrumented bytecode (the coverage run); the behaviour above holds there too.
    if (!underCoverage()) expect(gasUsed).to.be.lessThan(2_000_000n);
    expect(await reasonsOf(tx)).to.deep.equal([Reason.Settled, ...hostile.map(() => Reason.InvalidSigner)].map(Number));
  });

  it("F4: an ERC-1271 check is only made with the wallet's full allowance, so a nested check (Safe fallback handler, validator module) is never starved into InvalidSigner", async function () {
    const base = await loadFixture(deployPreflightFixture);
    const { preflight, payer, provider, delegate: walletOwner, domain } = base;
    // An honest wallet whose costly check runs in a nested call; it answers "invalid" when that call
    // runs out of gas; the contract now refuses to call it with less than its whole allowance.
    const wallet = await ethers.deployContract("NestedCheckWallet1271", [walletOwner.address]);
    const walletAddress = await wallet.getAddress();
    const token = ethers.ZeroAddress;
    await preflight.connect(payer).depositETH(walletAddress, { value: 10n ** 18n });
    const request = await makeRequest({ payer: walletAddress, provider: provider.address, token, deadline: 2n ** 40n });
    const readable = await signedRequest(walletOwner, domain, request);
    const packed = encodePacked([{ request, signature: await signRequest(walletOwner, domain, request, true) }]);
    const p = preflight.connect(provider);
    expect(await p.settleBatch.staticCall(token, [readable])).to.deep.equal([Reason.Settled]);
    const batchNeeded = await p.settleBatch.estimateGas(token, [readable]);
    const packedNeeded = await p.settlePacked.estimateGas(token, packed);
    const wrong: string[] = [];
    // Every 2,000 gas across the 200,000 below the estimate; every 20,000 on instrumented bytecode
    // (the coverage run only needs the branches reached; the full sweep runs in the tests stage).
    const step = underCoverage() ? 20_000n : 2_000n;
    for (let gas = batchNeeded; gas > batchNeeded - 200_000n; gas -= step) {
      let reasons: bigint[] | undefined;
      try {
        reasons = await p.settleBatch.staticCall(token, [readable], { gasLimit: gas });
      } catch {
        continue; // reverted (out of gas or SignatureCheckOutOfGas): the provider retries with more
      }
      if (reasons[0] !== Reason.Settled) wrong.push(`settleBatch at ${gas} gas returned ${reasons.join(",")}`);
    }
    const settled = await sweep(packedNeeded, step, Number(200_000n / step), async (gasLimit) => reasonsOf(p.settlePacked(token, packed, { gasLimit })));
    for (const [gas, reasons] of settled) {
      if (reasons.some((r) => r !== Number(Reason.Settled))) wrong.push(`settlePacked at ${gas} gas logged ${reasons.join(",")}`);
    }
    // Every call that went through must have paid the valid item: a skipped valid item tells every
    // follower (and the provider's verifier) to drop a payable request.
    expect(wrong).to.deep.equal([]);
  });

  it("F5 (documented): revoking a delegate voids its unclaimed lane vouchers at once; payer-signed lane vouchers keep paying through the notice period", async function () {
    const { preflight, usdc, domain, payer, provider, delegate } = await loadFixture(deployPreflightFixture);
    const token = await usdc.getAddress();
    // The payer reserves 500 USDC for the provider and lets its session key spend with that provider.
    await preflight.connect(payer).fundLane(provider.address, token, 500n * USDC);
    await preflight.connect(payer).grant(terms({ delegate: delegate.address, token, provider: provider.address }));
    // The session key pays for 400 USDC of service with a lane voucher; the provider serves it.
    const voucher = { payer: payer.address, provider: provider.address, token, model: MODEL_A, cumulativeAmount: 400n * USDC };
    const signed = { payer: payer.address, token, model: MODEL_A, cumulativeAmount: voucher.cumulativeAmount, signature: await signLaneVoucher(delegate, domain, voucher) };
    expect(await preflight.connect(provider).claimLane.staticCall(signed)).to.equal(400n * USDC);
    // Before the provider claims, the payer revokes the key and asks to close the lane: revocation is
    // immediate (a leaked key must stop at once), so the delegate's unclaimed voucher no longer pays.
    // Lanes protect a provider fully only for payer-signed vouchers (docs/lanes.md); a provider
    // serving a delegate's lane vouchers claims them as it serves.
    await preflight.connect(payer).revoke(token, delegate.address);
    await preflight.connect(payer).requestLaneClose(provider.address, token);
    await expect(preflight.connect(provider).claimLane(signed)).to.be.revertedWithCustomError(preflight, "RevokedGrant");
    // A voucher the payer signed itself cannot be voided: it pays inside the notice period.
    const own = { ...signed, signature: await signLaneVoucher(payer, domain, voucher) };
    await preflight.connect(provider).claimLane(own);
    expect((await preflight.laneOf(payer.address, provider.address, token)).uncollected).to.equal(400n * USDC);
    await time.increase(NOTICE_PERIOD);
    const before = await usdc.balanceOf(payer.address);
    await preflight.connect(payer).closeLane(provider.address, token, payer.address);
    expect((await usdc.balanceOf(payer.address)) - before).to.equal(100n * USDC);
  });
});
