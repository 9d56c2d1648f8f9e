/**
 * The Preflight gateway: put it in front of an OpenAI-compatible model server to be paid per
 * request or per token, x402-style, with the preflight in-process and settlement in the background.
 *
 * @example
 * import { startGateway, priceTable } from "@preflight/provider/gateway";
 * const running = await startGateway({ upstream: "http://127.0.0.1:8000", providerSigner, contract, token, models: priceTable({ "llama3.1": { perRequest: 1_000n } }), creditLimit: 50_000n });
 */
export { createGateway, type Gateway, type GatewayOptions } from "./gateway";
export type { CorsOptions } from "./cors";
export { startGateway, providerSignerFrom, type StartGatewayOptions, type RunningGateway } from "./server";
export type { Preflighter, PreflightDecision, ReservationStore, SettlementQueue, SettlementBatch, SettledItem, DroppedItem, GrantHold, LaneTotals, CoverOutcome, RequestReservation } from "./interfaces";
export { VerifierPreflighter, type VerifierPreflighterOptions } from "./verifierPreflighter";
export { RpcSimulationPreflighter } from "./rpcPreflighter";
export { MemoryReservationStore, laneFundsPool } from "./memoryStore";
export { RedisReservationStore, type RedisReservationStoreOptions } from "./redisStore";
export { ChainSettlementQueue, isTransient, type ChainSettlementQueueOptions, type SettlementRetryOptions } from "./chainSettlement";
export { priceTable, meteredCost, type ModelPrice, type PricedModel, type Usage } from "./pricing";
export { contractRefusal, gatewayRefusal, type Refusal, type GatewayReason } from "./refusals";
export { GatewayMetrics } from "./metrics";
export { jsonLogger, silentLogger, type Logger, type LogLevel } from "./log";
export { startMockModelServer, type MockModelServer, type MockModelServerOptions } from "./testing/mockModelServer";
