/**
 * `npm run bench:preflight`: how many signed requests per second one core fully preflights, and
 * the latency of each check, for the SDK's PreflightVerifier and, in the same run, for the plain
 * `ethers.verifyTypedData` path (signature only). Writes cache/bench/preflight.json, or with
 * BENCH_UPDATE=1 (`npm run bench:preflight:update`) the committed reports/preflight.json, and ends
 * with a one-line summary.
 */
import { ethers } from "hardhat";
import { writeFileSync, mkdirSync } from "node:fs";
import { execSync } from "node:child_process";
import os from "node:os";
import path from "node:path";
import secp256k1 from "secp256k1";
import { PreflightVerifier, DigestComputer, cryptoBackend, Reason, reasonName, REQUEST_TYPES, buildDomain, type SignedRequest } from "@preflight/provider";
import { recoverers } from "../packages/provider/src/crypto";
import type { Request } from "@preflight/sdk";

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 20_000);
const ETHERS_REQUESTS = Number(process.env.BENCH_ETHERS_REQUESTS ?? 2_000);
const WARMUP = 2_000;
const PAYERS = 40;

interface Stats {
  requests: number;
  /** requests / wall-clock seconds of the loop (lower than the CPU figure when other processes share the core) */
  requestsPerSecond: number;
  /** requests / CPU seconds this process spent in the loop: the throughput of one dedicated core */
  requestsPerCpuSecond: number;
  p50Us: number;
  p99Us: number;
  maxUs: number;
}

function stats(latenciesNs: bigint[], totalNs: bigint, cpu: NodeJS.CpuUsage): Stats {
  const sorted = latenciesNs.map(Number).sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] / 1_000;
  return {
    requests: sorted.length,
    requestsPerSecond: Math.round((sorted.length * 1e9) / Number(totalNs)),
    requestsPerCpuSecond: Math.round((sorted.length * 1e6) / (cpu.user + cpu.system)),
    p50Us: Math.round(at(0.5) * 10) / 10,
    p99Us: Math.round(at(0.99) * 10) / 10,
    maxUs: Math.round(sorted[sorted.length - 1] / 100) / 10,
  };
}

function key(i: number): Uint8Array {
  return ethers.getBytes(ethers.toBeHex(0xbe7c0000n + BigInt(i), 32));
}

async function main(): Promise<void> {
  const [owner, provider] = await ethers.getSigners();
  const preflight = await ethers.deployContract("Preflight", [owner.address, 3n * 24n * 3600n, 0, ethers.ZeroAddress]);
  const usdc = await ethers.deployContract("TestToken", ["USD Coin", "USDC", 6]);
  const token = await usdc.getAddress();
  await usdc.mint(owner.address, 10n ** 30n);
  await usdc.approve(await preflight.getAddress(), ethers.MaxUint256);
  const { chainId } = await ethers.provider.getNetwork();
  const domain = { chainId, verifyingContract: await preflight.getAddress() };
  const now = BigInt((await ethers.provider.getBlock("latest"))!.timestamp);

  // Half the payers sign themselves; the other half through a delegate scoped to this provider and two models.
  const models = [ethers.id("model-a"), ethers.id("model-b")];
  const signers: { payer: string; key: Uint8Array }[] = [];
  for (let i = 0; i < PAYERS; i++) {
    const payerKey = key(i);
    const payer = new ethers.Wallet(ethers.hexlify(payerKey), ethers.provider);
    await preflight.deposit(payer.address, token, 10n ** 24n);
    if (i % 2 === 0) {
      signers.push({ payer: payer.address, key: payerKey });
    } else {
      const delegateKey = key(1_000 + i);
      const delegate = new ethers.Wallet(ethers.hexlify(delegateKey));
      await ethers.provider.send("hardhat_setBalance", [payer.address, "0x56BC75E2D63100000"]);
      await preflight.connect(payer).grant({
        delegate: delegate.address,
        token,
        provider: provider.address,
        maxPrice: 10n ** 9n,
        budget: 10n ** 20n,
        period: 86_400n,
        expiry: now + 10n ** 6n,
        models,
      });
      signers.push({ payer: payer.address, key: delegateKey });
    }
  }
  const verifier = await PreflightVerifier.create({ contract: preflight, provider: provider.address });

  // Distinct signed requests (signed with libsecp256k1 over the SDK digest, which a test checks
  // equal to TypedDataEncoder), half with 64-byte EIP-2098 signatures.
  const digests = new DigestComputer(domain);
  const nonces = new Map<string, bigint>();
  const total = WARMUP + REQUESTS;
  const requests: SignedRequest[] = [];
  const messages: Request[] = [];
  for (let i = 0; i < total; i++) {
    const s = signers[i % PAYERS];
    const nonce = nonces.get(s.payer) ?? 0n;
    nonces.set(s.payer, nonce + 1n);
    const request: Request = {
      payer: s.payer,
      provider: provider.address,
      token,
      model: models[i % 2],
      price: 1_000n + BigInt(i % 97),
      nonce,
      deadline: now + 86_400n,
      inputHash: ethers.toBeHex(BigInt(i) * 7919n + 1n, 32),
    };
    const { signature, recid } = secp256k1.ecdsaSign(digests.request(request, provider.address), s.key);
    const sig = ethers.Signature.from({ r: ethers.hexlify(signature.slice(0, 32)), s: ethers.hexlify(signature.slice(32)), v: 27 + recid });
    const { payer, model, price, deadline, inputHash } = request;
    requests.push({ payer, token, model, price, nonce, deadline, inputHash, signature: i % 2 === 0 ? sig.compactSerialized : sig.serialized });
    messages.push(request);
  }

  const at = now + 10n;
  // ---------------------------------------------------------------- the SDK verifier
  for (let i = 0; i < WARMUP; i++) verifier.verify(requests[i], { at, reserve: false });
  const latencies: bigint[] = new Array<bigint>(REQUESTS);
  let rejected = 0;
  const cpu0 = process.cpuUsage();
  const start = process.hrtime.bigint();
  for (let i = 0; i < REQUESTS; i++) {
    const t0 = process.hrtime.bigint();
    const d = verifier.verify(requests[WARMUP + i], { at });
    latencies[i] = process.hrtime.bigint() - t0;
    if (d.reason !== Reason.Settled) {
      rejected++;
      if (rejected === 1) console.error("unexpected rejection:", reasonName(d.reason));
    }
  }
  const verifierStats = stats(latencies, process.hrtime.bigint() - start, process.cpuUsage(cpu0));
  if (rejected > 0) throw new Error(`${rejected} valid requests rejected`);

  // Second pass over the same requests (without reserving): CPU time of each verification alone
  // (getrusage around each call), i.e. the latency on a core nobody else is using.
  const cpuLatencies: number[] = [];
  for (let i = 0; i < REQUESTS; i++) {
    const c0 = process.cpuUsage();
    verifier.verify(requests[WARMUP + i], { at, reserve: false });
    const c = process.cpuUsage(c0);
    cpuLatencies.push(c.user + c.system);
  }
  cpuLatencies.sort((a, b) => a - b);
  const cpuP = (q: number): number => cpuLatencies[Math.min(REQUESTS - 1, Math.floor(q * REQUESTS))];
  const cpuLatency = { p50Us: cpuP(0.5), p99Us: cpuP(0.99), note: "CPU time per verification (getrusage, 1 µs resolution), second pass without reserving" };

  // ---------------------------------------------------------------- plain ethers.verifyTypedData
  const ethersDomain = buildDomain(domain);
  const types = { Request: [...REQUEST_TYPES.Request] };
  for (let i = 0; i < 200; i++) ethers.verifyTypedData(ethersDomain, types, messages[i], requests[i].signature);
  const ethersLatencies: bigint[] = new Array<bigint>(ETHERS_REQUESTS);
  const ethersCpu0 = process.cpuUsage();
  const ethersStart = process.hrtime.bigint();
  for (let i = 0; i < ETHERS_REQUESTS; i++) {
    const t0 = process.hrtime.bigint();
    ethers.verifyTypedData(ethersDomain, types, messages[WARMUP + i], requests[WARMUP + i].signature);
    ethersLatencies[i] = process.hrtime.bigint() - t0;
  }
  const ethersStats = stats(ethersLatencies, process.hrtime.bigint() - ethersStart, process.cpuUsage(ethersCpu0));

  // The pure-JS fallback (@noble/curves), used when the libsecp256k1 binding does not load: its
  // recovery alone bounds the fallback's rate.
  const NOBLE = 300;
  const nobleInputs = requests.slice(WARMUP, WARMUP + NOBLE).map((r, i) => {
    const sig = ethers.Signature.from(r.signature);
    return { rs: ethers.getBytes(ethers.concat([sig.r, sig.s])), recid: sig.yParity, digest: digests.request(messages[WARMUP + i], provider.address) };
  });
  for (let i = 0; i < 30; i++) recoverers.noble(nobleInputs[i].rs, nobleInputs[i].recid, nobleInputs[i].digest);
  const nobleCpu0 = process.cpuUsage();
  for (const input of nobleInputs) recoverers.noble(input.rs, input.recid, input.digest);
  const nobleCpu = process.cpuUsage(nobleCpu0);
  const nobleRecoverUs = Math.round((nobleCpu.user + nobleCpu.system) / NOBLE);

  const commit = (() => {
    try {
      return execSync("git rev-parse --short HEAD", { stdio: ["ignore", "pipe", "ignore"] }).toString().trim();
    } catch {
      return "unknown";
    }
  })();
  const report = {
    generatedAt: new Date().toISOString(),
    commit,
    machine: { cpu: os.cpus()[0]?.model ?? "unknown", cores: os.cpus().length, node: process.version, loadAverage1m: os.loadavg()[0] },
    method:
      "one Node.js thread; each request timed alone with process.hrtime; distinct requests from " +
      `${PAYERS} payers (half signing through a delegate grant, half 64-byte signatures), accepted and reserved`,
    backend: cryptoBackend(),
    target: { requestsPerSecond: 10_000, p99Us: 1_000 },
    verifier: { ...verifierStats, cpuLatency, checks: "signature, grant scope/budget, balance net of reservations, nonce; from the event-synced cache" },
    ethersVerifyTypedData: { ...ethersStats, checks: "signature only (recovers the signer)" },
    pureJsFallback: {
      recoverCpuUs: nobleRecoverUs,
      maxRequestsPerCpuSecond: Math.round(1e6 / nobleRecoverUs),
      note: "@noble/curves recovery alone (CPU time per signature), the bound on the fallback path when libsecp256k1 does not load",
    },
    speedup: Math.round((verifierStats.requestsPerCpuSecond / ethersStats.requestsPerCpuSecond) * 10) / 10,
    meetsTarget: {
      throughputPerCore: verifierStats.requestsPerCpuSecond >= 10_000,
      p99WallClock: verifierStats.p99Us < 1_000,
      p99CpuTime: cpuLatency.p99Us < 1_000,
    },
  };
  const root = path.join(__dirname, "..");
  // Tracked files are rewritten only on request (npm run bench:preflight:update); otherwise cache/bench/.
  const update = process.env.BENCH_UPDATE !== undefined;
  const outDir = update ? path.join(root, "reports") : path.join(root, "cache", "bench");
  mkdirSync(outDir, { recursive: true });
  writeFileSync(path.join(outDir, "preflight.json"), JSON.stringify(report, null, 2) + "\n");

  const fmt = (n: number): string => n.toLocaleString("en-US");
  const line =
    `Preflight verifier: **${fmt(verifierStats.requestsPerCpuSecond)} requests per CPU-second** on one core ` +
    `(${fmt(verifierStats.requestsPerSecond)}/s wall clock), p50 ${verifierStats.p50Us} µs, p99 ${verifierStats.p99Us} µs wall clock ` +
    `(CPU time per request: p50 ${cpuLatency.p50Us} µs, p99 ${cpuLatency.p99Us} µs) ` +
    `(${report.backend.recover}, keccak ${report.backend.keccak}); plain \`ethers.verifyTypedData\` in the same run: ` +
    `${fmt(ethersStats.requestsPerCpuSecond)} per CPU-second (${fmt(ethersStats.requestsPerSecond)}/s wall clock), ` +
    `p50 ${ethersStats.p50Us} µs, p99 ${ethersStats.p99Us} µs (signature only). ` +
    `Pure-JS fallback (no native binding): ${nobleRecoverUs} µs per recovery, at most ${fmt(report.pureJsFallback.maxRequestsPerCpuSecond)}/s. ` +
    `Machine: ${report.machine.cpu}, Node ${process.version}, load ${report.machine.loadAverage1m.toFixed(1)} (shared). ` +
    "Source: `reports/preflight.json` (`npm run bench:preflight`).";
  console.log(JSON.stringify(report, null, 2));
  console.log(line);
  console.log(update ? "Wrote reports/preflight.json." : "Wrote cache/bench/preflight.json; tracked files are unchanged (npm run bench:preflight:update rewrites reports/preflight.json).");
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
