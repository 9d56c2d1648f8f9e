import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { PreflightVerifier, Reason } from "@preflight/provider";
import { deployPreflightFixture } from "../helpers/fixtures";
import { makeRequest, MODEL_A } from "../helpers/requests";
import { expectSdkError, fundedWallet, latestTimestamp, signRequestFast, signVoucherFast } from "../helpers/sdk";

/** The core fixture plus a payer holding exactly 1,500 units, and a session key granted a 2,500 budget. */
async function deployReservationFixture() {
  const base = await deployPreflightFixture();
  const token = await base.usdc.getAddress();
  const payer = await fundedWallet(400);
  const sessionKey = await fundedWallet(401);
  await base.usdc.mint(base.owner.address, 1_000_000n);
  await base.usdc.connect(base.owner).approve(await base.preflight.getAddress(), ethers.MaxUint256);
  await base.preflight.connect(base.owner).deposit(payer.address, token, 1_500n);
  await base.preflight.connect(payer).grant({
    delegate: sessionKey.address,
    token,
    provider: base.provider.address,
    maxPrice: 1_000n,
    budget: 1_200n,
    period: 0n,
    expiry: (await latestTimestamp()) + 86_400n,
    models: [],
  });
  return { ...base, token, payer, sessionKey };
}

describe("PreflightVerifier reservations", function () {
  it("does not let one balance pay two accepted requests before settlement", async function () {
    const { preflight, domain, provider, token, payer } = await loadFixture(deployReservationFixture);
    const verifier = await PreflightVerifier.create({ contract: preflight, provider: provider.address });
    const base = { payer: payer.address, provider: provider.address, token };
    const first = signRequestFast(payer, domain, await makeRequest({ ...base, nonce: 0n, price: 600n }));
    const second = signRequestFast(payer, domain, await makeRequest({ ...base, nonce: 1n, price: 1_000n }));
    expect(verifier.verify(first).reason).to.equal(Reason.Settled);
    expect(verifier.verify(first).reason).to.equal(Reason.NonceUsed); // reserved nonce
    expect(verifier.verify(second).reason).to.equal(Reason.InsufficientBalance); // 600 of 1,500 reserved
    expect(verifier.accountOf(payer.address, token)).to.deep.equal({ balance: 1_500n, reserved: 600n, available: 900n });
    verifier.releaseRequest(first); // not served after all
    expect(verifier.verify(second).reason).to.equal(Reason.Settled);
    await preflight.connect(provider).settle(second);
    await verifier.sync();
    expect(verifier.accountOf(payer.address, token)).to.deep.equal({ balance: 500n, reserved: 0n, available: 500n });
    expect(verifier.pendingCount).to.equal(0);
  });

  it("reserves a delegate's budget and a voucher channel's excess", async function () {
    const { preflight, domain, provider, token, payer, sessionKey } = await loadFixture(deployReservationFixture);
    const verifier = await PreflightVerifier.create({ contract: preflight, provider: provider.address });
    const base = { payer: payer.address, provider: provider.address, token };
    const a = signRequestFast(sessionKey, domain, await makeRequest({ ...base, nonce: 0n, price: 700n }));
    const b = signRequestFast(sessionKey, domain, await makeRequest({ ...base, nonce: 1n, price: 700n }));
    expect(verifier.verify(a).reason).to.equal(Reason.Settled);
    expect(verifier.verify(b).reason).to.equal(Reason.BudgetExceeded); // 700 + 700 > 1,200
    expect(verifier.grantOf(payer.address, token, sessionKey.address)?.reserved).to.equal(700n);
    const voucher = (cumulativeAmount: bigint) =>
      signVoucherFast(payer, domain, { ...base, model: MODEL_A, channel: ethers.ZeroHash, cumulativeAmount });
    expect(verifier.verifyVoucher(voucher(900n)).reason).to.equal(Reason.InsufficientBalance); // 700 of 1,500 reserved
    expect(verifier.verifyVoucher(voucher(800n)).reason).to.equal(Reason.Settled);
    expect(verifier.verifyVoucher(voucher(800n)).reason).to.equal(Reason.NothingToClaim); // adds nothing to the accepted one
    expect(verifier.accountOf(payer.address, token).reserved).to.equal(1_500n);
  });

  it("drops reservations whose deadline passed, and follows events only to the confirmed depth", async function () {
    const { preflight, domain, provider, token, payer } = await loadFixture(deployReservationFixture);
    for (let i = 0; i < 2; i++) await ethers.provider.send("evm_mine", []);
    let now = await latestTimestamp();
    const verifier = await PreflightVerifier.create({ contract: preflight, provider: provider.address, clock: () => now, confirmations: 2 });
    const base = { payer: payer.address, provider: provider.address, token };
    const soon = signRequestFast(payer, domain, await makeRequest({ ...base, nonce: 0n, price: 1_000n, deadline: now + 60n }));
    expect(verifier.verify(soon).reason).to.equal(Reason.Settled);
    now += 61n;
    await verifier.sync();
    expect(verifier.pendingCount).to.equal(0);
    await ethers.provider.send("evm_mine", []);
    await verifier.sync();
    const synced = verifier.syncedBlock;
    expect(synced).to.equal((await ethers.provider.getBlockNumber()) - 2);
    await expectSdkError(() => PreflightVerifier.create({ contract: preflight, provider: provider.address, confirmations: -1 }), "INVALID_OPTION");
    await expectSdkError(() => PreflightVerifier.create({ contract: preflight, provider: "0x1234" }), "INVALID_ADDRESS");
  });

  it("refuses malformed input with typed errors instead of deciding", async function () {
    const { preflight, domain, provider, token, payer } = await loadFixture(deployReservationFixture);
    const verifier = await PreflightVerifier.create({ contract: preflight, provider: provider.address });
    const good = signRequestFast(payer, domain, await makeRequest({ payer: payer.address, provider: provider.address, token, nonce: 0n }));
    await expectSdkError(() => verifier.verify({ ...good, payer: "0x12" }), "INVALID_ADDRESS");
    await expectSdkError(() => verifier.verify({ ...good, price: 1n << 96n }), "INVALID_AMOUNT");
    await expectSdkError(() => verifier.verify({ ...good, model: "0xzz" }), "INVALID_HEX");
    await expectSdkError(() => verifier.verify({ ...good, signature: "0x123" }), "INVALID_HEX");
  });
});
