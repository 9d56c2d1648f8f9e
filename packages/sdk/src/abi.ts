/**
 * `@preflight/sdk/abi`: the Preflight contract's ABI `as const`, generated from the compiled contract,
 * for viem (`getContract`, `readContract`, `writeContract`, `parseEventLogs` infer every argument and
 * return type from it) or any other ABI consumer. No dependencies.
 * @example
 * import { preflightAbi } from "@preflight/sdk/abi";
 * const preflight = getContract({ address, abi: preflightAbi, client: publicClient });
 * const earned = await preflight.read.earningsOf([provider, token]);
 */
export { preflightAbi } from "./generated/abi";
