import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { BatchSettler, encodePacked, isPackable, PreflightVerifier, Reason, toCompactSignature, type BatchResult, type SignedRequest } from "@preflight/provider";
import { deployPreflightFixture, NOTICE_PERIOD } from "../helpers/fixtures";
import { makeRequest, MODEL_A } from "../helpers/requests";
import { expectSdkError, fundedWallet, latestTimestamp, signRequestFast, signVoucherFast } from "../helpers/sdk";
import { reasonsOf } from "../helpers/logs";

/**
 * One test per finding of the verifier's security review: each reproduces the attack and checks the
 * verifier's answer is the chain's (each failed against the verifier that decoded calldata).
 */
async function deployFindingsFixture() {
  const base = await deployPreflightFixture();
  const token = await base.usdc.getAddress();
  const target = await base.preflight.getAddress();
  await base.usdc.mint(base.owner.address, 100_000_000n);
  await base.usdc.connect(base.owner).approve(target, ethers.MaxUint256);
  const payer = await fundedWallet(700);
  const sessionKey = await fundedWallet(701);
  await base.preflight.connect(base.owner).deposit(payer.address, token, 10_000n);
  const deposit = (who: string, amount: bigint) => base.preflight.connect(base.owner).deposit(who, token, amount);
  return { ...base, token, target, payer, sessionKey, deposit };
}

/** Hardhat mines a transaction per block: hold the next transactions in the mempool until `mine`. */
async function holdBlocks(): Promise<{ mine: () => Promise<void> }> {
  await ethers.provider.send("evm_setAutomine", [false]);
  return {
    mine: async () => {
      await ethers.provider.send("evm_mine", []);
      await ethers.provider.send("evm_setAutomine", [true]);
    },
  };
}

async function pendingCount(): Promise<number> {
  const block = (await ethers.provider.send("eth_getBlockByNumber", ["pending", false])) as { transactions: string[] };
  return block.transactions.length;
}

describe("PreflightVerifier security findings", function () {
  it("1: a batch whose skipped item has an out-of-range ABI offset neither stops nor double-applies sync", async function () {
    const { preflight, domain, provider, token, target, payer } = await loadFixture(deployFindingsFixture);
    const verifier = await PreflightVerifier.create({ contract: preflight, provider: provider.address });
    const good = signRequestFast(payer, domain, await makeRequest({ payer: payer.address, provider: provider.address, token, nonce: 0n, price: 1_100n }));
    const poisoned = { ...good, token: ethers.ZeroAddress, nonce: 1n }; // skipped (TokenMismatch) before its signature is read
    const data = ethers.getBytes(preflight.interface.encodeFunctionData("settleBatch", [token, [good, poisoned]]));
    // settleBatch(token, requests): the array at 4+32*2; item 1's tuple offset, then its signature offset (8th word).
    const arrayData = 4 + 32 * 3;
    const item1 = arrayData + Number(ethers.toBigInt(data.slice(arrayData + 32, arrayData + 64)));
    data.set(ethers.getBytes(ethers.toBeHex(2n ** 255n, 32)), item1 + 7 * 32);
    await (await provider.sendTransaction({ to: target, data: ethers.hexlify(data) })).wait();
    expect(await preflight.balanceOf(payer.address, token)).to.equal(10_000n - 1_100n); // it succeeded on chain

    for (let i = 0; i < 5; i++) await verifier.sync(); // the old verifier threw here, re-applying the chunk on each retry
    expect(verifier.accountOf(payer.address, token).balance).to.equal(10_000n - 1_100n);
    expect(verifier.syncedBlock).to.equal(await ethers.provider.getBlockNumber());
    const fromDeployment = await PreflightVerifier.create({ contract: preflight, provider: provider.address });
    expect(fromDeployment.accountOf(payer.address, token).balance).to.equal(10_000n - 1_100n);
    expect(fromDeployment.isNonceUsed(payer.address, token, 1n)).to.equal(false);
  });

  it("2: a decoy call inside another provider's transaction does not release an honest provider's reservation", async function () {
    const { preflight, domain, provider, token, target, payer, deposit } = await loadFixture(deployFindingsFixture);
    const operator = await fundedWallet(702);
    const attackerWallet = await ethers.deployContract("OwnerSignedWallet", [operator.address]);
    const attacker = await attackerWallet.getAddress();
    const accomplice = await fundedWallet(703);
    await deposit(accomplice.address, 4_000n);
    const honest = await PreflightVerifier.create({ contract: preflight, provider: provider.address });
    const accepted = signRequestFast(payer, domain, await makeRequest({ payer: payer.address, provider: provider.address, token, nonce: 0n, price: 4_000n }));
    expect(honest.verify(accepted).reason).to.equal(Reason.Settled); // 4,000 of 10,000 reserved

    // The attacker settles its accomplice's request, with a decoy settleBatch naming the accepted request ahead of it.
    const real = signRequestFast(accomplice, domain, await makeRequest({ payer: accomplice.address, provider: attacker, token, nonce: 0n, price: 4_000n }));
    const word = (n: bigint | number) => ethers.toBeHex(n, 32);
    const padded = (hex: string) => hex + "00".repeat((32 - (((hex.length - 2) / 2) % 32)) % 32);
    const decoyCall = padded(preflight.interface.encodeFunctionData("settleBatch", [token, [accepted]]));
    const realCall = preflight.interface.encodeFunctionData("settleBatch", [token, [real]]);
    const data = ethers.concat([
      attackerWallet.interface.getFunction("execute")!.selector,
      ethers.zeroPadValue(target, 32),
      word(0x40 + (decoyCall.length - 2) / 2),
      decoyCall,
      word((realCall.length - 2) / 2),
      padded(realCall),
    ]);
    await (await operator.sendTransaction({ to: attacker, data })).wait();

    await honest.sync();
    expect(honest.pendingCount).to.equal(1);
    expect(honest.isNonceUsed(payer.address, token, 0n)).to.equal(false);
    const again = signRequestFast(payer, domain, await makeRequest({ payer: payer.address, provider: provider.address, token, nonce: 1n, price: 7_000n }));
    expect(honest.verify(accepted, { reserve: false }).reason).to.equal(Reason.NonceUsed); // still reserved
    expect(honest.verify(again, { reserve: false }).reason).to.equal(Reason.InsufficientBalance); // the balance too
  });

  it("3: nonces burned through an XOR-ing forwarder with price-0 items are seen used", async function () {
    const { preflight, domain, provider, token, target, payer } = await loadFixture(deployFindingsFixture);
    const forwarder = await ethers.deployContract("ScramblingForwarder");
    const burner = await forwarder.getAddress();
    const verifier = await PreflightVerifier.create({ contract: preflight, provider: provider.address });
    const burn: SignedRequest[] = [];
    for (let nonce = 0n; nonce < 64n; nonce++) burn.push(signRequestFast(payer, domain, await makeRequest({ payer: payer.address, provider: burner, token, nonce, price: 0n })));
    const mask = (hex: string): string => ethers.hexlify(ethers.getBytes(hex).map((b) => b ^ 0x5a));
    await (await forwarder.forward(target, mask(preflight.interface.encodeFunctionData("settleBatch", [token, burn])), "0x5a")).wait();
    expect(await preflight.nonceBitmap(payer.address, token, 0n)).to.equal((1n << 64n) - 1n);

    await verifier.sync();
    for (let nonce = 0n; nonce < 64n; nonce++) {
      const free = signRequestFast(payer, domain, await makeRequest({ payer: payer.address, provider: provider.address, token, nonce, price: 0n }));
      expect(verifier.verify(free).reason).to.equal(Reason.NonceUsed); // the old verifier accepted all 64
    }
  });

  it("4: a skipped twin voucher placed first does not take the session key's spend", async function () {
    const { preflight, domain, provider, token, payer, sessionKey } = await loadFixture(deployFindingsFixture);
    await preflight.connect(payer).grant({
      delegate: sessionKey.address,
      token,
      provider: provider.address,
      maxPrice: 5_000n,
      budget: 5_000n,
      period: 0n,
      expiry: (await latestTimestamp()) + 86_400n,
      models: [],
    });
    const verifier = await PreflightVerifier.create({ contract: preflight, provider: provider.address });
    const voucher = { payer: payer.address, provider: provider.address, token, model: MODEL_A, channel: ethers.ZeroHash, cumulativeAmount: 4_000n };
    const twin = signVoucherFast(await fundedWallet(704), domain, voucher); // same payer, channel, amount: InvalidSigner
    const real = signVoucherFast(sessionKey, domain, voucher);
    await (await preflight.connect(provider).claimVouchers(token, [twin, real])).wait();
    await verifier.sync();
    expect(verifier.grantOf(payer.address, token, sessionKey.address)?.spent).to.equal(4_000n);
    const over = signRequestFast(sessionKey, domain, await makeRequest({ payer: payer.address, provider: provider.address, token, nonce: 0n, price: 2_000n }));
    expect(verifier.verify(over, { reserve: false }).reason).to.equal(Reason.BudgetExceeded);
    const [onChain] = await preflight.connect(provider).settleBatch.staticCall(token, [over]);
    expect(Number(onChain)).to.equal(Reason.BudgetExceeded);
  });

  it("5: an ERC-1271 payer cheap at estimation and costly at inclusion cannot make BatchSettler's batch revert", async function () {
    const { preflight, domain, provider, token, payer, deposit } = await loadFixture(deployFindingsFixture);
    const owner = await fundedWallet(705);
    const wallet = await ethers.deployContract("HostileWallet1271", [owner.address]);
    const walletPayer = await wallet.getAddress();
    await deposit(walletPayer, 10_000n);
    const fromWallet = signRequestFast(owner, domain, await makeRequest({ payer: walletPayer, provider: provider.address, token, nonce: 0n }));
    const honest = signRequestFast(payer, domain, await makeRequest({ payer: payer.address, provider: provider.address, token, nonce: 0n }));
    const settler = new BatchSettler({ contract: preflight.connect(provider), token, maxAgeMs: 60_000 });
    const outcomes = [settler.add(fromWallet), settler.add(honest)];
    const blocks = await holdBlocks();
    const flushing = settler.flush(); // estimates now, while the wallet is cheap (Honest)
    for (let i = 0; i < 200 && (await pendingCount()) === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await pendingCount()).to.equal(1);
    const feeData = await ethers.provider.getFeeData();
    // Then the wallet turns costly (burns all the gas it is given) in a transaction ordered first.
    await wallet.connect(owner).setMode(3, { maxPriorityFeePerGas: feeData.maxPriorityFeePerGas! * 10n, maxFeePerGas: feeData.maxFeePerGas! * 10n });
    await blocks.mine();
    const [result] = await flushing;
    expect(result.error).to.equal(undefined);
    expect((await Promise.all(outcomes)).map((o) => o.reason)).to.deep.equal([Reason.InvalidSigner, Reason.Settled]);
    expect(await preflight.balanceOf(payer.address, token)).to.equal(10_000n - 1_000n);
  });

  it("6: verifyAsync gives an ERC-1271 wallet the 200,000 gas the contract gives it", async function () {
    const { preflight, domain, provider, token, deposit } = await loadFixture(deployFindingsFixture);
    const owner = await fundedWallet(706);
    const wallet = await ethers.deployContract("HostileWallet1271", [owner.address]);
    await wallet.setMode(8); // Expensive: honest, but spends 180,000 gas before checking
    const walletPayer = await wallet.getAddress();
    await deposit(walletPayer, 10_000n);
    const verifier = await PreflightVerifier.create({ contract: preflight, provider: provider.address });
    const request = signRequestFast(owner, domain, await makeRequest({ payer: walletPayer, provider: provider.address, token, nonce: 0n }));
    const [onChain] = await preflight.connect(provider).settleBatch.staticCall(token, [request]);
    expect(Number(onChain)).to.equal(Reason.Settled);
    expect((await verifier.verifyAsync(request)).reason).to.equal(Reason.Settled); // refused with a 200,000 call limit
  });

  it("7: a contract payer's 65-byte signature reaches the contract unshortened on the verifier's and settler's path", async function () {
    const { preflight, domain, provider, token, deposit } = await loadFixture(deployFindingsFixture);
    const owner = await fundedWallet(707);
    const wallet = await ethers.deployContract("HostileWallet1271", [owner.address]); // OpenZeppelin ECDSA: 65 bytes only
    const walletPayer = await wallet.getAddress();
    await deposit(walletPayer, 10_000n);
    const verifier = await PreflightVerifier.create({ contract: preflight, provider: provider.address });
    const long = signRequestFast(owner, domain, await makeRequest({ payer: walletPayer, provider: provider.address, token, nonce: 0n }));
    const short = { ...signRequestFast(owner, domain, await makeRequest({ payer: walletPayer, provider: provider.address, token, nonce: 1n }), true) };
    expect((await verifier.verifyAsync(long)).reason).to.equal(Reason.Settled);
    expect((await verifier.verifyAsync(short)).reason).to.equal(Reason.InvalidSigner); // the wallet refuses 64 bytes, and so does the verifier
    const settler = new BatchSettler({ contract: preflight.connect(provider), token, maxAgeMs: 60_000 });
    const outcomes = [settler.add(long), settler.add(short)];
    await settler.flush();
    expect((await Promise.all(outcomes)).map((o) => o.reason)).to.deep.equal([Reason.Settled, Reason.InvalidSigner]);
  });

  it("7 (packed): the packed encoder never shortens a contract payer's signature, and BatchSettler's packed encoding settles it through settleBatch", async function () {
    const { preflight, domain, provider, token, payer, deposit } = await loadFixture(deployFindingsFixture);
    const owner = await fundedWallet(708);
    const wallet = await ethers.deployContract("HostileWallet1271", [owner.address]); // OpenZeppelin ECDSA: 65 bytes only
    const walletPayer = await wallet.getAddress();
    await deposit(walletPayer, 10_000n);
    const request = await makeRequest({ payer: walletPayer, provider: provider.address, token, nonce: 0n });
    const long = signRequestFast(owner, domain, request);
    // The attack: what the old encoder sent (the 65 bytes shortened to 64) is skipped by settlePacked,
    // while the request the verifier accepted settles through settleBatch.
    const shortened = encodePacked([{ request: { ...request, nonce: 9n }, signature: toCompactSignature(signRequestFast(owner, domain, { ...request, nonce: 9n }).signature) }]);
    expect(await reasonsOf(preflight.connect(provider).settlePacked(token, shortened))).to.deep.equal([Reason.InvalidSigner]);
    expect(Number((await preflight.connect(provider).settleBatch.staticCall(token, [long]))[0])).to.equal(Reason.Settled);

    // The encoder now refuses to change what the wallet would check, unless told the payer is a key.
    expect([isPackable(long.signature, true), isPackable(long.signature, false), isPackable(toCompactSignature(long.signature), true)]).to.deep.equal([false, true, true]);
    await expectSdkError(() => encodePacked([{ request, signature: long.signature }]), "SIGNATURE_NOT_PACKABLE");
    await expectSdkError(() => encodePacked([{ request, signature: long.signature }], { isContract: () => true }), "SIGNATURE_NOT_PACKABLE");

    // And the packed settler routes the contract payer to settleBatch, the key payer to settlePacked.
    const fromKey = signRequestFast(payer, domain, await makeRequest({ payer: payer.address, provider: provider.address, token, nonce: 0n }));
    const batches: BatchResult[] = [];
    const settler = new BatchSettler({ contract: preflight.connect(provider), token, maxAgeMs: 60_000, encoding: "packed", onBatch: (b) => batches.push(b) });
    const outcomes = [settler.add(long), settler.add(fromKey)];
    await settler.flush();
    expect((await Promise.all(outcomes)).map((o) => o.reason)).to.deep.equal([Reason.Settled, Reason.Settled]);
    expect(batches.map((b) => [b.method, b.settled.map((r) => r.item.payer)])).to.deep.equal([
      ["settlePacked", [payer.address]],
      ["settleBatch", [walletPayer]],
    ]);
  });

  it("8: a pending withdrawal that can execute before the provider settles is not spendable", async function () {
    const { preflight, domain, provider, token, payer } = await loadFixture(deployFindingsFixture);
    const verifier = await PreflightVerifier.create({ contract: preflight, provider: provider.address, settlementWindow: 600n });
    await (await preflight.connect(payer).requestWithdrawal(token, 10_000n)).wait();
    await verifier.sync();
    const { readyAt } = await preflight.pendingWithdrawal(payer.address, token);
    expect(readyAt).to.equal((await latestTimestamp()) + NOTICE_PERIOD);
    const request = signRequestFast(payer, domain, await makeRequest({ payer: payer.address, provider: provider.address, token, nonce: 0n, deadline: readyAt + 3_600n }));
    expect(verifier.verify(request, { at: readyAt - 601n, reserve: false }).reason).to.equal(Reason.Settled); // settles before it matures
    const decision = verifier.verify(request, { at: readyAt - 100n, reserve: false });
    expect(decision.reason).to.equal(Reason.InsufficientBalance); // the old verifier accepted: the contract would, now
    // ...and the payer can indeed take the funds before the provider's settlement lands.
    await ethers.provider.send("evm_setNextBlockTimestamp", [Number(readyAt)]);
    await (await preflight.connect(payer).withdraw(token, payer.address)).wait();
    expect(await reasonsOf(preflight.connect(provider).settleBatch(token, [request]))).to.deep.equal([
      Reason.InsufficientBalance,
    ]);
  });
});

