/**
 * What every user task needs: the deployment on the current chain, the acting account, tokens in
 * human units, and transactions whose reverts are explained by the contract's custom errors.
 */
import { Contract, Interface, ZeroAddress, getAddress, type ContractTransactionResponse, type TransactionReceipt } from "ethers";
import type { ConfigurableTaskDefinition, HardhatRuntimeEnvironment } from "hardhat/types";
import type { HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/signers";
import type { Preflight } from "../../typechain-types";
import type { PreflightDomain } from "@preflight/sdk";
import { PreflightError } from "./errors";
import { parseAddress } from "./input";
import { readRegistry, registryPath, type DeploymentRecord } from "./registry";

export const ETH = ZeroAddress;

export interface TokenInfo {
  address: string;
  symbol: string;
  decimals: number;
}

export interface TaskContext {
  hre: HardhatRuntimeEnvironment;
  chainId: number;
  record: DeploymentRecord | undefined;
  preflight: Preflight;
  domain: PreflightDomain;
  signer: HardhatEthersSigner;
}

/**
 * The account a task acts as: `--from` as an index into the network's accounts (0 = first key) or
 * as one of their addresses.
 */
export async function resolveSigner(hre: HardhatRuntimeEnvironment, from: string | undefined): Promise<HardhatEthersSigner> {
  const signers = await hre.ethers.getSigners();
  if (signers.length === 0) {
    throw new PreflightError(`Network "${hre.network.name}" has no accounts: set its private key variable (see .env.example).`);
  }
  if (from === undefined || from === "") return signers[0];
  if (/^[0-9]+$/.test(from)) {
    const index = Number(from);
    if (index >= signers.length) {
      throw new PreflightError(`--from ${from}: network "${hre.network.name}" has ${signers.length} account(s) (0 to ${signers.length - 1}); add keys to its *_PRIVATE_KEY variable, comma-separated.`);
    }
    return signers[index];
  }
  const address = parseAddress("--from", from);
  const signer = signers.find((s) => s.address === address);
  if (signer === undefined) {
    throw new PreflightError(`--from ${address} is not one of the accounts of network "${hre.network.name}" (${signers.length} configured); give its index or add its key.`);
  }
  return signer;
}

/** The chain id the network's RPC answers with, or a clear error when it cannot be reached. */
export async function chainIdOf(hre: HardhatRuntimeEnvironment): Promise<number> {
  try {
    return Number(await hre.ethers.provider.send("eth_chainId", []));
  } catch (e) {
    // Hardhat's own check of a network's configured chainId (HH101) names the chain the RPC serves.
    const served = /connected to a chain with id (\d+)/.exec((e as Error).message);
    if (served !== null) return Number(served[1]);
    const url = "url" in hre.network.config ? hre.network.config.url : "in-process";
    throw new PreflightError(
      `Cannot reach network "${hre.network.name}" at ${url} (${(e as Error).message.split("\n")[0]}). ` +
        (hre.network.name === "localhost"
          ? "Start a node first (npx hardhat node, or anvil), or point LOCALHOST_RPC_URL at it."
          : "Check its RPC URL variable (see .env.example) and your connection."),
    );
  }
}

/** Refuses to go on when the network's RPC serves another chain than the network is configured for. */
export function assertExpectedChain(hre: HardhatRuntimeEnvironment, chainId: number): void {
  const expected = hre.network.config.chainId;
  if (hre.network.name === "hardhat" || expected === undefined || expected === chainId) return;
  throw new PreflightError(
    `Network "${hre.network.name}" is chain ${expected}, but its RPC URL answers as chain ${chainId}. ` +
      `Point the network's RPC URL variable (see .env.example) at a ${hre.network.name} endpoint` +
      (hre.network.name === "custom" ? `, or set CUSTOM_CHAIN_ID=${chainId} if that is the chain you meant.` : "."),
  );
}

/**
 * Loads the deployment of the current chain (or `--preflight <address>`) and checks it is really there.
 */
export async function loadContext(hre: HardhatRuntimeEnvironment, opts: { from?: string; preflight?: string }): Promise<TaskContext> {
  const chainId = await chainIdOf(hre);
  assertExpectedChain(hre, chainId);
  const record = readRegistry(hre, chainId);
  let address: string;
  if (opts.preflight !== undefined && opts.preflight !== "") {
    address = parseAddress("--preflight", opts.preflight);
  } else if (record !== undefined) {
    address = getAddress(record.contracts.Preflight.address);
  } else {
    throw new PreflightError(
      `No Preflight deployment is recorded for chain ${chainId} (${registryPath(hre, chainId)}). ` +
        `Deploy first with: npm run deploy -- --network ${hre.network.name}  (or pass --preflight <address>).`,
    );
  }
  if ((await hre.ethers.provider.getCode(address)) === "0x") {
    throw new PreflightError(
      `No contract at ${address} on ${hre.network.name} (chain ${chainId}). ` +
        (hre.network.name === "hardhat"
          ? "The in-process hardhat network starts empty on every command: run a node (npx hardhat node) and use --network localhost, deploying there first."
          : `Was the chain reset? Deploy again with: npm run deploy -- --network ${hre.network.name}`),
    );
  }
  const signer = await resolveSigner(hre, opts.from);
  const preflight = (await hre.ethers.getContractAt("Preflight", address, signer)) as unknown as Preflight;
  return { hre, chainId, record, preflight, domain: { chainId: BigInt(chainId), verifyingContract: address }, signer };
}

const ERC20_ABI = [
  "function decimals() view returns (uint8)",
  "function symbol() view returns (string)",
  "function balanceOf(address) view returns (uint256)",
  "function allowance(address,address) view returns (uint256)",
  "function approve(address,uint256) returns (bool)",
  "function nonces(address) view returns (uint256)",
  "function name() view returns (string)",
  "function DOMAIN_SEPARATOR() view returns (bytes32)",
];

/** An ERC-20 contract handle with the calls tasks need. */
export function erc20(hre: HardhatRuntimeEnvironment, address: string, signer?: HardhatEthersSigner): Contract {
  return new Contract(address, ERC20_ABI, signer ?? hre.ethers.provider);
}

/**
 * Resolves `--token`: "ETH" (native), "test" (the TestToken in the registry), or an ERC-20 address,
 * with its symbol and decimals read from the chain.
 */
export async function resolveToken(ctx: TaskContext, value: string | undefined): Promise<TokenInfo> {
  const text = (value ?? "").trim();
  if (text === "") throw new PreflightError(`--token is required: ETH, test (the deployed test token) or an ERC-20 address.`);
  if (text.toUpperCase() === "ETH") return { address: ETH, symbol: "ETH", decimals: 18 };
  let address: string;
  if (text.toLowerCase() === "test") {
    const token = ctx.record?.contracts.TestToken?.address;
    if (token === undefined) {
      throw new PreflightError(`--token test: no TestToken is recorded for chain ${ctx.chainId}; deploy one with npm run deploy -- --network ${ctx.hre.network.name} --test-token yes, or give a token address.`);
    }
    address = getAddress(token);
  } else {
    address = parseAddress("--token", text);
  }
  if (address === ETH) return { address: ETH, symbol: "ETH", decimals: 18 };
  if ((await ctx.hre.ethers.provider.getCode(address)) === "0x") {
    throw new PreflightError(`--token ${address} has no code on ${ctx.hre.network.name}: it is not a token on this chain.`);
  }
  const token = erc20(ctx.hre, address);
  try {
    const [decimals, symbol] = await Promise.all([token.decimals() as Promise<bigint>, token.symbol() as Promise<string>]);
    return { address, symbol, decimals: Number(decimals) };
  } catch {
    throw new PreflightError(`--token ${address} does not answer decimals() and symbol(): it is not an ERC-20 token.`);
  }
}

/** Symbol and decimals of a token address seen in a file (ETH for the zero address). */
export async function tokenInfo(ctx: TaskContext, address: string): Promise<TokenInfo> {
  return resolveToken(ctx, address === ETH ? "ETH" : address);
}

let preflightInterface: Interface | undefined;

/** "NoticePeriodActive(1700000000)" for a revert carrying a Preflight custom error. */
export function explainError(hre: HardhatRuntimeEnvironment, e: unknown): string {
  preflightInterface ??= new Interface(hre.artifacts.readArtifactSync("Preflight").abi);
  let cursor: unknown = e;
  for (let depth = 0; depth < 5 && typeof cursor === "object" && cursor !== null; depth++) {
    const data = (cursor as { data?: unknown }).data;
    if (typeof data === "string" && data.startsWith("0x") && data.length >= 10) {
      const parsed = preflightInterface.parseError(data);
      if (parsed !== null) return `${parsed.name}(${parsed.args.map(String).join(", ")})`;
    }
    cursor = (cursor as { error?: unknown; info?: unknown }).error ?? (cursor as { info?: { error?: unknown } }).info?.error;
  }
  return (e as Error).message.split("\n")[0];
}

/** Sends a transaction, waits for it, and turns a revert into a message naming the custom error. */
export async function send(
  ctx: TaskContext,
  what: string,
  tx: () => Promise<ContractTransactionResponse>,
  log: (line: string) => void,
): Promise<TransactionReceipt> {
  let response: ContractTransactionResponse;
  try {
    response = await tx();
  } catch (e) {
    throw new PreflightError(`${what} was refused: ${explainError(ctx.hre, e)}.`);
  }
  const receipt = await response.wait();
  if (receipt === null || receipt.status !== 1) throw new PreflightError(`${what} reverted in transaction ${response.hash}.`);
  log(`${what}: transaction ${receipt.hash} (block ${receipt.blockNumber}, ${receipt.gasUsed} gas)`);
  return receipt;
}

/** The options every user task shares. */
export interface Common {
  from?: string;
  preflight?: string;
}

/** Adds `--from` and `--preflight` to a task. */
export function common(t: ConfigurableTaskDefinition): ConfigurableTaskDefinition {
  return t
    .addOptionalParam("from", "account to act as: index into the network's accounts (default 0) or address")
    .addOptionalParam("preflight", "Preflight address (default: the one in deployments/<chainId>.json)");
}

/** The timestamp of the latest block (the chain's clock, not the machine's). */
export async function latestTimestamp(hre: HardhatRuntimeEnvironment): Promise<bigint> {
  const block = await hre.ethers.provider.getBlock("latest");
  return BigInt(block!.timestamp);
}
