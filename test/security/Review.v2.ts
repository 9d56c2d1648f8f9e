// Hostile review of the v2 contracts: each `it` is a proof of concept of one finding and FAILS on
// the code it was written against (it asserts the property that should hold).
import { expect } from "chai";
import { ethers, network } from "hardhat";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { deployPreflightFixture, NOTICE_PERIOD, USDC } from "../helpers/fixtures";
import { makeRequest, signedRequest, MODEL_A } from "../helpers/requests";
import { lanesClaimed, reasonsOf } from "../helpers/logs";
import { signLaneVoucher, signRequest } from "../../sdk/eip712";
import { encodeLaneClaims, encodePacked } from "../../sdk/packed";
import { Reason, terms, TX_GAS_CAP } from "../helpers/security";
import type { HostileWallet1271 } from "../../typechain-types";

const Mode = { Honest: 0, BurnGas: 3, Expensive: 8 } as const;

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

  it("F4 an ERC-1271 check starved of gas reports a valid packed item or lane claim as InvalidSigner (the tx succeeds)", async function () {
    const base = await loadFixture(deployPreflightFixture);
    const { preflight, payer, provider, delegate: walletOwner, domain } = base;
    const wallet: HostileWallet1271 = await ethers.deployContract("HostileWallet1271", [walletOwner.address]);
    const walletAddress = await wallet.getAddress();
    const token = ethers.ZeroAddress;
    await preflight.connect(payer).depositETH(walletAddress, { value: 10n ** 18n });
    // The wallet funds a lane from its escrow balance (as the wallet, through its owner).
    await wallet
      .connect(walletOwner)
      .execute(await preflight.getAddress(), 0n, preflight.interface.encodeFunctionData("fundLane", [provider.address, token, 10n ** 17n]));
    // An honest wallet whose check is costly (180,000 gas, under the 200,000 cap), like a passkey wallet.
    await wallet.setMode(Mode.Expensive);
    const request = await makeRequest({ payer: walletAddress, provider: provider.address, token, deadline: 2n ** 40n });
    const packed = encodePacked([{ request, signature: await signRequest(walletOwner, domain, request, true) }]);
    const laneSignature = await signLaneVoucher(walletOwner, domain, { payer: walletAddress, provider: provider.address, token, model: MODEL_A, cumulativeAmount: 5n }, true);
    const claims = encodeLaneClaims(MODEL_A, [{ payer: walletAddress, cumulativeAmount: 5n, signature: laneSignature }]);
    const p = preflight.connect(provider);
    const settleNeeded = await p.settlePacked.estimateGas(token, packed);
    const claimNeeded = await p.claimLanesPacked.estimateGas(token, claims);
    const settled = await sweep(settleNeeded, 2_000n, 100, async (gasLimit) => reasonsOf(p.settlePacked(token, packed, { gasLimit })));
    const claimed = await sweep(claimNeeded, 2_000n, 100, async (gasLimit) =>
      (await lanesClaimed(p.claimLanesPacked(token, claims, { gasLimit }))).records.map((r) => r.reason),
    );
    // Every transaction that went through must have paid the valid item: a skipped valid item tells
    // every follower (and the provider's verifier) to drop a payable request.
    const wrong = [...settled.map(([g, r]) => ["settlePacked", g, r] as const), ...claimed.map(([g, r]) => ["claimLanesPacked", g, r] as const)].filter(
      ([, , reasons]) => reasons.some((r) => r !== Number(Reason.Settled)),
    );
    expect(wrong.map(([name, gas, reasons]) => `${name} at ${gas} gas logged ${reasons.join(",")}`)).to.deep.equal([]);
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
