/**
 * Preflight SDK: everything a dApp needs to sign for Preflight (the provider side, preflight and
 * settlement, is `@preflight/provider`).
 *
 * This entry needs no Node built-in and neither ethers nor viem: it signs with whichever the dApp
 * brings. The ABI, typechain types and deployments are subpaths (`@preflight/sdk/abi`,
 * `@preflight/sdk/typechain`, `@preflight/sdk/deployments`).
 *
 * @example
 * import { getDomain, createSignedRequest, NonceAllocator } from "@preflight/sdk";
 */
export * from "./eip712";
export * from "./types";
export { reasonSentence } from "./reasons";
export * from "./errors";
export * from "./client";
export { NonceAllocator, type BitmapReader, type NonceBitmapContract } from "./nonces";
export { encodePacked, encodeLaneClaims, decodePacked, isPackable, type PackOptions, type SignedPackedItem, type SignedLaneClaim } from "./packed";
export * from "./settlementLogs";
export * from "./signers";
export { hashStruct, hashDomain, hashTypedData, type Eip712Domain, type TypedDataField, type TypedDataTypes } from "./typedData";
export { bytesToHex, checksumAddress, hexToBytes, keccak256, type Hex } from "./hex";
