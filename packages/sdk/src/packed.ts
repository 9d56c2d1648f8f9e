/**
 * Encoders for Preflight's compact entry points: `settlePacked(token, packed)` (the same signed
 * requests as `settleBatch` in about a quarter of the calldata: ~96 bytes per request when one payer
 * signs consecutive nonces, ~126 for distinct payers) and `claimLanesPacked(token, packed)` (lane
 * vouchers, 100 bytes each). Layouts: contracts/interfaces/ISettlement.sol and ILanes.sol.
 */
import { Signature, concat, dataLength, dataSlice, getAddress, isHexString, toBeHex, toBigInt, zeroPadValue } from "ethers";
import type { Request } from "./eip712";
import { PreflightSdkError } from "./errors";
import type { SignedRequest } from "./types";

/** A request with its signature (65-byte, or 64-byte EIP-2098; both are packed as 64 bytes). */
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
 * @example
 * const packed = encodePacked(requests.map((request, i) => ({ request, signature: signatures[i] })));
 * await preflight.connect(provider).settlePacked(token, packed);
 */
export function encodePacked(items: SignedPackedItem[]): string {
  if (items.length === 0) throw new PreflightSdkError("INVALID_OPTION", "encodePacked: no items");
  const { token, provider } = items[0]!.request;
  for (const item of items) {
    const r = item.request;
    if (!same(r.token, token)) throw new PreflightSdkError("TOKEN_MISMATCH", "encodePacked: every item must use the same token");
    if (!same(r.provider, provider)) throw new PreflightSdkError("PROVIDER_MISMATCH", "encodePacked: every item must name the same provider");
    if (r.deadline < 0n || r.deadline >= UINT64 || r.nonce < 0n || r.nonce >= UINT64 || r.price >= UINT96 || r.price < 0n) {
      throw new PreflightSdkError("INVALID_AMOUNT", "encodePacked: deadline and nonce must fit 64 bits, price 96 bits (use settleBatch)");
    }
    assertPackableSignature(item.signature);
  }
  // Split into sections (same model, price, deadline), then groups (same payer, consecutive nonces).
  const sections: SignedPackedItem[][][] = [];
  let previous: Request | undefined;
  let groupSize = 0;
  for (const item of items) {
    const r = item.request;
    const sameSection =
      previous !== undefined && previous.model === r.model && previous.price === r.price && previous.deadline === r.deadline && sections.at(-1)!.length < MAX_COUNT;
    if (!sameSection) {
      sections.push([[item]]);
      groupSize = 1;
    } else {
      const joins = groupSize < MAX_COUNT && same(previous!.payer, r.payer) && previous!.nonce + 1n === r.nonce;
      if (joins) {
        sections.at(-1)!.at(-1)!.push(item);
        groupSize++;
      } else if (sections.at(-1)!.length < MAX_COUNT) {
        sections.at(-1)!.push([item]);
        groupSize = 1;
      } else {
        sections.push([[item]]);
        groupSize = 1;
      }
    }
    previous = r;
  }
  const parts: string[] = [];
  for (const groups of sections) {
    const head = groups[0]![0]!.request;
    parts.push(zeroPadValue(head.model, 32), toBeHex(head.price, 12), toBeHex(head.deadline, 8), toBeHex(groups.length, 2));
    for (const group of groups) {
      const first = group[0]!.request;
      parts.push(getAddress(first.payer), toBeHex(first.nonce, 8), toBeHex(group.length, 2));
      for (const item of group) {
        const sig = Signature.from(item.signature); // validated above
        parts.push(zeroPadValue(item.request.inputHash, 32), sig.r, sig.yParityAndS);
      }
    }
  }
  return concat(parts);
}

/**
 * Packs lane vouchers of one model for `claimLanesPacked(token, packed)`: model (32), then per
 * claim payer (20), cumulativeAmount (16) and the 64-byte EIP-2098 signature.
 * @example
 * const packed = encodeLaneClaims(model, [{ payer, cumulativeAmount: 5_000n, signature }]);
 * await preflight.connect(provider).claimLanesPacked(token, packed);
 */
export function encodeLaneClaims(model: string, claims: SignedLaneClaim[]): string {
  if (claims.length === 0) throw new PreflightSdkError("INVALID_OPTION", "encodeLaneClaims: no claims");
  const parts: string[] = [zeroPadValue(model, 32)];
  for (const claim of claims) {
    if (claim.cumulativeAmount <= 0n || claim.cumulativeAmount >= UINT128) {
      throw new PreflightSdkError("INVALID_AMOUNT", "encodeLaneClaims: cumulativeAmount must be above 0 and fit 128 bits");
    }
    assertPackableSignature(claim.signature);
    const sig = Signature.from(claim.signature);
    parts.push(getAddress(claim.payer), toBeHex(claim.cumulativeAmount, 16), sig.r, sig.yParityAndS);
  }
  return concat(parts);
}

/**
 * Decodes `settlePacked` calldata back into the signed requests it carries, in item order, each
 * with its 64-byte EIP-2098 signature: the inverse of `encodePacked`, for tools that inspect a
 * provider's own batches. Followers of the chain read the logs instead (see `settlementLogs`).
 * @example
 * const requests = decodePacked(token, packed);
 */
export function decodePacked(token: string, packed: string): SignedRequest[] {
  if (!isHexString(packed)) throw new PreflightSdkError("INVALID_HEX", "decodePacked: packed is not hex");
  const size = dataLength(packed);
  if (size === 0) throw new PreflightSdkError("INVALID_HEX", "decodePacked: empty");
  const requests: SignedRequest[] = [];
  const slice = (from: number, length: number): string => {
    if (from + length > size) throw new PreflightSdkError("INVALID_HEX", `decodePacked: truncated at byte ${from}`);
    return dataSlice(packed, from, from + length);
  };
  for (let offset = 0; offset < size; ) {
    const model = slice(offset, 32);
    const price = toBigInt(slice(offset + 32, 12));
    const deadline = toBigInt(slice(offset + 44, 8));
    const groups = Number(toBigInt(slice(offset + 52, 2)));
    if (groups === 0) throw new PreflightSdkError("INVALID_HEX", `decodePacked: section at byte ${offset} has no groups`);
    offset += SECTION_HEADER;
    for (let g = 0; g < groups; g++) {
      const payer = getAddress(slice(offset, 20));
      const firstNonce = toBigInt(slice(offset + 20, 8));
      const count = Number(toBigInt(slice(offset + 28, 2)));
      if (count === 0) throw new PreflightSdkError("INVALID_HEX", `decodePacked: group at byte ${offset} has no items`);
      offset += GROUP_HEADER;
      for (let i = 0; i < count; i++) {
        requests.push({
          payer,
          token: getAddress(token),
          model,
          price,
          nonce: firstNonce + BigInt(i),
          deadline,
          inputHash: slice(offset, 32),
          signature: slice(offset + 32, 64),
        });
        offset += ITEM;
      }
    }
  }
  return requests;
}

/**
 * Packing keeps r and s and folds v into the top bit of s (EIP-2098). ethers would also accept a
 * 65-byte signature with v = 0/1 or an EIP-155 v and quietly fix it, which `settle` and `settleBatch`
 * refuse: refuse it here too, so both entry points accept exactly the same signatures.
 */
function assertPackableSignature(signature: string): void {
  if (!isHexString(signature) || (dataLength(signature) !== 64 && dataLength(signature) !== 65)) {
    throw new PreflightSdkError("INVALID_HEX", "encodePacked: signatures must be 64 or 65 bytes (contract-wallet signatures go through settleBatch)");
  }
  if (dataLength(signature) === 65) {
    const v = Number(toBigInt(dataSlice(signature, 64, 65)));
    if (v !== 27 && v !== 28) throw new PreflightSdkError("INVALID_HEX", `encodePacked: a 65-byte signature needs v = 27 or 28, not ${v}`);
  }
}
