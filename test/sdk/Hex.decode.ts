/**
 * `hexToBytes` decodes and validates in one pass over the character codes (settlement encodes ~100 KB
 * of hex per batch): the same bytes as a byte-by-byte parse, and the same refusals.
 */
import { expect } from "chai";
import { hexToBytes } from "@preflight/sdk";

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
});
