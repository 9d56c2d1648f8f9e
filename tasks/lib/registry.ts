/**
 * The deployments registry: one JSON file per chain, `deployments/<chainId>.json`, written by
 * `npm run deploy` and read by every task. Commit the files of public chains; those of local chains
 * (31337, 1337) are git-ignored. `PREFLIGHT_DEPLOYMENTS_DIR` points tasks at another folder.
 *
 * The in-process Hardhat network is ephemeral: it starts empty with every command, so its record
 * lives in memory for as long as the command does, and never replaces the `deployments/31337.json`
 * that tasks against a running node (`--network localhost`, same chain id) read. Only when
 * `PREFLIGHT_DEPLOYMENTS_DIR` names a folder explicitly (the tests do) is it written there.
 */
import fs from "node:fs";
import path from "node:path";
import type { HardhatRuntimeEnvironment } from "hardhat/types";
import { PreflightError } from "./errors";

export interface ContractRecord {
  address: string;
  /** constructor arguments by name, bigints as decimal strings */
  constructorArgs: Record<string, string>;
  /** the same values in constructor order, for `npx hardhat verify` */
  constructorArgsList: string[];
  initCodeHash: string;
  /** block and transaction that created the contract (null when it was found deployed and its origin is unknown) */
  block: number | null;
  transactionHash: string | null;
  /** hash of that block, to tell a reset chain or another node with the same chain id from this one */
  blockHash?: string | null;
  /** whether this run found it already deployed at its address and reused it */
  reused: boolean;
  /** "verified", "skipped: <why>" or "failed: <why>" */
  verification: string;
}

export interface DeploymentRecord {
  chainId: number;
  network: string;
  /** the CREATE2 factory and the salt given to it; the address also depends on the init code */
  factory: string;
  salt: string;
  saltMode: string;
  deployer: string;
  contracts: {
    Preflight: ContractRecord;
    TestToken?: ContractRecord;
  };
  updatedAt: string;
}

function explicitDir(): string | undefined {
  const dir = process.env.PREFLIGHT_DEPLOYMENTS_DIR?.trim();
  return dir !== undefined && dir !== "" ? path.resolve(dir) : undefined;
}

export function registryDir(hre: HardhatRuntimeEnvironment): string {
  return explicitDir() ?? path.join(hre.config.paths.root, "deployments");
}

export function registryPath(hre: HardhatRuntimeEnvironment, chainId: number): string {
  return path.join(registryDir(hre), `${chainId}.json`);
}

/** Records of the in-process chain, which lives no longer than this process. */
const inProcess = new Map<number, DeploymentRecord>();

/** Whether the record of the current network stays in memory (the in-process chain, no explicit folder). */
export function recordIsInMemory(hre: HardhatRuntimeEnvironment): boolean {
  return hre.network.name === "hardhat" && explicitDir() === undefined;
}

/** Where the record of `chainId` is kept, for messages. */
export function registryLocation(hre: HardhatRuntimeEnvironment, chainId: number): string {
  return recordIsInMemory(hre) ? "in memory: the in-process chain ends with this command" : registryPath(hre, chainId);
}

function isRecord(value: unknown): value is DeploymentRecord {
  if (typeof value !== "object" || value === null) return false;
  const r = value as Partial<DeploymentRecord>;
  return typeof r.chainId === "number" && typeof r.contracts?.Preflight?.address === "string";
}

/** The registry of `chainId`, or undefined when there is none. */
export function readRegistry(hre: HardhatRuntimeEnvironment, chainId: number): DeploymentRecord | undefined {
  if (recordIsInMemory(hre)) return inProcess.get(chainId);
  const file = registryPath(hre, chainId);
  if (!fs.existsSync(file)) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    throw new PreflightError(`The deployments registry ${file} is not valid JSON (${(e as Error).message}): fix it, or delete it and run npm run deploy again.`);
  }
  if (!isRecord(parsed) || parsed.chainId !== chainId) {
    throw new PreflightError(`The deployments registry ${file} is not a Preflight deployment of chain ${chainId}: delete it and run npm run deploy again.`);
  }
  return parsed;
}

/** Keeps `record`; returns where (a file, or "in memory: ..."). */
export function writeRegistry(hre: HardhatRuntimeEnvironment, record: DeploymentRecord): string {
  if (recordIsInMemory(hre)) {
    inProcess.set(record.chainId, structuredClone(record));
    return registryLocation(hre, record.chainId);
  }
  const file = registryPath(hre, record.chainId);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify(record, null, 2)}\n`);
  return file;
}
