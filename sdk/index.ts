/**
 * Preflight SDK: everything a dApp needs to sign for Preflight, and everything a provider needs to
 * preflight and settle what it serves.
 *
 * @example
 * import { getDomain, createSignedRequest, PreflightVerifier, BatchSettler, NonceAllocator } from "preflight/sdk";
 */
export * from "./eip712";
export * from "./types";
export * from "./errors";
export * from "./client";
export { NonceAllocator, type BitmapReader } from "./nonces";
export { PreflightVerifier, type Decision, type VerifyOptions, type PreflightVerifierOptions, type AccountView, type GrantView } from "./verifier";
export { BatchSettler, type BatchSettlerOptions, type BatchResult, type ItemResult } from "./settler";
export { encodePacked, encodeLaneClaims, decodePacked, type SignedPackedItem, type SignedLaneClaim } from "./packed";
export * from "./settlementLogs";
export { DigestComputer } from "./digest";
export { cryptoBackend, type CryptoBackend } from "./crypto";
export type { Preflight, TestToken } from "../typechain-types";
export type {
  SignedRequestStruct,
  SignedVoucherStruct,
  GrantTermsStruct,
} from "../typechain-types/contracts/Preflight";
export { Preflight__factory, TestToken__factory } from "../typechain-types";
