/**
 * `npm run bench:gateway`: what paying costs over HTTP, side by side in one run, on loopback only.
 *
 * A mock OpenAI-compatible model server with a fixed service time (its own process) is driven by
 * autocannon through:
 *   direct    the model server itself;
 *   proxy     the gateway with payment off (the same proxy code, nothing checked);
 *   paid      the gateway, every call carrying a distinct pre-signed request (in-process preflight);
 *   metered   the gateway, every call carrying its lane's next cumulative lane voucher (lanes funded on chain);
 *   rpcVerify the gateway, every call's payment checked by a JSON-RPC `eth_call` simulation of the
 *             settlement against the local node before forwarding (what an x402 facilitator does).
 * Each mode runs at full speed (throughput, latency under saturation; autocannon, closed loop), then
 * at a fixed rate of half of paid's maximum (added latency at half load): requests evenly spaced in
 * time, open loop (bench/openLoop.ts; autocannon's rate limit sends each second's share in a burst
 * at the start of the second, which measures saturation again), once the gateway has settled what the
 * runs before it queued (its /healthz shows nothing queued or settling). Each gateway is the CLI, in its own process,
 * against anvil; it settles in the background and on shutdown, and its settlement logs are read
 * back. Writes cache/bench/gateway.{json,md,svg}; with BENCH_UPDATE=1 (`npm run bench:gateway:update`)
 * the committed reports/gateway.json, reports/gateway.md and reports/gateway.svg instead. Prints each
 * step as it starts ([k/n], with its duration) and its figures as it ends.
 *
 * Bounded: BENCH_GATEWAY_SECONDS per measured run (default 5), BENCH_GATEWAY_CONNECTIONS (32),
 * BENCH_GATEWAY_WARMUP_SECONDS (15). BENCH_GATEWAY_CPU_PROF=<dir> profiles each gateway process.
 */
import autocannon from "autocannon";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import secp256k1 from "secp256k1";
import { keccak256, toUtf8Bytes, ZeroAddress, type HDNodeWallet } from "ethers";
import { Preflight__factory, TestToken__factory } from "../typechain-types";
import { DigestComputer } from "@preflight/provider";
import { modelId } from "@preflight/sdk";
import { getBytes } from "ethers";
import { encodeHeader, PAYMENT_SIGNATURE_HEADER, type PaymentRequirements } from "@preflight/sdk/fetch";
import { devAccount, freePort, providerFor, startAnvil } from "../test/helpers/nodes";
import { openLoop } from "./openLoop";

const ROOT = path.resolve(__dirname, "..");
const SECONDS = Number(process.env.BENCH_GATEWAY_SECONDS ?? 5);
const CONNECTIONS = Number(process.env.BENCH_GATEWAY_CONNECTIONS ?? 32);
const SERVICE_TIME_MS = 2;
const COMPLETION_TOKENS = 8;
// A fresh gateway process is many times slower for its first seconds (JIT tiers, undici's WASM
// parser); on a busy 2-core machine that lasts over ten seconds. Every mode gets the same warm-up.
const WARMUP_SECONDS = Number(process.env.BENCH_GATEWAY_WARMUP_SECONDS ?? 15);
// A directory: each gateway process writes a V8 CPU profile there (node --cpu-prof) when it exits.
const CPU_PROFILE_DIR = process.env.BENCH_GATEWAY_CPU_PROF;
const PRICE = 1_000n;
const PER_INPUT = 1n;
const PER_OUTPUT = 3n;
const FIXED = "bench-fixed";
const METERED = "bench-metered";
// Pre-signed payments per second of measured load, at most (a run that outpaces it reuses payments, which are then refused).
const MAX_RATE_GUESS = Number(process.env.BENCH_GATEWAY_MAX_RATE ?? 4_000);
// The same for the eth_call-per-call mode: with the node no longer busy estimating settlement gas it
// serves over 800 calls a second here, and a run that runs out of distinct requests measures refusals.
const RPC_RATE_GUESS = Number(process.env.BENCH_GATEWAY_RPC_MAX_RATE ?? 1_500);
const BODY = (model: string) => JSON.stringify({ model, messages: [{ role: "user", content: "Say eight tokens." }], max_tokens: COMPLETION_TOKENS });

type Mode = "direct" | "proxy" | "paid" | "metered" | "rpcVerify";
interface RunResult {
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  non2xx: number;
  errors: number;
  /** Open-loop runs: how late the generator issued requests against their schedule (p99, ms). */
  lagP99Ms?: number;
}

function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;

// The measured runs and warm-ups of main(), for "[k/n]".
const STEPS = 14;
let step = 0;
const runStarted = Date.now();

/** One line per step, so a run of several minutes shows where it is. */
function progress(label: string, seconds: number): void {
  step++;
  const elapsed = ((Date.now() - runStarted) / 1000).toFixed(0);
  console.log(`[${step}/${STEPS}] ${label} (${seconds} s; ${elapsed} s elapsed)`);
}

/** `load` announced as one progress step. */
function measured(label: string, url: string, body: string, seconds: number, rate: number | undefined, header?: (ctx: Record<string, unknown>) => string | undefined): Promise<RunResult> {
  progress(label, seconds);
  return load(url, body, seconds, rate, header);
}

/** `openLoop` at `rate` (evenly spaced requests) announced as one progress step, with the same figures as `load`. */
async function measuredAtRate(label: string, url: string, body: string, seconds: number, rate: number, header?: (ctx: Record<string, unknown>) => string | undefined): Promise<RunResult> {
  progress(label, seconds);
  const r = await openLoop({
    url,
    path: "/v1/chat/completions",
    body,
    headers: { "content-type": "application/json" },
    rate,
    seconds,
    connections: CONNECTIONS,
    perRequest: header
      ? (_k, ctx) => {
          const h = header(ctx);
          return h ? { [PAYMENT_SIGNATURE_HEADER]: h } : undefined;
        }
      : undefined,
  });
  return {
    requestsPerSecond: Math.round(r.latencies.length / seconds),
    p50Ms: round(percentile(r.latencies, 0.5)),
    p99Ms: round(percentile(r.latencies, 0.99)),
    requests: r.latencies.length,
    non2xx: r.non2xx,
    errors: r.errors,
    lagP99Ms: round(r.lagP99Ms),
  };
}

/** One autocannon run; `headers()` gives each request's payment header (per connection context). */
async function load(url: string, body: string, seconds: number, rate: number | undefined, header?: (ctx: Record<string, unknown>) => string | undefined): Promise<RunResult> {
  const latencies: number[] = [];
  // Without a callback autocannon returns its instance, which is also a promise of the result.
  const instance = autocannon({
    url: `${url}/v1/chat/completions`,
    connections: CONNECTIONS,
    duration: seconds,
    overallRate: rate,
    requests: [
      {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
        setupRequest: (req, context) => {
          const h = header?.(context as Record<string, unknown>);
          if (h) req.headers = { ...req.headers, [PAYMENT_SIGNATURE_HEADER]: h };
          return req;
        },
      },
    ],
  }) as unknown as autocannon.Instance & Promise<autocannon.Result>;
  let non2xx = 0;
  instance.on("response", (_client: unknown, status: number, _bytes: number, responseTime: number) => {
    if (status >= 200 && status < 300) latencies.push(responseTime);
    else non2xx++;
  });
  const result = await instance;
  latencies.sort((a, b) => a - b);
  return {
    requestsPerSecond: Math.round(latencies.length / seconds),
    p50Ms: round(percentile(latencies, 0.5)),
    p99Ms: round(percentile(latencies, 0.99)),
    requests: latencies.length,
    non2xx,
    errors: result.errors + result.timeouts,
  };
}

/**
 * Waits until a gateway has settled everything it accepted (nothing queued, no batch under way):
 * a half-load run that starts while the gateway still settles the backlog of a saturating run
 * measures that backlog, not the gateway at half load.
 */
async function settledBacklog(url: string, timeoutMs = 120_000): Promise<number> {
  const started = Date.now();
  for (;;) {
    const h = (await (await fetch(`${url}/healthz`)).json()) as { queued: number; settling: number };
    if (h.queued === 0 && h.settling === 0) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`the gateway at ${url} still has ${h.queued} queued and ${h.settling} settling items after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Child {
  url: string;
  stderr: string[];
  stop(): Promise<number>;
}

async function spawnReady(args: string[], env: Record<string, string>, profile = false): Promise<Child> {
  const node = profile && CPU_PROFILE_DIR ? ["--cpu-prof", `--cpu-prof-dir=${path.resolve(CPU_PROFILE_DIR)}`] : [];
  const child: ChildProcess = spawn(process.execPath, [...node, "-r", "ts-node/register/transpile-only", "-r", "tsconfig-paths/register", ...args], { cwd: ROOT, env: { ...process.env, ...env, TS_NODE_TRANSPILE_ONLY: "true", TS_NODE_PROJECT: path.join(ROOT, "tsconfig.json") }, stdio: ["ignore", "pipe", "pipe"] });
  const stderr: string[] = [];
  let buffered = "";
  child.stderr!.on("data", (d: Buffer) => {
    buffered += d.toString();
    const lines = buffered.split("\n");
    buffered = lines.pop() ?? "";
    stderr.push(...lines);
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /ready (\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.once("exit", (code) => reject(new Error(`${args.join(" ")} exited with ${code}: ${stderr.slice(-5).join("\n")}`)));
  });
  return {
    url,
    stderr,
    stop: () =>
      new Promise<number>((resolve) => {
        if (child.exitCode !== null) return resolve(child.exitCode);
        child.once("exit", (code) => resolve(code ?? 1));
        child.kill("SIGTERM");
      }),
  };
}

/** Distinct payer-signed requests (libsecp256k1 over the SDK's digest), as payment headers. */
function presignRequests(payer: HDNodeWallet, provider: string, token: string, digests: DigestComputer, count: number, startNonce: bigint): string[] {
  const key = getBytes(payer.privateKey);
  const inputHash = keccak256(toUtf8Bytes(BODY(FIXED)));
  const deadline = BigInt(Math.floor(Date.now() / 1000) + 550); // within the gateway's 600 s limit
  const model = modelId(FIXED);
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const request = { payer: payer.address, token, model, price: PRICE, nonce: startNonce + BigInt(i), deadline, inputHash };
    const { signature, recid } = secp256k1.ecdsaSign(digests.request(request, provider), key);
    const sig = "0x" + Buffer.from(signature).toString("hex") + (27 + recid).toString(16);
    out.push(encodeHeader({ x402Version: 2, accepted: {} as PaymentRequirements, payload: { request: { ...request, price: PRICE.toString(), nonce: request.nonce.toString(), deadline: deadline.toString(), signature: sig } } }));
  }
  return out;
}

/** Per lane (one per payer), lane vouchers raising its total by more than a call costs, one per call. */
function presignLaneVouchers(payers: HDNodeWallet[], provider: string, token: string, digests: DigestComputer, perLane: number): string[][] {
  const model = modelId(METERED);
  const step = 100n; // > one call's cost (a few prompt tokens + 8 completion tokens x 3)
  return payers.map((payer) => {
    const key = getBytes(payer.privateKey);
    return Array.from({ length: perLane }, (_, k) => {
      // The first voucher opens the lane: at least the model's hold per call (1,024 output tokens x 3).
      const voucher = { payer: payer.address, token, model, cumulativeAmount: 5_000n + BigInt(k) * step };
      const { signature, recid } = secp256k1.ecdsaSign(digests.laneVoucher(voucher, provider), key);
      const sig = "0x" + Buffer.from(signature).toString("hex") + (27 + recid).toString(16);
      return encodeHeader({ x402Version: 2, accepted: {} as PaymentRequirements, payload: { laneVoucher: { ...voucher, cumulativeAmount: voucher.cumulativeAmount.toString(), signature: sig } } });
    });
  });
}

interface SettlementSummary {
  batches: number;
  items: number;
  gasUsed: number;
  gasPerItem: number | null;
}

function settlementOf(lines: string[], kind: "request" | "lane"): SettlementSummary {
  let batches = 0;
  let items = 0;
  let gas = 0;
  for (const line of lines) {
    if (!line.includes('"event":"settled"')) continue;
    const e = JSON.parse(line) as { kind: string; items: number; gasUsed: string };
    if (e.kind !== kind) continue;
    batches++;
    items += e.items;
    gas += Number(e.gasUsed);
  }
  return { batches, items, gasUsed: gas, gasPerItem: items ? Math.round(gas / items) : null };
}

async function main(): Promise<void> {
  const started = Date.now();
  const anvil = await startAnvil(await freePort());
  const rpc = providerFor(anvil.url, 31337);
  const deployer = devAccount(0, rpc);
  const provider = devAccount(1, rpc);
  const payers = [devAccount(2, rpc), devAccount(3, rpc), devAccount(4, rpc)];
  // One lane per payer (a lane is per payer, provider and token): a few, shared by the connections.
  const lanePayers = [devAccount(5, rpc), devAccount(6, rpc), devAccount(7, rpc), devAccount(8, rpc)];
  const preflight = await (await new Preflight__factory(deployer).deploy(24n * 3600n, 0, ZeroAddress)).waitForDeployment();
  const usdc = await (await new TestToken__factory(deployer).deploy("USD Coin", "USDC", 6)).waitForDeployment();
  const contract = await preflight.getAddress();
  const token = await usdc.getAddress();
  for (const p of payers) {
    await (await usdc.mint(p.address, 10n ** 15n)).wait();
    await (await usdc.connect(p).approve(contract, 2n ** 255n)).wait();
    await (await preflight.connect(p).deposit(p.address, token, 10n ** 15n)).wait();
  }
  for (const p of lanePayers) {
    await (await usdc.mint(p.address, 10n ** 15n)).wait();
    await (await usdc.connect(p).approve(contract, 2n ** 255n)).wait();
    await (await preflight.connect(p).depositToLane(p.address, provider.address, token, 10n ** 15n)).wait();
  }
  const digests = new DigestComputer({ chainId: 31337n, verifyingContract: contract });
  const perRun = MAX_RATE_GUESS * SECONDS;
  console.log(`setup: anvil and deployment ready in ${((Date.now() - started) / 1000).toFixed(1)} s; pre-signing payments...`);
  const paidHeaders = presignRequests(payers[0]!, provider.address, token, digests, perRun * 2 + MAX_RATE_GUESS * WARMUP_SECONDS, 0n);
  const rpcHeaders = presignRequests(payers[1]!, provider.address, token, digests, RPC_RATE_GUESS * (SECONDS * 2 + WARMUP_SECONDS), 0n);
  const laneVouchers = presignLaneVouchers(lanePayers, provider.address, token, digests, Math.ceil((perRun * 2) / lanePayers.length));
  console.log(`setup: anvil, deployment and ${paidHeaders.length + rpcHeaders.length} signed requests, ${laneVouchers.length * laneVouchers[0]!.length} vouchers in ${((Date.now() - started) / 1000).toFixed(1)} s`);

  const upstream = await spawnReady([path.join(__dirname, "gatewayUpstream.ts")], { MOCK_SERVICE_TIME_MS: String(SERVICE_TIME_MS), MOCK_COMPLETION_TOKENS: String(COMPLETION_TOKENS) });
  const gatewayArgs = (extra: string[]) => [
    path.join(ROOT, "packages/provider/src/gateway/cli.ts"),
    "--upstream", upstream.url, "--rpc", anvil.url, "--contract", contract, "--token", token, "--listen", "127.0.0.1:0",
    "--price", `${FIXED}=request:${PRICE}`, "--price", `${METERED}=input:${PER_INPUT},output:${PER_OUTPUT}`,
    "--credit-limit", "1000000000", "--batch-size", "500", "--batch-age-ms", "2000", "--poll-ms", "500", "--log-level", "info",
    ...extra,
  ];
  const env = { PREFLIGHT_PROVIDER_KEY: provider.privateKey };
  let paidCursor = 0;
  const nextPaid = () => paidHeaders[paidCursor++ % paidHeaders.length];
  let rpcCursor = 0;
  const nextRpc = () => rpcHeaders[rpcCursor++ % rpcHeaders.length];
  let lanesAssigned = 0;
  const laneCursor = laneVouchers.map(() => 0);
  const nextVoucher = (ctx: Record<string, unknown>) => {
    // Each connection pays on one lane; a lane's connections send its vouchers in turn, as one
    // client with several calls in flight would (a voucher arriving after a higher one adds nothing).
    if (ctx.lane === undefined) ctx.lane = lanesAssigned++ % laneVouchers.length;
    const lane = ctx.lane as number;
    const list = laneVouchers[lane]!;
    return list[Math.min(laneCursor[lane]!++, list.length - 1)];
  };

  const max: Partial<Record<Mode, RunResult>> = {};
  const half: Partial<Record<Mode, RunResult>> = {};
  const fixedBody = BODY(FIXED);
  const meteredBody = BODY(METERED);

  // direct
  await measured("direct: warm-up", upstream.url, fixedBody, WARMUP_SECONDS, undefined);
  max.direct = await measured("direct: max rate", upstream.url, fixedBody, SECONDS, undefined);
  console.log("direct", max.direct);

  // paid and metered: one gateway with payment on
  const paying = await spawnReady(gatewayArgs([]), env, true);
  await measured("paid: warm-up", paying.url, fixedBody, WARMUP_SECONDS, undefined, nextPaid);
  max.paid = await measured("paid: max rate", paying.url, fixedBody, SECONDS, undefined, nextPaid);
  console.log("paid", max.paid);
  max.metered = await measured("metered: max rate", paying.url, meteredBody, SECONDS, undefined, nextVoucher);
  console.log("metered", max.metered);
  const halfRate = Math.max(1, Math.floor(max.paid.requestsPerSecond / 2));
  console.log(`paid: the backlog of the max-rate runs settled in ${await settledBacklog(paying.url)} ms`);
  half.paid = await measuredAtRate(`paid: half load (${halfRate} req/s)`, paying.url, fixedBody, SECONDS, halfRate, nextPaid);
  await settledBacklog(paying.url);
  half.metered = await measuredAtRate(`metered: half load (${halfRate} req/s)`, paying.url, meteredBody, SECONDS, halfRate, nextVoucher);
  console.log("half load", halfRate, "paid", half.paid, "metered", half.metered);
  const payingExit = await paying.stop();

  // proxy: the same gateway with payment off
  const proxy = await spawnReady(gatewayArgs(["--payment", "off"]), env, true);
  await measured("proxy: warm-up", proxy.url, fixedBody, WARMUP_SECONDS, undefined);
  max.proxy = await measured("proxy: max rate", proxy.url, fixedBody, SECONDS, undefined);
  half.proxy = await measuredAtRate(`proxy: half load (${halfRate} req/s)`, proxy.url, fixedBody, SECONDS, halfRate);
  console.log("proxy", max.proxy, "half", half.proxy);
  await proxy.stop();
  half.direct = await measuredAtRate(`direct: half load (${halfRate} req/s)`, upstream.url, fixedBody, SECONDS, halfRate);

  // rpcVerify: an eth_call simulation per call
  const facilitator = await spawnReady(gatewayArgs(["--preflight", "rpc"]), env);
  await measured("rpcVerify: warm-up", facilitator.url, fixedBody, WARMUP_SECONDS, undefined, nextRpc);
  max.rpcVerify = await measured("rpcVerify: max rate", facilitator.url, fixedBody, SECONDS, undefined, nextRpc);
  const rpcHalfRate = Math.max(1, Math.floor(max.rpcVerify.requestsPerSecond / 2));
  await settledBacklog(facilitator.url);
  half.rpcVerify = await measuredAtRate(`rpcVerify: half load (${rpcHalfRate} req/s)`, facilitator.url, fixedBody, SECONDS, rpcHalfRate, nextRpc);
  console.log("rpcVerify", max.rpcVerify, "half", rpcHalfRate, half.rpcVerify);
  await facilitator.stop();
  await upstream.stop();

  const onChainEarnings = await preflight.earningsOf(provider.address, token);
  await anvil.stop();

  const modes = Object.fromEntries((["direct", "proxy", "paid", "metered", "rpcVerify"] as Mode[]).map((m) => [m, { requestsPerSecond: max[m]!.requestsPerSecond, p50Ms: max[m]!.p50Ms, p99Ms: max[m]!.p99Ms, requests: max[m]!.requests, non2xx: max[m]!.non2xx, errors: max[m]!.errors }]));
  const halfLoad = Object.fromEntries(
    (["direct", "proxy", "paid", "metered", "rpcVerify"] as Mode[]).map((m) => [
      m,
      { rate: m === "rpcVerify" ? rpcHalfRate : halfRate, requestsPerSecond: half[m]!.requestsPerSecond, p50Ms: half[m]!.p50Ms, p99Ms: half[m]!.p99Ms, addedP50Ms: round(half[m]!.p50Ms - half.direct!.p50Ms), addedP99Ms: round(half[m]!.p99Ms - half.direct!.p99Ms), non2xx: half[m]!.non2xx, generatorLagP99Ms: half[m]!.lagP99Ms },
    ]),
  );
  const paidAddedP99AtHalfLoadMs = round(half.paid!.p99Ms - half.proxy!.p99Ms);
  const paidOverProxy = round(max.paid.requestsPerSecond / max.proxy.requestsPerSecond);
  const paidOverRpc = round(max.paid.requestsPerSecond / max.rpcVerify.requestsPerSecond, 1);
  const report = {
    description: "Throughput and latency of a mock OpenAI-compatible model server called directly, through the gateway with payment off, with per-request payments, with metered lane vouchers, and with a per-call eth_call simulation (x402 facilitator style). Latency per response (ms): at full speed as autocannon measured it, at half load from its issue to the end of its body (open loop, evenly spaced requests).",
    generatedAt: new Date().toISOString(),
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? "", node: process.version, loadAverageAtEnd: os.loadavg().map((x) => round(x, 2)) },
    config: { serviceTimeMs: SERVICE_TIME_MS, completionTokens: COMPLETION_TOKENS, connections: CONNECTIONS, secondsPerRun: SECONDS, chain: "anvil (automine)", halfLoad: "open loop: requests evenly spaced in time over up to `connections` keep-alive connections, started once the gateway has settled the backlog of the runs before", settlement: "batches of up to 500 or every 2 s, and on shutdown" },
    modes,
    halfLoad,
    paidAddedP99AtHalfLoadMs,
    targets: {
      paidThroughputOverProxy: { value: paidOverProxy, target: ">= 0.7", met: paidOverProxy >= 0.7 },
      paidAddedP99AtHalfLoadMs: { value: paidAddedP99AtHalfLoadMs, target: "<= 1", met: paidAddedP99AtHalfLoadMs <= 1 },
      paidThroughputOverRpcVerify: { value: paidOverRpc, target: ">= 20", met: paidOverRpc >= 20 },
    },
    settlement: {
      paidAndMeteredGateway: { exitCode: payingExit, requests: settlementOf(paying.stderr, "request"), lanes: settlementOf(paying.stderr, "lane") },
      rpcVerifyGateway: { requests: settlementOf(facilitator.stderr, "request") },
      providerEarningsOnChain: onChainEarnings.toString(),
    },
    wallSeconds: Math.round((Date.now() - started) / 1000),
  };
  // Tracked files are rewritten only on request (npm run bench:gateway:update); otherwise cache/bench/.
  const update = process.env.BENCH_UPDATE !== undefined;
  const dir = update ? path.join(ROOT, "reports") : path.join(ROOT, "cache", "bench");
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, "gateway.json"), JSON.stringify(report, null, 2) + "\n");
  writeFileSync(path.join(dir, "gateway.md"), markdown(report));
  writeFileSync(path.join(dir, "gateway.svg"), svg(report));
  console.log(markdown(report));
  console.log(
    update
      ? "Wrote reports/gateway.json, reports/gateway.md and reports/gateway.svg."
      : "Wrote cache/bench/gateway.{json,md,svg}; tracked files are unchanged (npm run bench:gateway:update rewrites reports/gateway.*).",
  );
}

type Report = {
  modes: Record<string, { requestsPerSecond: number; p50Ms: number; p99Ms: number }>;
  halfLoad: Record<string, { rate: number; p50Ms: number; p99Ms: number; addedP50Ms: number; addedP99Ms: number }>;
  targets: Record<string, { value: number; target: string; met: boolean }>;
  config: { serviceTimeMs: number; connections: number; secondsPerRun: number };
  generatedAt: string;
};

const LABELS: Record<string, string> = {
  direct: "direct (model server)",
  proxy: "proxy, payment off",
  paid: "paid per request",
  metered: "metered, lane vouchers",
  rpcVerify: "eth_call per call (facilitator style)",
};

function markdown(r: Report): string {
  const rows = Object.keys(r.modes).map((m) => {
    const a = r.modes[m]!;
    const h = r.halfLoad[m]!;
    return `| ${LABELS[m]} | ${a.requestsPerSecond.toLocaleString("en-US")} | ${a.p50Ms} | ${a.p99Ms} | ${h.rate.toLocaleString("en-US")} | ${h.p50Ms} | ${h.p99Ms} | ${h.addedP50Ms} | ${h.addedP99Ms} |`;
  });
  const targets = Object.entries(r.targets).map(([k, t]) => `| ${k} | ${t.value} | ${t.target} | ${t.met ? "met" : "**missed**"} |`);
  return [
    "# Gateway benchmark",
    "",
    `Generated by \`npm run bench:gateway\` (${r.generatedAt}): mock model server with a ${r.config.serviceTimeMs} ms service time, autocannon with ${r.config.connections} connections, ${r.config.secondsPerRun} s per run, all on 127.0.0.1. Half load = half of the paid mode's maximum rate (the eth_call mode: half of its own), requests evenly spaced in time (open loop). Added = over direct at the same rate.`,
    "",
    "| mode | max req/s | p50 ms | p99 ms | half-load rate | p50 ms | p99 ms | added p50 | added p99 |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ...rows,
    "",
    "| target | measured | target | |",
    "|---|---:|---:|---|",
    ...targets,
    "",
    "![throughput and added latency per mode](gateway.svg)",
    "",
  ].join("\n");
}

function svg(r: Report): string {
  const modes = Object.keys(r.modes);
  const W = 760;
  const H = 300;
  const left = 60;
  const chartW = 300;
  const barH = 28;
  const top = 50;
  const maxRps = Math.max(...modes.map((m) => r.modes[m]!.requestsPerSecond));
  const maxAdded = Math.max(0.5, ...modes.filter((m) => m !== "rpcVerify").map((m) => Math.max(r.halfLoad[m]!.addedP99Ms, r.halfLoad[m]!.addedP50Ms)));
  const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${left}" y="24" font-size="14" font-weight="bold">Throughput (req/s, max)</text>`,
    `<text x="${left + chartW + 90}" y="24" font-size="14" font-weight="bold">Added latency at half load (ms over direct)</text>`,
  ];
  modes.forEach((m, i) => {
    const y = top + i * (barH + 14);
    const rps = r.modes[m]!.requestsPerSecond;
    const w = Math.max(1, (rps / maxRps) * (chartW - 60));
    parts.push(`<text x="${left}" y="${y - 3}">${esc(LABELS[m]!)}</text>`);
    parts.push(`<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${barH - 10}" fill="#3b82f6"/>`);
    parts.push(`<text x="${left + w + 4}" y="${y + 13}">${rps.toLocaleString("en-US")}</text>`);
    const x2 = left + chartW + 90;
    if (m === "rpcVerify") {
      parts.push(`<text x="${x2}" y="${y + 13}">p50 +${r.halfLoad[m]!.addedP50Ms}, p99 +${r.halfLoad[m]!.addedP99Ms} (at ${r.halfLoad[m]!.rate} req/s; off scale)</text>`);
      return;
    }
    const scale = (v: number) => Math.max(1, (Math.max(0, v) / maxAdded) * 200);
    parts.push(`<rect x="${x2}" y="${y}" width="${scale(r.halfLoad[m]!.addedP50Ms).toFixed(1)}" height="8" fill="#10b981"/>`);
    parts.push(`<rect x="${x2}" y="${y + 9}" width="${scale(r.halfLoad[m]!.addedP99Ms).toFixed(1)}" height="8" fill="#f59e0b"/>`);
    parts.push(`<text x="${x2 + 206}" y="${y + 13}">p50 +${r.halfLoad[m]!.addedP50Ms} / p99 +${r.halfLoad[m]!.addedP99Ms}</text>`);
  });
  parts.push(`<text x="${left}" y="${H - 12}" fill="#555">green: added p50, amber: added p99. ${esc(r.generatedAt)}</text>`);
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
