import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import type { Wallet } from "ethers";
import { PreflightVerifier, Reason, type SignedLaneVoucher } from "@preflight/provider";
import type { PreflightDomain } from "@preflight/sdk";
import { DigestComputer } from "../../packages/provider/src/digest";
import { deployPreflightFixture, NOTICE_PERIOD } from "../helpers/fixtures";
import { MODEL_A } from "../helpers/requests";
import { fundedWallet, latestTimestamp } from "../helpers/sdk";
import { lanesClaimed } from "../helpers/logs";

/** A payer with 10,000 in escrow, 6,000 of it moved into a lane for the provider, and a session key. */
async function deployLaneFixture() {
  const base = await deployPreflightFixture();
  const token = await base.usdc.getAddress();
  await base.usdc.mint(base.owner.address, 1_000_000n);
  await base.usdc.connect(base.owner).approve(await base.preflight.getAddress(), ethers.MaxUint256);
  const payer = await fundedWallet(800);
  const sessionKey = await fundedWallet(801);
  await base.preflight.connect(base.owner).deposit(payer.address, token, 10_000n);
  await base.preflight.connect(payer).fundLane(base.provider.address, token, 6_000n);
  await base.preflight.connect(payer).grant({
    delegate: sessionKey.address,
    token,
    provider: base.provider.address,
    maxPrice: 1_000n,
    budget: 5_000n,
    period: 0n,
    expiry: (await latestTimestamp()) + 86_400n,
    models: [],
  });
  return { ...base, token, payer, sessionKey };
}

function signLane(signer: Wallet, domain: PreflightDomain, provider: string, v: Omit<SignedLaneVoucher, "signature">): SignedLaneVoucher {
  const digest = new DigestComputer(domain).laneVoucher(v, provider);
  return { ...v, signature: signer.signingKey.sign(digest).serialized };
}

describe("PreflightVerifier lanes", function () {
  it("accepts a lane voucher only as far as the lane's funds cover it, net of the accepted one", async function () {
    const { preflight, domain, provider, token, payer, sessionKey } = await loadFixture(deployLaneFixture);
    const verifier = await PreflightVerifier.create({ contract: preflight, provider: provider.address });
    expect(verifier.laneOf(payer.address, token)).to.deep.include({ claimed: 0n, funds: 6_000n });
    expect(verifier.accountOf(payer.address, token).balance).to.equal(4_000n); // moved out of the escrow balance
    const lane = (signer: Wallet, cumulativeAmount: bigint) => signLane(signer, domain, provider.address, { payer: payer.address, token, model: MODEL_A, cumulativeAmount });
    expect(verifier.verifyLaneVoucher(lane(payer, 6_001n)).reason).to.equal(Reason.InsufficientBalance);
    expect(verifier.verifyLaneVoucher(lane(payer, 2_500n)).reason).to.equal(Reason.Settled);
    expect(verifier.verifyLaneVoucher(lane(payer, 2_000n)).reason).to.equal(Reason.NothingToClaim); // not above the accepted one
    expect(verifier.verifyLaneVoucher(lane(sessionKey, 5_500n)).reason).to.equal(Reason.BudgetExceeded); // 5,500 > 5,000
    expect(verifier.verifyLaneVoucher(lane(sessionKey, 4_000n)).reason).to.equal(Reason.Settled); // replaces the 2,500 one
    expect(verifier.laneOf(payer.address, token)?.reserved).to.equal(4_000n);

    const receipt = await (await preflight.connect(provider).claimLane(lane(sessionKey, 4_000n))).wait();
    expect((await lanesClaimed(receipt!)).records.map((r) => r.reason)).to.deep.equal([Reason.Settled]);
    await verifier.sync();
    expect(verifier.pendingCount).to.equal(0);
    expect(verifier.laneOf(payer.address, token)).to.deep.include({ claimed: 4_000n, funds: 2_000n, reserved: 0n });
    expect(verifier.grantOf(payer.address, token, sessionKey.address)?.spent).to.equal(4_000n);
    const lanes = await preflight.laneOf(payer.address, provider.address, token);
    expect([lanes.claimed, lanes.funds]).to.deep.equal([4_000n, 2_000n]);
  });

  it("counts a lane as empty once a requested close can execute before the provider settles, and ends its reservation when it closes", async function () {
    const { preflight, domain, provider, token, payer } = await loadFixture(deployLaneFixture);
    const verifier = await PreflightVerifier.create({ contract: preflight, provider: provider.address, settlementWindow: 600n });
    const voucher = signLane(payer, domain, provider.address, { payer: payer.address, token, model: MODEL_A, cumulativeAmount: 1_000n });
    expect(verifier.verifyLaneVoucher(voucher).reason).to.equal(Reason.Settled);
    await (await preflight.connect(payer).requestLaneClose(provider.address, token)).wait();
    await verifier.sync();
    const readyAt = (await latestTimestamp()) + NOTICE_PERIOD;
    expect(verifier.laneOf(payer.address, token)?.closeReadyAt).to.equal(readyAt);
    const later = signLane(payer, domain, provider.address, { payer: payer.address, token, model: MODEL_A, cumulativeAmount: 2_000n });
    expect(verifier.verifyLaneVoucher(later, { at: readyAt - 601n, reserve: false }).reason).to.equal(Reason.Settled);
    expect(verifier.verifyLaneVoucher(later, { at: readyAt - 100n, reserve: false }).reason).to.equal(Reason.InsufficientBalance);
    await ethers.provider.send("evm_setNextBlockTimestamp", [Number(readyAt)]);
    await (await preflight.connect(payer).closeLane(provider.address, token, payer.address)).wait();
    await verifier.sync();
    expect(verifier.pendingCount).to.equal(0); // the lane closed: the accepted voucher can never be claimed
    expect(verifier.laneOf(payer.address, token)?.funds).to.equal(0n);
  });
});
