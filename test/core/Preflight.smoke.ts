import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { deployPreflightFixture } from "../helpers/fixtures";
import { makeRequest, signedRequest, signedVoucher, MODEL_A } from "../helpers/requests";

describe("Preflight smoke", function () {
  it("settles a payer-signed request, a batch and a voucher", async function () {
    const { preflight, usdc, domain, payer, provider } = await loadFixture(deployPreflightFixture);
    const token = await usdc.getAddress();
    const base = { payer: payer.address, provider: provider.address, token };
    const one = await signedRequest(payer, domain, await makeRequest({ ...base, nonce: 0n }));
    const r1 = await (await preflight.connect(provider).settle(one)).wait();
    const batch = [];
    for (let i = 1n; i <= 100n; i++) batch.push(await signedRequest(payer, domain, await makeRequest({ ...base, nonce: i }), true));
    const r2 = await (await preflight.connect(provider).settleBatch(token, batch)).wait();
    const v = await signedVoucher(payer, domain, { ...base, model: MODEL_A, channel: ethers.ZeroHash, cumulativeAmount: 5_000n });
    const r3 = await (await preflight.connect(provider).claimVoucher(v)).wait();
    console.log(`      gas: single ${r1!.gasUsed}, batch100 ${r2!.gasUsed} (${r2!.gasUsed / 100n}/req), voucher ${r3!.gasUsed}`);
    expect(await preflight.earningsOf(provider.address, token)).to.equal(101n * 1000n + 5000n);
  });
});
