/**
 * L2 data-availability sizes of a signed transaction, for the gas report's L2 columns:
 *
 * - OP-stack (Fjord): the L1 data size the chain charges for, estimated from the FastLZ-compressed
 *   size of the signed transaction: `max(100, (-42_585_600 + 836_500 * fastLzSize) / 1e6)` bytes.
 * - Arbitrum: the Brotli-compressed size of the signed transaction (what its batch poster estimate
 *   is based on), with node:zlib at the default quality.
 *
 * `fastLzLength` implements FastLZ level 1 as OP-stack's Fjord fee function counts it (a hash table of
 * 8,192 three-byte prefixes, matches within 8 KiB, literal runs of up to 32 bytes): it returns the
 * compressed length without producing the output.
 */
import zlib from "node:zlib";

const HASH_SIZE = 8192;
const MAX_DISTANCE = 0x1fff;

/** FastLZ (level 1) compressed length of `input`, in bytes. */
export function fastLzLength(input: Uint8Array): number {
  const table = new Uint32Array(HASH_SIZE);
  const read24 = (i: number): number => input[i]! | (input[i + 1]! << 8) | (input[i + 2]! << 16);
  // Multiplicative hash in 32-bit arithmetic (the product wraps modulo 2^32).
  const hash = (v: number): number => (Math.imul(2654435769 | 0, v) >>> 19) & 0x1fff;
  let size = 0;
  // A run of r literal bytes costs one control byte per 32 bytes, plus the bytes.
  const literals = (r: number): void => {
    size += 0x21 * Math.floor(r / 0x20);
    r %= 0x20;
    if (r !== 0) size += r + 1;
  };
  // A match of length l costs 3 bytes per 262 of length, then 2 (short) or 3 (long) bytes.
  const match = (l: number): void => {
    l -= 1;
    size += 3 * Math.floor(l / 262);
    size += l % 262 >= 6 ? 3 : 2;
  };
  // How far the match extends: compares input[p..] with input[q..] up to `end` for q; as the fee
  // function counts it, a mismatching byte is included in the count.
  const common = (p: number, q: number, end: number): number => {
    const e = end - q;
    for (let l = 0; l < e; l++) if (input[p + l] !== input[q + l]) return l + 1;
    return Math.max(e, 0);
  };
  const remember = (ip: number): number => {
    table[hash(read24(ip))] = ip;
    return ip + 1;
  };
  let anchor = 0;
  const limit = input.length < 13 ? 0 : input.length - 13;
  let ip = 2;
  while (ip < limit) {
    let ref = 0;
    let found = false;
    // Find the next position whose 3-byte prefix was seen within the window.
    for (;;) {
      const seq = read24(ip);
      const h = hash(seq);
      ref = table[h]!;
      table[h] = ip;
      const distance = ip - ref;
      if (ip >= limit) break;
      ip++;
      if (distance <= MAX_DISTANCE && seq === read24(ref)) {
        found = true;
        break;
      }
    }
    if (!found || ip >= limit) break;
    ip--;
    if (ip > anchor) literals(ip - anchor);
    const length = common(ref + 3, ip + 3, limit + 9);
    match(length);
    ip = remember(remember(ip + length));
    anchor = ip;
  }
  literals(input.length - anchor);
  return size;
}

/** The OP-stack Fjord estimate of a signed transaction's L1 data size, in bytes. */
export function fjordL1Size(signedTx: Uint8Array): number {
  const scaled = -42_585_600 + 836_500 * fastLzLength(signedTx);
  return Math.max(100, scaled / 1e6);
}

/** Brotli-compressed size of a signed transaction, in bytes. */
export function brotliSize(signedTx: Uint8Array): number {
  return zlib.brotliCompressSync(signedTx).length;
}
