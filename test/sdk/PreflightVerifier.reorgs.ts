import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { PreflightVerifier, Reason } from "@preflight/provider";
import { deployPreflightFixture } from "../helpers/fixtures";
import { makeRequest } from "../helpers/requests";
import { fundedWallet, signRequestFast } from "../helpers/sdk";

async function deployReorgFixture() {
  const base = await deployPreflightFixture();
  const token = await base.usdc.getAddress();
  await base.usdc.mint(base.owner.address, 1_000_000n);
  await base.usdc.connect(base.owner).approve(await base.preflight.getAddress(), ethers.MaxUint256);
  const payer = await fundedWallet(900);
  return { ...base, token, payer, deposit: (amount: bigint) => base.preflight.connect(base.owner).deposit(payer.address, token, amount) };
}

describe("PreflightVerifier confirmations and reorgs", function () {
  it("applies a block only once it is `confirmations` deep", async function () {
    const { preflight, provider, token, payer, deposit } = await loadFixture(deployReorgFixture);
    const verifier = await PreflightVerifier.create({ contract: preflight, provider: provider.address, confirmations: 2 });
    await (await deposit(5_000n)).wait();
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

  it("forgets every cached state when the chain reorganises under applied blocks, reads it before accepting again, and keeps reservations", async function () {
    const { preflight, domain, provider, token, payer, deposit } = await loadFixture(deployReorgFixture);
    await (await deposit(5_000n)).wait();
    const verifier = await PreflightVerifier.create({ contract: preflight, provider: provider.address });
    const request = async (nonce: bigint, price: bigint) =>
      signRequestFast(payer, domain, await makeRequest({ payer: payer.address, provider: provider.address, token, nonce, price }));
    const fork = (await ethers.provider.send("evm_snapshot", [])) as string;
    await (await deposit(10_000n)).wait(); // on the branch that will be dropped
    await verifier.sync();
    expect(verifier.accountOf(payer.address, token).balance).to.equal(15_000n);
    const accepted = await request(0n, 1_000n);
    expect(verifier.verify(accepted).reason).to.equal(Reason.Settled);

    await ethers.provider.send("evm_revert", [fork]);
    await ethers.provider.send("evm_mine", []); // the same height, another block
    await verifier.sync();
    expect(verifier.followStats.reorgs).to.equal(1);
    const big = await request(1n, 9_000n);
    const unsure = verifier.verify(big, { reserve: false });
    expect([unsure.accepted, unsure.needsChainRead]).to.deep.equal([false, true]); // the 15,000 is no longer trusted
    expect((await verifier.verifyAsync(big, { reserve: false })).reason).to.equal(Reason.InsufficientBalance); // 5,000 - 1,000 reserved
    expect(verifier.pendingCount).to.equal(1);
    expect((await verifier.verifyAsync(await request(2n, 4_000n))).reason).to.equal(Reason.Settled);
    await (await deposit(1n)).wait();
    await verifier.sync();
    expect(verifier.accountOf(payer.address, token).balance).to.equal(await preflight.balanceOf(payer.address, token));
  });
});
