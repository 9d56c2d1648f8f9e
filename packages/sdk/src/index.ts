/**
 * Preflight SDK: everything a dApp needs to sign for Preflight (the provider side, preflight and
 * settlement, is `@preflight/provider`).
 *
 * @example
 * import { getDomain, createSignedRequest, NonceAllocator } from "@preflight/sdk";
 */
export * from "./eip712";
export * from "./types";
export * from "./errors";
export * from "./client";
export { NonceAllocator, type BitmapReader } from "./nonces";
export { encodePacked, decodePacked, type SignedPackedItem } from "./packed";
export type { Preflight, TestToken } from "../../../typechain-types";
export type {
  SignedRequestStruct,
  SignedVoucherStruct,
  GrantTermsStruct,
} from "../../../typechain-types/contracts/Preflight";
export { Preflight__factory, TestToken__factory } from "../../../typechain-types";
