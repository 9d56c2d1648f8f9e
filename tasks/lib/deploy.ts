/**
 * Deterministic deployment of the Preflight system through Hardhat Ignition's `create2` strategy.
 * Everything that can fail is checked before the first transaction (network, chain id, parameters,
 * factory, deployer balance), so a deployment either completes or sends nothing.
 */
import fs from "node:fs";
import path from "node:path";
import { Contract, Interface, keccak256, formatEther, formatUnits, getAddress, ZeroAddress, id, isHexString, zeroPadValue } from "ethers";
import type { HardhatRuntimeEnvironment } from "hardhat/types";
import PreflightModule from "../../ignition/modules/Preflight";
import TestTokenModule from "../../ignition/modules/TestToken";
import { PreflightError } from "./errors";
import { CREATEX_ADDRESS, CREATEX_CODEHASH, CREATEX_CONTRACT_CREATION, CREATEX_DEPLOY_CREATE2, createXAddress, saltMode } from "./createx";
import { isLocalChain, KNOWN_NETWORKS } from "./networks";
import { assertExpectedChain, chainIdOf } from "./context";
import { parseAddress, parseDuration, parseInteger } from "./input";
import { readRegistry, recordIsInMemory, registryPath, writeRegistry, type ContractRecord, type DeploymentRecord } from "./registry";

/** Deploy options as typed by the user (task parameters, falling back to PREFLIGHT_* variables). */
export interface DeployArgs {
  owner?: string;
  feeBps?: string;
  feeRecipient?: string;
  noticePeriod?: string;
  salt?: string;
  /** "auto" (local chains only), "yes" or "no" */
  testToken?: string;
  tokenName?: string;
  tokenSymbol?: string;
  tokenDecimals?: string;
  skipVerify?: boolean;
  /** run every check and print the plan and its cost, but send nothing and write nothing */
  dryRun?: boolean;
  /** skip the compile step (the artifacts are known to be fresh) */
  noCompile?: boolean;
}

/** The default CREATE2 salt: the same everywhere, so equal parameters give equal addresses on every chain. */
export const DEFAULT_SALT_LABEL = "preflight.v1";
/** keccak256 of the default label: the salt `npx hardhat ignition deploy --strategy create2` uses too. */
export const DEFAULT_SALT = id(DEFAULT_SALT_LABEL);
/** Safety margin on the balance check: Ignition may raise fees while a transaction waits. */
const FEE_MARGIN_PERCENT = 130n;
/** What going through CreateX costs on top of a plain CREATE, when CreateX is not installed yet to ask it. */
const CREATEX_OVERHEAD_GAS = 40_000n;
const MAX_FEE_BPS = 1_000n;
const MAX_NOTICE_PERIOD = 365n * 24n * 3600n;

interface Planned {
  name: "Preflight" | "TestToken";
  address: string;
  initCode: string;
  args: Record<string, string>;
  argsList: string[];
  deployed: boolean;
}

function envOr(value: string | undefined, variable: string): string | undefined {
  if (value !== undefined && value !== "") return value;
  const fromEnv = process.env[variable]?.trim();
  return fromEnv === undefined || fromEnv === "" ? undefined : fromEnv;
}

/** A salt from a label (hashed) or a 32-byte hex value (as is). */
export function resolveSalt(value: string): string {
  if (value.startsWith("0x")) {
    if (!isHexString(value, 32)) throw new PreflightError(`--salt "${value}" starts with 0x but is not 32 bytes; give 0x + 64 hex digits, or a label to hash.`);
    return value.toLowerCase();
  }
  return id(value);
}

/** Whether and why explorer verification runs. */
export function verificationPlan(chainId: number, apiKey: unknown, skip: boolean, explorerChainIds: readonly number[]): { verify: boolean; reason: string } {
  if (skip) return { verify: false, reason: "skipped: --skip-verify" };
  if (isLocalChain(chainId)) return { verify: false, reason: "skipped: local chain" };
  if (typeof apiKey !== "string" || apiKey.trim() === "") return { verify: false, reason: "skipped: ETHERSCAN_API_KEY is not set" };
  if (!explorerChainIds.includes(chainId)) return { verify: false, reason: `skipped: no explorer configured for chain ${chainId} (set CUSTOM_EXPLORER_URL)` };
  return { verify: true, reason: "pending" };
}

/** Turns a revert of a would-be deployment into its Preflight custom error, when it has one. */
function explainRevert(hre: HardhatRuntimeEnvironment, e: unknown): string {
  const data = (e as { data?: string }).data ?? (e as { error?: { data?: string } }).error?.data;
  if (typeof data === "string" && data.length >= 10) {
    const iface = new Interface(hre.artifacts.readArtifactSync("Preflight").abi);
    const parsed = iface.parseError(data);
    if (parsed !== null) return `${parsed.name}(${parsed.args.map(String).join(", ")})`;
  }
  return (e as Error).message;
}

/** The OP-stack GasPriceOracle predeploy (OP Sepolia, Base Sepolia, ...): L2 gas estimates leave out its L1 data fee. */
export const OP_GAS_PRICE_ORACLE = "0x420000000000000000000000000000000000000F";

/** The L1 data fee of a transaction carrying `data`, on OP-stack chains; 0 elsewhere. */
async function l1DataFee(hre: HardhatRuntimeEnvironment, data: string): Promise<bigint> {
  if ((await hre.ethers.provider.getCode(OP_GAS_PRICE_ORACLE)) === "0x") return 0n;
  const oracle = new Contract(OP_GAS_PRICE_ORACLE, ["function getL1Fee(bytes) view returns (uint256)"], hre.ethers.provider);
  try {
    // The fee is charged on the signed transaction; its calldata is nearly all of it.
    return (await oracle.getL1Fee(data)) as bigint;
  } catch {
    return 0n;
  }
}

async function findCreation(hre: HardhatRuntimeEnvironment, address: string, fromBlock: number): Promise<{ block: number | null; tx: string | null }> {
  const event = new Interface([CREATEX_CONTRACT_CREATION]).getEvent("ContractCreation")!;
  try {
    const logs = await hre.ethers.provider.getLogs({
      address: CREATEX_ADDRESS,
      topics: [event.topicHash, zeroPadValue(address, 32)],
      fromBlock,
      toBlock: "latest",
    });
    if (logs.length > 0) return { block: logs[0].blockNumber, tx: logs[0].transactionHash };
  } catch {
    // Public RPCs limit log ranges; the origin is then recorded as unknown.
  }
  return { block: null, tx: null };
}

interface ModuleArgs {
  salt: string;
  deploymentId: string;
  deployer: string;
  owner: string;
  noticePeriod: bigint;
  feeBps: bigint;
  feeRecipient: string;
  tokenName: string;
  tokenSymbol: string;
  tokenDecimals: bigint;
}

/** Runs the Ignition module of `item` with the create2 strategy; returns the address Ignition reports. */
async function deployModule(hre: HardhatRuntimeEnvironment, item: Planned, a: ModuleArgs): Promise<string> {
  const options = { strategy: "create2" as const, strategyConfig: { salt: a.salt }, deploymentId: a.deploymentId, defaultSender: a.deployer };
  if (item.name === "Preflight") {
    const { preflight } = await hre.ignition.deploy(PreflightModule, {
      ...options,
      parameters: { Preflight: { owner: a.owner, noticePeriod: a.noticePeriod, feeBps: a.feeBps, feeRecipient: a.feeRecipient } },
    });
    return getAddress(await preflight.getAddress());
  }
  const { testToken } = await hre.ignition.deploy(TestTokenModule, {
    ...options,
    parameters: { TestToken: { name: a.tokenName, symbol: a.tokenSymbol, decimals: a.tokenDecimals } },
  });
  return getAddress(await testToken.getAddress());
}

/**
 * Deploys (or finds) Preflight and, on request, a TestToken, and writes `deployments/<chainId>.json`.
 * @param log where progress goes (console.log in the task)
 */
export async function deploySystem(hre: HardhatRuntimeEnvironment, args: DeployArgs, log: (line: string) => void): Promise<DeploymentRecord> {
  const { ethers, network } = hre;
  if (args.noCompile !== true) await hre.run("compile", { quiet: true });

  // ---- network and chain id
  const chainId = await chainIdOf(hre);
  assertExpectedChain(hre, chainId);

  // ---- deployer
  const signers = await ethers.getSigners();
  if (signers.length === 0) {
    throw new PreflightError(`Network "${network.name}" has no deployer account: set its private key variable (see .env.example).`);
  }
  const deployer = signers[0];

  // ---- parameters
  const owner = parseAddress("--owner", envOr(args.owner, "PREFLIGHT_OWNER") ?? deployer.address);
  const feeBps = parseInteger("--fee-bps", envOr(args.feeBps, "PREFLIGHT_FEE_BPS") ?? "0", MAX_FEE_BPS);
  const feeRecipientText = envOr(args.feeRecipient, "PREFLIGHT_FEE_RECIPIENT");
  const feeRecipient = feeRecipientText === undefined ? ZeroAddress : parseAddress("--fee-recipient", feeRecipientText);
  if (feeBps > 0n && feeRecipient === ZeroAddress) {
    throw new PreflightError(`--fee-bps is ${feeBps} but no --fee-recipient is set: give the address that receives the fee (or PREFLIGHT_FEE_RECIPIENT).`);
  }
  const noticePeriod = parseDuration("--notice-period", envOr(args.noticePeriod, "PREFLIGHT_NOTICE_PERIOD") ?? "3d");
  if (noticePeriod === 0n) throw new PreflightError("--notice-period must be more than zero, or providers could not settle what they served before a payer withdraws.");
  if (noticePeriod > MAX_NOTICE_PERIOD) {
    throw new PreflightError(`--notice-period is ${noticePeriod} s, more than the largest allowed, 365 days (${MAX_NOTICE_PERIOD} s): payers could not withdraw.`);
  }
  const salt = resolveSalt(envOr(args.salt, "PREFLIGHT_SALT") ?? DEFAULT_SALT_LABEL);
  const mode = saltMode(salt, deployer.address);
  const testTokenChoice = (args.testToken ?? "auto").toLowerCase();
  if (!["auto", "yes", "no"].includes(testTokenChoice)) throw new PreflightError(`--test-token must be auto, yes or no; it is "${args.testToken}".`);
  const withTestToken = testTokenChoice === "yes" || (testTokenChoice === "auto" && isLocalChain(chainId));
  const tokenDecimals = parseInteger("--token-decimals", args.tokenDecimals ?? "6", 36n);

  // ---- planned contracts and their CREATE2 addresses
  const plan: Planned[] = [];
  const preflightFactory = await ethers.getContractFactory("Preflight");
  const preflightInit = (await preflightFactory.getDeployTransaction(owner, noticePeriod, feeBps, feeRecipient)).data;
  plan.push({
    name: "Preflight",
    address: createXAddress(salt, deployer.address, BigInt(chainId), preflightInit),
    initCode: preflightInit,
    args: { initialOwner: owner, noticePeriod: noticePeriod.toString(), feeBps: feeBps.toString(), feeRecipient },
    argsList: [owner, noticePeriod.toString(), feeBps.toString(), feeRecipient],
    deployed: false,
  });
  const tokenName = args.tokenName ?? "Test USD Coin";
  const tokenSymbol = args.tokenSymbol ?? "tUSDC";
  if (withTestToken) {
    const tokenFactory = await ethers.getContractFactory("TestToken");
    const tokenInit = (await tokenFactory.getDeployTransaction(tokenName, tokenSymbol, tokenDecimals)).data;
    plan.push({
      name: "TestToken",
      address: createXAddress(salt, deployer.address, BigInt(chainId), tokenInit),
      initCode: tokenInit,
      args: { name: tokenName, symbol: tokenSymbol, decimals: tokenDecimals.toString() },
      argsList: [tokenName, tokenSymbol, tokenDecimals.toString()],
      deployed: false,
    });
  }
  for (const item of plan) item.deployed = (await ethers.provider.getCode(item.address)) !== "0x";

  log(`Network ${network.name} (chain ${chainId}), deployer ${deployer.address}`);
  if (network.name === "hardhat") {
    log("Note: the in-process hardhat network is gone when this command exits; to keep a deployment, run a node (npx hardhat node) and use --network localhost.");
  }
  log(`CREATE2 through CreateX ${CREATEX_ADDRESS}, salt ${salt} (${mode})`);
  for (const item of plan) {
    log(`  ${item.name.padEnd(10)} ${item.address}  ${item.deployed ? "already deployed: reusing it" : "to deploy"}`);
  }
  const toDeploy = plan.filter((p) => !p.deployed);
  let fromBlock = 0;
  const dryRunRecord = (): DeploymentRecord => ({
    chainId,
    network: network.name,
    factory: CREATEX_ADDRESS,
    salt,
    saltMode: mode,
    deployer: deployer.address,
    contracts: Object.fromEntries(
      plan.map((item) => [
        item.name,
        {
          address: item.address,
          constructorArgs: item.args,
          constructorArgsList: item.argsList,
          initCodeHash: keccak256(item.initCode),
          block: null,
          transactionHash: null,
          reused: item.deployed,
          verification: "skipped: dry run",
        },
      ]),
    ) as DeploymentRecord["contracts"],
    updatedAt: new Date().toISOString(),
  });

  if (toDeploy.length > 0) {
    // ---- factory
    const factoryCode = await ethers.provider.getCode(CREATEX_ADDRESS);
    const factoryPresent = factoryCode !== "0x";
    if (factoryPresent && keccak256(factoryCode) !== CREATEX_CODEHASH) {
      throw new PreflightError(`The code at ${CREATEX_ADDRESS} on chain ${chainId} is not CreateX: CREATE2 addresses would not match other chains.`);
    }
    if (!factoryPresent && chainId !== 31337) {
      throw new PreflightError(
        `The CreateX factory (${CREATEX_ADDRESS}) is not deployed on chain ${chainId}, so no deterministic deployment is possible there yet. ` +
          `It exists on 150+ chains (https://github.com/pcaversaccio/createx#createx-deployments); on a new chain, broadcast its ` +
          `presigned transaction first (fund 0xeD456e05CaAb11d66C4c797dD6c1D6f9A7F352b5 with 0.3 ETH, then send the raw transaction ` +
          `from the CreateX repository). Local chains with id 31337 get it installed automatically.`,
      );
    }

    // ---- gas and balance
    const factoryIface = new Interface([CREATEX_DEPLOY_CREATE2]);
    let gas = 0n;
    for (const item of toDeploy) {
      try {
        gas += factoryPresent
          ? await ethers.provider.estimateGas({
              from: deployer.address,
              to: CREATEX_ADDRESS,
              data: factoryIface.encodeFunctionData("deployCreate2", [salt, item.initCode]),
            })
          : (await ethers.provider.estimateGas({ from: deployer.address, data: item.initCode })) + CREATEX_OVERHEAD_GAS;
      } catch (e) {
        throw new PreflightError(`Deploying ${item.name} would revert: ${explainRevert(hre, e)}. Check the deploy parameters.`);
      }
    }
    const feeData = await ethers.provider.getFeeData();
    const gasPrice = feeData.maxFeePerGas ?? feeData.gasPrice ?? 0n;
    let l1Fee = 0n;
    for (const item of toDeploy) l1Fee += await l1DataFee(hre, factoryIface.encodeFunctionData("deployCreate2", [salt, item.initCode]));
    const needed = ((gas * gasPrice + l1Fee) * FEE_MARGIN_PERCENT) / 100n;
    const balance = await ethers.provider.getBalance(deployer.address);
    const breakdown =
      `${gas} gas at up to ${formatUnits(gasPrice, "gwei")} gwei` +
      (l1Fee > 0n ? ` + ${formatEther(l1Fee)} ETH L1 data fee` : "") +
      `, plus ${FEE_MARGIN_PERCENT - 100n}% margin`;
    log(`Estimated cost: about ${formatEther(needed)} ETH (${breakdown})`);
    if (balance < needed) {
      throw new PreflightError(
        `The deployer ${deployer.address} holds ${formatEther(balance)} ETH on ${network.name}, but the deployment needs about ` +
          `${formatEther(needed)} ETH (${breakdown}). ` +
          `Send it at least ${formatEther(needed - balance)} ETH (a faucet, on a testnet) and run the deploy again. Nothing was sent.`,
      );
    }

    if (args.dryRun === true) {
      log("Dry run: every check passed; nothing was sent and no file was written.");
      return dryRunRecord();
    }

    // ---- deploy with Ignition
    fromBlock = await ethers.provider.getBlockNumber();
    for (const item of toDeploy) {
      // A local chain forgets everything when its node stops, so its Ignition journal is of no later
      // use (and one from an earlier run would lie): it gets a journal of its own, removed afterwards.
      const local = isLocalChain(chainId) && network.name !== "hardhat";
      const deploymentId = `${item.name.toLowerCase()}-${chainId}-${item.address.slice(2, 10).toLowerCase()}${local ? `-run${process.pid}-${Date.now()}` : ""}`;
      const journal = path.join(hre.config.paths.ignition, "deployments", deploymentId);
      try {
        for (let attempt = 1; ; attempt++) {
          log(`Deploying ${item.name} with Ignition (deployment id ${deploymentId})...`);
          const actual = await deployModule(hre, item, { salt, deploymentId, deployer: deployer.address, owner, noticePeriod, feeBps, feeRecipient, tokenName, tokenSymbol, tokenDecimals });
          if (actual === item.address && (await ethers.provider.getCode(item.address)) !== "0x") break;
          if (attempt === 1 && fs.existsSync(journal)) {
            // Ignition trusted a journal of a deployment this chain does not have (a devnet that was reset).
            const aside = `${journal}.stale-${Date.now()}`;
            fs.renameSync(journal, aside);
            log(`  Ignition's journal claims a deployment this chain does not have (was it reset?); moved it to ${aside}`);
            continue;
          }
          throw new PreflightError(`Ignition reports ${item.name} at ${actual}, but no contract is at the expected ${item.address}; nothing more was sent.`);
        }
      } finally {
        if (local) fs.rmSync(journal, { recursive: true, force: true });
      }
      log(`  ${item.name} deployed at ${item.address}`);
    }
  }

  if (args.dryRun === true) {
    log("Dry run: nothing to deploy; nothing was sent and no file was written.");
    return dryRunRecord();
  }

  // ---- registry
  const previous = readRegistry(hre, chainId);
  const records: Partial<Record<Planned["name"], ContractRecord>> = {};
  const explorerChainIds = [...KNOWN_NETWORKS.map((n) => n.chainId), ...hre.config.etherscan.customChains.map((c) => c.chainId)];
  const verification = verificationPlan(chainId, hre.config.etherscan.apiKey, args.skipVerify === true, explorerChainIds);
  for (const item of plan) {
    const known = previous?.contracts[item.name];
    let origin: { block: number | null; tx: string | null };
    if (known !== undefined && getAddress(known.address) === item.address && known.block !== null) {
      origin = { block: known.block, tx: known.transactionHash };
    } else {
      origin = await findCreation(hre, item.address, item.deployed ? 0 : fromBlock);
    }
    const blockHash = origin.block === null ? null : ((await ethers.provider.getBlock(origin.block))?.hash ?? null);
    records[item.name] = {
      address: item.address,
      constructorArgs: item.args,
      constructorArgsList: item.argsList,
      initCodeHash: keccak256(item.initCode),
      block: origin.block,
      blockHash,
      transactionHash: origin.tx,
      reused: item.deployed,
      verification: known?.verification === "verified" && getAddress(known.address) === item.address ? "verified" : verification.reason,
    };
  }
  const record: DeploymentRecord = {
    chainId,
    network: network.name,
    factory: CREATEX_ADDRESS,
    salt,
    saltMode: mode,
    deployer: deployer.address,
    contracts: {
      Preflight: records.Preflight!,
      ...(records.TestToken !== undefined ? { TestToken: records.TestToken } : previous?.contracts.TestToken !== undefined ? { TestToken: previous.contracts.TestToken } : {}),
    },
    updatedAt: new Date().toISOString(),
  };
  const file = writeRegistry(hre, record);
  log(`Registry written: ${file}`);
  if (recordIsInMemory(hre)) log(`(${registryPath(hre, chainId)}, which tasks against a running node read, is left as it was)`);

  // ---- explorer verification (after the registry, so a failure here leaves the deployment recorded)
  if (!verification.verify) {
    log(`Explorer verification ${verification.reason}`);
    return record;
  }
  for (const item of plan) {
    const entry = record.contracts[item.name]!;
    if (entry.verification === "verified") continue;
    try {
      await hre.run("verify:verify", { address: item.address, constructorArguments: item.argsList });
      entry.verification = "verified";
    } catch (e) {
      entry.verification = `failed: ${(e as Error).message.split("\n")[0]}`;
      log(
        `Verification of ${item.name} failed (${entry.verification}); the deployment itself is complete. Retry with:\n` +
          `  npx hardhat verify --network ${network.name} ${item.address} ${item.argsList.map((a) => JSON.stringify(a)).join(" ")}`,
      );
    }
  }
  writeRegistry(hre, record);
  return record;
}
