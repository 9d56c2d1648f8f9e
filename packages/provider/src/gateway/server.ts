/**
 * Assembling a gateway from a deployment and starting it: the preflight over today's verifier,
 * the in-memory or Redis store, the chain settlement queue, an HTTP server, and a shutdown that
 * settles what is queued before it exits.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { JsonRpcProvider, Wallet, type Signer } from "ethers";
import { Preflight__factory } from "@preflight/sdk/typechain";
import { ChainSettlementQueue, type SettlementRetryOptions } from "./chainSettlement";
import { fastJsonRpcOf, RawTransactionSender, type JsonRpcSend } from "./rawSender";
import { createGateway, type Gateway, type GatewayOptions } from "./gateway";
import type { Preflighter, ReservationStore, SettlementBatch } from "./interfaces";
import { jsonLogger, type Logger } from "./log";
import { MemoryReservationStore } from "./memoryStore";
import type { PricedModel } from "./pricing";
import { RedisReservationStore } from "./redisStore";
import { VerifierPreflighter } from "./verifierPreflighter";

export interface StartGatewayOptions {
  /** The model server. */
  upstream: string;
  /** Listen address (default 127.0.0.1) and port (default 8402; 0 = any free port). */
  host?: string;
  port?: number;
  /** The provider's key (it settles, so it pays gas): a signer connected to the chain. */
  providerSigner: Signer;
  /** The Preflight contract address and its deployment block. */
  contract: string;
  fromBlock?: number;
  token: string;
  models: Map<string, PricedModel>;
  creditLimit: bigint;
  openAmount?: bigint;
  /** Redis URL: share reservations with other replicas. Default: in memory (one process). */
  redis?: string;
  /** Settlement batching (defaults 100 items, 10 s). */
  maxBatchSize?: number;
  maxAgeMs?: number;
  /** Move claimed lanes into the provider's earnings this often (default 60,000 ms), and on close. */
  collectEveryMs?: number;
  /** Retries of settlement transactions that fail for a transient reason (default 8 tries, 250 ms doubling to 8 s). */
  settlementRetry?: SettlementRetryOptions;
  /** Chain polling (default 1,000 ms) and depth (default 0). */
  pollMs?: number;
  confirmations?: number;
  releaseGraceMs?: number;
  /** Replace the preflight (e.g. the RPC-simulation one the benchmark compares with). */
  preflighter?: Preflighter;
  payment?: boolean;
  /** Browser pages of these origins may call the gateway (CORS). Default: none (same-origin only). */
  cors?: GatewayOptions["cors"];
  logger?: Logger;
  /** Unix seconds the gateway decides at (default: the wall clock). */
  clock?: () => bigint;
  upstreamOptions?: GatewayOptions["upstreamOptions"];
}

export interface RunningGateway {
  gateway: Gateway;
  server: Server;
  url: string;
  /** Stops listening, settles the queue, closes everything; resolves with the final batches. */
  close(): Promise<SettlementBatch[]>;
}

/**
 * @example
 * const running = await startGateway({ upstream: "http://127.0.0.1:8000", providerSigner, contract, token, models, creditLimit: 100_000n });
 * console.log(`paying clients call ${running.url}/v1`);
 */
export async function startGateway(options: StartGatewayOptions): Promise<RunningGateway> {
  const provider = options.providerSigner.provider;
  if (!provider) throw new Error("the provider signer must be connected to a chain (an RPC URL)");
  const log = options.logger ?? jsonLogger("info");
  const providerAddress = await options.providerSigner.getAddress();
  const { chainId } = await provider.getNetwork();
  const contract = Preflight__factory.connect(options.contract, options.providerSigner);
  const store: ReservationStore = options.redis
    ? await RedisReservationStore.connect({ url: options.redis, prefix: `preflight:${chainId}:${options.contract.toLowerCase()}:${providerAddress.toLowerCase()}:` })
    : new MemoryReservationStore();
  const preflighter =
    options.preflighter ??
    (await VerifierPreflighter.create({
      contract,
      provider: providerAddress,
      fromBlock: options.fromBlock,
      pollMs: options.pollMs,
      confirmations: options.confirmations,
      onSyncError: (e) => log("warn", "sync-failed", { error: String((e as Error)?.message ?? e) }),
    }));
  const settlement = new ChainSettlementQueue({
    contract,
    token: options.token,
    store,
    maxBatchSize: options.maxBatchSize,
    maxAgeMs: options.maxAgeMs,
    collectEveryMs: options.collectEveryMs,
    retry: options.settlementRetry,
    sender: rawSenderFor(options.providerSigner, chainId),
  });
  const gateway = createGateway({
    upstream: options.upstream,
    upstreamOptions: options.upstreamOptions,
    chainId,
    contract: options.contract,
    provider: providerAddress,
    token: options.token,
    models: options.models,
    preflighter,
    store,
    settlement,
    creditLimit: options.creditLimit,
    openAmount: options.openAmount,
    releaseGraceMs: options.releaseGraceMs,
    payment: options.payment,
    cors: options.cors,
    logger: log,
    clock: options.clock,
  });
  const server = createServer({ keepAliveTimeout: 65_000 }, gateway.handler);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 8402, options.host ?? "127.0.0.1", () => resolve());
  });
  const address = server.address() as AddressInfo;
  const url = `http://${address.address}:${address.port}`;
  log("info", "listening", { url, upstream: options.upstream, provider: providerAddress, contract: options.contract, chainId, store: options.redis ? "redis" : "memory" });
  let closing: Promise<SettlementBatch[]> | undefined;
  return {
    gateway,
    server,
    url,
    close: () =>
      (closing ??= (async () => {
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        const batches = await gateway.close();
        server.closeAllConnections();
        await stopped;
        return batches;
      })()),
  };
}

/**
 * A raw sender when the provider's key is in this process (an ethers `Wallet` on a JSON-RPC
 * provider): settlements are then signed without ethers' transaction objects, and sent over the
 * provider's URL with Node's fetch rather than ethers' request encoding. Otherwise undefined
 * (a remote or hardware signer sends through ethers).
 */
function rawSenderFor(signer: Signer, chainId: bigint): RawTransactionSender | undefined {
  const key = (signer as { signingKey?: { privateKey?: string } }).signingKey?.privateKey;
  const rpc = signer.provider as unknown as Partial<JsonRpcSend> | null;
  if (!key || typeof rpc?.send !== "function") return undefined;
  return new RawTransactionSender(fastJsonRpcOf(rpc as JsonRpcSend), key, chainId);
}

/** A signer from a private key and an RPC URL. */
export function providerSignerFrom(privateKey: string, rpcUrl: string): Signer {
  return new Wallet(privateKey, new JsonRpcProvider(rpcUrl, undefined, { staticNetwork: true }));
}
