#!/usr/bin/env node
/**
 * `preflight-gateway`: the gateway as a command.
 *
 *   PREFLIGHT_PROVIDER_KEY=0x... preflight-gateway --upstream http://127.0.0.1:8000 \
 *     --rpc http://127.0.0.1:8545 --contract 0x... --token 0x... \
 *     --price "llama3.1=request:1000" --price "qwen2.5=input:1,output:3" --credit-limit 100000
 *
 * or `--config gateway.json` with the same keys in camelCase (flags win). PREFLIGHT_UPSTREAM_API_KEY, when
 * set, is the model server's API key (sent in place of the client's credentials). SIGINT/SIGTERM stop
 * taking calls, settle the queue, then exit. Bad input: one line saying what and how to fix it.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { JsonRpcProvider, Wallet, isAddress } from "ethers";
import { jsonLogger, type LogLevel } from "./log";
import { priceTable, type ModelPrice } from "./pricing";
import { RpcSimulationPreflighter } from "./rpcPreflighter";
import { startGateway } from "./server";
import { corsPolicy } from "./cors";

const USAGE = `usage: PREFLIGHT_PROVIDER_KEY=0x... preflight-gateway --upstream URL --rpc URL --contract ADDRESS --token ADDRESS --price MODEL=request:N|input:N,output:N[,hold:N] [--price ...]
  [--listen 127.0.0.1:8402] [--credit-limit N] [--redis redis://127.0.0.1:6379] [--from-block N] [--batch-size 100] [--batch-age-ms 10000]
  [--collect-every-ms 60000] [--poll-ms 1000] [--confirmations 0] [--payment on|off] [--preflight local|rpc]
  [--cors-origin https://app.example.com|* [--cors-origin ...]] [--log-level info] [--config FILE]
  PREFLIGHT_UPSTREAM_API_KEY=...: the model server's API key, if it asks for one (vLLM --api-key)`;

class UsageError extends Error {}

interface FileConfig {
  upstream?: string;
  rpc?: string;
  contract?: string;
  token?: string;
  listen?: string;
  prices?: Record<string, string>;
  creditLimit?: string;
  redis?: string;
  fromBlock?: number;
  batchSize?: number;
  batchAgeMs?: number;
  collectEveryMs?: number;
  pollMs?: number;
  confirmations?: number;
  payment?: "on" | "off";
  preflight?: "local" | "rpc";
  corsOrigins?: string[];
  logLevel?: LogLevel;
}

function parsePrice(spec: string): [string, ModelPrice & { holdPerCall?: bigint }] {
  const eq = spec.lastIndexOf("=");
  if (eq <= 0) throw new UsageError(`--price ${JSON.stringify(spec)}: write MODEL=request:N or MODEL=input:N,output:N (atomic token units)`);
  const model = spec.slice(0, eq);
  const price: ModelPrice & { holdPerCall?: bigint } = {};
  for (const part of spec.slice(eq + 1).split(",")) {
    const [kind, amount] = part.split(":");
    if (!amount || !/^\d+$/.test(amount)) throw new UsageError(`--price ${JSON.stringify(spec)}: ${JSON.stringify(part)} needs a whole amount, e.g. request:1000`);
    if (kind === "request") price.perRequest = BigInt(amount);
    else if (kind === "input") price.perInputToken = BigInt(amount);
    else if (kind === "output") price.perOutputToken = BigInt(amount);
    else if (kind === "hold") price.holdPerCall = BigInt(amount);
    else throw new UsageError(`--price ${JSON.stringify(spec)}: unknown price kind ${JSON.stringify(kind)} (request, input, output or hold)`);
  }
  return [model, price];
}

function integer(name: string, value: string | number | undefined, fallback?: number): number | undefined {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new UsageError(`--${name} ${String(value)}: expected a whole number`);
  return n;
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      upstream: { type: "string" },
      rpc: { type: "string" },
      contract: { type: "string" },
      token: { type: "string" },
      listen: { type: "string" },
      price: { type: "string", multiple: true },
      "credit-limit": { type: "string" },
      redis: { type: "string" },
      "from-block": { type: "string" },
      "batch-size": { type: "string" },
      "batch-age-ms": { type: "string" },
      "collect-every-ms": { type: "string" },
      "poll-ms": { type: "string" },
      confirmations: { type: "string" },
      payment: { type: "string" },
      preflight: { type: "string" },
      "cors-origin": { type: "string", multiple: true },
      "log-level": { type: "string" },
      config: { type: "string" },
      help: { type: "boolean" },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  let file: FileConfig = {};
  if (values.config) {
    try {
      file = JSON.parse(readFileSync(values.config, "utf8")) as FileConfig;
    } catch (e) {
      throw new UsageError(`--config ${values.config}: ${(e as Error).message}`);
    }
  }
  const upstream = values.upstream ?? file.upstream;
  const rpc = values.rpc ?? file.rpc ?? process.env.PREFLIGHT_RPC_URL;
  const contract = values.contract ?? file.contract;
  const token = values.token ?? file.token;
  if (!upstream) throw new UsageError("--upstream is required: the model server's URL, e.g. http://127.0.0.1:8000");
  if (!rpc) throw new UsageError("--rpc is required (or PREFLIGHT_RPC_URL): the chain's JSON-RPC URL");
  if (!contract || !isAddress(contract)) throw new UsageError("--contract must be the Preflight deployment's address (0x + 40 hex digits)");
  if (!token || !isAddress(token)) throw new UsageError("--token must be the address of the ERC-20 prices are in (0x + 40 hex digits)");
  const key = process.env.PREFLIGHT_PROVIDER_KEY;
  if (!key || !/^0x[0-9a-fA-F]{64}$/.test(key)) throw new UsageError("set PREFLIGHT_PROVIDER_KEY to the provider's private key (0x + 64 hex digits): it signs the settlements");
  const priceSpecs = values.price ?? Object.entries(file.prices ?? {}).map(([m, p]) => `${m}=${p}`);
  if (priceSpecs.length === 0) throw new UsageError("give at least one --price MODEL=request:N or MODEL=input:N,output:N");
  const models = priceTable(Object.fromEntries(priceSpecs.map(parsePrice)));
  const listen = values.listen ?? file.listen ?? "127.0.0.1:8402";
  const [host, portText] = listen.includes(":") ? [listen.slice(0, listen.lastIndexOf(":")), listen.slice(listen.lastIndexOf(":") + 1)] : ["127.0.0.1", listen];
  const port = integer("listen", portText);
  const creditText = values["credit-limit"] ?? file.creditLimit ?? "0";
  if (!/^\d+$/.test(creditText)) throw new UsageError(`--credit-limit ${creditText}: expected a whole amount in atomic token units`);
  const payment = values.payment ?? file.payment ?? "on";
  if (payment !== "on" && payment !== "off") throw new UsageError(`--payment ${payment}: on or off`);
  const preflightMode = values.preflight ?? file.preflight ?? "local";
  if (preflightMode !== "local" && preflightMode !== "rpc") throw new UsageError(`--preflight ${preflightMode}: local (in-process, the default) or rpc (an eth_call simulation per call, like an x402 facilitator)`);
  const corsOrigins = values["cors-origin"] ?? file.corsOrigins;
  if (corsOrigins !== undefined) {
    try {
      corsPolicy({ origins: corsOrigins }); // the gateway's own check, here to fail before any chain call
    } catch (e) {
      throw new UsageError(`--cors-origin ${(e as Error).message.replace(/^INVALID_OPTION: cors origins?:? ?/, "")}`);
    }
  }
  const logLevel = (values["log-level"] ?? file.logLevel ?? "info") as LogLevel;
  if (!["debug", "info", "warn", "error"].includes(logLevel)) throw new UsageError(`--log-level ${logLevel}: debug, info, warn or error`);

  const chain = new JsonRpcProvider(rpc, undefined, { staticNetwork: true, batchMaxCount: 1 });
  try {
    await chain.getBlockNumber();
  } catch (e) {
    throw new UsageError(`--rpc ${rpc}: the chain does not answer (${(e as Error).message.split("\n")[0]})`);
  }
  const signer = new Wallet(key, chain);
  if ((await chain.getCode(contract)) === "0x") throw new UsageError(`--contract ${contract}: no contract at this address on the chain at ${rpc}`);
  const running = await startGateway({
    upstream,
    host,
    port,
    providerSigner: signer,
    contract,
    token,
    models,
    creditLimit: BigInt(creditText),
    redis: values.redis ?? file.redis,
    fromBlock: integer("from-block", values["from-block"] ?? file.fromBlock),
    maxBatchSize: integer("batch-size", values["batch-size"] ?? file.batchSize),
    maxAgeMs: integer("batch-age-ms", values["batch-age-ms"] ?? file.batchAgeMs),
    collectEveryMs: integer("collect-every-ms", values["collect-every-ms"] ?? file.collectEveryMs),
    pollMs: integer("poll-ms", values["poll-ms"] ?? file.pollMs),
    confirmations: integer("confirmations", values.confirmations ?? file.confirmations),
    payment: payment === "on",
    cors: corsOrigins ? { origins: corsOrigins } : undefined,
    upstreamOptions: process.env.PREFLIGHT_UPSTREAM_API_KEY ? { apiKey: process.env.PREFLIGHT_UPSTREAM_API_KEY } : undefined,
    preflighter: preflightMode === "rpc" ? await RpcSimulationPreflighter.create(chain, contract, signer.address) : undefined,
    logger: jsonLogger(logLevel),
  });
  // Machine-readable readiness for supervisors and scripts.
  process.stdout.write(`ready ${running.url}\n`);
  let stopping = false;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      if (stopping) return;
      stopping = true;
      running.close().then(
        () => process.exit(0),
        (e: unknown) => {
          process.stderr.write(`preflight-gateway: settling on shutdown failed: ${(e as Error).message}\n`);
          process.exit(1);
        },
      );
    });
  }
}

main(process.argv.slice(2)).catch((e: unknown) => {
  const message = e instanceof UsageError ? e.message : (e as Error)?.message ?? String(e);
  process.stderr.write(`preflight-gateway: ${message}\n`);
  if (e instanceof UsageError || (e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) process.stderr.write(`${USAGE}\n`);
  process.exit(2);
});
