/**
 * A small EIP-712 encoder (typed structured data hashing, https://eips.ethereum.org/EIPS/eip-712)
 * over `@noble/hashes`, so hashing what a payer signs needs neither ethers nor viem. It covers what
 * the standard defines: atomic types (address, bool, bytesN, uintN, intN), string and bytes, arrays
 * (fixed and dynamic, nested), and struct references. Values are range-checked like the contract's
 * ABI decoder would, with a typed error naming the field.
 */
import { PreflightSdkError } from "./errors";
import { bigintToBytes, checksumAddress, concatBytes, hexToBytes, keccak256, type Hex } from "./hex";

/** One field of an EIP-712 struct. */
export interface TypedDataField {
  readonly name: string;
  readonly type: string;
}

/** An EIP-712 type table: struct name to its fields. */
export type TypedDataTypes = Readonly<Record<string, readonly TypedDataField[]>>;

/** The EIP-712 domain fields Preflight uses (all four are part of its domain separator). */
export interface Eip712Domain {
  name: string;
  version: string;
  chainId: bigint;
  verifyingContract: string;
}

const DOMAIN_TYPES: TypedDataTypes = {
  EIP712Domain: [
    { name: "name", type: "string" },
    { name: "version", type: "string" },
    { name: "chainId", type: "uint256" },
    { name: "verifyingContract", type: "address" },
  ],
};

const keccakBytes = (data: Uint8Array): Uint8Array => hexToBytes(keccak256(data));

function structsReferenced(types: TypedDataTypes, primaryType: string, found: Set<string>): void {
  if (found.has(primaryType)) return;
  const fields = types[primaryType];
  if (fields === undefined) throw new PreflightSdkError("INVALID_OPTION", `EIP-712: unknown type ${primaryType}`);
  found.add(primaryType);
  for (const field of fields) {
    const base = field.type.replace(/(\[\d*\])+$/, "");
    if (types[base] !== undefined) structsReferenced(types, base, found);
  }
}

/**
 * The encoded type string of `primaryType`: itself, then every struct it references, sorted by name.
 * Its keccak-256 is the struct's typehash.
 * @example
 * encodeType(REQUEST_TYPES, "Request"); // "Request(address payer,address provider,...)"
 */
export function encodeType(types: TypedDataTypes, primaryType: string): string {
  const found = new Set<string>();
  structsReferenced(types, primaryType, found);
  found.delete(primaryType);
  return [primaryType, ...[...found].sort()].map((name) => `${name}(${types[name]!.map((f) => `${f.type} ${f.name}`).join(",")})`).join("");
}

function toBigint(value: unknown, what: string): bigint {
  if (typeof value === "bigint") return value;
  if (typeof value === "number" && Number.isSafeInteger(value)) return BigInt(value);
  if (typeof value === "string" && /^(0x[0-9a-fA-F]+|-?\d+)$/.test(value)) return BigInt(value);
  throw new PreflightSdkError("INVALID_AMOUNT", `${what} must be an integer (bigint), got ${typeof value === "bigint" ? value : JSON.stringify(value)}`);
}

function encodeValue(types: TypedDataTypes, type: string, value: unknown, what: string): Uint8Array {
  if (types[type] !== undefined) return keccakBytes(encodeData(types, type, value, what));
  const array = /^(.*)\[(\d*)\]$/.exec(type);
  if (array !== null) {
    if (!Array.isArray(value)) throw new PreflightSdkError("INVALID_OPTION", `${what} must be an array (${type})`);
    if (array[2] !== "" && value.length !== Number(array[2])) throw new PreflightSdkError("INVALID_OPTION", `${what} must hold ${array[2]} items, not ${value.length}`);
    return keccakBytes(concatBytes(value.map((item, i) => encodeValue(types, array[1]!, item, `${what}[${i}]`))));
  }
  if (type === "string") {
    if (typeof value !== "string") throw new PreflightSdkError("INVALID_OPTION", `${what} must be a string`);
    return keccakBytes(new TextEncoder().encode(value));
  }
  if (type === "bytes") return keccakBytes(hexToBytes(String(value), what));
  if (type === "address") return concatBytes([new Uint8Array(12), hexToBytes(checksumAddress(String(value), what))]);
  if (type === "bool") {
    if (typeof value !== "boolean") throw new PreflightSdkError("INVALID_OPTION", `${what} must be a boolean`);
    return bigintToBytes(value ? 1n : 0n, 32);
  }
  const fixed = /^bytes(\d+)$/.exec(type);
  if (fixed !== null) {
    const size = Number(fixed[1]);
    const bytes = hexToBytes(String(value), what);
    if (size < 1 || size > 32 || bytes.length !== size) throw new PreflightSdkError("INVALID_HEX", `${what} must be exactly ${size} bytes (${type})`);
    return concatBytes([bytes, new Uint8Array(32 - size)]);
  }
  const int = /^(u?)int(\d+)$/.exec(type);
  if (int !== null) {
    const bits = BigInt(int[2]!);
    const v = toBigint(value, what);
    const unsigned = int[1] === "u";
    const min = unsigned ? 0n : -(1n << (bits - 1n));
    const max = unsigned ? (1n << bits) - 1n : (1n << (bits - 1n)) - 1n;
    if (v < min || v > max) throw new PreflightSdkError("INVALID_AMOUNT", `${what} ${v} is out of range for ${type}`);
    return bigintToBytes(v < 0n ? (1n << 256n) + v : v, 32, what);
  }
  throw new PreflightSdkError("INVALID_OPTION", `EIP-712: unsupported type ${type} (${what})`);
}

function encodeData(types: TypedDataTypes, primaryType: string, data: unknown, what: string): Uint8Array {
  if (typeof data !== "object" || data === null) throw new PreflightSdkError("INVALID_OPTION", `${what} must be an object (${primaryType})`);
  const record = data as Record<string, unknown>;
  const fields = types[primaryType]!;
  const parts = [keccakBytes(new TextEncoder().encode(encodeType(types, primaryType)))];
  for (const field of fields) {
    if (!(field.name in record)) throw new PreflightSdkError("INVALID_OPTION", `${what}.${field.name} is missing (${primaryType})`);
    parts.push(encodeValue(types, field.type, record[field.name], `${what}.${field.name}`));
  }
  return concatBytes(parts);
}

/**
 * The EIP-712 `hashStruct` of `data` as `primaryType`.
 * @example
 * const structHash = hashStruct(REQUEST_TYPES, "Request", request);
 */
export function hashStruct(types: TypedDataTypes, primaryType: string, data: object): Hex {
  structsReferenced(types, primaryType, new Set());
  return keccak256(encodeData(types, primaryType, data, primaryType));
}

/**
 * The domain separator of `domain` (what a contract's `DOMAIN_SEPARATOR()` returns).
 * @example
 * const separator = hashDomain({ name: "Preflight", version: "1", chainId: 1n, verifyingContract });
 */
export function hashDomain(domain: Eip712Domain): Hex {
  return hashStruct(DOMAIN_TYPES, "EIP712Domain", domain);
}

/**
 * The EIP-712 digest `keccak256(0x1901 ‖ domainSeparator ‖ hashStruct(message))`: what gets signed.
 * @example
 * const digest = hashTypedData(domain, REQUEST_TYPES, "Request", request);
 */
export function hashTypedData(domain: Eip712Domain, types: TypedDataTypes, primaryType: string, message: object): Hex {
  return keccak256(concatBytes([new Uint8Array([0x19, 0x01]), hexToBytes(hashDomain(domain)), hexToBytes(hashStruct(types, primaryType, message))]));
}
