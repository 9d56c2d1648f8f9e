/**
 * Fast EIP-712 digests for the verifier's hot path: the same bytes `TypedDataEncoder` hashes, laid
 * out directly (no ABI coder, no hex round trips). A test checks them equal to `hashRequest` /
 * `hashVoucher` (built on ethers' `TypedDataEncoder`) on random inputs.
 */
import { id } from "ethers";
import { encodeType, domainSeparator, REQUEST_TYPES, VOUCHER_TYPES, type PreflightDomain } from "@preflight/sdk";
import { hexToBytes, keccak256Bytes, writeHexWord, writeWord } from "./crypto";

/** Computes request and voucher digests for one deployment (its domain separator is precomputed). */
export class DigestComputer {
  private readonly requestTypehash: Uint8Array;
  private readonly voucherTypehash: Uint8Array;
  private readonly prefix: Uint8Array;
  private readonly requestBuf = Buffer.alloc(9 * 32);
  private readonly voucherBuf = Buffer.alloc(7 * 32);

  /**
   * @example
   * const digests = new DigestComputer({ chainId: 31337n, verifyingContract: preflightAddress });
   */
  constructor(domain: PreflightDomain) {
    this.requestTypehash = hexToBytes(id(encodeType(REQUEST_TYPES, "Request")));
    this.voucherTypehash = hexToBytes(id(encodeType(VOUCHER_TYPES, "Voucher")));
    this.prefix = new Uint8Array(66);
    this.prefix[0] = 0x19;
    this.prefix[1] = 0x01;
    this.prefix.set(hexToBytes(domainSeparator(domain)), 2);
    this.requestBuf.set(this.requestTypehash, 0);
    this.voucherBuf.set(this.voucherTypehash, 0);
  }

  /**
   * The digest a request's signer signed, as addressed to `provider` (all hex lowercase or checksummed).
   * @example
   * const digest = digests.request(signed, providerAddress); // Uint8Array(32)
   */
  request(
    r: { payer: string; token: string; model: string; price: bigint; nonce: bigint; deadline: bigint; inputHash: string },
    provider: string,
  ): Uint8Array {
    const b = this.requestBuf;
    writeHexWord(b, 32, r.payer, 20);
    writeHexWord(b, 64, provider, 20);
    writeHexWord(b, 96, r.token, 20);
    writeHexWord(b, 128, r.model, 32);
    writeWord(b, 160, r.price);
    writeWord(b, 192, r.nonce);
    writeWord(b, 224, r.deadline);
    writeHexWord(b, 256, r.inputHash, 32);
    return this.finish(keccak256Bytes(b));
  }

  /**
   * The digest a voucher's signer signed, as addressed to `provider`.
   * @example
   * const digest = digests.voucher(signedVoucher, providerAddress);
   */
  voucher(
    v: { payer: string; token: string; model: string; channel: string; cumulativeAmount: bigint },
    provider: string,
  ): Uint8Array {
    const b = this.voucherBuf;
    writeHexWord(b, 32, v.payer, 20);
    writeHexWord(b, 64, provider, 20);
    writeHexWord(b, 96, v.token, 20);
    writeHexWord(b, 128, v.model, 32);
    writeHexWord(b, 160, v.channel, 32);
    writeWord(b, 192, v.cumulativeAmount);
    return this.finish(keccak256Bytes(b));
  }

  private finish(structHash: Uint8Array): Uint8Array {
    this.prefix.set(structHash, 34);
    return keccak256Bytes(this.prefix);
  }
}
