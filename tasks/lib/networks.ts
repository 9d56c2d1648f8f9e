/**
 * Networks from environment variables: a network is configured only when its variables are set, and
 * asking for a known network whose variables are missing fails at once, naming each missing variable.
 * Only the requested network's variables must be valid: a malformed variable of another network is a
 * warning and leaves that network out, so one bad testnet key never breaks `--network localhost`.
 * Pure functions of `env`, so the rules are unit-tested without a chain.
 */
import type { HttpNetworkUserConfig } from "hardhat/types";
import { PreflightError, isUserError } from "./errors";

/** A public testnet `npm run deploy -- --network <name>` knows. */
export interface KnownNetwork {
  name: string;
  chainId: number;
  /** prefix of its variables: `<prefix>_RPC_URL`, `<prefix>_PRIVATE_KEY` */
  envPrefix: string;
  /** the Etherscan (v2 API) browser URL, for hardhat-verify */
  browserURL: string;
}

export const KNOWN_NETWORKS: readonly KnownNetwork[] = [
  { name: "sepolia", chainId: 11155111, envPrefix: "SEPOLIA", browserURL: "https://sepolia.etherscan.io" },
  { name: "baseSepolia", chainId: 84532, envPrefix: "BASE_SEPOLIA", browserURL: "https://sepolia.basescan.org" },
  { name: "arbitrumSepolia", chainId: 421614, envPrefix: "ARBITRUM_SEPOLIA", browserURL: "https://sepolia.arbiscan.io" },
  { name: "opSepolia", chainId: 11155420, envPrefix: "OP_SEPOLIA", browserURL: "https://sepolia-optimism.etherscan.io" },
];

/** The network for any other chain, configured by `CUSTOM_RPC_URL` and `CUSTOM_CHAIN_ID`. */
export const CUSTOM_NETWORK = "custom";
/** Chain ids of local development chains (Hardhat, anvil, Ganache): nothing there is worth verifying. */
export const LOCAL_CHAIN_IDS: readonly number[] = [31337, 1337];
/** The Etherscan v2 endpoint: one API key for every chain it indexes. */
export const ETHERSCAN_V2_API = "https://api.etherscan.io/v2/api";

export type Env = Record<string, string | undefined>;

/** A chain hardhat-verify does not know by itself (hardhat-verify's `CustomChain`). */
export interface ExplorerChain {
  network: string;
  chainId: number;
  urls: { apiURL: string; browserURL: string };
}

export interface EnvNetworks {
  networks: Record<string, HttpNetworkUserConfig>;
  /** for `etherscan.customChains` */
  explorerChains: ExplorerChain[];
  /** known networks that are not configured, with the variables each one lacks */
  missing: Record<string, string[]>;
  /** networks left out because a variable is malformed (not the requested network), with why */
  invalid: Record<string, string>;
  /** one line per network left out, for the user */
  warnings: string[];
}

const PRIVATE_KEY = /^(0x)?[0-9a-fA-F]{64}$/;

function set(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === "" ? undefined : value;
}

function checkUrl(variable: string, url: string): string {
  if (!/^(https?|wss?):\/\/\S+$/.test(url)) {
    throw new PreflightError(`${variable} must be an http(s):// or ws(s):// URL of a JSON-RPC endpoint; it is "${url}".`);
  }
  return url;
}

/**
 * Reads a comma-separated list of private keys. The first is the deployer; tasks pick others with `--from`.
 * Never echoes a key back, only its position.
 */
export function parseKeys(variable: string, value: string): string[] {
  return value.split(",").map((raw, i) => {
    const key = raw.trim();
    if (!PRIVATE_KEY.test(key)) {
      throw new PreflightError(
        `${variable}: key #${i + 1} is not a private key (64 hex digits, optionally 0x-prefixed). ` +
          `Set ${variable}=0x<64 hex digits>[,0x<more keys>] in .env (see .env.example).`,
      );
    }
    return key.startsWith("0x") ? key : `0x${key}`;
  });
}

function keysFor(env: Env, prefix: string): { keys?: string[]; variable: string } {
  const own = `${prefix}_PRIVATE_KEY`;
  const ownValue = set(env, own);
  if (ownValue !== undefined) return { keys: parseKeys(own, ownValue), variable: own };
  const shared = set(env, "DEPLOYER_PRIVATE_KEY");
  if (shared !== undefined) return { keys: parseKeys("DEPLOYER_PRIVATE_KEY", shared), variable: "DEPLOYER_PRIVATE_KEY" };
  return { variable: own };
}

/**
 * Builds the Hardhat networks that the environment configures. A malformed variable throws when it
 * belongs to `requested`; for any other network it becomes a warning and the network is left out.
 */
export function networksFromEnv(env: Env, requested?: string): EnvNetworks {
  const networks: Record<string, HttpNetworkUserConfig> = {};
  const explorerChains: ExplorerChain[] = [];
  const missing: Record<string, string[]> = {};
  const invalid: Record<string, string> = {};
  const warnings: string[] = [];
  /** Runs the configuration of network `name`; its user errors only matter when it is the requested one. */
  const guarded = (name: string, configure: () => void): void => {
    try {
      configure();
    } catch (e) {
      if (!isUserError(e) || name === requested) throw e;
      delete networks[name];
      invalid[name] = e.message;
      warnings.push(`network "${name}" is left out: ${e.message}`);
    }
  };

  guarded("localhost", () => {
    const localKeys = set(env, "LOCALHOST_PRIVATE_KEY");
    networks.localhost = {
      url: checkUrl("LOCALHOST_RPC_URL", set(env, "LOCALHOST_RPC_URL") ?? "http://127.0.0.1:8545"),
      // Without a key, use the node's unlocked accounts (npx hardhat node and anvil both have 10+ funded ones).
      accounts: localKeys === undefined ? "remote" : parseKeys("LOCALHOST_PRIVATE_KEY", localKeys),
    };
  });

  for (const net of KNOWN_NETWORKS) {
    guarded(net.name, () => {
      const urlVar = `${net.envPrefix}_RPC_URL`;
      const url = set(env, urlVar);
      const { keys, variable } = keysFor(env, net.envPrefix);
      const lacking = [...(url === undefined ? [urlVar] : []), ...(keys === undefined ? [`${variable} (or DEPLOYER_PRIVATE_KEY)`] : [])];
      if (lacking.length > 0) {
        missing[net.name] = lacking;
        return;
      }
      networks[net.name] = { url: checkUrl(urlVar, url!), chainId: net.chainId, accounts: keys };
      explorerChains.push({
        network: net.name,
        chainId: net.chainId,
        urls: { apiURL: ETHERSCAN_V2_API, browserURL: net.browserURL },
      });
    });
  }

  guarded(CUSTOM_NETWORK, () => {
    const customUrl = set(env, "CUSTOM_RPC_URL");
    const customChainId = set(env, "CUSTOM_CHAIN_ID");
    const customKeys = keysFor(env, "CUSTOM");
    const lacking = [
      ...(customUrl === undefined ? ["CUSTOM_RPC_URL"] : []),
      ...(customChainId === undefined ? ["CUSTOM_CHAIN_ID"] : []),
      ...(customKeys.keys === undefined ? ["CUSTOM_PRIVATE_KEY (or DEPLOYER_PRIVATE_KEY)"] : []),
    ];
    if (lacking.length > 0) {
      missing[CUSTOM_NETWORK] = lacking;
      return;
    }
    if (!/^[1-9][0-9]*$/.test(customChainId!) || !Number.isSafeInteger(Number(customChainId))) {
      throw new PreflightError(`CUSTOM_CHAIN_ID must be a positive integer chain id (e.g. 17000 for Holesky); it is "${customChainId}".`);
    }
    const chainId = Number(customChainId);
    networks[CUSTOM_NETWORK] = { url: checkUrl("CUSTOM_RPC_URL", customUrl!), chainId, accounts: customKeys.keys };
    const browserURL = set(env, "CUSTOM_EXPLORER_URL");
    if (browserURL !== undefined) {
      explorerChains.push({
        network: CUSTOM_NETWORK,
        chainId,
        // One Etherscan v2 key verifies on every chain Etherscan indexes; hardhat-verify adds the chain id.
        urls: { apiURL: ETHERSCAN_V2_API, browserURL },
      });
    }
  });
  return { networks, explorerChains, missing, invalid, warnings };
}

/** The network named on the command line (`--network x` / `--network=x`) or by `HARDHAT_NETWORK`. */
export function requestedNetwork(argv: readonly string[], env: Env): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--network") return argv[i + 1];
    if (argv[i].startsWith("--network=")) return argv[i].slice("--network=".length);
  }
  return set(env, "HARDHAT_NETWORK");
}

/** Every network name `--network` accepts: the in-process chain, localhost, the testnets and custom. */
export const NETWORK_NAMES: readonly string[] = ["hardhat", "localhost", ...KNOWN_NETWORKS.map((n) => n.name), CUSTOM_NETWORK];

/** Edit distance, to suggest the network a typo meant. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length];
}

/**
 * Throws a one-line error when the requested network cannot be used: unknown (listing the valid
 * names, and the likely one for a typo), or known but with variables missing (naming them).
 */
export function checkRequestedNetwork(requested: string | undefined, env: Pick<EnvNetworks, "networks" | "missing">): void {
  if (requested === undefined || requested === "hardhat" || env.networks[requested] !== undefined) return;
  const lacking = env.missing[requested];
  if (lacking !== undefined) {
    throw new PreflightError(
      `Network "${requested}" is not configured: set ${lacking.join(" and ")} in .env (copy .env.example to .env and fill it in) or in the environment.`,
    );
  }
  const names = [...new Set([...NETWORK_NAMES, ...Object.keys(env.networks)])];
  const closest = names.map((n) => ({ n, d: distance(requested.toLowerCase(), n.toLowerCase()) })).sort((a, b) => a.d - b.d)[0];
  const hint = closest !== undefined && closest.d <= 3 ? ` Did you mean "${closest.n}"?` : "";
  throw new PreflightError(
    `Unknown network "${requested}". Valid names: ${names.map((n) => (env.missing[n] !== undefined ? `${n} (needs .env)` : n)).join(", ")}.${hint}`,
  );
}

/** Whether `chainId` is a local development chain. */
export function isLocalChain(chainId: number): boolean {
  return LOCAL_CHAIN_IDS.includes(chainId);
}
