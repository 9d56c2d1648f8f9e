import { expectBatchTotals, expectSkippedRequest } from "../helpers/logs";
import { expect } from "chai";
import hre, { ethers } from "hardhat";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { createProvider } from "hardhat/internal/core/providers/construction";
import { BrowserProvider, Wallet } from "ethers";
import { deployPreflightFixture, NOTICE_PERIOD } from "../helpers/fixtures";
import { makeRequest, signedRequest, signedVoucher, toSignedRequest, MODEL_A } from "../helpers/requests";
import { hashRequest, domainSeparator, signRequest, signVoucher } from "@preflight/sdk";
import { pretendDeployedOnChain, Reason, signedGrant, terms } from "../helpers/security";
import { Preflight__factory, type Preflight } from "../../typechain-types";

/** The usual fixture plus a second deployment on the same chain, funded by the same payer. */
async function deployReplayFixture() {
  const base = await deployPreflightFixture();
  const { payer, usdc } = base;
  const twin = await ethers.deployContract("Preflight", [NOTICE_PERIOD, 0, ethers.ZeroAddress]);
  await usdc.connect(payer).approve(await twin.getAddress(), ethers.MaxUint256);
  await twin.connect(payer).deposit(payer.address, await usdc.getAddress(), 1_000n * 10n ** 6n);
  const twinDomain = { chainId: base.domain.chainId, verifyingContract: await twin.getAddress() };
  return { ...base, twin, twinDomain, token: await usdc.getAddress() };
}

describe("Security: replay", function () {
  describe("on another chain", function () {
    it("a fork that changes the chain id rebuilds the domain, and signatures for the old chain id fail", async function () {
      const { preflight, payer, provider, token, domain } = await loadFixture(deployReplayFixture);
      const address = await preflight.getAddress();
      const before = await preflight.DOMAIN_SEPARATOR();
      expect(before).to.equal(domainSeparator(domain));

      // The deployment was made on chain 1; the chain now calls itself `domain.chainId`.
      const originalChainId = 1n;
      const cached = await pretendDeployedOnChain(address, originalChainId);
      const after = await preflight.DOMAIN_SEPARATOR();
      expect(after).to.not.equal(cached);
      expect(after).to.equal(domainSeparator(domain));
      expect((await preflight.eip712Domain()).chainId).to.equal(domain.chainId);

      const request = await makeRequest({ payer: payer.address, provider: provider.address, token, nonce: 7n });
      const oldChain = { ...domain, chainId: originalChainId };
      // Same fields, different chain id: different digests, and the old chain's signature recovers to someone else.
      const oldSignature = await signRequest(payer, oldChain, request);
      expect(hashRequest(oldChain, request)).to.not.equal(hashRequest(domain, request));
      const recovered = ethers.recoverAddress(hashRequest(domain, request), oldSignature);
      expect(recovered).to.not.equal(payer.address);
      await expect(preflight.connect(provider).settle(toSignedRequest(request, oldSignature)))
        .to.be.revertedWithCustomError(preflight, "InvalidSigner")
        .withArgs(recovered);
      const reasons = await preflight.connect(provider).settleBatch.staticCall(token, [toSignedRequest(request, oldSignature)]);
      expect(reasons).to.deep.equal([Reason.InvalidSigner]);

      // A signature under the chain's current id settles.
      await expect(preflight.connect(provider).settle(await signedRequest(payer, domain, request))).to.emit(preflight, "RequestsSettled");
    });

    it("a deployment at the same address on a chain with another id refuses this chain's signatures", async function () {
      // Two in-process chains, 31337 and 1, each with the same deployer at nonce 0: same Preflight address.
      const config = { ...hre.config, networks: { ...hre.config.networks, hardhat: { ...hre.config.networks.hardhat, chainId: 1 } } };
      const otherChain = new BrowserProvider(await createProvider(config, "hardhat", hre.artifacts));
      const deployerKey = ethers.id("preflight replay deployer");
      const payerKey = ethers.id("preflight replay payer");
      const [, , provider] = await ethers.getSigners();
      const deployed: { chainId: bigint; preflight: Preflight }[] = [];
      for (const chain of [ethers.provider, otherChain]) {
        const balance = ethers.toBeHex(10n ** 21n);
        for (const key of [deployerKey, payerKey]) await chain.send("hardhat_setBalance", [new Wallet(key).address, balance]);
        await chain.send("hardhat_setBalance", [provider.address, balance]);
        const deployer = new Wallet(deployerKey, chain);
        const contract = await new Preflight__factory(deployer).deploy(NOTICE_PERIOD, 0, ethers.ZeroAddress);
        await contract.waitForDeployment();
        const payer = new Wallet(payerKey, chain);
        await (await contract.connect(payer).depositETH(payer.address, { value: 10n ** 18n })).wait();
        deployed.push({ chainId: (await chain.getNetwork()).chainId, preflight: contract });
      }
      const [here, there] = deployed;
      expect(here.chainId).to.not.equal(there.chainId);
      const address = await here.preflight.getAddress();
      expect(await there.preflight.getAddress()).to.equal(address);
      expect(await here.preflight.DOMAIN_SEPARATOR()).to.not.equal(await there.preflight.DOMAIN_SEPARATOR());

      const payer = new Wallet(payerKey);
      const request = await makeRequest({ payer: payer.address, provider: provider.address, token: ethers.ZeroAddress });
      const signed = await signedRequest(payer, { chainId: here.chainId, verifyingContract: address }, request);
      // Replayed on the other chain (same address, same state): refused.
      const providerThere = await otherChain.getSigner(provider.address);
      const reasons = await there.preflight.connect(providerThere).settleBatch.staticCall(ethers.ZeroAddress, [signed]);
      expect(reasons).to.deep.equal([Reason.InvalidSigner]);
      await expect(there.preflight.connect(providerThere).settle.staticCall(signed)).to.be.revertedWithCustomError(
        there.preflight,
        "InvalidSigner",
      );
      // ...while it settles where it was signed.
      await expect(here.preflight.connect(provider).settle(signed)).to.emit(here.preflight, "RequestsSettled");
    });
  });

  describe("on another deployment", function () {
    it("requests, vouchers and signed grants made for one deployment fail on another", async function () {
      const { preflight, twin, payer, provider, delegate, token, domain } = await loadFixture(deployReplayFixture);
      const request = await makeRequest({ payer: payer.address, provider: provider.address, token });
      const signed = await signedRequest(payer, domain, request);
      await expect(twin.connect(provider).settle(signed)).to.be.revertedWithCustomError(twin, "InvalidSigner");
      expect(await twin.connect(provider).settleBatch.staticCall(token, [signed])).to.deep.equal([Reason.InvalidSigner]);

      const voucher = await signedVoucher(payer, domain, {
        payer: payer.address,
        provider: provider.address,
        token,
        model: MODEL_A,
        channel: ethers.ZeroHash,
        cumulativeAmount: 100n,
      });
      await expect(twin.connect(provider).claimVoucher(voucher)).to.be.revertedWithCustomError(twin, "InvalidSigner");

      const t = terms({ delegate: delegate.address, token });
      const deadline = 2n ** 40n;
      const grantSignature = await signedGrant(preflight, payer, domain, t, deadline);
      await expect(twin.grantBySig(payer.address, t, deadline, grantSignature)).to.be.revertedWithCustomError(
        twin,
        "InvalidSigner",
      );
      // Each works where it was signed.
      await expect(preflight.connect(provider).settle(signed)).to.emit(preflight, "RequestsSettled");
      await expect(preflight.connect(provider).claimVoucher(voucher)).to.emit(preflight, "VouchersClaimed");
      await expect(preflight.grantBySig(payer.address, t, deadline, grantSignature)).to.emit(preflight, "GrantSet");
    });
  });

  describe("twice on the same chain", function () {
    it("a request settles once, whether replayed alone, in a batch, or twice in the same batch", async function () {
      const { preflight, payer, provider, token, domain } = await loadFixture(deployReplayFixture);
      const base = { payer: payer.address, provider: provider.address, token };
      const a = await signedRequest(payer, domain, await makeRequest({ ...base, nonce: 1n }));
      const b = await signedRequest(payer, domain, await makeRequest({ ...base, nonce: 2n }), true);
      const c = await signedRequest(payer, domain, await makeRequest({ ...base, nonce: 3n }));
      const balance = await preflight.balanceOf(payer.address, token);

      await preflight.connect(provider).settle(a);
      await expect(preflight.connect(provider).settle(a))
        .to.be.revertedWithCustomError(preflight, "NonceAlreadyUsed")
        .withArgs(payer.address, 1n);
      // single -> batch
      const batch = await preflight.connect(provider).settleBatch(token, [a, b, b]);
      await expectSkippedRequest(batch, provider.address, 0, payer.address, 1n, Reason.NonceUsed);
      await expectSkippedRequest(batch, provider.address, 2, payer.address, 2n, Reason.NonceUsed);
      await expectBatchTotals(batch, provider.address, token, 1n, 1_000n);
      // batch -> single, and the 64-byte form of a settled request is the same request
      await expect(preflight.connect(provider).settle(b)).to.be.revertedWithCustomError(preflight, "NonceAlreadyUsed");
      await preflight.connect(provider).settleBatch(token, [c]);
      await expect(preflight.connect(provider).settle({ ...c, signature: ethers.Signature.from(c.signature as string).compactSerialized }))
        .to.be.revertedWithCustomError(preflight, "NonceAlreadyUsed");

      expect(await preflight.balanceOf(payer.address, token)).to.equal(balance - 3_000n);
      expect(await preflight.earningsOf(provider.address, token)).to.equal(3_000n);
    });

    it("a signature of one message type is worthless as another (request, voucher, grant)", async function () {
      const { preflight, payer, provider, delegate, token, domain } = await loadFixture(deployReplayFixture);
      const request = await makeRequest({ payer: payer.address, provider: provider.address, token, nonce: 5n });
      const requestSignature = await signRequest(payer, domain, request);
      const voucher = { payer: payer.address, token, model: request.model, channel: ethers.ZeroHash, cumulativeAmount: request.price };
      await expect(preflight.connect(provider).claimVoucher({ ...voucher, signature: requestSignature })).to.be.revertedWithCustomError(
        preflight,
        "InvalidSigner",
      );
      const voucherSignature = await signVoucher(payer, domain, { ...voucher, provider: provider.address });
      await expect(preflight.connect(provider).settle(toSignedRequest(request, voucherSignature))).to.be.revertedWithCustomError(
        preflight,
        "InvalidSigner",
      );
      await expect(
        preflight.grantBySig(payer.address, terms({ delegate: delegate.address, token }), request.deadline, requestSignature),
      ).to.be.revertedWithCustomError(preflight, "InvalidSigner");
    });

    it("a request signed for one provider cannot be settled by another", async function () {
      const { preflight, payer, provider, other, token, domain } = await loadFixture(deployReplayFixture);
      const signed = await signedRequest(payer, domain, await makeRequest({ payer: payer.address, provider: provider.address, token }));
      await expect(preflight.connect(other).settle(signed)).to.be.revertedWithCustomError(preflight, "InvalidSigner");
      expect(await preflight.connect(other).settleBatch.staticCall(token, [signed])).to.deep.equal([Reason.InvalidSigner]);
      await expect(preflight.connect(provider).settle(signed)).to.emit(preflight, "RequestsSettled");
    });
  });

  describe("vouchers", function () {
    it("a voucher at or below what its channel already paid pays nothing, alone or in a multi-claim", async function () {
      const { preflight, payer, provider, other, token, domain } = await loadFixture(deployReplayFixture);
      const base = { payer: payer.address, provider: provider.address, token, model: MODEL_A, channel: ethers.ZeroHash };
      const v500 = await signedVoucher(payer, domain, { ...base, cumulativeAmount: 500n });
      const v300 = await signedVoucher(payer, domain, { ...base, cumulativeAmount: 300n });
      const v800 = await signedVoucher(payer, domain, { ...base, cumulativeAmount: 800n });
      await preflight.connect(provider).claimVoucher(v500);
      await expect(preflight.connect(provider).claimVoucher(v500))
        .to.be.revertedWithCustomError(preflight, "NothingToClaim")
        .withArgs(500n, 500n);
      await expect(preflight.connect(provider).claimVoucher(v300))
        .to.be.revertedWithCustomError(preflight, "NothingToClaim")
        .withArgs(300n, 500n);
      expect(await preflight.connect(provider).claimVouchers.staticCall(token, [v300, v500, v800, v800])).to.deep.equal([
        Reason.NothingToClaim,
        Reason.NothingToClaim,
        Reason.Settled,
        Reason.NothingToClaim,
      ]);
      await preflight.connect(provider).claimVouchers(token, [v300, v500, v800, v800]);
      expect(await preflight.claimedOf(payer.address, provider.address, token, ethers.ZeroHash)).to.equal(800n);
      expect(await preflight.earningsOf(provider.address, token)).to.equal(800n);
      // Another provider cannot claim this provider's voucher (the channel and the signature name the provider).
      await expect(preflight.connect(other).claimVoucher(v800)).to.be.revertedWithCustomError(preflight, "InvalidSigner");
    });
  });
});
