import { expectBatchTotals, expectNoSkips } from "../helpers/logs";
import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { deployPreflightFixture } from "../helpers/fixtures";
import { makeRequest, signedRequest, signedVoucher, MODEL_A } from "../helpers/requests";

const PRICE = 1_000n;
const BATCH = 100n;
const VOUCHER = 5_000n;

describe("Preflight smoke", function () {
  it("settles a payer-signed request, a batch and a voucher, and prints their first gas figures", async function () {
    const { preflight, usdc, domain, payer, provider } = await loadFixture(deployPreflightFixture);
    const token = await usdc.getAddress();
    const base = { payer: payer.address, provider: provider.address, token, price: PRICE };
    const deposited = await preflight.balanceOf(payer.address, token);

    const one = await signedRequest(payer, domain, await makeRequest({ ...base, nonce: 0n }));
    const r1 = (await (await preflight.connect(provider).settle(one)).wait())!;

    const batch = [];
    for (let i = 1n; i <= BATCH; i++) batch.push(await signedRequest(payer, domain, await makeRequest({ ...base, nonce: i }), true));
    const tx2 = preflight.connect(provider).settleBatch(token, batch);
    await expectBatchTotals(tx2, provider.address, token, BATCH, BATCH * PRICE);
    await expectNoSkips(tx2);
    const r2 = (await (await tx2).wait())!;

    const v = await signedVoucher(payer, domain, { ...base, model: MODEL_A, channel: ethers.ZeroHash, cumulativeAmount: VOUCHER });
    const r3 = (await (await preflight.connect(provider).claimVoucher(v)).wait())!;

    console.log(`      gas: single ${r1.gasUsed}, batch100 ${r2.gasUsed} (${r2.gasUsed / BATCH}/req), voucher ${r3.gasUsed}`);

    // Every unit debited from the payer is credited to the provider, and nothing else moved.
    const paid = (BATCH + 1n) * PRICE + VOUCHER;
    expect(await preflight.earningsOf(provider.address, token)).to.equal(paid);
    expect(await preflight.balanceOf(payer.address, token)).to.equal(deposited - paid);
    expect(await usdc.balanceOf(await preflight.getAddress())).to.equal(deposited);
    // Nonces 0..100 are used: word 0 is full, word 1 holds nonces 64..100.
    expect(await preflight.nonceBitmap(payer.address, token, 0n)).to.equal(2n ** 64n - 1n);
    expect(await preflight.nonceBitmap(payer.address, token, 1n)).to.equal(2n ** (BATCH + 1n - 64n) - 1n);
    expect(await preflight.claimedOf(payer.address, provider.address, token, ethers.ZeroHash)).to.equal(VOUCHER);
    // Batching amortizes: a request inside the batch costs less than a request on its own.
    expect(r2.gasUsed / BATCH).to.be.lessThan(r1.gasUsed);
  });
});
