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
import { formatAmount, parseAddress } from "./input";
import { readRegistry, recordIsInMemory, registryLocation, type DeploymentRecord } from "./registry";

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
      recordIsInMemory(hre)
        ? "The in-process hardhat network starts empty with every command, so nothing is deployed on it yet. " +
            "Run a node (npx hardhat node, or anvil), deploy there with: npm run deploy -- --network localhost, and add --network localhost to this command."
        : `No Preflight deployment is recorded for chain ${chainId} (${registryLocation(hre, chainId)}). ` +
            `Deploy first with: npm run deploy -- --network ${hre.network.name}  (or pass --preflight <address>).`,
    );
  }
  if ((await hre.ethers.provider.getCode(address)) === "0x") {
    const fromRecord = record !== undefined && (opts.preflight === undefined || opts.preflight === "");
    throw new PreflightError(
      `No contract at ${address} on ${hre.network.name} (chain ${chainId}). ` +
        (hre.network.name === "hardhat"
          ? "The in-process hardhat network starts empty on every command: run a node (npx hardhat node) and use --network localhost, deploying there first."
          : fromRecord
            ? `${await diagnoseMissingDeployment(hre, record)} Deploy again with: npm run deploy -- --network ${hre.network.name}`
            : "Check the --preflight address."),
    );
  }
  const signer = await resolveSigner(hre, opts.from);
  const preflight = (await hre.ethers.getContractAt("Preflight", address, signer)) as unknown as Preflight;
  return { hre, chainId, record, preflight, domain: { chainId: BigInt(chainId), verifyingContract: address }, signer };
}

/**
 * Why a recorded deployment has no code on the chain the network serves: the chain is behind the
 * recorded block (reset), or its block at that height is another one (a different node or chain
 * instance with the same chain id), or the record points at nothing that was ever deployed here.
 */
async function diagnoseMissingDeployment(hre: HardhatRuntimeEnvironment, record: DeploymentRecord): Promise<string> {
  const entry = record.contracts.Preflight;
  const where = `The record (written ${record.updatedAt} by a deploy on network "${record.network}")`;
  if (entry.block === null) return `${where} does not say in which block it was deployed; the chain was probably reset.`;
  const head = await hre.ethers.provider.getBlockNumber();
  if (head < entry.block) {
    return `${where} says block ${entry.block}, but this chain is only at block ${head}: the chain was reset (a restarted node) since that deploy.`;
  }
  const block = await hre.ethers.provider.getBlock(entry.block);
  if (entry.blockHash !== undefined && entry.blockHash !== null && block !== null && block.hash !== entry.blockHash) {
    return `${where} says block ${entry.block} is ${entry.blockHash.slice(0, 10)}…, but here it is ${String(block.hash).slice(0, 10)}…: this is another chain with the same chain id (a restarted node, or another node).`;
  }
  return `${where} names a contract this chain does not have; the chain was reset, or the record was copied from another node.`;
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

/** The tokens the deployment record names, by symbol (the TestToken's symbol, e.g. tUSDC). */
function recordedTokens(ctx: TaskContext): { symbol: string; address: string }[] {
  const token = ctx.record?.contracts.TestToken;
  const symbol = token?.constructorArgs.symbol;
  return token !== undefined && symbol !== undefined ? [{ symbol, address: getAddress(token.address) }] : [];
}

/**
 * Resolves `--token`: "ETH" (native), "test" (the TestToken in the registry), the symbol of a token
 * in the registry (e.g. tUSDC; any case), or an ERC-20 address, with its symbol and decimals read
 * from the chain.
 */
export async function resolveToken(ctx: TaskContext, value: string | undefined): Promise<TokenInfo> {
  const text = (value ?? "").trim();
  const recorded = recordedTokens(ctx);
  const accepted = `ETH, test${recorded.map((t) => `, ${t.symbol}`).join("")} or an ERC-20 address`;
  if (text === "") throw new PreflightError(`--token is required: ${accepted}.`);
  if (text.toUpperCase() === "ETH") return { address: ETH, symbol: "ETH", decimals: 18 };
  let address: string;
  const bySymbol = recorded.find((t) => t.symbol.toLowerCase() === text.toLowerCase());
  if (text.toLowerCase() === "test") {
    const token = ctx.record?.contracts.TestToken?.address;
    if (token === undefined) {
      throw new PreflightError(`--token test: no TestToken is recorded for chain ${ctx.chainId}; deploy one with npm run deploy -- --network ${ctx.hre.network.name} --test-token yes, or give a token address.`);
    }
    address = getAddress(token);
  } else if (bySymbol !== undefined) {
    address = bySymbol.address;
  } else if (/^0x/i.test(text)) {
    address = parseAddress("--token", text);
  } else {
    throw new PreflightError(`--token "${text}" is not a token this deployment knows: give ${accepted}.`);
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

/**
 * The shortest `--token` value that names `token` in a printed command: ETH, the symbol of a token in
 * the deployment record, or the address.
 */
export function tokenOption(ctx: TaskContext, token: TokenInfo): string {
  if (token.address === ETH) return "ETH";
  return recordedTokens(ctx).find((t) => t.address === token.address)?.symbol ?? token.address;
}

/** What `account` holds in its wallet (native ETH, or the ERC-20's balance). */
export async function walletBalance(ctx: TaskContext, token: TokenInfo, account: string): Promise<bigint> {
  if (token.address === ETH) return ctx.hre.ethers.provider.getBalance(account);
  return (await erc20(ctx.hre, token.address).balanceOf(account)) as bigint;
}

/** Refuses when the sender's wallet holds less than `amount` of `token` to pay in. */
export async function requireWalletBalance(ctx: TaskContext, token: TokenInfo, amount: bigint, what: string): Promise<void> {
  const held = await walletBalance(ctx, token, ctx.signer.address);
  if (held < amount) {
    const f = (v: bigint): string => formatAmount(v, token.decimals, token.symbol);
    throw new PreflightError(`${ctx.signer.address} holds ${f(held)}, less than the ${f(amount)} to ${what}.`);
  }
}

/** Approves the escrow for `amount` of an ERC-20 when the sender's allowance is lower. */
export async function approveIfNeeded(ctx: TaskContext, token: TokenInfo, amount: bigint, log: (line: string) => void): Promise<void> {
  const escrow = await ctx.preflight.getAddress();
  const contract = erc20(ctx.hre, token.address, ctx.signer);
  const allowance = (await contract.allowance(ctx.signer.address, escrow)) as bigint;
  if (allowance >= amount) return;
  await send(ctx, `Approval of ${formatAmount(amount, token.decimals, token.symbol)}`, () => contract.approve(escrow, amount) as Promise<ContractTransactionResponse>, log);
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

/** Quotes a command-line value when the shell would split or expand it. */
function shellWord(value: string): string {
  return /^[A-Za-z0-9_.,:/@=+-]+$/.test(value) ? value : `'${value.replace(/'/g, "'\\''")}'`;
}

/**
 * A next-step command that works as printed: the task, its options (camelCase names become
 * --kebab-case), the acting account and Preflight address the current command was given, and the
 * network.
 * @example commandFor(hre, "withdraw", { token: "test" }, { from: "1" }) // "npx hardhat withdraw --token test --from 1 --network localhost"
 */
export function commandFor(hre: HardhatRuntimeEnvironment, taskName: string, params: Record<string, string | undefined>, from: Common = {}): string {
  const words = ["npx", "hardhat", taskName];
  const all: Record<string, string | undefined> = { ...params, from: from.from, preflight: from.preflight };
  for (const [name, value] of Object.entries(all)) {
    if (value === undefined || value === "") continue;
    words.push(`--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`, shellWord(value));
  }
  words.push("--network", hre.network.name);
  return words.join(" ");
}

/** The timestamp of the latest block (the chain's clock, not the machine's). */
export async function latestTimestamp(hre: HardhatRuntimeEnvironment): Promise<bigint> {
  const block = await hre.ethers.provider.getBlock("latest");
  return BigInt(block!.timestamp);
}
