import { expectBatchTotals } from "../helpers/logs";
import { expect } from "chai";
import { ethers, network } from "hardhat";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { deployPreflightFixture, NOTICE_PERIOD, USDC } from "../helpers/fixtures";
import { makeRequest, signedRequest } from "../helpers/requests";
import { Reason, terms, TX_GAS_CAP } from "../helpers/security";
import type { Request } from "@preflight/sdk";

/** The payer holds 1,000 USDC and has granted `delegate` any model with any provider. */
async function deployRacesFixture() {
  const base = await deployPreflightFixture();
  const { preflight, payer, delegate, provider, usdc, domain } = base;
  const token = await usdc.getAddress();
  await preflight.connect(payer).grant(terms({ delegate: delegate.address, token }));
  const sign = async (signer: typeof payer, fields: Partial<Request>) =>
    signedRequest(
      signer,
      domain,
      await makeRequest({ payer: payer.address, provider: provider.address, token, deadline: 2n ** 40n, ...fields }),
    );
  return { ...base, token, sign };
}

describe("Security: races and griefing", function () {
  it("a withdrawal request leaves the notice period for providers to settle what they served", async function () {
    const { preflight, payer, provider, other, token, sign } = await loadFixture(deployRacesFixture);
    const served = [await sign(payer, { nonce: 1n, price: 300n * USDC }), await sign(payer, { nonce: 2n, price: 200n * USDC })];
    await preflight.connect(payer).requestWithdrawal(token, ethers.MaxUint256);
    const { readyAt } = await preflight.pendingWithdrawal(payer.address, token);
    expect(readyAt).to.equal(BigInt(await time.latest()) + NOTICE_PERIOD);
    await expect(preflight.connect(payer).withdraw(token, payer.address))
      .to.be.revertedWithCustomError(preflight, "NoticePeriodActive")
      .withArgs(readyAt);
    // Asking again does not shorten the notice: it restarts it.
    await time.increase(NOTICE_PERIOD / 2n);
    await preflight.connect(payer).requestWithdrawal(token, 1n);
    expect((await preflight.pendingWithdrawal(payer.address, token)).readyAt).to.be.greaterThan(readyAt);
    await preflight.connect(payer).requestWithdrawal(token, ethers.MaxUint256);
    // The provider settles inside the notice period: everything it served is paid.
    await time.increase(NOTICE_PERIOD - 10n);
    await preflight.connect(provider).settleBatch(token, served);
    expect(await preflight.earningsOf(provider.address, token)).to.equal(500n * USDC);
    await time.increase(10n);
    await expect(preflight.connect(payer).withdraw(token, other.address))
      .to.emit(preflight, "Withdrawn")
      .withArgs(payer.address, token, other.address, 500n * USDC);
    expect(await preflight.balanceOf(payer.address, token)).to.equal(0n);
  });

  it("a batch still settles its valid items when the payer revokes, burns nonces or withdraws after the preflight", async function () {
    const { preflight, usdc, payer, delegate, provider, token, sign } = await loadFixture(deployRacesFixture);
    await preflight.connect(payer).requestWithdrawal(token, 900n * USDC);
    await time.increase(NOTICE_PERIOD);
    // The provider preflights these, all valid at the time.
    const batch = [
      await sign(payer, { nonce: 10n, price: 40n * USDC }), // 0 ok
      await sign(delegate, { nonce: 11n, price: 10n * USDC }), // 1 revoked below
      await sign(payer, { nonce: 12n, price: 10n * USDC }), // 2 nonce burned below
      await sign(payer, { nonce: 13n, price: 50n * USDC }), // 3 ok
      await sign(payer, { nonce: 14n, price: 20n * USDC }), // 4 no longer covered after the withdrawal
      await sign(payer, { nonce: 15n, price: 10n * USDC }), // 5 ok (fits what is left)
    ];
    const before = await preflight.connect(provider).settleBatch.staticCall(token, batch);
    expect(before.every((r) => r === Reason.Settled)).to.equal(true);
    // The payer front-runs the batch three ways.
    await preflight.connect(payer).revoke(token, delegate.address);
    await preflight.connect(payer).invalidateNonces(token, 0n, 1n << 12n);
    await preflight.connect(payer).withdraw(token, payer.address); // leaves 100 USDC
    const reasons = await preflight.connect(provider).settleBatch.staticCall(token, batch);
    expect(reasons).to.deep.equal([
      Reason.Settled,
      Reason.GrantRevoked,
      Reason.NonceUsed,
      Reason.Settled,
      Reason.InsufficientBalance,
      Reason.Settled,
    ]);
    await expectBatchTotals(preflight.connect(provider).settleBatch(token, batch), provider.address, token, 3n, 100n * USDC);
    expect(await preflight.earningsOf(provider.address, token)).to.equal(100n * USDC);
    expect(await preflight.balanceOf(payer.address, token)).to.equal(0n);
    expect(await usdc.balanceOf(await preflight.getAddress())).to.equal(100n * USDC);
  });

  it("a payer paying itself or a sybil provider first makes later items skip, not revert (no reservation on-chain)", async function () {
    const { preflight, payer, provider, other, token, sign } = await loadFixture(deployRacesFixture);
    const honest = [await sign(payer, { nonce: 1n, price: 600n * USDC }), await sign(payer, { nonce: 2n, price: 150n * USDC })];
    // Known limit (SECURITY.md): signed, unsettled requests reserve nothing, so the payer can race them.
    const sybil = await sign(payer, { nonce: 3n, provider: other.address, price: 800n * USDC });
    await preflight.connect(other).settle(sybil);
    expect(await preflight.connect(provider).settleBatch.staticCall(token, honest)).to.deep.equal([
      Reason.InsufficientBalance,
      Reason.Settled,
    ]);
    await expect(preflight.connect(provider).settle(honest[0]))
      .to.be.revertedWithCustomError(preflight, "InsufficientBalance")
      .withArgs(200n * USDC, 600n * USDC);
  });

  it("a matured withdrawal request stays visible on-chain until used, so a provider's preflight can discount it", async function () {
    const { preflight, payer, token } = await loadFixture(deployRacesFixture);
    await preflight.connect(payer).requestWithdrawal(token, 250n * USDC);
    await time.increase(NOTICE_PERIOD * 10n);
    const { amount, readyAt } = await preflight.pendingWithdrawal(payer.address, token);
    expect(amount).to.equal(250n * USDC);
    expect(readyAt).to.be.lessThanOrEqual(BigInt(await time.latest()));
    await preflight.connect(payer).cancelWithdrawal(token);
    expect((await preflight.pendingWithdrawal(payer.address, token)).readyAt).to.equal(0n);
    await expect(preflight.connect(payer).withdraw(token, payer.address)).to.be.revertedWithCustomError(
      preflight,
      "NoWithdrawalRequested",
    );
  });

  it("a front-run EIP-2612 permit cannot block a deposit, and nobody else can use the payer's permit", async function () {
    const { preflight, usdc, payer, other, token } = await loadFixture(deployRacesFixture);
    const address = await preflight.getAddress();
    await usdc.connect(payer).approve(address, 0n);
    const amount = 50n * USDC;
    const deadline = BigInt(await time.latest()) + 600n;
    const permitSignature = ethers.Signature.from(
      await payer.signTypedData(
        { name: "USD Coin", version: "1", chainId: (await ethers.provider.getNetwork()).chainId, verifyingContract: token },
        { Permit: [
          { name: "owner", type: "address" },
          { name: "spender", type: "address" },
          { name: "value", type: "uint256" },
          { name: "nonce", type: "uint256" },
          { name: "deadline", type: "uint256" },
        ] },
        { owner: payer.address, spender: address, value: amount, nonce: await usdc.nonces(payer.address), deadline },
      ),
    );
    const { v, r, s } = permitSignature;
    // Someone else cannot deposit with it: the permit is checked against the caller, and the caller has no allowance.
    await expect(preflight.connect(other).depositWithPermit(other.address, token, amount, deadline, v, r, s)).to.be.reverted;
    // A griefer submits the permit first; the payer's deposit still goes through on the allowance it set.
    await usdc.connect(other).permit(payer.address, address, amount, deadline, v, r, s);
    const before = await preflight.balanceOf(payer.address, token);
    await expect(preflight.connect(payer).depositWithPermit(payer.address, token, amount, deadline, v, r, s))
      .to.emit(preflight, "Deposited")
      .withArgs(payer.address, token, payer.address, amount);
    expect(await preflight.balanceOf(payer.address, token)).to.equal(before + amount);
    // Without any allowance (permit used up, none set), the deposit fails instead of crediting.
    await expect(preflight.connect(payer).depositWithPermit(payer.address, token, amount, deadline, v, r, s)).to.be.reverted;
  });

  it("a payer who pre-fills nonce words far ahead cannot make a provider's batch run out of gas", async function () {
    const { preflight, usdc, payer, provider, other, token, domain, sign } = await loadFixture(deployRacesFixture);
    const address = await preflight.getAddress();
    const coder = ethers.AbiCoder.defaultAbiCoder();
    // Locate the payer's spilled nonce words (mapping payer => token => word => bits): mark one, then search.
    await preflight.connect(payer).invalidateNonces(token, 5n, 1n);
    const slotOf = (base: bigint, word: bigint) => {
      const inner = ethers.keccak256(coder.encode(["address", "uint256"], [payer.address, base]));
      const middle = ethers.keccak256(coder.encode(["address", "bytes32"], [token, inner]));
      return ethers.keccak256(coder.encode(["uint256", "bytes32"], [word, middle]));
    };
    let base = 0n;
    while (BigInt(await ethers.provider.getStorage(address, slotOf(base, 5n))) !== 1n) {
      base += 1n;
      expect(base).to.be.lessThan(64n);
    }
    // The payer fills every nonce of words 1..8,200 (what 8,200 invalidateNonces calls would do, set
    // directly to keep the test fast) and every nonce of its window word 0 but the last.
    const words = 8_200n;
    const full = ethers.toBeHex((1n << 64n) - 1n, 32);
    for (let word = 1n; word <= words; word++) await network.provider.send("hardhat_setStorageAt", [address, slotOf(base, word), full]);
    await preflight.connect(payer).invalidateNonces(token, 0n, (1n << 63n) - 1n);
    expect(await preflight.nonceBitmap(payer.address, token, words)).to.equal((1n << 64n) - 1n);
    // The provider holds honest requests from another payer, and one from this payer with nonce 63,
    // whose settlement completes the window word.
    await usdc.mint(other.address, 10n ** 9n);
    await usdc.connect(other).approve(address, ethers.MaxUint256);
    await preflight.connect(other).deposit(other.address, token, 10n ** 9n);
    const honest = async (nonce: bigint) =>
      signedRequest(other, domain, await makeRequest({ payer: other.address, provider: provider.address, token, nonce, deadline: 2n ** 40n }));
    const batch = [await honest(1n), await sign(payer, { nonce: 63n }), await honest(2n)];
    const receipt = await (await preflight.connect(provider).settleBatch(token, batch, { gasLimit: TX_GAS_CAP })).wait();
    expect(receipt!.status).to.equal(1);
    expect(receipt!.gasUsed).to.be.lessThan(500_000n);
    expect(await preflight.earningsOf(provider.address, token)).to.equal(3_000n);
    // Every nonce the payer filled stays used; nonces above them still work.
    for (const nonce of [0n, 63n, 64n, 64n * 4_000n + 7n, 64n * words + 63n]) {
      await expect(preflight.connect(provider).settle(await sign(payer, { nonce }))).to.be.revertedWithCustomError(preflight, "NonceAlreadyUsed");
    }
    await expect(preflight.connect(provider).settle(await sign(payer, { nonce: 64n * (words + 1n) }))).to.emit(preflight, "RequestsSettled");
  });
});
