/**
 * The hot-path primitives of the preflight verifier: keccak-256 and secp256k1 public-key recovery
 * with exactly the semantics of the EVM's `ecrecover` precompile. Native bindings are used when
 * they load (libsecp256k1 through the `secp256k1` package, keccak through the `keccak` package that
 * Hardhat installs), with pure-JS fallbacks (`@noble/curves`, `@noble/hashes`) otherwise.
 */
import { secp256k1 as nobleSecp } from "@noble/curves/secp256k1";
import { keccak_256 as nobleKeccak } from "@noble/hashes/sha3";
import { PreflightSdkError } from "@preflight/sdk";

const ZEROS = "0".repeat(64);

/** Which implementation backs each primitive in this process. */
export interface CryptoBackend {
  recover: "libsecp256k1" | "noble";
  keccak: "native" | "noble";
}

type RecoverFn = (rs: Uint8Array, recId: number, digest: Uint8Array) => Uint8Array | undefined;
type KeccakFn = (data: Uint8Array) => Uint8Array;

interface NativeSecp {
  ecdsaRecover(sig: Uint8Array, recid: number, msg32: Uint8Array, compressed: boolean): Uint8Array;
}
interface NativeKeccakHash {
  update(data: Buffer): NativeKeccakHash;
  digest(): Buffer;
}
type NativeKeccakFactory = (algorithm: "keccak256") => NativeKeccakHash;

const N = nobleSecp.CURVE.n;

function nobleRecover(rs: Uint8Array, recId: number, digest: Uint8Array): Uint8Array | undefined {
  try {
    const r = bytesToBigInt(rs, 0, 32);
    const s = bytesToBigInt(rs, 32, 64);
    return new nobleSecp.Signature(r, s).addRecoveryBit(recId).recoverPublicKey(digest).toRawBytes(false);
  } catch {
    return undefined;
  }
}

function loadNativeRecover(): RecoverFn | undefined {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const native = require("secp256k1") as NativeSecp;
    const recover: RecoverFn = (rs, recId, digest) => {
      try {
        return native.ecdsaRecover(rs, recId, digest, false);
      } catch {
        return undefined;
      }
    };
    // Self-test: the binding must agree with the pure-JS path before it is trusted.
    const key = nobleSecp.utils.randomPrivateKey();
    const msg = nobleKeccak(key);
    const sig = nobleSecp.sign(msg, key);
    const expected = nobleSecp.getPublicKey(key, false);
    const got = recover(sig.toCompactRawBytes(), sig.recovery, msg);
    if (got === undefined || !equalBytes(got, expected)) return undefined;
    return recover;
  } catch {
    return undefined;
  }
}

interface NativeKeccakState {
  initialize(rate: number, capacity: number): void;
  absorb(data: Buffer): void;
  absorbLastFewBits(bits: number): void;
  squeeze(length: number): Buffer;
}

function loadNativeKeccak(): KeccakFn | undefined {
  const probe = new Uint8Array([1, 2, 3]);
  const expected = nobleKeccak(probe);
  try {
    // The binding's sponge state, reused across calls: the package's stream wrapper costs more
    // than the permutation itself for 1-3 block inputs.
    /* eslint-disable @typescript-eslint/no-require-imports */
    const path = require("node:path") as typeof import("node:path");
    const dir = path.dirname(require.resolve("keccak/package.json"));
    const load = require(require.resolve("node-gyp-build", { paths: [dir] })) as (d: string) => new () => NativeKeccakState;
    /* eslint-enable @typescript-eslint/no-require-imports */
    const state = new (load(dir))();
    const fn: KeccakFn = (data) => {
      state.initialize(1088, 512);
      state.absorb(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
      state.absorbLastFewBits(0x01);
      return state.squeeze(32);
    };
    if (equalBytes(fn(probe), expected)) return fn;
  } catch {
    // fall through to the package's public API
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const create = require("keccak") as NativeKeccakFactory;
    const fn: KeccakFn = (data) => create("keccak256").update(Buffer.from(data.buffer, data.byteOffset, data.byteLength)).digest();
    return equalBytes(fn(probe), expected) ? fn : undefined;
  } catch {
    return undefined;
  }
}

const forcePureJs = process.env.PREFLIGHT_PURE_JS === "1";
const nativeRecover = forcePureJs ? undefined : loadNativeRecover();
const nativeKeccak = forcePureJs ? undefined : loadNativeKeccak();

/** Both recovery implementations, for tests that check they agree (not part of the SDK's index). */
export const recoverers: { native?: RecoverFn; noble: RecoverFn } = { native: nativeRecover, noble: nobleRecover };

/** keccak-256 of `data`. */
export const keccak256Bytes: KeccakFn = nativeKeccak ?? nobleKeccak;
const recoverPublicKey: RecoverFn = nativeRecover ?? nobleRecover;

/**
 * The implementations in use (set `PREFLIGHT_PURE_JS=1` to force the pure-JS ones).
 * @example
 * console.log(cryptoBackend()); // { recover: "libsecp256k1", keccak: "native" }
 */
export function cryptoBackend(): CryptoBackend {
  return { recover: nativeRecover ? "libsecp256k1" : "noble", keccak: nativeKeccak ? "native" : "noble" };
}

/** Upper bound for a non-malleable s: secp256k1 order / 2. */
export const HALF_ORDER = N >> 1n;

/** How the contract's `SignatureVerification.recover` classifies a signature. */
export enum SignatureStatus {
  Ok = 0,
  BadLength = 1,
  Malleable = 2,
  /** Well formed but not recoverable (bad v, r or s out of range, no point): ecrecover returns 0. */
  Unrecoverable = 3,
}

/** The uncompressed public key (65 bytes) behind a signature, or why there is none. */
export interface Recovered {
  status: SignatureStatus;
  publicKey?: Uint8Array;
}

/**
 * Recovers like the contract: 65-byte (r,s,v) with v taken as is (only 27/28 recover), or 64-byte
 * EIP-2098 (r,vs); s above half the order is malleable; r and s must lie in [1, n-1].
 */
export function recoverSignature(digest: Uint8Array, sig: Uint8Array): Recovered {
  let v: number;
  const rs = new Uint8Array(64);
  if (sig.length === 65) {
    rs.set(sig.subarray(0, 64));
    v = sig[64];
  } else if (sig.length === 64) {
    rs.set(sig.subarray(0, 64));
    v = 27 + (rs[32] >> 7);
    rs[32] &= 0x7f;
  } else {
    return { status: SignatureStatus.BadLength };
  }
  if (isAboveHalfOrder(rs)) return { status: SignatureStatus.Malleable };
  if (v !== 27 && v !== 28) return { status: SignatureStatus.Unrecoverable };
  if (isZeroOrAboveOrder(rs, 0) || isZeroOrAboveOrder(rs, 32)) return { status: SignatureStatus.Unrecoverable };
  const publicKey = recoverPublicKey(rs, v - 27, digest);
  return publicKey === undefined ? { status: SignatureStatus.Unrecoverable } : { status: SignatureStatus.Ok, publicKey };
}

/** The address (lowercase 0x hex) of an uncompressed 65-byte public key. */
export function publicKeyToAddress(publicKey: Uint8Array): string {
  return "0x" + toHex(keccak256Bytes(publicKey.subarray(1)).subarray(12));
}

const HALF_ORDER_BYTES = bigIntToBytes(HALF_ORDER);
const ORDER_BYTES = bigIntToBytes(N);

function compareWord(a: Uint8Array, offset: number, b: Uint8Array): number {
  for (let i = 0; i < 32; i++) {
    const d = a[offset + i] - b[i];
    if (d !== 0) return d;
  }
  return 0;
}

function isAboveHalfOrder(rs: Uint8Array): boolean {
  return compareWord(rs, 32, HALF_ORDER_BYTES) > 0;
}

function isZeroOrAboveOrder(rs: Uint8Array, offset: number): boolean {
  let zero = true;
  for (let i = 0; i < 32; i++) if (rs[offset + i] !== 0) zero = false;
  return zero || compareWord(rs, offset, ORDER_BYTES) >= 0;
}

// ------------------------------------------------------------------ byte helpers

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** Lowercase hex (no 0x) of `bytes`. */
export function toHex(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i++) out += HEX[bytes[i]];
  return out;
}

/** Writes 32-byte big-endian `value` (0 <= value < 2^256) at `offset` of a Buffer. */
export function writeWord(out: Buffer, offset: number, value: bigint): void {
  const hex = value.toString(16);
  out.write(ZEROS.slice(hex.length) + hex, offset, 32, "hex");
}

/** Writes a 0x-prefixed hex string of `byteLength` bytes right-aligned in the 32-byte word at `offset`. */
export function writeHexWord(out: Buffer, offset: number, hex: string, byteLength: number): void {
  if (hex.length !== 2 + 2 * byteLength || out.write(hex.slice(2), offset + 32 - byteLength, byteLength, "hex") !== byteLength) {
    throw new PreflightSdkError("INVALID_HEX", `expected ${byteLength} bytes of 0x-prefixed hex, got ${hex}`);
  }
  if (byteLength < 32) out.fill(0, offset, offset + 32 - byteLength);
}

/** Bytes of a 0x-prefixed hex string (assumed well formed). */
export function hexToBytes(hex: string): Uint8Array {
  return Buffer.from(hex.slice(2), "hex");
}

function bigIntToBytes(value: bigint): Uint8Array {
  const out = Buffer.alloc(32);
  writeWord(out, 0, value);
  return out;
}

function bytesToBigInt(bytes: Uint8Array, from: number, to: number): bigint {
  return BigInt("0x" + toHex(bytes.subarray(from, to)));
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
