import { expectSkippedRequest } from "../helpers/logs";
import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { deployPreflightFixture } from "../helpers/fixtures";
import { makeRequest, toSignedRequest, MODEL_B } from "../helpers/requests";
import { signRequest, signVoucher, hashRequest, type Request } from "@preflight/sdk";
import { compactHighS, highS, Reason, SECP256K1_N, toCompact, withV } from "../helpers/security";

async function deploySignaturesFixture() {
  const base = await deployPreflightFixture();
  const token = await base.usdc.getAddress();
  const request = await makeRequest({ payer: base.payer.address, provider: base.provider.address, token, nonce: 11n });
  const signature = await signRequest(base.payer, base.domain, request);
  return { ...base, token, request, signature };
}

describe("Security: signatures", function () {
  /** Asserts the single path reverts with `error(args)` and the batch path skips with `reason`, moving nothing. */
  async function refused(
    f: Awaited<ReturnType<typeof deploySignaturesFixture>>,
    request: Request,
    signature: string,
    error: string,
    reason: bigint,
    args?: unknown[],
  ) {
    const { preflight, provider, payer, token } = f;
    const item = toSignedRequest(request, signature);
    const balance = await preflight.balanceOf(payer.address, token);
    const single = expect(preflight.connect(provider).settle(item)).to.be.revertedWithCustomError(preflight, error);
    if (args) await single.withArgs(...args);
    else await single;
    await expectSkippedRequest(preflight.connect(provider).settleBatch(token, [item]), provider.address, 0n, request.payer, request.nonce, reason);
    expect(await preflight.balanceOf(payer.address, token)).to.equal(balance);
    expect(await preflight.nonceBitmap(payer.address, token, request.nonce >> 6n)).to.equal(0n);
  }

  it("accepts the canonical 65-byte and 64-byte forms of one signature (for one settlement only)", async function () {
    const f = await loadFixture(deploySignaturesFixture);
    const { preflight, provider, request, signature } = f;
    await expect(preflight.connect(provider).settle(toSignedRequest(request, toCompact(signature)))).to.emit(preflight, "RequestsSettled");
    await expect(preflight.connect(provider).settle(toSignedRequest(request, signature))).to.be.revertedWithCustomError(
      preflight,
      "NonceAlreadyUsed",
    );
  });

  it("rejects a high-s (malleable) signature, 65-byte and 64-byte", async function () {
    const f = await loadFixture(deploySignaturesFixture);
    // The twin recovers to the payer through the bare ecrecover precompile: only the s check stops it.
    const twin = highS(f.signature);
    const input = ethers.concat([
      hashRequest(f.domain, f.request),
      ethers.zeroPadValue(ethers.dataSlice(twin, 64, 65), 32),
      ethers.dataSlice(twin, 0, 64),
    ]);
    const output = await ethers.provider.call({ to: "0x0000000000000000000000000000000000000001", data: input });
    expect(ethers.getAddress(ethers.dataSlice(output, 12))).to.equal(f.payer.address);
    await refused(f, f.request, highS(f.signature), "MalleableSignature", Reason.SignatureMalleable);
    // The 64-byte form cannot even carry the twin when its s needs bit 255 (EIP-2098 keeps that bit for v):
    // the masked s then recovers to someone else. Any 64-byte s above n/2 is refused as malleable.
    const compactTwin = compactHighS(f.signature);
    const twinS = SECP256K1_N - BigInt(ethers.Signature.from(f.signature).s);
    if (twinS >= 1n << 255n) {
      await refused(f, f.request, compactTwin, "InvalidSigner", Reason.InvalidSigner);
    } else {
      await refused(f, f.request, compactTwin, "MalleableSignature", Reason.SignatureMalleable);
    }
    const aboveHalf = ethers.concat([f.signature.slice(0, 66), ethers.toBeHex(SECP256K1_N / 2n + 1n, 32)]);
    await refused(f, f.request, aboveHalf, "MalleableSignature", Reason.SignatureMalleable);
  });

  it("does not confuse 64- and 65-byte forms: a truncated 65-byte or a padded 64-byte signature fails", async function () {
    const f = await loadFixture(deploySignaturesFixture);
    // The first 64 bytes of (r, s, v) read as (r, vs): s keeps its top bit clear, so v becomes 27.
    const truncated = ethers.dataSlice(f.signature, 0, 64);
    const compact = toCompact(f.signature);
    const v = Number(ethers.dataSlice(f.signature, 64, 65));
    if (v === 27) {
      // Then the truncated form is the compact form: it is the same signature, and it is valid.
      expect(truncated).to.equal(compact);
    } else {
      const recovered = ethers.recoverAddress(hashRequest(f.domain, f.request), withV(f.signature, 27));
      await refused(f, f.request, truncated, "InvalidSigner", Reason.InvalidSigner, [recovered]);
    }
    // A 64-byte signature with a byte appended is read as (r, s = vs, v): when the parity bit is set that s
    // is above n/2 (malleable), else v = 0 recovers nobody and v = 28 someone else.
    const paritySet = BigInt(ethers.dataSlice(compact, 32, 64)) >> 255n === 1n;
    if (paritySet) {
      await refused(f, f.request, ethers.concat([compact, "0x00"]), "MalleableSignature", Reason.SignatureMalleable);
    } else {
      await refused(f, f.request, ethers.concat([compact, "0x00"]), "InvalidSigner", Reason.InvalidSigner, [ethers.ZeroAddress]);
      await refused(f, f.request, ethers.concat([compact, "0x1c"]), "InvalidSigner", Reason.InvalidSigner);
    }
  });

  it("rejects a wrong v (0, 1, 29, 255) with a zero recovery", async function () {
    const f = await loadFixture(deploySignaturesFixture);
    for (const v of [0, 1, 29, 255]) {
      await refused(f, f.request, withV(f.signature, v), "InvalidSigner", Reason.InvalidSigner, [ethers.ZeroAddress]);
    }
    // The other valid v recovers to another key.
    const flipped = withV(f.signature, Number(ethers.dataSlice(f.signature, 64, 65)) === 27 ? 28 : 27);
    const recovered = ethers.recoverAddress(hashRequest(f.domain, f.request), flipped);
    await refused(f, f.request, flipped, "InvalidSigner", Reason.InvalidSigner, [recovered]);
  });

  it("never treats a zero recovery as a match, even for payer address(0)", async function () {
    const f = await loadFixture(deploySignaturesFixture);
    const { preflight, provider, token } = f;
    const zeroRS = ethers.concat([ethers.ZeroHash, ethers.ZeroHash, "0x1b"]);
    await refused(f, f.request, zeroRS, "InvalidSigner", Reason.InvalidSigner, [ethers.ZeroAddress]);
    const noPayer = { ...f.request, payer: ethers.ZeroAddress };
    for (const signature of [zeroRS, withV(f.signature, 0), ethers.concat([ethers.ZeroHash, ethers.ZeroHash])]) {
      await expect(preflight.connect(provider).settle(toSignedRequest(noPayer, signature)))
        .to.be.revertedWithCustomError(preflight, "InvalidSigner")
        .withArgs(ethers.ZeroAddress);
      expect(await preflight.connect(provider).settleBatch.staticCall(token, [toSignedRequest(noPayer, signature)])).to.deep.equal([
        Reason.InvalidSigner,
      ]);
    }
    await expect(
      preflight.connect(provider).claimVoucher({
        payer: ethers.ZeroAddress,
        token,
        model: MODEL_B,
        channel: ethers.ZeroHash,
        cumulativeAmount: 1n,
        signature: zeroRS,
      }),
    ).to.be.revertedWithCustomError(preflight, "InvalidSigner");
  });

  it("rejects a valid signature of another payer", async function () {
    const f = await loadFixture(deploySignaturesFixture);
    const { preflight, usdc, other, token } = f;
    // `other` has funds too: its signature still cannot spend the payer's escrow.
    await usdc.mint(other.address, 10n ** 9n);
    await usdc.connect(other).approve(await preflight.getAddress(), ethers.MaxUint256);
    await preflight.connect(other).deposit(other.address, token, 10n ** 9n);
    const byOther = await signRequest(other, f.domain, f.request);
    await refused(f, f.request, byOther, "InvalidSigner", Reason.InvalidSigner, [other.address]);
  });

  it("rejects a signature over another provider, model, price, token, nonce, deadline or input", async function () {
    const f = await loadFixture(deploySignaturesFixture);
    const { request, signature, other } = f;
    const altered: Request[] = [
      { ...request, model: MODEL_B },
      { ...request, price: request.price + 1n },
      { ...request, price: request.price - 1n },
      { ...request, nonce: request.nonce + 1n },
      { ...request, deadline: request.deadline + 1n },
      { ...request, inputHash: ethers.id("another prompt") },
    ];
    for (const changed of altered) {
      const recovered = ethers.recoverAddress(hashRequest(f.domain, changed), signature);
      await refused(f, changed, signature, "InvalidSigner", Reason.InvalidSigner, [recovered]);
    }
    // Provider: the contract hashes msg.sender as the provider.
    const recovered = ethers.recoverAddress(hashRequest(f.domain, { ...request, provider: other.address }), signature);
    await expect(f.preflight.connect(other).settle(toSignedRequest(request, signature)))
      .to.be.revertedWithCustomError(f.preflight, "InvalidSigner")
      .withArgs(recovered);
    // Token: signed for USDC, presented as ETH (the payer holds none) or under a batch for another token.
    const asEth = { ...request, token: ethers.ZeroAddress };
    await expect(f.preflight.connect(f.provider).settle(toSignedRequest(asEth, signature))).to.be.revertedWithCustomError(
      f.preflight,
      "InvalidSigner",
    );
    expect(
      await f.preflight.connect(f.provider).settleBatch.staticCall(ethers.ZeroAddress, [toSignedRequest(request, signature)]),
    ).to.deep.equal([Reason.TokenMismatch]);
  });

  it("rejects truncated and over-long signatures with their length", async function () {
    const f = await loadFixture(deploySignaturesFixture);
    const lengths = [0, 1, 32, 63, 66, 96, 130];
    for (const length of lengths) {
      const bytes = ethers.getBytes(ethers.concat([f.signature, f.signature, f.signature])).slice(0, length);
      await refused(f, f.request, ethers.hexlify(bytes), "InvalidSignatureLength", Reason.SignatureLength, [BigInt(length)]);
    }
    // A voucher too.
    const { preflight, provider, payer, token, domain } = f;
    const voucher = { payer: payer.address, token, model: MODEL_B, channel: ethers.ZeroHash, cumulativeAmount: 5n };
    const good = await signVoucher(payer, domain, { ...voucher, provider: provider.address });
    await expect(preflight.connect(provider).claimVoucher({ ...voucher, signature: ethers.concat([good, "0x00"]) }))
      .to.be.revertedWithCustomError(preflight, "InvalidSignatureLength")
      .withArgs(66n);
    expect(
      await preflight.connect(provider).claimVouchers.staticCall(token, [{ ...voucher, signature: ethers.dataSlice(good, 0, 60) }]),
    ).to.deep.equal([Reason.SignatureLength]);
  });
});
