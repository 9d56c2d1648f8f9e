// Inside this repository `@preflight/sdk` and `@preflight/provider` run from their TypeScript source
// (tsconfig.json "paths"), so tests, tasks and scripts need no package build; users get the built dist.
import "tsconfig-paths/register";
import { subtask, task } from "hardhat/config";
import {
  TASK_COMPILE,
  TASK_COMPILE_SOLIDITY_COMPILE_SOLC,
  TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD,
  TASK_COMPILE_SOLIDITY_GET_SOURCE_PATHS,
} from "hardhat/builtin-tasks/task-names";
import type { HardhatUserConfig } from "hardhat/config";
import "@nomicfoundation/hardhat-toolbox";
import path from "node:path";
import "dotenv/config";
import "./tasks";
import { checkRequestedNetwork, networksFromEnv, requestedNetwork } from "./tasks/lib/networks";
import { DEFAULT_SALT } from "./tasks/lib/deploy";
import { generateSdkSources } from "./packages/sdk/scripts/generate";
import { exitOnUserError } from "./tasks/lib/errors";

/**
 * Testnets and custom chains come from environment variables (.env; see .env.example). Only the
 * requested network's variables must be valid: a bad key for another network is a warning.
 */
const requested = requestedNetwork(process.argv, process.env);
const envNetworks = exitOnUserError(() => networksFromEnv(process.env, requested));
for (const warning of envNetworks.warnings) console.warn(`Warning: ${warning}`);
exitOnUserError(() => checkRequestedNetwork(requested, envNetworks));

/**
 * `npm test`'s coverage stage (PREFLIGHT_COVERAGE=1) builds instrumented contracts: they go to a
 * folder of their own, and typechain is not regenerated from them, so the real artifacts and types
 * stay valid and nothing recompiles after `npm test`.
 */
const COVERAGE = process.env.PREFLIGHT_COVERAGE !== undefined;

/**
 * Compilers come from exact-pinned `solc` npm packages (soljson), never from the internet:
 * Hardhat's own compiler download is not reachable on our build machines.
 * 0.8.30 builds Preflight; 0.8.17 builds the Uniswap Permit2 peer with its published settings.
 */
const SOLCJS_BY_VERSION: Record<string, string> = {
  "0.8.30": "solc",
  "0.8.17": "solc-0.8.17",
};

subtask(TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD, async (args: { solcVersion: string }, _hre, runSuper) => {
  const pkg = SOLCJS_BY_VERSION[args.solcVersion];
  if (pkg === undefined) return runSuper();
  const solcjs = require(`${pkg}/package.json`) as { version: string };
  const compilerPath = path.join(path.dirname(require.resolve(`${pkg}/package.json`)), "soljson.js");
  const longVersion = (require(compilerPath) as { cwrap: (n: string, r: string, a: string[]) => () => string }).cwrap(
    "solidity_version",
    "string",
    [],
  )();
  return { compilerPath, isSolcJs: true, version: solcjs.version, longVersion };
});

/** Every compile refreshes @preflight/sdk's generated ABI, typechain types and deployments (git-ignored). */
task(TASK_COMPILE, async (args, hre, runSuper) => {
  const result: unknown = await runSuper(args);
  generateSdkSources(hre.config.paths.root, {
    artifactsDir: hre.config.paths.artifacts,
    typechainDir: path.resolve(hre.config.paths.root, hre.config.typechain.outDir),
  });
  return result;
});

/**
 * The coverage build leaves out the benchmark peers (contracts/bench/: the OpenZeppelin-style
 * baseline, EIP-3009, Permit2 with its own compiler): only the gas suite uses them, and it does not
 * run under coverage. That saves a whole solc 0.8.17 build of Permit2 per `npm test`.
 */
subtask(TASK_COMPILE_SOLIDITY_GET_SOURCE_PATHS, async (args, _hre, runSuper) => {
  const paths = (await runSuper(args)) as string[];
  const bench = path.join(__dirname, "contracts", "bench") + path.sep;
  return COVERAGE ? paths.filter((p) => !p.startsWith(bench)) : paths;
});

/**
 * Compile progress, even with --quiet (the demo and the tests compile quietly): a cold viaIR build
 * with solcjs takes minutes, and a silent wait looks like a hang. Goes to stderr.
 */
subtask(TASK_COMPILE_SOLIDITY_COMPILE_SOLC, async (args: { input: { sources: object }; solcVersion: string }, _hre, runSuper) => {
  const files = Object.keys(args.input.sources).length;
  const started = Date.now();
  const seconds = (): string => `${Math.round((Date.now() - started) / 1000)} s`;
  console.error(`Compiling ${files} Solidity file(s) with solc ${args.solcVersion} (viaIR, optimizer); a first build takes a few minutes, later ones only what changed...`);
  const ticker = setInterval(() => console.error(`  still compiling with solc ${args.solcVersion} (${seconds()})`), 30_000);
  try {
    return await runSuper(args);
  } finally {
    clearInterval(ticker);
    console.error(`  solc ${args.solcVersion} done in ${seconds()}`);
  }
});

const config: HardhatUserConfig = {
  solidity: {
    compilers: [
      {
        version: "0.8.30",
        settings: {
          evmVersion: "prague",
          viaIR: true,
          // 3,000 runs, not 1,000,000: the v2 contract must stay under the 24,576-byte code size limit.
          optimizer: { enabled: true, runs: 3_000 },
          // The gas suite (bench/) reads storage layouts to attribute SLOAD/SSTORE to steps.
          outputSelection: { "*": { "*": ["storageLayout"] } },
        },
      },
      {
        // Uniswap Permit2 (benchmark peer, contracts/bench/Permit2Peer.sol), with the settings of its
        // own foundry.toml: solc 0.8.17, via-IR, 1,000,000 runs, no metadata hash (london is 0.8.17's default EVM).
        version: "0.8.17",
        settings: {
          evmVersion: "london",
          viaIR: true,
          optimizer: { enabled: true, runs: 1_000_000 },
          metadata: { bytecodeHash: "none" },
          outputSelection: { "*": { "*": ["storageLayout"] } },
        },
      },
    ],
  },
  paths: COVERAGE ? { artifacts: "cache/coverage/artifacts", cache: "cache/coverage/cache" } : {},
  typechain: { dontOverrideCompile: COVERAGE },
  networks: {
    // Coverage runs on prague: the instrumented v2 contract's deployment needs more than Osaka's
    // 2^24 gas per transaction (EIP-7825). Everything else, gas figures included, runs on osaka.
    hardhat: { hardfork: process.argv.includes("coverage") ? "prague" : "osaka" },
    ...envNetworks.networks,
  },
  // Explorer verification (hardhat-verify, Etherscan v2: one key for every chain). Never attempted without a key.
  etherscan: { apiKey: process.env.ETHERSCAN_API_KEY ?? "", customChains: envNetworks.explorerChains },
  sourcify: { enabled: false },
  // `npx hardhat ignition deploy ... --strategy create2` gets the same salt, so the same addresses, as `npm run deploy`.
  ignition: { strategyConfig: { create2: { salt: DEFAULT_SALT } } },
  gasReporter: {
    enabled: process.env.REPORT_GAS !== undefined,
    currency: "USD",
    offline: true,
  },
  // `npm test` (scripts/test/) records every test's duration against its timeout through this reporter.
  mocha: {
    timeout: 120_000,
    ...(process.env.PREFLIGHT_TEST_TIMINGS !== undefined ? { reporter: path.join(__dirname, "scripts", "test", "timingReporter.ts") } : {}),
  },
};

export default config;
