import { expectSettledRequest } from "../helpers/logs";
import { expect } from "chai";
import { ethers, network } from "hardhat";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { deployPreflightFixture } from "../helpers/fixtures";
import { makeRequest, signedRequest, signedVoucher, MODEL_A } from "../helpers/requests";
import { Reason, signedGrant, terms } from "../helpers/security";
import type { HostileWallet1271 } from "../../typechain-types";

const Mode = { Honest: 0, WrongValue: 1, Revert: 2, BurnGas: 3, HugeData: 4, ShortData: 5, DirtyMagic: 6, AcceptAll: 7, Expensive: 8 } as const;
/** The gas cap Preflight gives a payer's ERC-1271 check (InferencePermissions.ERC1271_GAS_LIMIT). */
const ERC1271_GAS_LIMIT = 200_000n;

/** A smart-account payer owned by `delegate`'s key, holding 1 ETH in escrow, next to the EOA payer. */
async function deployHostileWalletsFixture() {
  const base = await deployPreflightFixture();
  const { preflight, delegate: walletOwner } = base;
  const wallet: HostileWallet1271 = await ethers.deployContract("HostileWallet1271", [walletOwner.address]);
  const walletAddress = await wallet.getAddress();
  await wallet
    .connect(walletOwner)
    .execute(await preflight.getAddress(), 10n ** 18n, preflight.interface.encodeFunctionData("depositETH", [walletAddress]), {
      value: 10n ** 18n,
    });
  await preflight.connect(base.payer).depositETH(base.payer.address, { value: 10n ** 18n });
  return { ...base, wallet, walletAddress, walletOwner };
}

describe("Security: smart-account payers (ERC-1271) and EIP-7702 EOAs", function () {
  it("an honest ERC-1271 wallet pays with its owner's signature, and only with it", async function () {
    const { preflight, provider, other, wallet, walletAddress, walletOwner, domain } = await loadFixture(deployHostileWalletsFixture);
    const request = await makeRequest({ payer: walletAddress, provider: provider.address, token: ethers.ZeroAddress });
    await expectSettledRequest(preflight.connect(provider).settle(await signedRequest(walletOwner, domain, request)), walletAddress, provider.address, ethers.ZeroAddress, request.nonce, request.price);
    const forged = await signedRequest(other, domain, { ...request, nonce: 1n });
    await expect(preflight.connect(provider).settle(forged)).to.be.revertedWithCustomError(preflight, "InvalidSigner").withArgs(other.address);
    // The wallet can also grant by signature.
    const t = terms({ delegate: other.address, token: ethers.ZeroAddress });
    const deadline = BigInt(await time.latest()) + 600n;
    await expect(preflight.grantBySig(walletAddress, t, deadline, await signedGrant(preflight, walletOwner, domain, t, deadline, { payer: walletAddress })))
      .to.emit(preflight, "GrantSet");
    await wallet.setMode(Mode.WrongValue);
    const t2 = { ...t, delegate: provider.address };
    await expect(
      preflight.grantBySig(walletAddress, t2, deadline, await signedGrant(preflight, walletOwner, domain, t2, deadline, { payer: walletAddress })),
    ).to.be.revertedWithCustomError(preflight, "InvalidSigner");
  });

  for (const [name, mode] of Object.entries(Mode).filter(([n]) => !["Honest", "AcceptAll", "Expensive"].includes(n))) {
    it(`a wallet whose isValidSignature misbehaves (${name}) is refused, at bounded cost to the provider's batch @gas`, async function () {
      const { preflight, provider, payer, wallet, walletAddress, walletOwner, domain } = await loadFixture(deployHostileWalletsFixture);
      await wallet.setMode(mode);
      const token = ethers.ZeroAddress;
      const walletItem = await signedRequest(walletOwner, domain, await makeRequest({ payer: walletAddress, provider: provider.address, token }));
      await expect(preflight.connect(provider).settle(walletItem)).to.be.revertedWithCustomError(preflight, "InvalidSigner");
      const honest = await signedRequest(payer, domain, await makeRequest({ payer: payer.address, provider: provider.address, token }));
      const alone = await preflight.connect(provider).settleBatch.estimateGas(token, [honest]);
      const withHostile = await preflight.connect(provider).settleBatch.estimateGas(token, [walletItem, honest]);
      expect(await preflight.connect(provider).settleBatch.staticCall(token, [walletItem, honest])).to.deep.equal([
        Reason.InvalidSigner,
        Reason.Settled,
      ]);
      // The hostile item costs the batch at most the ERC-1271 cap plus the item's own overhead.
      expect(withHostile - alone).to.be.lessThan(ERC1271_GAS_LIMIT + 30_000n);
      await preflight.connect(provider).settleBatch(token, [walletItem, honest]);
      expect(await preflight.earningsOf(provider.address, token)).to.equal(honest.price);
    });
  }

  it("a wallet that accepts every signature pays for anything signed by anyone (the payer's own choice)", async function () {
    const { preflight, provider, other, wallet, walletAddress, domain } = await loadFixture(deployHostileWalletsFixture);
    await wallet.setMode(Mode.AcceptAll);
    const request = await makeRequest({ payer: walletAddress, provider: provider.address, token: ethers.ZeroAddress });
    await expect(preflight.connect(provider).settle(await signedRequest(other, domain, request))).to.emit(preflight, "RequestsSettled");
    // Even a signature of no valid length reaches the wallet, which decides.
    await expect(preflight.connect(provider).settle({ ...(await signedRequest(other, domain, { ...request, nonce: 2n })), signature: "0x" }))
      .to.emit(preflight, "RequestsSettled");
    const voucher = await signedVoucher(other, domain, {
      payer: walletAddress,
      provider: provider.address,
      token: ethers.ZeroAddress,
      model: MODEL_A,
      channel: ethers.ZeroHash,
      cumulativeAmount: 7n,
    });
    await expect(preflight.connect(provider).claimVoucher(voucher)).to.emit(preflight, "VouchersClaimed");
  });

  it("a signature check starved of gas reverts the transaction; it never reports a valid item as invalid @gas", async function () {
    const { preflight, provider, wallet, walletAddress, walletOwner, domain } = await loadFixture(deployHostileWalletsFixture);
    await wallet.setMode(Mode.Expensive);
    const token = ethers.ZeroAddress;
    const voucher = await signedVoucher(walletOwner, domain, {
      payer: walletAddress,
      provider: provider.address,
      token,
      model: MODEL_A,
      channel: ethers.ZeroHash,
      cumulativeAmount: 9n,
    });
    const request = await signedRequest(walletOwner, domain, await makeRequest({ payer: walletAddress, provider: provider.address, token }));
    const claim = preflight.connect(provider).claimVouchers;
    const batch = preflight.connect(provider).settleBatch;
    // With gas to spare the wallet's (honest, costly) check passes.
    expect(await claim.staticCall(token, [voucher])).to.deep.equal([Reason.Settled]);
    const needed = await claim.estimateGas(token, [voucher]);
    // Below what the check needs, the transaction must fail: a skipped item reported as InvalidSigner
    // would tell the provider's verifier to drop a valid, payable voucher.
    for (let gas = needed + 20_000n; gas > needed - 200_000n; gas -= 1_000n) {
      for (const [name, call] of [
        ["claimVouchers", () => claim.staticCall(token, [voucher], { gasLimit: gas })],
        ["settleBatch", () => batch.staticCall(token, [request], { gasLimit: gas })],
      ] as const) {
        let reasons: bigint[] | undefined;
        try {
          reasons = await call();
        } catch {
          continue; // out of gas: fine, the provider retries with more
        }
        expect(reasons, `${name} with ${gas} gas`).to.deep.equal([Reason.Settled]);
      }
    }
    // The standard gas estimate therefore pays the voucher.
    await expect(preflight.connect(provider).claimVouchers(token, [voucher], { gasLimit: needed })).to.emit(preflight, "VouchersClaimed");
  });

  describe("EIP-7702", function () {
    it("an EOA delegated to wallet code still signs with its key (ecrecover first), even if its code refuses", async function () {
      const { preflight, provider, payer, walletOwner, domain } = await loadFixture(deployHostileWalletsFixture);
      const implementation = await ethers.deployContract("HostileWallet1271", [walletOwner.address]);
      const authorization = await payer.authorize({ address: await implementation.getAddress(), nonce: (await payer.getNonce()) + 1 });
      // Explicit EIP-1559 fees: a network config with a fixed gasPrice (e.g. under coverage) cannot carry an authorization list.
      const fees = { maxFeePerGas: 10n ** 10n, maxPriorityFeePerGas: 0n, gasLimit: 200_000n };
      await (await payer.sendTransaction({ type: 4, to: payer.address, authorizationList: [authorization], ...fees })).wait();
      const code = await ethers.provider.getCode(payer.address);
      expect(code).to.equal(ethers.concat(["0xef0100", await implementation.getAddress()]).toLowerCase());
      // The delegated code refuses every ERC-1271 check; it does not matter for the EOA's own key.
      const asWallet = implementation.attach(payer.address) as HostileWallet1271;
      await asWallet.setMode(Mode.Revert);
      const token = ethers.ZeroAddress;
      const own = await signedRequest(payer, domain, await makeRequest({ payer: payer.address, provider: provider.address, token, nonce: 1n }));
      await expect(preflight.connect(provider).settle(own)).to.emit(preflight, "RequestsSettled");
      // The 64-byte form too, in a batch.
      const compact = await signedRequest(payer, domain, await makeRequest({ payer: payer.address, provider: provider.address, token, nonce: 2n }), true);
      expect(await preflight.connect(provider).settleBatch.staticCall(token, [compact])).to.deep.equal([Reason.Settled]);
      // And when the delegated code is an ERC-1271 wallet that accepts another key, that key works too.
      await asWallet.setMode(Mode.Honest);
      const byWalletKey = await signedRequest(walletOwner, domain, await makeRequest({ payer: payer.address, provider: provider.address, token, nonce: 3n }));
      await expect(preflight.connect(provider).settle(byWalletKey)).to.emit(preflight, "RequestsSettled");
      // A stranger's signature is still refused.
      const stranger = await signedRequest(provider, domain, await makeRequest({ payer: payer.address, provider: provider.address, token, nonce: 4n }));
      await expect(preflight.connect(provider).settle(stranger)).to.be.revertedWithCustomError(preflight, "InvalidSigner");
      // The EOA keeps full control: it withdraws and its signed grants work.
      const t = terms({ delegate: walletOwner.address, token });
      const deadline = BigInt(await time.latest()) + 600n;
      await expect(preflight.grantBySig(payer.address, t, deadline, await signedGrant(preflight, payer, domain, t, deadline))).to.emit(
        preflight,
        "GrantSet",
      );
    });
    it("an EOA given arbitrary code (hardhat_setCode, as a stand-in where 7702 is unavailable) still signs with its key", async function () {
      const { preflight, provider, payer, walletOwner, domain } = await loadFixture(deployHostileWalletsFixture);
      // Code that refuses every ERC-1271 check (HostileWallet1271 in Revert mode, set through its storage).
      const template = await ethers.deployContract("HostileWallet1271", [walletOwner.address]);
      await network.provider.send("hardhat_setCode", [payer.address, await ethers.provider.getCode(await template.getAddress())]);
      await network.provider.send("hardhat_setStorageAt", [payer.address, ethers.toBeHex(0, 32), ethers.toBeHex(Mode.Revert, 32)]);
      expect(await (template.attach(payer.address) as HostileWallet1271).mode()).to.equal(BigInt(Mode.Revert));
      const token = ethers.ZeroAddress;
      const own = await signedRequest(payer, domain, await makeRequest({ payer: payer.address, provider: provider.address, token, nonce: 9n }));
      await expect(preflight.connect(provider).settle(own)).to.emit(preflight, "RequestsSettled");
      const byWalletKey = await signedRequest(walletOwner, domain, await makeRequest({ payer: payer.address, provider: provider.address, token, nonce: 10n }));
      await expect(preflight.connect(provider).settle(byWalletKey)).to.be.revertedWithCustomError(preflight, "InvalidSigner");
      // Give the account back its empty code: later suites' fixtures start from this chain state.
      await network.provider.send("hardhat_setCode", [payer.address, "0x"]);
    });
  });
});
