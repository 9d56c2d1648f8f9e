import { expectSettledRequest } from "../helpers/logs";
import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { deployPreflightFixture, USDC } from "../helpers/fixtures";
import { makeRequest, signedRequest, toSignedRequest, MODEL_A, MODEL_B } from "../helpers/requests";
import { makeGrant } from "../helpers/grants";
import { highS, unrecoverable, compact } from "../helpers/signatures";
import { hashRequest, signRequest, type Request } from "@preflight/sdk";
import type { Signer } from "ethers";

const PRICE = 1_000n;

async function deploySingleFixture() {
  const base = await deployPreflightFixture();
  const { preflight, payer, provider, delegate, other, domain } = base;
  const token = await base.usdc.getAddress();
  const wallet = await ethers.deployContract("ERC1271Wallet", [other.address]);
  await preflight.connect(payer).deposit(await wallet.getAddress(), token, 10n * USDC);
  await preflight
    .connect(payer)
    .grant(await makeGrant({ delegate: delegate.address, token, provider: provider.address, maxPrice: 5_000n, budget: 8_000n, models: [MODEL_A] }));
  /** A request from the payer to the provider; override any field. */
  const request = (fields: Partial<Request> = {}) =>
    makeRequest({ payer: payer.address, provider: provider.address, token, price: PRICE, ...fields });
  const sign = async (signer: Signer, fields: Partial<Request> = {}) => signedRequest(signer, domain, await request(fields));
  return { ...base, token, wallet, request, sign };
}

describe("Settlement: single requests", function () {
  describe("Success", function () {
    it("debits the payer, credits the provider, uses the nonce and emits RequestSettled", async function () {
      const { preflight, payer, provider, token, sign } = await loadFixture(deploySingleFixture);
      const before = await preflight.balanceOf(payer.address, token);
      await expectSettledRequest(preflight.connect(provider).settle(await sign(payer, { nonce: 7n })), payer.address, provider.address, token, 7n, PRICE);
      expect(await preflight.balanceOf(payer.address, token)).to.equal(before - PRICE);
      expect(await preflight.earningsOf(provider.address, token)).to.equal(PRICE);
      expect(await preflight.nonceBitmap(payer.address, token, 0n)).to.equal(1n << 7n);
    });

    it("accepts 65-byte and 64-byte (EIP-2098) signatures", async function () {
      const { preflight, provider, payer, domain, request } = await loadFixture(deploySingleFixture);
      const long = await signedRequest(payer, domain, await request({ nonce: 1n }));
      const short = await signedRequest(payer, domain, await request({ nonce: 2n }), true);
      expect(ethers.dataLength(long.signature as string)).to.equal(65);
      expect(ethers.dataLength(short.signature as string)).to.equal(64);
      await expect(preflight.connect(provider).settle(long)).to.emit(preflight, "RequestsSettled");
      await expect(preflight.connect(provider).settle(short)).to.emit(preflight, "RequestsSettled");
    });

    it("settles native-ETH requests", async function () {
      const { preflight, payer, provider, sign } = await loadFixture(deploySingleFixture);
      await preflight.connect(payer).depositETH(payer.address, { value: 5_000n });
      await preflight.connect(provider).settle(await sign(payer, { token: ethers.ZeroAddress }));
      expect(await preflight.balanceOf(payer.address, ethers.ZeroAddress)).to.equal(5_000n - PRICE);
      expect(await preflight.earningsOf(provider.address, ethers.ZeroAddress)).to.equal(PRICE);
    });

    it("settles at the deadline itself (inclusive)", async function () {
      const { preflight, payer, provider, sign } = await loadFixture(deploySingleFixture);
      const deadline = BigInt(await time.latest()) + 100n;
      const signed = await sign(payer, { deadline });
      await time.setNextBlockTimestamp(deadline);
      await expect(preflight.connect(provider).settle(signed)).to.emit(preflight, "RequestsSettled");
    });

    it("settles a delegate's request within its grant and records the spend", async function () {
      const { preflight, payer, provider, delegate, token, sign } = await loadFixture(deploySingleFixture);
      await expectSettledRequest(preflight.connect(provider).settle(await sign(delegate, { price: 5_000n })), payer.address, provider.address, token, 0n, 5_000n);
      expect((await preflight.grantOf(payer.address, token, delegate.address)).spent).to.equal(5_000n);
      expect(await preflight.earningsOf(provider.address, token)).to.equal(5_000n);
    });

    it("settles an ERC-1271 smart-account payer's request signed by its owner key", async function () {
      const { preflight, provider, other, wallet, token, domain, request } = await loadFixture(deploySingleFixture);
      const walletAddress = await wallet.getAddress();
      const signed = await signedRequest(other, domain, await request({ payer: walletAddress }));
      await expectSettledRequest(preflight.connect(provider).settle(signed), walletAddress, provider.address, token, 0n, PRICE);
      expect(await preflight.balanceOf(walletAddress, token)).to.equal(10n * USDC - PRICE);
    });
  });

  describe("Validations", function () {
    it("RequestExpired after the deadline", async function () {
      const { preflight, payer, provider, sign } = await loadFixture(deploySingleFixture);
      const deadline = BigInt(await time.latest()) + 100n;
      const signed = await sign(payer, { deadline });
      await time.setNextBlockTimestamp(deadline + 1n);
      await expect(preflight.connect(provider).settle(signed))
        .to.be.revertedWithCustomError(preflight, "RequestExpired")
        .withArgs(deadline);
    });

    it("InvalidSignatureLength for anything but 64 or 65 bytes", async function () {
      const { preflight, payer, provider, sign } = await loadFixture(deploySingleFixture);
      const signed = await sign(payer);
      const sig = signed.signature as string;
      for (const bad of ["0x", ethers.dataSlice(sig, 0, 63), ethers.concat([sig, "0x00"])]) {
        await expect(preflight.connect(provider).settle({ ...signed, signature: bad }))
          .to.be.revertedWithCustomError(preflight, "InvalidSignatureLength")
          .withArgs(ethers.dataLength(bad));
      }
    });

    it("MalleableSignature for the high-s twin of a valid signature", async function () {
      const { preflight, payer, provider, sign } = await loadFixture(deploySingleFixture);
      const signed = await sign(payer);
      await expect(
        preflight.connect(provider).settle({ ...signed, signature: highS(signed.signature as string) }),
      ).to.be.revertedWithCustomError(preflight, "MalleableSignature");
    });

    it("InvalidSigner(0) when ecrecover recovers nobody", async function () {
      const { preflight, payer, provider, sign } = await loadFixture(deploySingleFixture);
      const signed = await sign(payer);
      await expect(preflight.connect(provider).settle({ ...signed, signature: unrecoverable(signed.signature as string) }))
        .to.be.revertedWithCustomError(preflight, "InvalidSigner")
        .withArgs(ethers.ZeroAddress);
    });

    it("InvalidSigner(stranger) for a key that is neither the payer nor a delegate", async function () {
      const { preflight, provider, feeRecipient, sign } = await loadFixture(deploySingleFixture);
      await expect(preflight.connect(provider).settle(await sign(feeRecipient)))
        .to.be.revertedWithCustomError(preflight, "InvalidSigner")
        .withArgs(feeRecipient.address);
    });

    it("InvalidSigner when a signed field was changed, or another provider submits", async function () {
      const { preflight, payer, provider, other, domain, request } = await loadFixture(deploySingleFixture);
      const signedFields = await request();
      const signature = await signRequest(payer, domain, signedFields);
      const cheaper = { ...signedFields, price: PRICE + 1n };
      await expect(preflight.connect(provider).settle(toSignedRequest(cheaper, signature)))
        .to.be.revertedWithCustomError(preflight, "InvalidSigner")
        .withArgs(ethers.recoverAddress(hashRequest(domain, cheaper), signature));
      const asOther = { ...signedFields, provider: other.address };
      await expect(preflight.connect(other).settle(toSignedRequest(signedFields, signature)))
        .to.be.revertedWithCustomError(preflight, "InvalidSigner")
        .withArgs(ethers.recoverAddress(hashRequest(domain, asOther), signature));
    });

    it("InvalidSigner for a stranger's signature on behalf of an ERC-1271 payer", async function () {
      const { preflight, provider, payer, wallet, domain, request } = await loadFixture(deploySingleFixture);
      const signed = await signedRequest(payer, domain, await request({ payer: await wallet.getAddress() }));
      await expect(preflight.connect(provider).settle(signed))
        .to.be.revertedWithCustomError(preflight, "InvalidSigner")
        .withArgs(payer.address);
    });

    it("RevokedGrant once the payer revoked the delegate", async function () {
      const { preflight, payer, provider, delegate, token, sign } = await loadFixture(deploySingleFixture);
      await preflight.connect(payer).revoke(token, delegate.address);
      await expect(preflight.connect(provider).settle(await sign(delegate)))
        .to.be.revertedWithCustomError(preflight, "RevokedGrant")
        .withArgs(delegate.address);
    });

    it("GrantExpired from the expiry on", async function () {
      const { preflight, payer, provider, delegate, token, sign } = await loadFixture(deploySingleFixture);
      const { expiry } = await preflight.grantOf(payer.address, token, delegate.address);
      const signed = await sign(delegate, { deadline: expiry + 10n });
      await time.setNextBlockTimestamp(expiry);
      await expect(preflight.connect(provider).settle(signed))
        .to.be.revertedWithCustomError(preflight, "GrantExpired")
        .withArgs(delegate.address, expiry);
    });

    it("ProviderNotAllowed for a provider outside the grant", async function () {
      const { preflight, delegate, other, domain, request } = await loadFixture(deploySingleFixture);
      const signed = await signedRequest(delegate, domain, await request({ provider: other.address }));
      await expect(preflight.connect(other).settle(signed))
        .to.be.revertedWithCustomError(preflight, "ProviderNotAllowed")
        .withArgs(other.address);
    });

    it("ModelNotAllowed for a model outside the grant", async function () {
      const { preflight, provider, delegate, sign } = await loadFixture(deploySingleFixture);
      await expect(preflight.connect(provider).settle(await sign(delegate, { model: MODEL_B })))
        .to.be.revertedWithCustomError(preflight, "ModelNotAllowed")
        .withArgs(MODEL_B);
    });

    it("PriceAboveCap above the grant's price cap", async function () {
      const { preflight, provider, delegate, sign } = await loadFixture(deploySingleFixture);
      await expect(preflight.connect(provider).settle(await sign(delegate, { price: 5_001n })))
        .to.be.revertedWithCustomError(preflight, "PriceAboveCap")
        .withArgs(5_001n, 5_000n);
    });

    it("BudgetExceeded past the grant's budget", async function () {
      const { preflight, provider, delegate, sign } = await loadFixture(deploySingleFixture);
      await preflight.connect(provider).settle(await sign(delegate, { price: 5_000n, nonce: 0n }));
      await expect(preflight.connect(provider).settle(await sign(delegate, { price: 3_001n, nonce: 1n })))
        .to.be.revertedWithCustomError(preflight, "BudgetExceeded")
        .withArgs(8_001n, 8_000n);
      await preflight.connect(provider).settle(await sign(delegate, { price: 3_000n, nonce: 1n })); // exactly the budget
    });

    it("NonceAlreadyUsed for a settled nonce, whatever else the request says", async function () {
      const { preflight, payer, provider, sign } = await loadFixture(deploySingleFixture);
      await preflight.connect(provider).settle(await sign(payer, { nonce: 3n }));
      await expect(preflight.connect(provider).settle(await sign(payer, { nonce: 3n, model: MODEL_B, price: 1n })))
        .to.be.revertedWithCustomError(preflight, "NonceAlreadyUsed")
        .withArgs(payer.address, 3n);
    });

    it("InsufficientBalance when the payer's balance does not cover the price", async function () {
      const { preflight, payer, provider, token, sign } = await loadFixture(deploySingleFixture);
      const balance = await preflight.balanceOf(payer.address, token);
      await expect(preflight.connect(provider).settle(await sign(payer, { price: balance + 1n })))
        .to.be.revertedWithCustomError(preflight, "InsufficientBalance")
        .withArgs(balance, balance + 1n);
      await preflight.connect(provider).settle(await sign(payer, { price: balance })); // all of it is fine
      expect(await preflight.balanceOf(payer.address, token)).to.equal(0n);
    });

    it("a failed settlement changes nothing: the nonce stays free", async function () {
      const { preflight, payer, provider, token, sign } = await loadFixture(deploySingleFixture);
      const balance = await preflight.balanceOf(payer.address, token);
      await expect(preflight.connect(provider).settle(await sign(payer, { price: balance + 1n }))).to.be.revertedWithCustomError(
        preflight,
        "InsufficientBalance",
      );
      expect(await preflight.nonceBitmap(payer.address, token, 0n)).to.equal(0n);
      await expect(preflight.connect(provider).settle(await sign(payer))).to.emit(preflight, "RequestsSettled");
    });
  });

  describe("Signature forms", function () {
    it("a 64-byte signature carries the same authority as its 65-byte form (and the same nonce)", async function () {
      const { preflight, payer, provider, sign } = await loadFixture(deploySingleFixture);
      const signed = await sign(payer);
      await preflight.connect(provider).settle({ ...signed, signature: compact(signed.signature as string) });
      await expect(preflight.connect(provider).settle(signed))
        .to.be.revertedWithCustomError(preflight, "NonceAlreadyUsed")
        .withArgs(payer.address, 0n);
    });
  });
});
