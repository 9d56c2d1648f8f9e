import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { PreflightVerifier, Reason, type SignedRequest } from "@preflight/provider";
import { deployPreflightFixture } from "../helpers/fixtures";
import { makeRequest, MODEL_A } from "../helpers/requests";
import { fundedWallet, latestTimestamp, signRequestFast, signVoucherFast } from "../helpers/sdk";

/** A provider that settles through a contract wallet (a multisig stand-in), and a payer with a session key. */
async function deployWrappedProviderFixture() {
  const base = await deployPreflightFixture();
  const token = await base.usdc.getAddress();
  const operator = await fundedWallet(500);
  const providerWallet = await ethers.deployContract("OwnerSignedWallet", [operator.address]);
  const walletAddress = await providerWallet.getAddress();
  const payer = await fundedWallet(501);
  const sessionKey = await fundedWallet(502);
  await base.usdc.mint(base.owner.address, 10_000_000n);
  await base.usdc.connect(base.owner).approve(await base.preflight.getAddress(), ethers.MaxUint256);
  await base.preflight.connect(base.owner).deposit(payer.address, token, 1_000_000n);
  await base.preflight.connect(payer).grant({
    delegate: sessionKey.address,
    token,
    provider: walletAddress,
    maxPrice: 5_000n,
    budget: 50_000n,
    period: 3_600n,
    expiry: (await latestTimestamp()) + 86_400n,
    models: [],
  });
  return { ...base, token, operator, providerWallet, walletAddress, payer, sessionKey };
}

describe("PreflightVerifier with settlements sent through another contract", function () {
  it("decodes settle, settleBatch and claimVoucher calls embedded in a wallet's calldata", async function () {
    const { preflight, domain, token, operator, providerWallet, walletAddress, payer, sessionKey } = await loadFixture(deployWrappedProviderFixture);
    const verifier = await PreflightVerifier.create({ contract: preflight, provider: walletAddress });
    const base = { payer: payer.address, provider: walletAddress, token };
    const batch: SignedRequest[] = [];
    for (let nonce = 0n; nonce < 6n; nonce++) {
      const signer = nonce % 2n === 0n ? payer : sessionKey;
      batch.push(signRequestFast(signer, domain, await makeRequest({ ...base, nonce, price: 1_000n + nonce })));
    }
    batch.push(signRequestFast(sessionKey, domain, await makeRequest({ ...base, nonce: 9n, price: 9_000n }))); // over the cap: skipped
    batch.forEach((r) => verifier.verify(r));
    const wallet = providerWallet.connect(operator);
    const target = await preflight.getAddress();
    await wallet.execute(target, preflight.interface.encodeFunctionData("settleBatch", [token, batch]));
    const single = signRequestFast(sessionKey, domain, await makeRequest({ ...base, nonce: 7n, price: 2_000n }));
    await wallet.execute(target, preflight.interface.encodeFunctionData("settle", [single]));
    const voucher = signVoucherFast(sessionKey, domain, { ...base, model: MODEL_A, channel: ethers.ZeroHash, cumulativeAmount: 3_000n });
    await wallet.execute(target, preflight.interface.encodeFunctionData("claimVoucher", [voucher]));

    await verifier.sync();
    expect(verifier.pendingCount).to.equal(0);
    expect(verifier.accountOf(payer.address, token).balance).to.equal(await preflight.balanceOf(payer.address, token));
    const onChain = await preflight.grantOf(payer.address, token, sessionKey.address);
    expect(verifier.grantOf(payer.address, token, sessionKey.address)?.spent).to.equal(onChain.spent);
    expect(onChain.spent).to.equal(1_001n + 1_003n + 1_005n + 2_000n + 3_000n);
    expect(verifier.isNonceUsed(payer.address, token, 9n)).to.equal(false);
    for (const nonce of [0n, 1n, 2n, 3n, 4n, 5n, 7n]) expect(verifier.isNonceUsed(payer.address, token, nonce)).to.equal(true);
    expect(verifier.verify(batch[1], { reserve: false }).reason).to.equal(Reason.NonceUsed);
  });

  it("is not fooled by a decoy settlement encoded ahead of the real one in a wrapper's calldata", async function () {
    const { preflight, domain, token, operator, providerWallet, walletAddress, payer } = await loadFixture(deployWrappedProviderFixture);
    const victim = await fundedWallet(503);
    await preflight.connect(await ethers.getImpersonatedSigner((await ethers.getSigners())[0]!.address)).deposit(victim.address, token, 10_000n);
    const verifier = await PreflightVerifier.create({ contract: preflight, provider: walletAddress });
    const sign = async (who: typeof payer, nonce: bigint) =>
      signRequestFast(who, domain, await makeRequest({ payer: who.address, provider: walletAddress, token, nonce, price: 1_000n }));
    const real = [await sign(payer, 0n), await sign(payer, 1n)];
    const decoy = [await sign(victim, 0n), await sign(victim, 1n)]; // same token, count and total: never sent to Preflight
    // execute(target, data) with `data`'s offset pointing past a gap that holds the decoy encoding.
    const word = (n: bigint | number) => ethers.toBeHex(n, 32);
    const padded = (hex: string) => hex + "00".repeat((32 - (((hex.length - 2) / 2) % 32)) % 32);
    const decoyCall = padded(preflight.interface.encodeFunctionData("settleBatch", [token, decoy]));
    const realCall = preflight.interface.encodeFunctionData("settleBatch", [token, real]);
    const data = ethers.concat([
      providerWallet.interface.getFunction("execute")!.selector,
      ethers.zeroPadValue(await preflight.getAddress(), 32),
      word(0x40 + (decoyCall.length - 2) / 2),
      decoyCall,
      word((realCall.length - 2) / 2),
      padded(realCall),
    ]);
    await operator.sendTransaction({ to: walletAddress, data });
    expect(await preflight.balanceOf(payer.address, token)).to.equal(1_000_000n - 2_000n);

    await verifier.sync();
    expect(verifier.accountOf(victim.address, token).balance).to.equal(10_000n);
    expect(verifier.isNonceUsed(victim.address, token, 0n)).to.equal(false);
    expect(verifier.verify(await sign(victim, 0n), { reserve: false }).reason).to.equal(Reason.Settled);
    expect(verifier.accountOf(payer.address, token).balance).to.equal(1_000_000n - 2_000n);
    expect(verifier.verify(real[0]!, { reserve: false }).reason).to.equal(Reason.NonceUsed);
  });

  it("falls back to reading state at the end of the block when the calls cannot be decoded", async function () {
    const { preflight, domain, token, payer, sessionKey } = await loadFixture(deployWrappedProviderFixture);
    const forwarder = await ethers.deployContract("ScramblingForwarder");
    const provider = await forwarder.getAddress();
    await preflight.connect(payer).grant({
      delegate: sessionKey.address,
      token,
      provider,
      maxPrice: 5_000n,
      budget: 50_000n,
      period: 3_600n,
      expiry: (await latestTimestamp()) + 86_400n,
      models: [],
    });
    const verifier = await PreflightVerifier.create({ contract: preflight, provider });
    const base = { payer: payer.address, provider, token };
    const batch = [
      signRequestFast(sessionKey, domain, await makeRequest({ ...base, nonce: 0n, price: 4_000n })),
      signRequestFast(payer, domain, await makeRequest({ ...base, nonce: 1n, price: 3_000n })),
      signRequestFast(sessionKey, domain, await makeRequest({ ...base, nonce: 2n, price: 6_000n })), // over the cap
    ];
    expect(batch.map((r) => verifier.verify(r).reason)).to.deep.equal([Reason.Settled, Reason.Settled, Reason.PriceAboveCap]);
    const mask = (hex: string): string => ethers.hexlify(ethers.getBytes(hex).map((b) => b ^ 0x5a));
    const target = await preflight.getAddress();
    await forwarder.forward(target, mask(preflight.interface.encodeFunctionData("settleBatch", [token, batch])), "0x5a");
    const single = signRequestFast(sessionKey, domain, await makeRequest({ ...base, nonce: 3n, price: 1_000n }));
    verifier.verify(single);
    await forwarder.forward(target, mask(preflight.interface.encodeFunctionData("settle", [single])), "0x5a");

    await verifier.sync();
    expect(verifier.pendingCount).to.equal(0);
    expect(verifier.accountOf(payer.address, token).balance).to.equal(await preflight.balanceOf(payer.address, token));
    const onChain = await preflight.grantOf(payer.address, token, sessionKey.address);
    expect(onChain.spent).to.equal(5_000n);
    expect(verifier.grantOf(payer.address, token, sessionKey.address)?.spent).to.equal(onChain.spent);
    expect([0n, 1n, 2n, 3n].map((n) => verifier.isNonceUsed(payer.address, token, n))).to.deep.equal([true, true, false, true]);
    expect(verifier.verify(batch[0], { reserve: false }).reason).to.equal(Reason.NonceUsed);
  });
});
