/** Shared setup of the gateway tests: a mock model server and a gateway on 127.0.0.1 free ports. */
import http from "node:http";
import { keccak256, Wallet } from "ethers";
import { modelId, signRequest } from "@preflight/sdk";
import { encodeHeader, type PaymentRequirements } from "@preflight/sdk/fetch";
import { ethers } from "hardhat";
import type { HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/signers";
import { jsonLogger, priceTable, startGateway, startMockModelServer, silentLogger, type MockModelServer, type MockModelServerOptions, type RunningGateway, type StartGatewayOptions } from "@preflight/provider/gateway";
import type { PreflightFixture } from "./fixtures";

export const PER_REQUEST = "fixed-model";
export const METERED = "metered-model";
export const PRICE = 1_000n; // 0.001 USDC per call
export const PER_INPUT_TOKEN = 2n;
export const PER_OUTPUT_TOKEN = 5n;

export const testModels = () =>
  priceTable({
    [PER_REQUEST]: { perRequest: PRICE },
    [METERED]: { perInputToken: PER_INPUT_TOKEN, perOutputToken: PER_OUTPUT_TOKEN, holdPerCall: 100n },
  });

export interface TestGateway {
  upstream: MockModelServer;
  running: RunningGateway;
  close(): Promise<void>;
}

/**
 * Seconds the chain's clock runs ahead of the wall clock: earlier test files move the Hardhat
 * chain's time forward (notice periods, grant expiries), and signed deadlines are checked against
 * block time. The gateway and the paying fetch take this clock.
 */
export async function chainClock(): Promise<{ now: () => number; clock: () => bigint }> {
  const latest = await ethers.provider.getBlock("latest");
  const offset = Math.max(0, latest!.timestamp - Math.floor(Date.now() / 1000));
  const now = () => Math.floor(Date.now() / 1000) + offset;
  chainOffset = offset;
  return { now, clock: () => BigInt(now()) };
}

let chainOffset = 0;
/** The chain's current time as of the last `startTestGateway` (unix seconds): the paying fetch's `now`. */
export function chainNow(): number {
  return Math.floor(Date.now() / 1000) + chainOffset;
}

/** A gateway for `provider` of the fixture's deployment, in front of a fresh mock model server. */
export async function startTestGateway(
  f: PreflightFixture,
  overrides: Partial<StartGatewayOptions> & { provider?: HardhatEthersSigner; mock?: MockModelServerOptions } = {},
): Promise<TestGateway> {
  const { mock, ...gatewayOverrides } = overrides;
  const upstream = await startMockModelServer({ models: [PER_REQUEST, METERED], ...mock });
  const running = await startGateway({
    upstream: upstream.url,
    port: 0,
    providerSigner: overrides.provider ?? f.provider,
    contract: await f.preflight.getAddress(),
    token: await f.usdc.getAddress(),
    models: testModels(),
    creditLimit: 10_000n,
    pollMs: 50,
    releaseGraceMs: 0,
    maxAgeMs: 60_000,
    logger: process.env.GATEWAY_TEST_LOG ? jsonLogger("warn") : silentLogger,
    clock: (await chainClock()).clock,
    ...gatewayOverrides,
  });
  return {
    upstream,
    running,
    close: async () => {
      await running.close();
      await upstream.close();
    },
  };
}

/** A fresh payer key with `amount` of the fixture's token in escrow (deposited by the fixture's payer). */
export async function fundedWallet(f: PreflightFixture, amount: bigint): Promise<Wallet> {
  const wallet = Wallet.createRandom();
  await f.preflight.connect(f.payer).deposit(wallet.address, await f.usdc.getAddress(), amount);
  return new Wallet(wallet.privateKey);
}

/** A fresh payer key with a lane of `amount` of the fixture's token reserved for the fixture's provider (paid by the fixture's payer). */
export async function fundedLane(f: PreflightFixture, amount: bigint): Promise<Wallet> {
  const wallet = Wallet.createRandom();
  await f.preflight.connect(f.payer).depositToLane(wallet.address, f.provider.address, await f.usdc.getAddress(), amount);
  return new Wallet(wallet.privateKey);
}

/** An HTTP answer read whole. */
export interface RawAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One HTTP call over node:http, with any headers (a browser's `Origin` included, which fetch may refuse to set). */
export function httpCall(url: string, method: string, headers: Record<string, string>, body?: string): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** A JSON POST with extra headers (e.g. a hand-made PAYMENT-SIGNATURE). */
export function postRaw(url: string, body: string, headers: Record<string, string> = {}): Promise<RawAnswer> {
  return httpCall(url, "POST", { "content-type": "application/json", ...headers }, body);
}

/**
 * A PAYMENT-SIGNATURE header paying for `body` with a request of the fixture's deployment, model
 * PER_REQUEST at PRICE, signed by `signer` for itself (fields may be overridden: a short deadline, a
 * given nonce, another payer for a delegate's request).
 */
export async function signedRequestHeader(
  f: PreflightFixture,
  signer: Pick<Wallet, "address" | "signTypedData">,
  body: string,
  fields: Partial<{ price: bigint; nonce: bigint; deadline: bigint; payer: string }> = {},
): Promise<string> {
  const token = await f.usdc.getAddress();
  const request = {
    payer: fields.payer ?? signer.address,
    provider: f.provider.address,
    token,
    model: modelId(PER_REQUEST),
    price: fields.price ?? PRICE,
    nonce: fields.nonce ?? BigInt(Math.floor(Math.random() * 1e9)),
    deadline: fields.deadline ?? BigInt(chainNow() + 300),
    inputHash: keccak256(Buffer.from(body)),
  };
  const signature = await signRequest(signer as Wallet, f.domain, request);
  const wire = { ...request, price: request.price.toString(), nonce: request.nonce.toString(), deadline: request.deadline.toString(), signature };
  delete (wire as { provider?: string }).provider;
  return encodeHeader({ x402Version: 2, accepted: {} as PaymentRequirements, payload: { request: wire } });
}
