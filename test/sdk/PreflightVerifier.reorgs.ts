import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { PreflightVerifier, Reason, type SignedRequest } from "@preflight/provider";
import { deployPreflightFixture } from "../helpers/fixtures";
import { makeRequest, MODEL_A } from "../helpers/requests";
import { fundedWallet, signRequestFast, signVoucherFast } from "../helpers/sdk";

async function deployReorgFixture() {
  const base = await deployPreflightFixture();
  const token = await base.usdc.getAddress();
  await base.usdc.mint(base.owner.address, 1_000_000n);
  await base.usdc.connect(base.owner).approve(await base.preflight.getAddress(), ethers.MaxUint256);
  const payer = await fundedWallet(900);
  const deposit = async (amount: bigint) => (await base.preflight.connect(base.owner).deposit(payer.address, token, amount)).wait();
  const request = async (nonce: bigint, price: bigint): Promise<SignedRequest> =>
    signRequestFast(payer, base.domain, await makeRequest({ payer: payer.address, provider: base.provider.address, token, nonce, price }));
  const voucher = (cumulativeAmount: bigint) =>
    signVoucherFast(payer, base.domain, { payer: payer.address, provider: base.provider.address, token, model: MODEL_A, channel: ethers.ZeroHash, cumulativeAmount });
  const settle = async (items: SignedRequest[]) => (await base.preflight.connect(base.provider).settleBatch(token, items)).wait();
  return { ...base, token, payer, deposit, request, voucher, settle };
}

/**
 * A reorg as a node sees one: the chain goes back to `fork` (an evm_snapshot) and grows another
 * branch of `blocks` blocks (each with a later timestamp than the dropped ones, so every hash differs).
 */
async function reorgTo(fork: string, blocks: number): Promise<void> {
  const dropped = await ethers.provider.getBlock("latest");
  await ethers.provider.send("evm_revert", [fork]);
  await ethers.provider.send("evm_setNextBlockTimestamp", [dropped!.timestamp + 100]);
  for (let i = 0; i < blocks; i++) await ethers.provider.send("evm_mine", []);
}

/** Counts view calls to `address` while `run` runs. */
async function viewCallsDuring(address: string, run: () => Promise<unknown>): Promise<number> {
  const target = address.toLowerCase();
  let calls = 0;
  const call = ethers.provider.call.bind(ethers.provider);
  ethers.provider.call = async (tx) => {
    if (String(tx.to).toLowerCase() === target) calls++;
    return call(tx);
  };
  try {
    await run();
  } finally {
    ethers.provider.call = call;
  }
  return calls;
}

describe("PreflightVerifier confirmations and reorgs", function () {
  it("applies a block only once it is `confirmations` deep", async function () {
    const { preflight, provider, token, payer, deposit } = await loadFixture(deployReorgFixture);
    const verifier = await PreflightVerifier.create({ contract: preflight, provider: provider.address, confirmations: 2 });
    await deposit(5_000n);
    await verifier.sync();
    expect(verifier.accountOf(payer.address, token).balance).to.equal(0n);
    await ethers.provider.send("evm_mine", []);
    await verifier.sync();
    expect(verifier.accountOf(payer.address, token).balance).to.equal(0n);
    await ethers.provider.send("evm_mine", []);
    await verifier.sync();
    expect(verifier.accountOf(payer.address, token).balance).to.equal(5_000n);
    expect(verifier.syncedBlock).to.equal((await ethers.provider.getBlockNumber()) - 2);
  });

  it("takes a reorg back to its fork point (found by hash) and applies the new chain: the cache is the chain's, with no view call", async function () {
    const { preflight, provider, token, payer, deposit, request, settle } = await loadFixture(deployReorgFixture);
    await deposit(5_000n);
    const verifier = await PreflightVerifier.create({ contract: preflight, provider: provider.address });
    const accepted = await request(0n, 1_000n);
    expect(verifier.verify(accepted).reason).to.equal(Reason.Settled);
    const forkBlock = verifier.syncedBlock;
    const fork = (await ethers.provider.send("evm_snapshot", [])) as string;
    // The branch that will be dropped: the accepted request settles, then a deposit.
    await settle([accepted]);
    await deposit(10_000n);
    await verifier.sync();
    expect([verifier.pendingCount, verifier.isNonceUsed(payer.address, token, 0n), verifier.accountOf(payer.address, token).balance]).to.deep.equal([0, true, 14_000n]);

    await reorgTo(fork, 1);
    await deposit(1n); // the new branch: another deposit, and a longer chain
    const calls = await viewCallsDuring(await preflight.getAddress(), () => verifier.sync());
    expect(calls).to.equal(0); // followed from logs alone, as before the reorg
    expect(verifier.followStats.reorgs).to.equal(1);
    expect(verifier.syncedBlock).to.equal(forkBlock + 2);
    // The settlement is gone: its reservation is back, its nonce free, the balance the new chain's.
    expect(verifier.pendingCount).to.equal(1);
    expect(verifier.isNonceUsed(payer.address, token, 0n)).to.equal(false);
    expect(verifier.accountOf(payer.address, token)).to.deep.equal({ balance: 5_001n, reserved: 1_000n, available: 4_001n });
    expect(await preflight.balanceOf(payer.address, token)).to.equal(5_001n);
    const decision = verifier.verify(accepted, { reserve: false });
    expect([decision.reason, decision.needsChainRead]).to.deep.equal([Reason.NonceUsed, undefined]); // reserved, known without a read
    expect(verifier.verify(await request(1n, 4_002n), { reserve: false }).reason).to.equal(Reason.InsufficientBalance);
    // And the new chain ends it as it settles there.
    await settle([accepted]);
    await verifier.sync();
    expect([verifier.pendingCount, verifier.accountOf(payer.address, token).balance]).to.deep.equal([0, 4_001n]);
  });

  it("brings back a voucher's whole excess when the claim that paid part of it is dropped", async function () {
    const { preflight, provider, token, payer, deposit, voucher } = await loadFixture(deployReorgFixture);
    await deposit(5_000n);
    const verifier = await PreflightVerifier.create({ contract: preflight, provider: provider.address });
    expect(verifier.verifyVoucher(voucher(2_000n)).reason).to.equal(Reason.Settled);
    const fork = (await ethers.provider.send("evm_snapshot", [])) as string;
    await (await preflight.connect(provider).claimVouchers(token, [voucher(500n)])).wait();
    await verifier.sync();
    expect(verifier.accountOf(payer.address, token)).to.deep.equal({ balance: 4_500n, reserved: 1_500n, available: 3_000n });
    await reorgTo(fork, 2);
    await verifier.sync();
    expect(verifier.accountOf(payer.address, token)).to.deep.equal({ balance: 5_000n, reserved: 2_000n, available: 3_000n });
    expect(verifier.verifyVoucher(voucher(1_999n), { reserve: false }).reason).to.equal(Reason.NothingToClaim);
  });

  it("never brings back through a reorg a reservation the provider gave up", async function () {
    const { preflight, provider, token, payer, deposit, request, settle } = await loadFixture(deployReorgFixture);
    await deposit(5_000n);
    const verifier = await PreflightVerifier.create({ contract: preflight, provider: provider.address });
    const [kept, givenUpAfter, givenUpBefore] = [await request(0n, 1_000n), await request(1n, 1_000n), await request(2n, 1_000n)];
    for (const r of [kept, givenUpAfter, givenUpBefore]) expect(verifier.verify(r).reason).to.equal(Reason.Settled);
    verifier.releaseRequest(givenUpBefore); // given up before the chain ended it
    const fork = (await ethers.provider.send("evm_snapshot", [])) as string;
    await settle([kept, givenUpAfter, givenUpBefore]);
    await verifier.sync();
    expect(verifier.pendingCount).to.equal(0);
    verifier.releaseRequest(givenUpAfter); // given up after the chain ended it: nothing to release now, and nothing to restore later
    await reorgTo(fork, 2);
    await verifier.sync();
    expect(verifier.followStats.reorgs).to.equal(1);
    expect(verifier.pendingCount).to.equal(1);
    expect(verifier.accountOf(payer.address, token).reserved).to.equal(1_000n);
    expect(verifier.verify(kept, { reserve: false }).reason).to.equal(Reason.NonceUsed); // still held
    expect(verifier.verify(givenUpAfter, { reserve: false }).reason).to.equal(Reason.Settled);
    expect(verifier.verify(givenUpBefore, { reserve: false }).reason).to.equal(Reason.Settled);
  });

  it("after a reorg deeper than it keeps, treats every cached state as unknown and reads it before accepting", async function () {
    const { preflight, provider, token, payer, deposit, request } = await loadFixture(deployReorgFixture);
    await deposit(5_000n);
    const verifier = await PreflightVerifier.create({ contract: preflight, provider: provider.address, reorgDepth: 2 });
    const fork = (await ethers.provider.send("evm_snapshot", [])) as string;
    await deposit(10_000n); // on the branch that will be dropped
    for (let i = 0; i < 3; i++) {
      await ethers.provider.send("evm_mine", []);
      await verifier.sync(); // one block at a time: each kept, the deposit's soon too deep
    }
    expect(verifier.accountOf(payer.address, token).balance).to.equal(15_000n);
    const accepted = await request(0n, 1_000n);
    expect(verifier.verify(accepted).reason).to.equal(Reason.Settled);

    await reorgTo(fork, 5);
    await verifier.sync();
    expect(verifier.followStats.reorgs).to.equal(1);
    const big = await request(1n, 9_000n);
    const unsure = verifier.verify(big, { reserve: false });
    expect([unsure.accepted, unsure.needsChainRead]).to.deep.equal([false, true]); // the 15,000 is no longer trusted
    expect((await verifier.verifyAsync(big, { reserve: false })).reason).to.equal(Reason.InsufficientBalance); // 5,000 - 1,000 reserved
    expect(verifier.pendingCount).to.equal(1);
    expect((await verifier.verifyAsync(await request(2n, 4_000n))).reason).to.equal(Reason.Settled);
    await deposit(1n);
    await verifier.sync();
    expect(verifier.accountOf(payer.address, token).balance).to.equal(await preflight.balanceOf(payer.address, token));
  });
});
