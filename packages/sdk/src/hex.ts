/**
 * Hex, byte and address helpers over `@noble/hashes` only: the client package needs neither ethers
 * nor viem (nor Node's `Buffer`) to hash and encode what a payer signs.
 */
import { keccak_256 } from "@noble/hashes/sha3";
import { PreflightSdkError } from "./errors";

/** A 0x-prefixed hex string. */
export type Hex = `0x${string}`;

const HEX_BODY = /^[0-9a-fA-F]*$/;

/** True when `value` is a 0x-prefixed hex string of whole bytes (`length` bytes when given). */
export function isHexBytes(value: unknown, length?: number): value is Hex {
  if (typeof value !== "string" || !value.startsWith("0x") || value.length % 2 !== 0 || !HEX_BODY.test(value.slice(2))) return false;
  return length === undefined || value.length === 2 + 2 * length;
}

/** Each ASCII character's value as a hex digit, or -1. */
const NIBBLE = (() => {
  const table = new Int8Array(128).fill(-1);
  for (let i = 0; i < 16; i++) {
    table["0123456789abcdef".charCodeAt(i)] = i;
    table["0123456789ABCDEF".charCodeAt(i)] = i;
  }
  return table;
})();

/**
 * The bytes of a 0x-prefixed hex string; throws `INVALID_HEX` for anything else. Validated and
 * decoded in one pass over the character codes (a settlement batch decodes ~100 KB of hex).
 */
export function hexToBytes(value: string, what = "value"): Uint8Array {
  if (typeof value === "string" && value.length % 2 === 0 && value.startsWith("0x")) {
    const out = new Uint8Array((value.length - 2) / 2);
    let i = 0;
    for (let j = 2; i < out.length; i++, j += 2) {
      const a = value.charCodeAt(j);
      const b = value.charCodeAt(j + 1);
      const hi = a < 128 ? NIBBLE[a]! : -1;
      const lo = b < 128 ? NIBBLE[b]! : -1;
      if (hi < 0 || lo < 0) break;
      out[i] = (hi << 4) | lo;
    }
    if (i === out.length) return out;
  }
  throw new PreflightSdkError("INVALID_HEX", `${what} must be 0x-prefixed hex of whole bytes, got ${JSON.stringify(value)}`);
}

const HEX_DIGITS = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
/** Each byte's two hex digits as ASCII codes (high digit first). */
const HEX_ASCII = (() => {
  const table = new Uint8Array(512);
  for (let i = 0; i < 256; i++) {
    table[2 * i] = HEX_DIGITS[i]!.charCodeAt(0);
    table[2 * i + 1] = HEX_DIGITS[i]!.charCodeAt(1);
  }
  return table;
})();
const ASCII = new TextDecoder();

/** Lower-case 0x-prefixed hex of `bytes`. */
export function bytesToHex(bytes: Uint8Array): Hex {
  // Short values by concatenation; long ones (a settlement's calldata is ~100 KB of hex) as ASCII
  // bytes decoded at once, which is several times faster than a string built two digits at a time.
  if (bytes.length < 128) {
    let out = "0x";
    for (const b of bytes) out += HEX_DIGITS[b];
    return out as Hex;
  }
  const ascii = new Uint8Array(2 + 2 * bytes.length);
  ascii[0] = 0x30; // "0"
  ascii[1] = 0x78; // "x"
  for (let i = 0, j = 2; i < bytes.length; i++, j += 2) {
    const b = bytes[i]! << 1;
    ascii[j] = HEX_ASCII[b]!;
    ascii[j + 1] = HEX_ASCII[b + 1]!;
  }
  return ASCII.decode(ascii) as Hex;
}

/** The concatenation of byte arrays. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** `value` as `size` big-endian bytes; throws `INVALID_AMOUNT` when it does not fit. */
export function bigintToBytes(value: bigint, size: number, what = "value"): Uint8Array {
  if (value < 0n || value >= 1n << BigInt(8 * size)) throw new PreflightSdkError("INVALID_AMOUNT", `${what} ${value} does not fit ${size} bytes`);
  const out = new Uint8Array(size);
  let v = value;
  for (let i = size - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/** The unsigned big-endian integer of `bytes`. */
export function bytesToBigint(bytes: Uint8Array): bigint {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}

/** keccak-256 of `data` (bytes, or the UTF-8 bytes of a string). */
export function keccak256(data: Uint8Array | string): Hex {
  return bytesToHex(keccak_256(typeof data === "string" ? new TextEncoder().encode(data) : data));
}

/**
 * `checksumAddress`'s answers for valid inputs, by input string. Each costs a keccak in JavaScript
 * (about 20 µs), and the same addresses recur: packing or decoding a settlement of 500 payers
 * checksummed each one, about 10 ms of a gateway's event loop per batch. Bounded (cleared when full).
 */
const CHECKSUMMED = new Map<string, Hex>();
const CHECKSUMMED_LIMIT = 16_384;

/**
 * The EIP-55 checksummed form of an address. Mixed-case input must already carry the right checksum
 * (a typo in a mixed-case address is refused, as wallets do); all-lower or all-upper input is accepted.
 * @example
 * checksumAddress("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"); // "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
 */
export function checksumAddress(address: string, what = "address"): Hex {
  const known = CHECKSUMMED.get(address);
  if (known !== undefined) return known;
  if (!isHexBytes(address, 20)) throw new PreflightSdkError("INVALID_ADDRESS", `${what} must be a 20-byte 0x-prefixed hex address, got ${JSON.stringify(address)}`);
  const lower = address.slice(2).toLowerCase();
  const hash = keccak_256(new TextEncoder().encode(lower));
  let out = "0x";
  for (let i = 0; i < 40; i++) {
    const nibble = (hash[i >> 1]! >> (i % 2 === 0 ? 4 : 0)) & 0xf;
    out += nibble >= 8 ? lower[i]!.toUpperCase() : lower[i];
  }
  const body = address.slice(2);
  const mixed = body !== body.toLowerCase() && body !== body.toUpperCase();
  if (mixed && out !== address) throw new PreflightSdkError("INVALID_ADDRESS", `${what} ${address} has a wrong EIP-55 checksum (expected ${out})`);
  if (CHECKSUMMED.size >= CHECKSUMMED_LIMIT) CHECKSUMMED.clear();
  CHECKSUMMED.set(address, out as Hex);
  return out as Hex;
}
