// Inside this repository `@preflight/sdk` and `@preflight/provider` run from their TypeScript source
// (tsconfig.json "paths"), so tests, tasks and scripts need no package build; users get the built dist.
import "tsconfig-paths/register";
import { subtask, task } from "hardhat/config";
import { TASK_COMPILE, TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD } from "hardhat/builtin-tasks/task-names";
import type { HardhatUserConfig } from "hardhat/config";
import "@nomicfoundation/hardhat-toolbox";
import path from "node:path";
import "dotenv/config";
import "./tasks";
import { assertRequestedNetworkConfigured, networksFromEnv, requestedNetwork } from "./tasks/lib/networks";
import { DEFAULT_SALT } from "./tasks/lib/deploy";
import { generateSdkSources } from "./packages/sdk/scripts/generate";

/** Testnets and custom chains come from environment variables (.env; see .env.example). */
const envNetworks = networksFromEnv(process.env);
assertRequestedNetworkConfigured(requestedNetwork(process.argv, process.env), envNetworks.missing);

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
  generateSdkSources(hre.config.paths.root);
  return result;
});

const config: HardhatUserConfig = {
  solidity: {
    compilers: [
      {
        version: "0.8.30",
        settings: {
          evmVersion: "prague",
          viaIR: true,
          // 10,000 runs, not 1,000,000: the v2 contract must stay under the 24,576-byte code size limit.
          optimizer: { enabled: true, runs: 10_000 },
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
  mocha: { timeout: 120_000 },
};

export default config;
