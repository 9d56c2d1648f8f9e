/**
 * Encoders for Preflight's compact entry points: `settlePacked(token, packed)` (the same signed
 * requests as `settleBatch` in about a quarter of the calldata: ~96 bytes per request when one payer
 * signs consecutive nonces, ~126 for distinct payers) and `claimLanesPacked(token, packed)` (lane
 * vouchers, 100 bytes each). Layouts: contracts/interfaces/ISettlement.sol and ILanes.sol.
 */
import { bigintToBytes, bytesToBigint, bytesToHex, checksumAddress, concatBytes, hexToBytes, isHexBytes, type Hex } from "./hex";
import { compactSignatureBytes } from "./signers";
import type { Request } from "./eip712";
import { PreflightSdkError } from "./errors";
import type { SignedRequest } from "./types";

/**
 * A request with its signature. A 64-byte (EIP-2098) signature is packed as it is; a 65-byte one is
 * packed as its 64-byte form only when its payer is known not to be a contract (see `isPackable`).
 */
export interface SignedPackedItem {
  request: Request;
  signature: string;
}

/** A lane voucher's payer and cumulative amount with its signature, for `encodeLaneClaims`. */
export interface SignedLaneClaim {
  payer: string;
  cumulativeAmount: bigint;
  signature: string;
}

/** What the packed encoders need to know to pack a signature without changing what is verified. */
export interface PackOptions {
  /**
   * Whether `payer` is a contract (has code, e.g. an ERC-1271 wallet or an EIP-7702 account). Needed
   * to pack any 65-byte signature: the contract hands a contract payer's wallet the signature bytes
   * it was given, so shortening them changes what the wallet checks. Without it, only 64-byte
   * signatures are packed.
   */
  isContract?: (payer: string) => boolean;
}

const UINT64 = 2n ** 64n;
const UINT96 = 2n ** 96n;
const UINT128 = 2n ** 128n;
const MAX_COUNT = 0xffff;
/** model(32) price(12) deadline(8) groups(2) */
const SECTION_HEADER = 54;
/** payer(20) firstNonce(8) count(2) */
const GROUP_HEADER = 30;
/** inputHash(32) r(32) vs(32) */
const ITEM = 96;

const same = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase();

/**
 * Packs `items` for `settlePacked`. Consecutive items that share model, price and deadline share a
 * 54-byte section header; within it, consecutive items of one payer whose nonces follow each other
 * share a 30-byte group header; each item then costs 96 bytes. Every item must name the same token
 * and provider (the caller of `settlePacked`); deadlines and nonces must fit 64 bits, prices 96 bits.
 * Packing never changes what the contract verifies: a signature that has no packed form with the
 * same outcome (`isPackable`) throws `SIGNATURE_NOT_PACKABLE`; settle that item with `settleBatch`.
 * @example
 * const packed = encodePacked(requests.map((request, i) => ({ request, signature: signatures[i] })), { isContract: (payer) => codes.get(payer) });
 * await preflight.connect(provider).settlePacked(token, packed);
 */
export function encodePacked(items: SignedPackedItem[], options: PackOptions = {}): Hex {
  if (items.length === 0) throw new PreflightSdkError("INVALID_OPTION", "encodePacked: no items");
  const { token, provider } = items[0]!.request;
  for (const item of items) {
    const r = item.request;
    if (!same(r.token, token)) throw new PreflightSdkError("TOKEN_MISMATCH", "encodePacked: every item must use the same token");
    if (!same(r.provider, provider)) throw new PreflightSdkError("PROVIDER_MISMATCH", "encodePacked: every item must name the same provider");
    if (r.deadline < 0n || r.deadline >= UINT64 || r.nonce < 0n || r.nonce >= UINT64 || r.price >= UINT96 || r.price < 0n) {
      throw new PreflightSdkError("INVALID_AMOUNT", "encodePacked: deadline and nonce must fit 64 bits, price 96 bits (use settleBatch)");
    }
    assertPackable(item.signature, r.payer, options, "encodePacked");
  }
  // Sections (same model, price, deadline) of groups (same payer, consecutive nonces).
  const sections: SignedPackedItem[][][] = [];
  let previous: Request | undefined;
  for (const item of items) {
    const r = item.request;
    const section = sections.at(-1);
    const sameSection = previous !== undefined && previous.model === r.model && previous.price === r.price && previous.deadline === r.deadline;
    const group = section?.at(-1);
    if (sameSection && group !== undefined && group.length < MAX_COUNT && same(previous!.payer, r.payer) && previous!.nonce + 1n === r.nonce) {
      group.push(item);
    } else if (sameSection && section !== undefined && section.length < MAX_COUNT) {
      section.push([item]);
    } else {
      sections.push([[item]]);
    }
    previous = r;
  }
  // Written into one buffer of the final size (a batch of 500 is ~48 KB).
  let size = 0;
  for (const groups of sections) {
    size += SECTION_HEADER;
    for (const group of groups) size += GROUP_HEADER + ITEM * group.length;
  }
  const out = new Uint8Array(size);
  let at = 0;
  const put = (bytes: Uint8Array): void => {
    out.set(bytes, at);
    at += bytes.length;
  };
  for (const groups of sections) {
    const head = groups[0]![0]!.request;
    at = putBytes32(out, at, head.model, "model");
    put(bigintToBytes(head.price, 12, "price"));
    put(bigintToBytes(head.deadline, 8, "deadline"));
    put(bigintToBytes(BigInt(groups.length), 2));
    for (const group of groups) {
      const first = group[0]!.request;
      put(hexToBytes(checksumAddress(first.payer, "payer")));
      put(bigintToBytes(first.nonce, 8, "nonce"));
      put(bigintToBytes(BigInt(group.length), 2));
      // inputHash, then r ‖ vs (EIP-2098), validated above
      for (const item of group) {
        at = putBytes32(out, at, item.request.inputHash, "inputHash");
        put(compactSignatureBytes(item.signature));
      }
    }
  }
  return bytesToHex(out);
}

/**
 * Packs lane vouchers of one model for `claimLanesPacked(token, packed)`: model (32), then per
 * claim payer (20), cumulativeAmount (16) and the 64-byte EIP-2098 signature. Signatures follow
 * `encodePacked`'s rule (`isPackable`); a claim that cannot be packed throws `SIGNATURE_NOT_PACKABLE`.
 * @example
 * const packed = encodeLaneClaims(model, [{ payer, cumulativeAmount: 5_000n, signature }]);
 * await preflight.connect(provider).claimLanesPacked(token, packed);
 */
export function encodeLaneClaims(model: string, claims: SignedLaneClaim[], options: PackOptions = {}): Hex {
  if (claims.length === 0) throw new PreflightSdkError("INVALID_OPTION", "encodeLaneClaims: no claims");
  const parts: Uint8Array[] = [bytes32(model, "model")];
  for (const claim of claims) {
    if (claim.cumulativeAmount <= 0n || claim.cumulativeAmount >= UINT128) {
      throw new PreflightSdkError("INVALID_AMOUNT", "encodeLaneClaims: cumulativeAmount must be above 0 and fit 128 bits");
    }
    assertPackable(claim.signature, claim.payer, options, "encodeLaneClaims");
    parts.push(hexToBytes(checksumAddress(claim.payer, "payer")), bigintToBytes(claim.cumulativeAmount, 16), compactSignatureBytes(claim.signature));
  }
  return bytesToHex(concatBytes(parts));
}

/** `bytes32(value)` written into `out` at `at` (which is zero there); returns the offset after it. */
function putBytes32(out: Uint8Array, at: number, value: string, what: string): number {
  const bytes = hexToBytes(value, what);
  if (bytes.length > 32) throw new PreflightSdkError("INVALID_HEX", `encodePacked: ${what} is longer than 32 bytes`);
  out.set(bytes, at + 32 - bytes.length);
  return at + 32;
}

/** A bytes32 field; shorter hex is left-padded with zeros, as the ABI pads a value. */
function bytes32(value: string, what: string): Uint8Array {
  const bytes = hexToBytes(value, what);
  if (bytes.length > 32) throw new PreflightSdkError("INVALID_HEX", `encodePacked: ${what} is longer than 32 bytes`);
  return concatBytes([new Uint8Array(32 - bytes.length), bytes]);
}

/**
 * Decodes `settlePacked` calldata back into the signed requests it carries, in item order, each with
 * its 64-byte EIP-2098 signature: the inverse of `encodePacked`, for tools that inspect a provider's
 * own batches. Followers of the chain read the logs instead (`decodeRequestsSettled`).
 * @example
 * const requests = decodePacked(token, packed);
 */
export function decodePacked(token: string, packed: string): SignedRequest[] {
  if (!isHexBytes(packed)) throw new PreflightSdkError("INVALID_HEX", "decodePacked: packed is not hex of whole bytes");
  const data = hexToBytes(packed);
  const size = data.length;
  if (size === 0) throw new PreflightSdkError("INVALID_HEX", "decodePacked: empty");
  const payToken = checksumAddress(token, "token");
  const slice = (from: number, length: number): Uint8Array => {
    if (from + length > size) throw new PreflightSdkError("INVALID_HEX", `decodePacked: truncated at byte ${from}`);
    return data.subarray(from, from + length);
  };
  const requests: SignedRequest[] = [];
  for (let offset = 0; offset < size; ) {
    const model = bytesToHex(slice(offset, 32));
    const price = bytesToBigint(slice(offset + 32, 12));
    const deadline = bytesToBigint(slice(offset + 44, 8));
    const groups = Number(bytesToBigint(slice(offset + 52, 2)));
    if (groups === 0) throw new PreflightSdkError("INVALID_HEX", `decodePacked: section at byte ${offset} has no groups`);
    offset += SECTION_HEADER;
    for (let g = 0; g < groups; g++) {
      const payer = checksumAddress(bytesToHex(slice(offset, 20)));
      const firstNonce = bytesToBigint(slice(offset + 20, 8));
      const count = Number(bytesToBigint(slice(offset + 28, 2)));
      if (count === 0) throw new PreflightSdkError("INVALID_HEX", `decodePacked: group at byte ${offset} has no items`);
      offset += GROUP_HEADER;
      for (let i = 0; i < count; i++) {
        requests.push({
          payer,
          token: payToken,
          model,
          price,
          nonce: firstNonce + BigInt(i),
          deadline,
          inputHash: bytesToHex(slice(offset, 32)),
          signature: bytesToHex(slice(offset + 32, 64)),
        });
        offset += ITEM;
      }
    }
  }
  return requests;
}

/**
 * Whether `signature` has a packed form (r ‖ vs, EIP-2098) that the contract verifies exactly as it
 * verifies `signature` itself in `settle`/`settleBatch`:
 * - a 64-byte signature: always (it is packed byte for byte);
 * - a 65-byte signature with v = 27 or 28 and a low s: only when the payer is not a contract. ECDSA
 *   recovers the same signer from both forms, but a contract payer's wallet (ERC-1271) is handed the
 *   bytes themselves, and may accept 65 bytes only;
 * - anything else (v = 0/1 or EIP-155, a high s, other lengths such as a wallet's own format): never;
 *   ethers would quietly repair some of them, which `settle` and `settleBatch` refuse.
 * @example
 * const route = isPackable(item.signature, await hasCode(item.payer)) ? "settlePacked" : "settleBatch";
 */
export function isPackable(signature: string, payerIsContract: boolean): boolean {
  return isHexBytes(signature) && packableHex(signature, payerIsContract);
}

/** `isPackable` for a signature already known to be hex of whole bytes. */
function packableHex(signature: string, payerIsContract: boolean): boolean {
  if (signature.length === 130) return true;
  if (signature.length !== 132 || payerIsContract) return false;
  const v = parseInt(signature.slice(130), 16);
  // The top bit of s must be clear: it is where the packed form keeps v.
  return (v === 27 || v === 28) && parseInt(signature.slice(66, 67), 16) < 8;
}

function assertPackable(signature: string, payer: string, options: PackOptions, where: string): void {
  if (!isHexBytes(signature)) throw new PreflightSdkError("INVALID_HEX", `${where}: a signature is not hex of whole bytes`);
  if (signature.length === 132 && options.isContract === undefined) {
    throw new PreflightSdkError(
      "SIGNATURE_NOT_PACKABLE",
      `${where}: a 65-byte signature is packed as 64 bytes, which a contract payer's wallet would check instead: pass { isContract } or sign compact (64 bytes)`,
    );
  }
  if (!packableHex(signature, signature.length === 132 && options.isContract!(payer))) {
    throw new PreflightSdkError("SIGNATURE_NOT_PACKABLE", `${where}: the signature of ${payer} has no packed form the contract verifies the same way (settle it with settleBatch)`);
  }
}
