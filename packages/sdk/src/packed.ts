/**
 * Encoder for Preflight's compact batch entry point `settlePacked(token, packed)`: the same signed
 * requests as `settleBatch`, in about a quarter of the calldata (~97 bytes per request when one payer
 * signs consecutive nonces). See contracts/interfaces/IPackedSettlement.sol for the layout.
 */
import { bigintToBytes, bytesToBigint, bytesToHex, checksumAddress, concatBytes, hexToBytes, isHexBytes, type Hex } from "./hex";
import { toCompactSignature } from "./signers";
import type { Request } from "./eip712";
import { PreflightSdkError } from "./errors";
import type { SignedRequest } from "./types";

/** A request with its signature (65-byte, or 64-byte EIP-2098; both are packed as 64 bytes). */
export interface SignedPackedItem {
  request: Request;
  signature: string;
}

const UINT64 = 2n ** 64n;
const UINT96 = 2n ** 96n;
const MAX_GROUP = 0xffff;
/** payer(20) model(32) price(12) deadline(8) firstNonce(8) count(2) */
const HEADER = 82;
/** inputHash(32) r(32) vs(32) */
const ITEM = 96;

/**
 * Packs `items` for `settlePacked`. Consecutive items of the same payer, model, price and deadline
 * whose nonces follow each other share one 82-byte header; each item then costs 96 bytes.
 * Every item must name the same token and provider (the caller of `settlePacked`); deadlines and
 * nonces must fit 64 bits, prices 96 bits.
 * @example
 * const packed = encodePacked(requests.map((request, i) => ({ request, signature: signatures[i] })));
 * await preflight.connect(provider).settlePacked(token, packed);
 */
export function encodePacked(items: SignedPackedItem[]): Hex {
  if (items.length === 0) throw new PreflightSdkError("INVALID_OPTION", "encodePacked: no items");
  const { token, provider } = items[0]!.request;
  const parts: Uint8Array[] = [];
  let group: SignedPackedItem[] = [];
  const flush = (): void => {
    if (group.length === 0) return;
    const r = group[0]!.request;
    parts.push(
      hexToBytes(checksumAddress(r.payer, "payer")),
      bytes32(r.model, "model"),
      bigintToBytes(r.price, 12, "price"),
      bigintToBytes(r.deadline, 8, "deadline"),
      bigintToBytes(r.nonce, 8, "nonce"),
      bigintToBytes(BigInt(group.length), 2),
    );
    for (const item of group) {
      // r ‖ vs (EIP-2098), validated in the loop below
      parts.push(bytes32(item.request.inputHash, "inputHash"), hexToBytes(toCompactSignature(item.signature)));
    }
    group = [];
  };
  for (const item of items) {
    const r = item.request;
    if (r.token.toLowerCase() !== token.toLowerCase()) throw new PreflightSdkError("TOKEN_MISMATCH", "encodePacked: every item must use the same token");
    if (r.provider.toLowerCase() !== provider.toLowerCase()) {
      throw new PreflightSdkError("PROVIDER_MISMATCH", "encodePacked: every item must name the same provider");
    }
    if (r.deadline >= UINT64 || r.nonce >= UINT64 || r.price >= UINT96 || r.price < 0n) {
      throw new PreflightSdkError("INVALID_AMOUNT", "encodePacked: deadline and nonce must fit 64 bits, price 96 bits (use settleBatch)");
    }
    assertPackableSignature(item.signature);
    const head = group[0]?.request;
    const joins =
      head !== undefined &&
      group.length < MAX_GROUP &&
      head.payer.toLowerCase() === r.payer.toLowerCase() &&
      head.model === r.model &&
      head.price === r.price &&
      head.deadline === r.deadline &&
      head.nonce + BigInt(group.length) === r.nonce;
    if (!joins) flush();
    group.push(item);
  }
  flush();
  return bytesToHex(concatBytes(parts));
}

/** A bytes32 field; shorter hex is left-padded with zeros, as the ABI pads a value. */
function bytes32(value: string, what: string): Uint8Array {
  const bytes = hexToBytes(value, what);
  if (bytes.length > 32) throw new PreflightSdkError("INVALID_HEX", `encodePacked: ${what} is longer than 32 bytes`);
  return concatBytes([new Uint8Array(32 - bytes.length), bytes]);
}


/**
 * Decodes `settlePacked` calldata back into the signed requests it carries, in item order (the
 * `index` of `RequestSkipped`), each with its 64-byte EIP-2098 signature. The inverse of
 * `encodePacked`; indexers and the verifier use it to recover a packed batch's items.
 * @example
 * const call = preflight.interface.parseTransaction(tx)!; // a settlePacked transaction
 * const requests = decodePacked(call.args[0], call.args[1]);
 */
export function decodePacked(token: string, packed: string): SignedRequest[] {
  if (!isHexBytes(packed)) throw new PreflightSdkError("INVALID_HEX", "decodePacked: packed is not hex of whole bytes");
  const data = hexToBytes(packed);
  const size = data.length;
  const payToken = checksumAddress(token, "token");
  const requests: SignedRequest[] = [];
  for (let offset = 0; offset < size; ) {
    if (offset + HEADER > size) throw new PreflightSdkError("INVALID_HEX", `decodePacked: truncated group header at byte ${offset}`);
    const at = (from: number, length: number): Uint8Array => data.subarray(offset + from, offset + from + length);
    const payer = checksumAddress(bytesToHex(at(0, 20)));
    const model = bytesToHex(at(20, 32));
    const price = bytesToBigint(at(52, 12));
    const deadline = bytesToBigint(at(64, 8));
    const firstNonce = bytesToBigint(at(72, 8));
    const count = Number(bytesToBigint(at(80, 2)));
    const end = offset + HEADER + count * ITEM;
    if (count === 0 || end > size) throw new PreflightSdkError("INVALID_HEX", `decodePacked: group at byte ${offset} holds ${count} items past the end`);
    for (let i = 0; i < count; i++) {
      const item = offset + HEADER + i * ITEM;
      requests.push({
        payer,
        token: payToken,
        model,
        price,
        nonce: firstNonce + BigInt(i),
        deadline,
        inputHash: bytesToHex(data.subarray(item, item + 32)),
        signature: bytesToHex(data.subarray(item + 32, item + ITEM)),
      });
    }
    offset = end;
  }
  return requests;
}

/**
 * Packing keeps r and s and folds v into the top bit of s (EIP-2098). ethers would also accept a
 * 65-byte signature with v = 0/1 or an EIP-155 v and quietly fix it, which `settle` and `settleBatch`
 * refuse: refuse it here too, so both entry points accept exactly the same signatures.
 */
function assertPackableSignature(signature: string): void {
  if (!isHexBytes(signature) || (signature.length !== 130 && signature.length !== 132)) {
    throw new PreflightSdkError("INVALID_HEX", "encodePacked: signatures must be 64 or 65 bytes (contract-wallet signatures go through settleBatch)");
  }
  if (signature.length === 132) {
    const v = parseInt(signature.slice(130), 16);
    if (v !== 27 && v !== 28) throw new PreflightSdkError("INVALID_HEX", `encodePacked: a 65-byte signature needs v = 27 or 28, not ${v}`);
  }
}
