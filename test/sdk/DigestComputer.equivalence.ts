import { expect } from "chai";
import { ethers } from "hardhat";
import { Wallet } from "ethers";
import { DigestComputer, cryptoBackend } from "@preflight/provider";
import { hashRequest, hashVoucher } from "@preflight/sdk";
import { recoverSignature, recoverers, publicKeyToAddress, SignatureStatus, toHex } from "../../packages/provider/src/crypto";
import { Random } from "../helpers/random";

const rng = new Random(42);
const addr = (): string => ethers.getAddress(ethers.toBeHex(rng.big(0n, (1n << 53n) - 1n) * rng.big(1n, 1n << 50n), 20));
const word = (): string => ethers.toBeHex(rng.big(0n, (1n << 53n) - 1n) << rng.big(0n, 200n), 32);

describe("DigestComputer and recovery", function () {
  const domain = { chainId: 31337n, verifyingContract: "0x5FbDB2315678afecb367f032d93F642f64180aa3" };
  const digests = new DigestComputer(domain);

  it("computes the same request and voucher digests as ethers' TypedDataEncoder", function () {
    for (let i = 0; i < 300; i++) {
      const request = { payer: addr(), provider: addr(), token: addr(), model: word(), price: rng.big(0n, (1n << 53n) - 1n) << 40n, nonce: BigInt(word()), deadline: BigInt(word()), inputHash: word() };
      expect("0x" + toHex(digests.request(request, request.provider))).to.equal(hashRequest(domain, request));
      const voucher = { payer: addr(), provider: addr(), token: addr(), model: word(), channel: word(), cumulativeAmount: rng.big(0n, (1n << 53n) - 1n) << 70n };
      expect("0x" + toHex(digests.voucher(voucher, voucher.provider))).to.equal(hashVoucher(domain, voucher));
    }
  });

  it("recovers like ecrecover with libsecp256k1 and with the pure-JS fallback", function () {
    expect(cryptoBackend().recover).to.equal("libsecp256k1");
    for (let i = 0; i < 50; i++) {
      const wallet = new Wallet(ethers.toBeHex(rng.big(1n, 1n << 52n) + 1000n, 32));
      const digest = ethers.getBytes(word());
      const sig = wallet.signingKey.sign(digest);
      for (const serialized of [sig.serialized, sig.compactSerialized]) {
        const r = recoverSignature(digest, ethers.getBytes(serialized));
        expect(r.status).to.equal(SignatureStatus.Ok);
        expect(publicKeyToAddress(r.publicKey!)).to.equal(wallet.address.toLowerCase());
      }
      const rs = ethers.getBytes(ethers.concat([sig.r, sig.s]));
      const native = recoverers.native!(rs, sig.yParity, digest)!;
      expect(toHex(recoverers.noble(rs, sig.yParity, digest)!)).to.equal(toHex(native));
    }
  });

  it("classifies malformed signatures as the contract does", function () {
    const digest = ethers.getBytes(word());
    const sig = new Wallet(ethers.toBeHex(7777n, 32)).signingKey.sign(digest);
    const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
    const status = (hex: string): SignatureStatus => recoverSignature(digest, ethers.getBytes(hex)).status;
    expect(status(ethers.concat([sig.serialized, "0x00"]))).to.equal(SignatureStatus.BadLength);
    expect(status(ethers.concat([sig.r, ethers.toBeHex(n - BigInt(sig.s), 32), "0x1b"]))).to.equal(SignatureStatus.Malleable);
    expect(status(ethers.concat([sig.r, sig.s, "0x1d"]))).to.equal(SignatureStatus.Unrecoverable);
    expect(status(ethers.concat([sig.r, sig.s, "0x01"]))).to.equal(SignatureStatus.Unrecoverable);
    expect(status(ethers.concat([ethers.ZeroHash, sig.s, "0x1b"]))).to.equal(SignatureStatus.Unrecoverable);
    expect(status(ethers.concat([ethers.toBeHex(n, 32), sig.s, "0x1b"]))).to.equal(SignatureStatus.Unrecoverable);
  });
});
