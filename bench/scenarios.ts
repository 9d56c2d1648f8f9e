/**
 * The gas scenarios: Preflight and its peers doing the same work (N paid requests of the same price,
 * from one payer or from N payers, to one provider), on the in-process Hardhat network, measured
 * from real transaction receipts.
 *
 * Everything is deterministic (deployer, payers and nonces come from fixed keys, deadlines are
 * constants), so the calldata and therefore the gas are the same in `npm run bench` and in the
 * `npm test` guard. Each scenario starts from the same post-setup chain state (evm_snapshot) and
 * runs twice: "first" (the payers' and the provider's first settlement: new slots) and "later"
 * (the same work again: every slot already written).
 */
import { ethers, network } from "hardhat";
import { Wallet, Signature, Transaction, type TransactionReceipt, type ContractTransactionResponse } from "ethers";
import { signRequest, signVoucher, signGrant, signLaneVoucher, encodePacked, encodeLaneClaims, type PreflightDomain, type Request, type SignedPackedItem } from "@preflight/sdk";
import type { Preflight, TestToken, OzBaselineEscrow, Eip3009Token, PeerBatcher, HostileWallet1271 } from "../typechain-types";
import { brotliSize, fjordL1Size } from "./l2";
import { SlotRegistry, emptySteps, STEPS, PREFLIGHT_STEP_OF_VARIABLE, type Steps } from "./slots";
import { attribute } from "./trace";

export type System = "preflight" | "oz-baseline" | "permit2" | "eip3009";
export type State = "first" | "later" | "once";

/** One measured row of reports/gas.json. */
export interface Row {
  system: System;
  scenario: string;
  /** "first": new slots (first settlement of these payers / this provider); "later": all written before */
  state: State;
  requests: number;
  transactions: number;
  gasUsed: number;
  gasPerRequest: number;
  calldataBytesPerRequest: number;
  /** the deployment's protocol fee in basis points (0 for peers and the default deployment) */
  feeBps: number;
  /** OP-stack (Fjord) FastLZ estimate of the signed transactions' L1 data, per request */
  l1DataBytesPerRequest: number;
  /** Brotli-compressed size of the signed transactions (Arbitrum's estimate), per request */
  brotliBytesPerRequest: number;
  /** per-step attribution of gasUsed (empty when measured without tracing) */
  steps: Steps | null;
  note?: string;
}

export const PRICE = 1_000n; // 0.001 USDC per request
export const DEADLINE = 4_000_000_000n; // a constant, so calldata is identical in every run
const DEPOSIT = 1_000_000_000n; // 1,000 USDC per payer
const LANE_FUNDS = 100_000_000n; // 100 USDC reserved for the provider by each of the first payers
const LANE_PAYERS = 10;
const MODEL = ethers.id("llama-3.1-70b");
const INPUT = ethers.id("prompt");
const MAX_PAYERS = 110;
/** The fee of the fee-on deployment (1%). */
export const FEE_BPS = 100;
const NOTICE = 7n * 86_400n;

export const BATCH_ONE_PAYER = [1, 10, 100, 256];
export const BATCH_MANY_PAYERS = [10, 100];

interface Env {
  deployer: Wallet;
  provider: Wallet;
  delegate: Wallet;
  /** payer 1's delegate, restricted to MODEL */
  modelDelegate: Wallet;
  payers: Wallet[];
  preflight: Preflight;
  /** the same contract deployed with FEE_BPS */
  preflightFee: Preflight;
  usdc: TestToken;
  domain: PreflightDomain;
  feeDomain: PreflightDomain;
  /** a hostile ERC-1271 payer that burns all the gas its check may use */
  hostile: HostileWallet1271;
  baseline?: OzBaselineEscrow;
  permit2?: string;
  eip3009?: Eip3009Token;
  batcher?: PeerBatcher;
  registry?: SlotRegistry;
  chainId: bigint;
}

const wallet = (label: string): Wallet => new Wallet(ethers.id(`preflight-bench:${label}`), ethers.provider);

async function fund(addresses: string[]): Promise<void> {
  for (const a of addresses) await network.provider.send("hardhat_setBalance", [a, "0x56BC75E2D63100000"]); // 100 ETH
}

async function mined(tx: Promise<ContractTransactionResponse>): Promise<TransactionReceipt> {
  const receipt = await (await tx).wait();
  if (receipt === null || receipt.status !== 1) throw new Error("transaction failed");
  return receipt;
}

/** Deploys Preflight (and, with `peers`, every peer) from a fixed deployer, funds and registers everything. */
async function setup(peers: boolean, trace: boolean): Promise<Env> {
  const deployer = wallet("deployer");
  const provider = wallet("provider");
  const delegate = wallet("delegate");
  const modelDelegate = wallet("model-delegate");
  const payers = Array.from({ length: MAX_PAYERS }, (_, i) => wallet(`payer-${i}`));
  await fund([deployer.address, provider.address, delegate.address, modelDelegate.address, ...payers.map((p) => p.address)]);
  // A fresh deployer nonce each run keeps every contract address, hence every calldata byte, identical.
  if ((await ethers.provider.getTransactionCount(deployer.address)) !== 0) throw new Error("bench deployer already used");

  const preflight = (await ethers.deployContract("Preflight", [NOTICE, 0, ethers.ZeroAddress], deployer)) as unknown as Preflight;
  const preflightFee = (await ethers.deployContract("Preflight", [NOTICE, FEE_BPS, deployer.address], deployer)) as unknown as Preflight;
  const usdc = (await ethers.deployContract("TestToken", ["USD Coin", "USDC", 6], deployer)) as unknown as TestToken;
  const hostile = (await ethers.deployContract("HostileWallet1271", [deployer.address], deployer)) as unknown as HostileWallet1271;
  const chainId = (await ethers.provider.getNetwork()).chainId;
  const env: Env = {
    deployer,
    provider,
    delegate,
    modelDelegate,
    payers,
    preflight,
    preflightFee,
    usdc,
    hostile,
    chainId,
    domain: { chainId, verifyingContract: await preflight.getAddress() },
    feeDomain: { chainId, verifyingContract: await preflightFee.getAddress() },
  };
  const token = await usdc.getAddress();
  const pf = await preflight.getAddress();
  await mined(usdc.mint(deployer.address, DEPOSIT * BigInt(MAX_PAYERS) * 5n));
  await mined(usdc.approve(pf, ethers.MaxUint256));
  await mined(usdc.approve(await preflightFee.getAddress(), ethers.MaxUint256));
  for (const [i, p] of payers.entries()) {
    await mined(preflight.deposit(p.address, token, DEPOSIT));
    await mined(usdc.mint(p.address, DEPOSIT)); // payers hold tokens outside the escrow too
    if (i < LANE_PAYERS) {
      await mined(preflight.connect(p).fundLane(provider.address, token, LANE_FUNDS));
      await mined(preflightFee.deposit(p.address, token, DEPOSIT));
    }
  }
  await mined(usdc.mint(payers[MAX_PAYERS - 1]!.address, DEPOSIT * 2n)); // deposits by permit
  await mined(preflight.deposit(await hostile.getAddress(), token, DEPOSIT));
  await mined(hostile.setMode(3)); // BurnGas: every ERC-1271 check uses its whole gas cap
  // The delegate of payer 0: any model, this provider, a daily budget.
  const terms = {
    delegate: delegate.address,
    token,
    provider: provider.address,
    maxPrice: PRICE * 10n,
    budget: PRICE * 1_000_000n,
    period: 86_400n,
    expiry: DEADLINE,
    models: [] as string[],
  };
  await mined(preflight.connect(payers[0]!).grant(terms));
  await mined(preflightFee.connect(payers[0]!).grant(terms));
  // Payer 1's delegate is restricted to one model.
  await mined(preflight.connect(payers[1]!).grant({ ...terms, delegate: modelDelegate.address, models: [MODEL] }));

  if (peers) {
    env.baseline = (await ethers.deployContract("OzBaselineEscrow", [deployer.address], deployer)) as unknown as OzBaselineEscrow;
    const permit2 = await ethers.deployContract("Permit2", [], deployer);
    env.permit2 = await permit2.getAddress();
    env.eip3009 = (await ethers.deployContract("Eip3009Token", [], deployer)) as unknown as Eip3009Token;
    env.batcher = (await ethers.deployContract("PeerBatcher", [], deployer)) as unknown as PeerBatcher;
    const bl = await env.baseline.getAddress();
    await mined(usdc.approve(bl, ethers.MaxUint256));
    for (const p of payers) {
      await mined(env.baseline.deposit(p.address, token, DEPOSIT));
      await mined(usdc.connect(p).approve(env.permit2, ethers.MaxUint256));
      await mined(env.eip3009.mint(p.address, DEPOSIT));
    }
  }
  if (trace) env.registry = await buildRegistry(env);
  return env;
}

async function registerPreflight(r: SlotRegistry, env: Env, pf: string, token: string, everyone: string[]): Promise<void> {
  await r.addContract(pf, "contracts/Preflight.sol:Preflight", PREFLIGHT_STEP_OF_VARIABLE);
  r.mapping(pf, "_fees", [token]);
  for (const a of everyone) r.mapping(pf, "_earnings", [a, token]);
  for (const p of [...env.payers, wallet("fresh-payer"), { address: await env.hostile.getAddress() }]) {
    r.mapping(pf, "_accounts", [p.address, token]);
    r.mapping(pf, "_withdrawals", [p.address, token]);
    r.mapping(pf, "_lanes", [env.provider.address, token, p.address]);
    for (let w = 0n; w < 12n; w++) r.mapping(pf, "_spilledNonces", [p.address, token, w]);
    for (const d of [env.delegate.address, env.modelDelegate.address, wallet("delegate-2").address]) {
      r.mapping(pf, "_grants", [p.address, token, d], 2);
      for (const provider of [env.provider.address, ethers.ZeroAddress]) {
        const key = r.keyHash(["address", "address", "address", "address"], [p.address, token, d, provider], "permission");
        r.mapping(pf, "_grantStates", [key]);
      }
      for (let epoch = 1; epoch < 4; epoch++) {
        const key = r.keyHash(["address", "address", "address", "uint16", "bytes32"], [p.address, token, d, epoch, MODEL], "permission");
        r.mapping(pf, "_grantModels", [key]);
      }
    }
    for (const channel of [ethers.ZeroHash]) {
      const key = r.keyHash(["address", "address", "address", "bytes32"], [p.address, env.provider.address, token, channel], "nonce");
      r.mapping(pf, "_claimed", [key]);
    }
  }
}

async function buildRegistry(env: Env): Promise<SlotRegistry> {
  const r = new SlotRegistry();
  const pf = await env.preflight.getAddress();
  const pfFee = await env.preflightFee.getAddress();
  const token = await env.usdc.getAddress();
  await r.addContract(token, "contracts/test/TestToken.sol:TestToken", {
    _balances: "balances",
    _allowances: "balances",
    _nonces: "nonce",
  });
  r.addToken(token);
  r.addWholeContract(await env.hostile.getAddress(), "recovery");
  const spenders = [pf, pfFee];
  const everyone = [env.deployer, env.provider, env.delegate, wallet("fresh-payer"), ...env.payers].map((w) => w.address);
  if (env.baseline && env.permit2 && env.eip3009 && env.batcher) {
    const bl = await env.baseline.getAddress();
    const e3 = await env.eip3009.getAddress();
    await r.addContract(bl, "contracts/bench/OzBaselineEscrow.sol:OzBaselineEscrow", { balances: "balances", usedNonces: "nonce" });
    await r.addContract(env.permit2, "@uniswap/v4-periphery/lib/permit2/src/Permit2.sol:Permit2", {
      nonceBitmap: "nonce",
      allowance: "balances",
    });
    await r.addContract(e3, "contracts/bench/Eip3009Token.sol:Eip3009Token", {
      _balances: "balances",
      _allowances: "balances",
      _authorizationStates: "nonce",
    });
    spenders.push(bl, env.permit2);
    everyone.push(bl, env.permit2, await env.batcher.getAddress());
    for (const p of [...env.payers, wallet("fresh-payer")]) {
      r.mapping(bl, "balances", [p.address, token]);
      for (let w = 0n; w < 4n; w++) r.mapping(env.permit2, "nonceBitmap", [p.address, w]);
    }
    for (const a of everyone) r.mapping(e3, "_balances", [a]);
  }
  everyone.push(pf, pfFee);
  for (const a of everyone) {
    r.mapping(token, "_balances", [a]);
    r.mapping(token, "_nonces", [a]);
    for (const s of spenders) r.mapping(token, "_allowances", [a, s]);
  }
  await registerPreflight(r, env, pf, token, everyone);
  await registerPreflight(r, env, pfFee, token, everyone);
  return r;
}

// ------------------------------------------------------------------ measuring

interface Measured {
  gasUsed: number;
  calldataBytes: number;
  l1DataBytes: number;
  brotliBytes: number;
  steps: Steps | null;
}

async function measure(env: Env, receipts: TransactionReceipt[]): Promise<Measured> {
  const out: Measured = { gasUsed: 0, calldataBytes: 0, l1DataBytes: 0, brotliBytes: 0, steps: env.registry ? emptySteps() : null };
  for (const receipt of receipts) {
    const tx = await ethers.provider.getTransaction(receipt.hash);
    if (tx === null) throw new Error(`no transaction ${receipt.hash}`);
    const signed = ethers.getBytes(Transaction.from(tx).serialized);
    out.l1DataBytes += fjordL1Size(signed);
    out.brotliBytes += brotliSize(signed);
    if (env.registry && out.steps) {
      const a = await attribute(receipt, env.registry);
      out.gasUsed += a.gasUsed;
      out.calldataBytes += a.calldataBytes;
      for (const s of STEPS) out.steps[s] += a.steps[s];
    } else {
      out.gasUsed += Number(receipt.gasUsed);
      out.calldataBytes += ethers.dataLength(tx.data);
    }
  }
  return out;
}

function row(system: System, scenario: string, state: State, requests: number, m: Measured, transactions: number, note?: string, feeBps = 0): Row {
  return {
    system,
    scenario,
    state,
    requests,
    transactions,
    gasUsed: m.gasUsed,
    gasPerRequest: Math.round(m.gasUsed / requests),
    calldataBytesPerRequest: Math.round(m.calldataBytes / requests),
    feeBps,
    l1DataBytesPerRequest: Math.round((m.l1DataBytes / requests) * 10) / 10,
    brotliBytesPerRequest: Math.round((m.brotliBytes / requests) * 10) / 10,
    steps: m.steps,
    ...(note === undefined ? {} : { note }),
  };
}

/** Runs `body` for state "first" then "later" from the same snapshot, and restores the snapshot. */
async function firstAndLater(
  run: (round: number) => Promise<Row | null>,
): Promise<Row[]> {
  const snap = (await network.provider.send("evm_snapshot", [])) as string;
  const rows: Row[] = [];
  for (const round of [0, 1]) {
    const r = await run(round);
    if (r !== null) rows.push(r);
  }
  await network.provider.send("evm_revert", [snap]);
  return rows;
}

/** Runs `body` once from the current state, and restores it. */
async function once(run: () => Promise<Row>): Promise<Row> {
  const snap = (await network.provider.send("evm_snapshot", [])) as string;
  const r = await run();
  await network.provider.send("evm_revert", [snap]);
  return r;
}

// ------------------------------------------------------------------ Preflight

function request(env: Env, payer: string, nonce: bigint, token: string): Request {
  // Every request commits to its own input, as real ones do (so the input hashes do not compress).
  return { payer, provider: env.provider.address, token, model: MODEL, price: PRICE, nonce, deadline: DEADLINE, inputHash: ethers.id(`${INPUT}:${payer}:${nonce}`) };
}

async function signed(env: Env, signer: Wallet, payer: Wallet, nonce: bigint) {
  const r = request(env, payer.address, nonce, await env.usdc.getAddress());
  const signature = await signRequest(signer, env.domain, r, true);
  const { token, model, price, deadline, inputHash } = r;
  return { payer: payer.address, token, model, price, nonce, deadline, inputHash, signature };
}

async function preflightScenarios(env: Env): Promise<Row[]> {
  const rows: Row[] = [];
  const { preflight, provider, payers, delegate } = env;
  const pf = preflight.connect(provider);
  const token = await env.usdc.getAddress();
  const state = (round: number): State => (round === 0 ? "first" : "later");
  const packedItem = async (signer: Wallet, payer: string, nonce: bigint, domain = env.domain): Promise<SignedPackedItem> => {
    const r = request(env, payer, nonce, token);
    return { request: r, signature: await signRequest(signer, domain, r, true) };
  };

  // Single requests: the readable entry point, and the compact one (a packed batch of one).
  rows.push(
    ...(await firstAndLater(async (round) => {
      const req = await signed(env, payers[0]!, payers[0]!, BigInt(round));
      return row("preflight", "single-payer", state(round), 1, await measure(env, [await mined(pf.settle(req))]), 1, "settle(SignedRequest): the readable entry point");
    })),
  );
  rows.push(
    ...(await firstAndLater(async (round) => {
      const packed = encodePacked([await packedItem(payers[0]!, payers[0]!.address, BigInt(round))]);
      return row("preflight", "single-payer-packed", state(round), 1, await measure(env, [await mined(pf.settlePacked(token, packed))]), 1, "settlePacked with one request");
    })),
  );
  rows.push(
    ...(await firstAndLater(async (round) => {
      const req = await signed(env, delegate, payers[0]!, BigInt(round));
      return row("preflight", "single-delegate", state(round), 1, await measure(env, [await mined(pf.settle(req))]), 1, "settle(SignedRequest) signed by a delegate");
    })),
  );
  rows.push(
    ...(await firstAndLater(async (round) => {
      const packed = encodePacked([await packedItem(delegate, payers[0]!.address, BigInt(round))]);
      return row("preflight", "single-delegate-packed", state(round), 1, await measure(env, [await mined(pf.settlePacked(token, packed))]), 1, "settlePacked with one delegate-signed request");
    })),
  );
  rows.push(
    ...(await firstAndLater(async (round) => {
      const packed = encodePacked([await packedItem(env.modelDelegate, payers[1]!.address, BigInt(round))]);
      return row("preflight", "single-delegate-models-packed", state(round), 1, await measure(env, [await mined(pf.settlePacked(token, packed))]), 1, "a delegate whose grant is restricted to models (one more slot read)");
    })),
  );
  for (const n of BATCH_ONE_PAYER) {
    rows.push(
      ...(await firstAndLater(async (round) => {
        const reqs = [];
        for (let i = 0; i < n; i++) reqs.push(await signed(env, payers[0]!, payers[0]!, BigInt(round * n + i)));
        return row("preflight", "batch-one-payer", state(round), n, await measure(env, [await mined(pf.settleBatch(token, reqs))]), 1, "settleBatch(token, SignedRequest[])");
      })),
    );
  }
  for (const n of BATCH_MANY_PAYERS) {
    rows.push(
      ...(await firstAndLater(async (round) => {
        const reqs = [];
        for (let i = 0; i < n; i++) reqs.push(await signed(env, payers[i]!, payers[i]!, BigInt(round)));
        return row("preflight", "batch-many-payers", state(round), n, await measure(env, [await mined(pf.settleBatch(token, reqs))]), 1, "settleBatch(token, SignedRequest[])");
      })),
    );
  }
  for (const n of BATCH_ONE_PAYER) {
    rows.push(
      ...(await firstAndLater(async (round) => {
        const items = [];
        for (let i = 0; i < n; i++) items.push(await packedItem(payers[0]!, payers[0]!.address, BigInt(round * n + i)));
        const m = await measure(env, [await mined(pf.settlePacked(token, encodePacked(items)))]);
        return row("preflight", "batch-one-payer-packed", state(round), n, m, 1, "settlePacked: one section, one group, 96 bytes per request");
      })),
    );
  }
  for (const n of BATCH_MANY_PAYERS) {
    rows.push(
      ...(await firstAndLater(async (round) => {
        const items = [];
        for (let i = 0; i < n; i++) items.push(await packedItem(payers[i]!, payers[i]!.address, BigInt(round)));
        const m = await measure(env, [await mined(pf.settlePacked(token, encodePacked(items)))]);
        return row("preflight", "batch-many-payers-packed", state(round), n, m, 1, "settlePacked: one section, one 30-byte group per payer");
      })),
    );
  }
  rows.push(
    ...(await firstAndLater(async (round) => {
      const items = [];
      for (let i = 0; i < 100; i++) items.push(await packedItem(delegate, payers[0]!.address, BigInt(round * 100 + i)));
      const m = await measure(env, [await mined(pf.settlePacked(token, encodePacked(items)))]);
      return row("preflight", "batch-one-payer-delegate-packed", state(round), 100, m, 1, "100 requests signed by payer 0's delegate");
    })),
  );
  rows.push(
    ...(await firstAndLater(async (round) => {
      // Every other item is signed by a key that is neither the payer nor a delegate: skipped, logged.
      const stranger = wallet("stranger");
      const items = [];
      for (let i = 0; i < 100; i++) items.push(await packedItem(i % 2 === 0 ? payers[0]! : stranger, payers[0]!.address, BigInt(round * 100 + i)));
      const m = await measure(env, [await mined(pf.settlePacked(token, encodePacked(items)))]);
      return row("preflight", "batch-failure-heavy-packed", state(round), 100, m, 1, "half the items fail (unknown signer) and are skipped with their reason");
    })),
  );
  rows.push(
    await once(async () => {
      // A hostile ERC-1271 payer whose check burns its whole 200,000 gas cap, next to one valid request.
      const items = [
        await packedItem(wallet("hostile-key"), await env.hostile.getAddress(), 0n),
        await packedItem(payers[0]!, payers[0]!.address, 0n),
      ];
      const m = await measure(env, [await mined(pf.settlePacked(token, encodePacked(items)))]);
      return row("preflight", "erc1271-payer-at-gas-cap-packed", "once", 2, m, 1, "a hostile wallet's ERC-1271 check burns its cap; the other item settles");
    }),
  );
  rows.push(
    await once(async () => {
      // Payer 2 fills nonce words 1..10 ahead, then word 0 but for nonce 63: settling nonce 63 fills
      // the window's word, which slides over MAX_SLIDE (8) full words and stops.
      const payer = payers[2]!;
      for (let w = 1n; w <= 10n; w++) await mined(preflight.connect(payer).invalidateNonces(token, w, 2n ** 64n - 1n));
      await mined(preflight.connect(payer).invalidateNonces(token, 0n, 2n ** 63n - 1n));
      const packed = encodePacked([await packedItem(payer, payer.address, 63n)]);
      const m = await measure(env, [await mined(pf.settlePacked(token, packed))]);
      return row("preflight", "nonce-window-slide-packed", "once", 1, m, 1, "the request that fills its window slides it over 8 full words (MAX_SLIDE)");
    }),
  );

  // Vouchers: channels on the shared balance, and lanes (funds reserved for the provider).
  const voucher = async (payer: Wallet, cumulativeAmount: bigint) => {
    const v = { payer: payer.address, provider: provider.address, token, model: MODEL, channel: ethers.ZeroHash, cumulativeAmount };
    const signature = await signVoucher(payer, env.domain, v, true);
    return { payer: v.payer, token, model: MODEL, channel: v.channel, cumulativeAmount, signature };
  };
  const laneVoucher = async (payer: Wallet, cumulativeAmount: bigint) => {
    const v = { payer: payer.address, provider: provider.address, token, model: MODEL, cumulativeAmount };
    return { payer: v.payer, cumulativeAmount, signature: await signLaneVoucher(payer, env.domain, v, true) };
  };
  rows.push(
    ...(await firstAndLater(async (round) => {
      const v = await voucher(payers[0]!, PRICE * 100n * BigInt(round + 1));
      return row("preflight", "voucher-claim", state(round), 1, await measure(env, [await mined(pf.claimVoucher(v))]), 1, "a channel on the payer's shared balance: claimVoucher");
    })),
  );
  rows.push(
    ...(await firstAndLater(async (round) => {
      const c = await laneVoucher(payers[0]!, PRICE * 100n * BigInt(round + 1));
      const m = await measure(env, [await mined(pf.claimLane({ payer: c.payer, token, model: MODEL, cumulativeAmount: c.cumulativeAmount, signature: c.signature }))]);
      return row("preflight", "voucher-claim-lane", state(round), 1, m, 1, "a lane (funds reserved for the provider): claimLane");
    })),
  );
  rows.push(
    ...(await firstAndLater(async (round) => {
      const packed = encodeLaneClaims(MODEL, [await laneVoucher(payers[0]!, PRICE * 100n * BigInt(round + 1))]);
      return row("preflight", "voucher-claim-lane-packed", state(round), 1, await measure(env, [await mined(pf.claimLanesPacked(token, packed))]), 1, "claimLanesPacked with one claim");
    })),
  );
  rows.push(
    ...(await firstAndLater(async (round) => {
      const packed = encodeLaneClaims(MODEL, [await laneVoucher(payers[0]!, PRICE * 100n * BigInt(round + 1))]);
      const m = await measure(env, [await mined(pf.claimLanesPacked(token, packed))]);
      return row("preflight", "voucher-per-covered-request", state(round), 100, m, 1, "one lane claim paying 100 requests served since the last claim");
    })),
  );
  rows.push(
    ...(await firstAndLater(async (round) => {
      const vs = [];
      for (let i = 0; i < 10; i++) vs.push(await voucher(payers[i]!, PRICE * 100n * BigInt(round + 1)));
      return row("preflight", "voucher-claims-10", state(round), 10, await measure(env, [await mined(pf.claimVouchers(token, vs))]), 1, "10 payers, one channel each");
    })),
  );
  rows.push(
    ...(await firstAndLater(async (round) => {
      const claims = [];
      for (let i = 0; i < 10; i++) claims.push(await laneVoucher(payers[i]!, PRICE * 100n * BigInt(round + 1)));
      const m = await measure(env, [await mined(pf.claimLanesPacked(token, encodeLaneClaims(MODEL, claims)))]);
      return row("preflight", "voucher-claims-10-lane-packed", state(round), 10, m, 1, "10 payers' lanes in one claimLanesPacked");
    })),
  );

  // Lanes: open (a new lane slot), top up, deposit straight into a lane, close after the notice.
  rows.push(
    ...(await firstAndLater(async (round) => {
      const payer = payers[LANE_PAYERS + 1]!;
      const m = await measure(env, [await mined(preflight.connect(payer).fundLane(provider.address, token, LANE_FUNDS))]);
      return row("preflight", round === 0 ? "lane-open" : "lane-top-up", state(round), 1, m, 1, "fundLane from the payer's escrow balance");
    })),
  );
  rows.push(
    ...(await firstAndLater(async (round) => {
      const payer = payers[LANE_PAYERS + 2]!;
      const m = await measure(env, [await mined(preflight.connect(env.deployer).depositToLane(payer.address, provider.address, token, LANE_FUNDS))]);
      return row("preflight", "lane-deposit", state(round), 1, m, 1, "depositToLane: an ERC-20 deposit straight into a lane");
    })),
  );
  rows.push(
    await once(async () => {
      const payer = payers[3]!;
      const r1 = await mined(preflight.connect(payer).requestLaneClose(provider.address, token));
      await network.provider.send("evm_increaseTime", [Number(NOTICE)]);
      const r2 = await mined(preflight.connect(payer).closeLane(provider.address, token, payer.address));
      return row("preflight", "lane-close", "once", 1, await measure(env, [r1, r2]), 2, "requestLaneClose, then closeLane after the notice period");
    }),
  );

  // Escrow operations.
  const depositor = preflight.connect(env.deployer);
  rows.push(
    ...(await firstAndLater(async (round) => {
      const fresh = wallet("fresh-payer");
      const m = await measure(env, [await mined(depositor.deposit(fresh.address, token, DEPOSIT))]);
      return row("preflight", "deposit", round === 0 ? "first" : "later", 1, m, 1, "ERC-20 deposit for a payer");
    })),
  );
  rows.push(
    ...(await firstAndLater(async (round) => {
      const payer = payers[MAX_PAYERS - 1]!;
      const usdc = env.usdc;
      const nonce = await usdc.nonces(payer.address);
      const pfAddress = await preflight.getAddress();
      const sig = Signature.from(
        await payer.signTypedData(
          { name: "USD Coin", version: "1", chainId: env.chainId, verifyingContract: token },
          { Permit: [
            { name: "owner", type: "address" },
            { name: "spender", type: "address" },
            { name: "value", type: "uint256" },
            { name: "nonce", type: "uint256" },
            { name: "deadline", type: "uint256" },
          ] },
          { owner: payer.address, spender: pfAddress, value: DEPOSIT, nonce, deadline: DEADLINE },
        ),
      );
      const m = await measure(env, [
        await mined(preflight.connect(payer).depositWithPermit(payer.address, token, DEPOSIT, DEADLINE, sig.v, sig.r, sig.s)),
      ]);
      return row("preflight", "deposit-permit", state(round), 1, m, 1, "EIP-2612 permit + deposit in one transaction");
    })),
  );
  rows.push(
    ...(await firstAndLater(async (round) => {
      const payer = payers[1]!;
      const delegate2 = wallet("delegate-2");
      const terms = {
        delegate: delegate2.address,
        token,
        provider: provider.address,
        maxPrice: PRICE * 10n,
        budget: PRICE * 1_000n,
        period: 86_400n,
        expiry: DEADLINE,
        models: [MODEL],
      };
      const signature = await signGrant(payer, env.domain, { ...terms, payer: payer.address, epoch: BigInt(round), deadline: DEADLINE });
      const m = await measure(env, [await mined(pf.grantBySig(payer.address, terms, DEADLINE, signature))]);
      return row("preflight", "grant-by-signature", state(round), 1, m, 1, "one model, submitted by the provider");
    })),
  );
  rows.push(
    await once(async () => {
      const payer = payers[2]!;
      const r1 = await mined(preflight.connect(payer).requestWithdrawal(token, DEPOSIT));
      await network.provider.send("evm_increaseTime", [Number(NOTICE)]);
      const r2 = await mined(preflight.connect(payer).withdraw(token, payer.address));
      return row("preflight", "withdraw", "once", 1, await measure(env, [r1, r2]), 2, "requestWithdrawal, then withdraw after the notice period");
    }),
  );

  // Earnings and the fee: the fee-on deployment charges FEE_BPS when the provider withdraws.
  for (const [fee, contract, domain] of [[0, preflight, env.domain], [FEE_BPS, env.preflightFee, env.feeDomain]] as const) {
    const suffix = fee === 0 ? "" : "-fee";
    const p = contract.connect(provider);
    rows.push(
      ...(await firstAndLater(async (round) => {
        const packed = encodePacked([await packedItem(payers[0]!, payers[0]!.address, 10_000n + BigInt(round), domain)]);
        await mined(p.settlePacked(token, packed));
        const m = await measure(env, [await mined(p.withdrawEarnings(token, provider.address))]);
        return row("preflight", `withdraw-earnings${suffix}`, state(round), 1, m, 1, fee === 0 ? "withdrawEarnings" : "withdrawEarnings with the fee taken (rounded up)", fee);
      })),
    );
    rows.push(
      await once(async () => {
        const first = encodePacked([await packedItem(payers[0]!, payers[0]!.address, 40n, domain)]);
        await mined(p.settlePacked(token, first));
        await mined(p.withdrawEarnings(token, provider.address));
        const next = encodePacked([await packedItem(payers[0]!, payers[0]!.address, 41n, domain)]);
        const m = await measure(env, [await mined(p.settlePacked(token, next))]);
        return row("preflight", `single-payer-packed-after-withdraw-earnings${suffix}`, "once", 1, m, 1, "the first settlement after the provider withdrew everything", fee);
      }),
    );
    if (fee === 0) continue;
    rows.push(
      ...(await firstAndLater(async (round) => {
        const packed = encodePacked([await packedItem(payers[0]!, payers[0]!.address, BigInt(round), domain)]);
        return row("preflight", "single-payer-packed-fee", state(round), 1, await measure(env, [await mined(p.settlePacked(token, packed))]), 1, `fee ${fee} bps`, fee);
      })),
    );
    rows.push(
      ...(await firstAndLater(async (round) => {
        const items = [];
        for (let i = 0; i < 100; i++) items.push(await packedItem(payers[0]!, payers[0]!.address, BigInt(round * 100 + i), domain));
        const m = await measure(env, [await mined(p.settlePacked(token, encodePacked(items)))]);
        return row("preflight", "batch-one-payer-packed-fee", state(round), 100, m, 1, `fee ${fee} bps`, fee);
      })),
    );
    rows.push(
      ...(await firstAndLater(async (round) => {
        const items = [];
        for (let i = 0; i < 10; i++) items.push(await packedItem(payers[i]!, payers[i]!.address, BigInt(round), domain));
        const m = await measure(env, [await mined(p.settlePacked(token, encodePacked(items)))]);
        return row("preflight", "batch-many-payers-packed-fee", state(round), 10, m, 1, `fee ${fee} bps`, fee);
      })),
    );
  }
  return rows;
}

// ------------------------------------------------------------------ peers

const PERMIT_TYPES = {
  PermitTransferFrom: [
    { name: "permitted", type: "TokenPermissions" },
    { name: "spender", type: "address" },
    { name: "nonce", type: "uint256" },
    { name: "deadline", type: "uint256" },
  ],
  TokenPermissions: [
    { name: "token", type: "address" },
    { name: "amount", type: "uint256" },
  ],
};

const AUTH_TYPES = {
  TransferWithAuthorization: [
    { name: "from", type: "address" },
    { name: "to", type: "address" },
    { name: "value", type: "uint256" },
    { name: "validAfter", type: "uint256" },
    { name: "validBefore", type: "uint256" },
    { name: "nonce", type: "bytes32" },
  ],
};

const TX_GAS_CAP = 16_777_216; // EIP-7825 (osaka): no transaction may use more

/** Peer scenarios that cannot run, e.g. a batch that does not fit under the EIP-7825 transaction gas cap. */
export const excluded: string[] = [];

/** Runs a peer batch; one that runs out of the transaction gas cap is recorded in `excluded` instead. */
async function capped(label: string, body: () => Promise<Row>): Promise<Row | null> {
  const snap = (await network.provider.send("evm_snapshot", [])) as string;
  try {
    return await body();
  } catch (error) {
    await network.provider.send("evm_revert", [snap]);
    const message = error instanceof Error ? error.message : String(error);
    if (!/gas|revert|CALL_EXCEPTION/i.test(message)) throw error;
    excluded.push(`${label}: does not fit in one transaction under the EIP-7825 cap of ${TX_GAS_CAP.toLocaleString("en-US")} gas`);
    return null;
  }
}

async function peerScenarios(env: Env): Promise<Row[]> {
  const { provider, payers } = env;
  const baseline = env.baseline!;
  const permit2 = env.permit2!;
  const eip3009 = env.eip3009!;
  const batcher = env.batcher!;
  const token = await env.usdc.getAddress();
  const e3 = await eip3009.getAddress();
  const batcherAddress = await batcher.getAddress();
  const blDomain: PreflightDomain = { chainId: env.chainId, verifyingContract: await baseline.getAddress() };
  const state = (round: number): State => (round === 0 ? "first" : "later");
  const rows: Row[] = [];

  const ozRequest = async (payer: Wallet, nonce: bigint) => {
    const r = request(env, payer.address, nonce, token);
    const signature = await signRequest(payer, blDomain, r, false);
    env.registry?.mapping(await baseline.getAddress(), "usedNonces", [payer.address, nonce]);
    const { model, price, deadline, inputHash } = r;
    return { payer: payer.address, token, model, price, nonce, deadline, inputHash, signature };
  };
  const permit = async (payer: Wallet, nonce: bigint, spender: string) => {
    const message = { permitted: { token, amount: PRICE }, spender, nonce, deadline: DEADLINE };
    const signature = await payer.signTypedData({ name: "Permit2", chainId: env.chainId, verifyingContract: permit2 }, PERMIT_TYPES, message);
    return { permit: { permitted: { token, amount: PRICE }, nonce, deadline: DEADLINE }, owner: payer.address, signature };
  };
  const authorization = async (payer: Wallet, index: number) => {
    const nonce = ethers.id(`auth:${payer.address}:${index}`); // random-looking, as x402 clients use
    env.registry?.mapping(e3, "_authorizationStates", [payer.address, nonce]);
    const message = { from: payer.address, to: provider.address, value: PRICE, validAfter: 0n, validBefore: DEADLINE, nonce };
    const sig = Signature.from(await payer.signTypedData({ name: "USD Coin", version: "2", chainId: env.chainId, verifyingContract: e3 }, AUTH_TYPES, message));
    return { from: payer.address, value: PRICE, validAfter: 0n, validBefore: DEADLINE, nonce, v: sig.v, r: sig.r, s: sig.s };
  };

  // single-payer: each peer called directly by the provider.
  rows.push(
    ...(await firstAndLater(async (round) =>
      row("oz-baseline", "single-payer", state(round), 1, await measure(env, [await mined(baseline.connect(provider).settle(await ozRequest(payers[0]!, BigInt(round))))]), 1),
    )),
  );
  const p2 = new ethers.Contract(
    permit2,
    ["function permitTransferFrom(((address token,uint256 amount) permitted,uint256 nonce,uint256 deadline) permit,(address to,uint256 requestedAmount) transferDetails,address owner,bytes signature)"],
    provider,
  );
  rows.push(
    ...(await firstAndLater(async (round) => {
      const p = await permit(payers[0]!, BigInt(round), provider.address);
      const fn = p2.getFunction("permitTransferFrom");
      const m = await measure(env, [await mined(fn(p.permit, { to: provider.address, requestedAmount: PRICE }, p.owner, p.signature) as Promise<ContractTransactionResponse>)]);
      return row("permit2", "single-payer", state(round), 1, m, 1, "permitTransferFrom called by the provider (the signed spender)");
    })),
  );
  rows.push(
    ...(await firstAndLater(async (round) => {
      const a = await authorization(payers[0]!, round);
      const m = await measure(env, [
        await mined(eip3009.connect(provider).transferWithAuthorization(a.from, provider.address, a.value, a.validAfter, a.validBefore, a.nonce, a.v, a.r, a.s)),
      ]);
      return row("eip3009", "single-payer", state(round), 1, m, 1, "transferWithAuthorization submitted by the provider");
    })),
  );

  // Batches: N requests in one transaction.
  const batches: { scenario: string; n: number; payer: (i: number) => Wallet; nonce: (round: number, i: number) => number }[] = [
    ...BATCH_ONE_PAYER.map((n) => ({ scenario: "batch-one-payer", n, payer: () => payers[0]!, nonce: (round: number, i: number) => round * n + i })),
    ...BATCH_MANY_PAYERS.map((n) => ({ scenario: "batch-many-payers", n, payer: (i: number) => payers[i]!, nonce: (round: number) => round })),
  ];
  for (const b of batches) {
    rows.push(
      ...(await firstAndLater(async (round) =>
        capped(`oz-baseline ${b.scenario} ${b.n} (${state(round)})`, async () => {
          const reqs = [];
          for (let i = 0; i < b.n; i++) reqs.push(await ozRequest(b.payer(i), BigInt(b.nonce(round, i))));
          const tx = baseline.connect(provider).settleBatch(reqs, { gasLimit: TX_GAS_CAP });
          return row("oz-baseline", b.scenario, state(round), b.n, await measure(env, [await mined(tx)]), 1);
        }),
      )),
    );
    rows.push(
      ...(await firstAndLater(async (round) =>
        capped(`permit2 ${b.scenario} ${b.n} (${state(round)})`, async () => {
          const items = [];
          for (let i = 0; i < b.n; i++) items.push(await permit(b.payer(i), BigInt(b.nonce(round, i)), batcherAddress));
          const tx = batcher.connect(provider).permit2Batch(permit2, provider.address, items, { gasLimit: TX_GAS_CAP });
          return row("permit2", b.scenario, state(round), b.n, await measure(env, [await mined(tx)]), 1, "one permit per request, through a batching spender contract");
        }),
      )),
    );
    rows.push(
      ...(await firstAndLater(async (round) =>
        capped(`eip3009 ${b.scenario} ${b.n} (${state(round)})`, async () => {
          const items = [];
          for (let i = 0; i < b.n; i++) items.push(await authorization(b.payer(i), 10_000 + b.nonce(round, i)));
          const tx = batcher.connect(provider).eip3009Batch(e3, provider.address, items, { gasLimit: TX_GAS_CAP });
          return row("eip3009", b.scenario, state(round), b.n, await measure(env, [await mined(tx)]), 1, "one authorization per request, through a batching contract");
        }),
      )),
    );
  }

  // Escrow operations of the baseline.
  rows.push(
    ...(await firstAndLater(async (round) => {
      const fresh = wallet("fresh-payer");
      return row("oz-baseline", "deposit", state(round), 1, await measure(env, [await mined(baseline.connect(env.deployer).deposit(fresh.address, token, DEPOSIT))]), 1);
    })),
  );
  {
    const snap = (await network.provider.send("evm_snapshot", [])) as string;
    const payer = payers[2]!;
    const r = await mined(baseline.connect(payer).withdraw(token, DEPOSIT));
    rows.push(row("oz-baseline", "withdraw", "once", 1, await measure(env, [r]), 1, "no notice period"));
    await network.provider.send("evm_revert", [snap]);
  }
  return rows;
}

/**
 * Runs every scenario. `peers`: also the three peers; `trace`: attribute each transaction's gas to
 * steps (slower). Leaves the chain as it found it.
 */
export async function runScenarios(options: { peers: boolean; trace: boolean }): Promise<Row[]> {
  const start = (await network.provider.send("evm_snapshot", [])) as string;
  try {
    const env = await setup(options.peers, options.trace);
    const rows = await preflightScenarios(env);
    if (options.peers) rows.push(...(await peerScenarios(env)));
    return rows;
  } finally {
    await network.provider.send("evm_revert", [start]);
  }
}

/** The key of a row in the snapshot. */
export function rowKey(r: Pick<Row, "scenario" | "state" | "requests">): string {
  return `${r.scenario}/${r.requests}/${r.state}`;
}
