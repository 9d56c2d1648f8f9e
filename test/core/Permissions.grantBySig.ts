import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { deployPreflightFixture } from "../helpers/fixtures";
import { makeRequest, signedRequest } from "../helpers/requests";
import { makeGrant, signedGrant } from "../helpers/grants";
import { highS, unrecoverable, compact } from "../helpers/signatures";
import { hashGrant, type GrantTerms } from "@preflight/sdk";

async function deployGrantBySigFixture() {
  const base = await deployPreflightFixture();
  const token = await base.usdc.getAddress();
  const terms = await makeGrant({ delegate: base.delegate.address, token, maxPrice: 2_000n, budget: 10_000n });
  const deadline = BigInt(await time.latest()) + 3600n;
  const signature = await signedGrant(base.payer, base.domain, terms, 0n, deadline);
  const wallet = await ethers.deployContract("ERC1271Wallet", [base.other.address]);
  return { ...base, token, terms, deadline, signature, wallet };
}

describe("InferencePermissions: grantBySig", function () {
  describe("Success", function () {
    it("applies a grant the payer signed, submitted by anyone", async function () {
      const { preflight, payer, provider, delegate, other, domain, token, terms, deadline, signature } =
        await loadFixture(deployGrantBySigFixture);
      await expect(preflight.connect(other).grantBySig(payer.address, terms, deadline, signature))
        .to.emit(preflight, "GrantSet")
        .withArgs(payer.address, token, delegate.address, 1n, terms.provider, terms.maxPrice, terms.budget, 0n, terms.expiry, []);
      const g = await preflight.grantOf(payer.address, token, delegate.address);
      expect([g.maxPrice, g.budget, g.epoch, g.expiry]).to.deep.equal([2_000n, 10_000n, 1n, terms.expiry]);
      // The delegate can now spend within it.
      const request = await makeRequest({ payer: payer.address, provider: provider.address, token });
      await expect(preflight.connect(provider).settle(await signedRequest(delegate, domain, request))).to.emit(preflight, "RequestsSettled");
    });

    it("accepts a 64-byte signature and a deadline equal to the block time", async function () {
      const { preflight, payer, other, domain, terms } = await loadFixture(deployGrantBySigFixture);
      const deadline = BigInt(await time.latest()) + 10n;
      const signature = compact(await signedGrant(payer, domain, terms, 0n, deadline));
      await time.setNextBlockTimestamp(deadline);
      await expect(preflight.connect(other).grantBySig(payer.address, terms, deadline, signature)).to.emit(
        preflight,
        "GrantSet",
      );
    });

    it("accepts an ERC-1271 smart-account payer's signature", async function () {
      const { preflight, other, payer, domain, token, wallet, deadline } = await loadFixture(deployGrantBySigFixture);
      const walletAddress = await wallet.getAddress();
      const terms = await makeGrant({ delegate: payer.address, token });
      const signature = await signedGrant(other, domain, terms, 0n, deadline, walletAddress); // signed by the owner key
      await expect(preflight.connect(payer).grantBySig(walletAddress, terms, deadline, signature))
        .to.emit(preflight, "GrantSet")
        .withArgs(walletAddress, token, payer.address, 1n, terms.provider, terms.maxPrice, terms.budget, 0n, terms.expiry, []);
      // ... and refuses one from a key that is not the wallet's owner.
      const forged = await signedGrant(payer, domain, terms, 1n, deadline, walletAddress);
      await expect(preflight.connect(payer).grantBySig(walletAddress, terms, deadline, forged))
        .to.be.revertedWithCustomError(preflight, "InvalidSigner")
        .withArgs(payer.address);
    });
  });

  describe("Validations", function () {
    it("reverts with SignatureExpired after the deadline", async function () {
      const { preflight, payer, other, terms, deadline, signature } = await loadFixture(deployGrantBySigFixture);
      await time.setNextBlockTimestamp(deadline + 1n);
      await expect(preflight.connect(other).grantBySig(payer.address, terms, deadline, signature))
        .to.be.revertedWithCustomError(preflight, "SignatureExpired")
        .withArgs(deadline);
    });

    it("reverts with InvalidSigner for a signature by anyone but the payer", async function () {
      const { preflight, payer, delegate, other, domain, terms, deadline } = await loadFixture(deployGrantBySigFixture);
      const byDelegate = await signedGrant(delegate, domain, terms, 0n, deadline, payer.address);
      await expect(preflight.connect(other).grantBySig(payer.address, terms, deadline, byDelegate))
        .to.be.revertedWithCustomError(preflight, "InvalidSigner")
        .withArgs(delegate.address);
    });

    it("reverts with InvalidSigner when the submitted terms differ from the signed ones", async function () {
      const { preflight, payer, other, domain, terms, deadline, signature } = await loadFixture(deployGrantBySigFixture);
      const wider: GrantTerms = { ...terms, budget: terms.budget * 100n };
      const recovered = ethers.recoverAddress(hashGrant(domain, { ...wider, payer: payer.address, epoch: 0n, deadline }), signature);
      await expect(preflight.connect(other).grantBySig(payer.address, wider, deadline, signature))
        .to.be.revertedWithCustomError(preflight, "InvalidSigner")
        .withArgs(recovered);
    });

    it("reverts with InvalidSigner(0) when nothing can be recovered, and for the zero payer", async function () {
      const { preflight, payer, other, terms, deadline, signature } = await loadFixture(deployGrantBySigFixture);
      await expect(preflight.connect(other).grantBySig(payer.address, terms, deadline, unrecoverable(signature)))
        .to.be.revertedWithCustomError(preflight, "InvalidSigner")
        .withArgs(ethers.ZeroAddress);
      await expect(preflight.connect(other).grantBySig(ethers.ZeroAddress, terms, deadline, unrecoverable(signature)))
        .to.be.revertedWithCustomError(preflight, "InvalidSigner")
        .withArgs(ethers.ZeroAddress);
    });

    it("reverts with MalleableSignature and InvalidSignatureLength", async function () {
      const { preflight, payer, other, terms, deadline, signature } = await loadFixture(deployGrantBySigFixture);
      await expect(
        preflight.connect(other).grantBySig(payer.address, terms, deadline, highS(signature)),
      ).to.be.revertedWithCustomError(preflight, "MalleableSignature");
      await expect(preflight.connect(other).grantBySig(payer.address, terms, deadline, ethers.dataSlice(signature, 0, 63)))
        .to.be.revertedWithCustomError(preflight, "InvalidSignatureLength")
        .withArgs(63n);
    });

    it("checks the signed terms like a direct grant (GrantExpiryInPast, ZeroAddress)", async function () {
      const { preflight, payer, other, domain, token, deadline } = await loadFixture(deployGrantBySigFixture);
      const stale = await makeGrant({ delegate: other.address, token, expiry: 1n });
      await expect(
        preflight.connect(other).grantBySig(payer.address, stale, deadline, await signedGrant(payer, domain, stale, 0n, deadline)),
      )
        .to.be.revertedWithCustomError(preflight, "GrantExpiryInPast")
        .withArgs(1n);
      const noDelegate = await makeGrant({ delegate: ethers.ZeroAddress, token });
      await expect(
        preflight
          .connect(other)
          .grantBySig(payer.address, noDelegate, deadline, await signedGrant(payer, domain, noDelegate, 0n, deadline)),
      ).to.be.revertedWithCustomError(preflight, "ZeroAddress");
    });
  });

  describe("Epochs: a signed grant works once and dies with a revoke", function () {
    // The epoch is not passed in: it is read from storage and hashed, so a signature for another epoch
    // recovers to some other address and is refused as InvalidSigner(recovered).
    it("cannot be replayed after it was applied", async function () {
      const { preflight, payer, other, domain, terms, deadline, signature } = await loadFixture(deployGrantBySigFixture);
      await preflight.connect(other).grantBySig(payer.address, terms, deadline, signature);
      const recovered = ethers.recoverAddress(hashGrant(domain, { ...terms, payer: payer.address, epoch: 1n, deadline }), signature);
      await expect(preflight.connect(other).grantBySig(payer.address, terms, deadline, signature))
        .to.be.revertedWithCustomError(preflight, "InvalidSigner")
        .withArgs(recovered);
    });

    it("cannot be applied after a revoke, nor can it undo the revoke later", async function () {
      const { preflight, payer, other, domain, token, delegate, terms, deadline, signature } =
        await loadFixture(deployGrantBySigFixture);
      await preflight.connect(payer).revoke(token, delegate.address);
      const recovered = ethers.recoverAddress(hashGrant(domain, { ...terms, payer: payer.address, epoch: 1n, deadline }), signature);
      await expect(preflight.connect(other).grantBySig(payer.address, terms, deadline, signature))
        .to.be.revertedWithCustomError(preflight, "InvalidSigner")
        .withArgs(recovered);
      // A signature made for the current epoch does work.
      const fresh = await signedGrant(payer, domain, terms, 1n, deadline);
      await expect(preflight.connect(other).grantBySig(payer.address, terms, deadline, fresh)).to.emit(preflight, "GrantSet");
    });
  });
});
