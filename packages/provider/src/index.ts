/**
 * Preflight provider package (Node): preflight each request off-chain with the contract's rules,
 * settle what was served in batches. Re-exports everything of `@preflight/sdk`, so a service needs
 * one import.
 *
 * @example
 * import { PreflightVerifier, BatchSettler, NonceAllocator, reasonName } from "@preflight/provider";
 */
export * from "@preflight/sdk";
export { PreflightVerifier, type Decision, type VerifyOptions, type PreflightVerifierOptions, type AccountView, type GrantView } from "./verifier";
export { BatchSettler, type BatchSettlerOptions, type BatchResult, type ItemResult } from "./settler";
export { DigestComputer } from "./digest";
export { describeSignedData, formatSignedData, type SignedDataDescription, type SignedDataKind } from "./signedData";
export { cryptoBackend, type CryptoBackend } from "./crypto";
export * from "@preflight/sdk/typechain";
export * from "@preflight/sdk/deployments";
