// Hostile review of the v2 contracts: each `it` is a proof of concept of one finding and FAILS on
// the code it was written against (it asserts the property that should hold).
import { expect } from "chai";
import { ethers, network } from "hardhat";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { deployPreflightFixture, NOTICE_PERIOD, USDC } from "../helpers/fixtures";
import { makeRequest, signedRequest, MODEL_A } from "../helpers/requests";
import { reasonsOf } from "../helpers/logs";
import { encodePacked, signLaneVoucher, signRequest } from "@preflight/sdk";
import { Reason, terms, TX_GAS_CAP } from "../helpers/security";
import type { HostileWallet1271 } from "../../typechain-types";

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

describe("Security review v2: findings (each test fails until its finding is fixed)", function () {
  it("F1 anyone (the provider) can block a payer's lane close forever by depositing 1 unit into the lane", async function () {
    const { preflight, usdc, payer, provider } = await loadFixture(deployPreflightFixture);
    const token = await usdc.getAddress();
    await preflight.connect(payer).fundLane(provider.address, token, 500n * USDC);
    await preflight.connect(payer).requestLaneClose(provider.address, token);
    // The provider (who profits from keeping the funds locked) tops the lane up by 1 unit in the
    // notice period, and again after every new request: the close is cancelled each time.
    await usdc.mint(provider.address, 10n);
    await usdc.connect(provider).approve(await preflight.getAddress(), ethers.MaxUint256);
    await preflight.connect(provider).depositToLane(payer.address, provider.address, token, 1n);
    await time.increase(NOTICE_PERIOD);
    // The payer gave notice and the provider had the whole notice period to claim: the payer must
    // get its remaining funds back. Today closeLane reverts LaneCloseNotRequested.
    const before = await usdc.balanceOf(payer.address);
    await preflight.connect(payer).closeLane(provider.address, token, payer.address);
    expect((await usdc.balanceOf(payer.address)) - before).to.be.greaterThanOrEqual(500n * USDC);
  });

  it("F2 a matured withdrawal request takes a deposit made after it, without any notice for that deposit", async function () {
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
    // The payer front-runs the settlement: the request armed before the deposit should not cover it.
    try {
      await preflight.connect(payer).withdraw(token, payer.address);
    } catch {
      // refusing the withdrawal is the fixed behaviour
    }
    await preflight.connect(provider).settle(served); // today: InsufficientBalance(0, 1000e6)
    expect(await preflight.earningsOf(provider.address, token)).to.equal(2_000n * USDC);
  });

  it("F3 a hostile ERC-1271 payer with many items makes a whole batch exceed the transaction gas cap", async function () {
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
    for (let nonce = 0n; nonce < 90n; nonce++) {
      hostile.push(await signedRequest(walletOwner, domain, await makeRequest({ payer: walletAddress, provider: provider.address, token, nonce, deadline })));
    }
    // Every item passes the preflight (the wallet is honest then)...
    const reasons = await preflight.connect(provider).settleBatch.staticCall(token, [honest, ...hostile]);
    expect(reasons.every((r) => r === BigInt(Reason.Settled))).to.equal(true);
    // ...then the wallet burns the 200,000 gas each check is allowed, 90 times.
    await wallet.setMode(Mode.BurnGas);
    await preflight.connect(provider).settleBatch(token, [honest, ...hostile], { gasLimit: TX_GAS_CAP });
    expect(await preflight.earningsOf(provider.address, token)).to.equal(honest.price);
  });

  it("F4 an ERC-1271 check starved of gas inside a nested call (Safe fallback handler, validator module) logs a valid item as InvalidSigner", async function () {
    const base = await loadFixture(deployPreflightFixture);
    const { preflight, payer, provider, delegate: walletOwner, domain } = base;
    // An honest wallet whose costly check runs in a nested call; it answers "invalid" when that call
    // runs out of gas, so the check after the call (gas left < cap / 63) does not see the starvation.
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
    for (let gas = batchNeeded; gas > batchNeeded - 200_000n; gas -= 2_000n) {
      let reasons: bigint[] | undefined;
      try {
        reasons = await p.settleBatch.staticCall(token, [readable], { gasLimit: gas });
      } catch {
        continue; // reverted (out of gas or SignatureCheckOutOfGas): the provider retries with more
      }
      if (reasons[0] !== Reason.Settled) wrong.push(`settleBatch at ${gas} gas returned ${reasons.join(",")}`);
    }
    const settled = await sweep(packedNeeded, 2_000n, 100, async (gasLimit) => reasonsOf(p.settlePacked(token, packed, { gasLimit })));
    for (const [gas, reasons] of settled) {
      if (reasons.some((r) => r !== Number(Reason.Settled))) wrong.push(`settlePacked at ${gas} gas logged ${reasons.join(",")}`);
    }
    // Every call that went through must have paid the valid item: a skipped valid item tells every
    // follower (and the provider's verifier) to drop a payable request.
    expect(wrong).to.deep.equal([]);
  });

  it("F5 a payer voids its lane's reservation at once by revoking the delegate whose vouchers the provider served", async function () {
    const { preflight, usdc, domain, payer, provider, delegate } = await loadFixture(deployPreflightFixture);
    const token = await usdc.getAddress();
    // The payer reserves 500 USDC for the provider and lets its session key spend with that provider.
    await preflight.connect(payer).fundLane(provider.address, token, 500n * USDC);
    await preflight.connect(payer).grant(terms({ delegate: delegate.address, token, provider: provider.address }));
    // The session key pays for 400 USDC of service with a lane voucher; the provider serves it.
    const voucher = { payer: payer.address, provider: provider.address, token, model: MODEL_A, cumulativeAmount: 400n * USDC };
    const signed = { payer: payer.address, token, model: MODEL_A, cumulativeAmount: voucher.cumulativeAmount, signature: await signLaneVoucher(delegate, domain, voucher) };
    expect(await preflight.connect(provider).claimLane.staticCall(signed)).to.equal(400n * USDC);
    // Before the provider claims, the payer revokes the key and asks to close the lane.
    await preflight.connect(payer).revoke(token, delegate.address);
    await preflight.connect(payer).requestLaneClose(provider.address, token);
    // The provider is still inside the notice period that lanes promise it: the reserved funds must
    // still pay what it served. Today claimLane reverts RevokedGrant, and after the notice the payer
    // closes the lane with all 500 USDC.
    await preflight.connect(provider).claimLane(signed);
    expect((await preflight.laneOf(payer.address, provider.address, token)).uncollected).to.equal(400n * USDC);
  });
});
