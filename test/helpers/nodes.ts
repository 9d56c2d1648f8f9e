/**
 * Real JSON-RPC nodes for integration tests: `npx hardhat node` and anvil (Foundry's npm build,
 * `@foundry-rs/anvil-linux-amd64`: the platform package itself, see docs/contracts.md, stack notes), each
 * on a free 127.0.0.1 port of its own, in their own process group so that stopping them stops
 * every child; plus Hardhat CLI runs as child processes (exactly what a user types).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { HDNodeWallet, JsonRpcProvider, Mnemonic, Network } from "ethers";

const ROOT = path.resolve(__dirname, "..", "..");
const HARDHAT_CLI = require.resolve("hardhat/internal/cli/cli");
const ANVIL = path.join(ROOT, "node_modules", ".bin", "anvil");
const ANVIL_MISSING =
  "anvil is not installed: it comes from the optional dependency @foundry-rs/anvil-linux-amd64 (Linux x64). " +
  "Run `npm ci` on Linux x64, or put Foundry's anvil at node_modules/.bin/anvil.";
/** The mnemonic both `hardhat node` and anvil fund their default accounts from. */
export const DEV_MNEMONIC = "test test test test test test test test test test test junk";

export interface RunningNode {
  name: string;
  url: string;
  stop: () => Promise<void>;
}

const running = new Set<ChildProcess>();
// Last resort: never leave a node behind, even when the run is interrupted (the nodes run in process
// groups of their own, so a Ctrl-C at the terminal does not reach them by itself).
process.once("exit", () => {
  for (const child of running) killGroup(child, "SIGKILL");
});
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    for (const child of running) killGroup(child, "SIGKILL");
    process.kill(process.pid, signal);
  });
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

/** A TCP port nothing listens on right now, on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function rpcReady(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }),
    });
    return res.ok;
  } catch {
    return false;
  }
}

async function start(name: string, command: string, args: string[], port: number, timeoutMs: number): Promise<RunningNode> {
  const child = spawn(command, args, { cwd: ROOT, detached: true, stdio: ["ignore", "pipe", "pipe"], env: process.env });
  running.add(child);
  let log = "";
  child.stdout!.on("data", (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
  child.stderr!.on("data", (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async (): Promise<void> => {
    killGroup(child, "SIGTERM");
    const timer = setTimeout(() => killGroup(child, "SIGKILL"), 5_000);
    await exited;
    clearTimeout(timer);
    running.delete(child);
  };
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + timeoutMs;
  while (!(await rpcReady(url))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`${name} did not start on ${url}:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { name, url, stop };
}

/** Starts `npx hardhat node` on 127.0.0.1:`port`. */
export async function startHardhatNode(port: number): Promise<RunningNode> {
  return start("hardhat node", process.execPath, [HARDHAT_CLI, "node", "--hostname", "127.0.0.1", "--port", String(port)], port, 60_000);
}

/** Starts anvil on 127.0.0.1:`port` with `chainId`. */
export async function startAnvil(port: number, chainId = 31337, extraArgs: string[] = []): Promise<RunningNode> {
  if (!existsSync(ANVIL)) throw new Error(ANVIL_MISSING);
  return start("anvil", ANVIL, ["--host", "127.0.0.1", "--port", String(port), "--chain-id", String(chainId), "--silent", ...extraArgs], port, 30_000);
}

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs the Hardhat CLI (`npx hardhat <args>`) as a child process with only the given extra
 * variables (every network/deploy variable of the parent is removed, so a developer's .env-like
 * environment cannot leak in).
 */
export async function runHardhat(args: string[], env: Record<string, string>): Promise<CliRun> {
  const clean: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!/(_RPC_URL|_PRIVATE_KEY|_CHAIN_ID|ETHERSCAN_API_KEY|^PREFLIGHT_|^HARDHAT_NETWORK$|^CUSTOM_)/.test(k)) clean[k] = v;
  }
  const child = spawn(process.execPath, [HARDHAT_CLI, ...args], {
    cwd: ROOT,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...clean, ...env, TS_NODE_TRANSPILE_ONLY: "true" },
  });
  running.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => killGroup(child, "SIGKILL"), 90_000);
  const code = await new Promise<number>((resolve) => child.once("exit", (c) => resolve(c ?? 1)));
  clearTimeout(timer);
  running.delete(child);
  return { code, stdout, stderr };
}

/** A JSON-RPC provider that polls fast (nodes here mine instantly). */
export function providerFor(url: string, chainId: number): JsonRpcProvider {
  const provider = new JsonRpcProvider(url, Network.from(chainId), { staticNetwork: true, cacheTimeout: -1 });
  provider.pollingInterval = 50;
  return provider;
}

/** Default account `index` of both nodes, connected to `provider`. */
export function devAccount(index: number, provider: JsonRpcProvider): HDNodeWallet {
  return HDNodeWallet.fromMnemonic(Mnemonic.fromPhrase(DEV_MNEMONIC), `m/44'/60'/0'/0/${index}`).connect(provider);
}
