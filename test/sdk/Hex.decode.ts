/**
 * `hexToBytes` decodes and validates in one pass over the character codes (settlement encodes ~100 KB
 * of hex per batch): the same bytes as a byte-by-byte parse, and the same refusals. `bytesToHex`
 * encodes long values as ASCII bytes decoded at once: the same text as digit-by-digit concatenation,
 * on both sides of its length threshold. `checksumAddress` remembers its answers: a remembered
 * address gives the same answer, and a refused one is refused every time.
 */
import { expect } from "chai";
import { ethers } from "ethers";
import { bytesToHex, checksumAddress, hexToBytes } from "@preflight/sdk";

describe("SDK hex decoding", function () {
  it("decodes every byte value, in either case", function () {
    const all = Array.from({ length: 256 }, (_, i) => i);
    const hex = "0x" + all.map((b) => b.toString(16).padStart(2, "0")).join("");
    expect([...hexToBytes(hex)]).to.deep.equal(all);
    expect([...hexToBytes(hex.toUpperCase().replace("0X", "0x"))]).to.deep.equal(all);
    expect(hexToBytes("0x")).to.have.length(0);
  });

  it("refuses what is not 0x-prefixed hex of whole bytes", function () {
    for (const bad of ["", "00", "0X00", "0x0", "0xabc", "0x0g", "0xg0", "0x à", "0x\u0130\u0130", "0x 0", "0x00\n"]) {
      expect(() => hexToBytes(bad, "field"), JSON.stringify(bad)).to.throw(/field must be 0x-prefixed hex of whole bytes/);
    }
  });

  it("encodes every byte value at every length around the long-value threshold, and 100 KB", function () {
    const digits = (bytes: Uint8Array) => "0x" + [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
    for (const n of [0, 1, 31, 32, 63, 64, 127, 128, 129, 255, 256, 257, 100_000]) {
      const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 151 + 7) & 0xff);
      expect(bytesToHex(bytes), `${n} bytes`).to.equal(digits(bytes));
    }
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    expect(bytesToHex(all)).to.equal(ethers.hexlify(all));
    expect(hexToBytes(bytesToHex(all))).to.deep.equal(all);
  });

  it("checksums as EIP-55 says on first and later calls, and refuses a bad checksum every time", function () {
    for (let i = 0; i < 50; i++) {
      const address = ethers.Wallet.createRandom().address;
      for (const input of [address.toLowerCase(), "0x" + address.slice(2).toUpperCase(), address]) {
        expect(checksumAddress(input)).to.equal(address);
        expect(checksumAddress(input)).to.equal(address); // remembered
      }
    }
    const good = ethers.Wallet.createRandom().address;
    const letter = [...good.slice(2)].findIndex((c) => /[a-fA-F]/.test(c)) + 2;
    const flipped = good.slice(0, letter) + (good[letter] === good[letter]!.toLowerCase() ? good[letter]!.toUpperCase() : good[letter]!.toLowerCase()) + good.slice(letter + 1);
    expect(checksumAddress(good)).to.equal(good);
    for (let i = 0; i < 2; i++) expect(() => checksumAddress(flipped, "payer")).to.throw(/payer .* has a wrong EIP-55 checksum/);
    for (let i = 0; i < 2; i++) expect(() => checksumAddress("0x1234", "payer")).to.throw(/payer must be a 20-byte/);
  });
});
