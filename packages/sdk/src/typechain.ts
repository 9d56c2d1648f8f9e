/**
 * `@preflight/sdk/typechain`: typechain's ethers-v6 types of Preflight (the `Preflight` contract type,
 * its `*Struct` parameter types and event types) and a factory to connect to a deployment, for dApps
 * and services on ethers. Deploying goes through the Hardhat project (`npm run deploy`), so the
 * contract's bytecode is not shipped.
 * @example
 * import { Preflight__factory, type Preflight } from "@preflight/sdk/typechain";
 * const preflight: Preflight = Preflight__factory.connect(address, signer);
 */
import { Contract, Interface, type ContractRunner } from "ethers";
import { preflightAbi } from "./generated/abi";
import type { Preflight, PreflightInterface } from "./generated/typechain/Preflight";

export type * from "./generated/typechain/Preflight";
export type {
  TypedContractEvent,
  TypedContractMethod,
  TypedDeferredTopicFilter,
  TypedEventLog,
  TypedListener,
  TypedLogDescription,
} from "./generated/typechain/common";

/** Connects to a deployed Preflight with typechain's types (typechain's factory without deployment). */
export const Preflight__factory = {
  abi: preflightAbi,
  /**
   * The contract's ethers `Interface`, typed.
   * @example
   * const selector = Preflight__factory.createInterface().getFunction("settleBatch").selector;
   */
  createInterface(): PreflightInterface {
    return new Interface(preflightAbi) as unknown as PreflightInterface;
  },
  /**
   * A typed ethers contract at `address`, connected to `runner` (a signer or a provider).
   * @example
   * const preflight = Preflight__factory.connect(getDeployment(8453n).address, provider);
   */
  connect(address: string, runner?: ContractRunner | null): Preflight {
    return new Contract(address, preflightAbi, runner) as unknown as Preflight;
  },
} as const;
