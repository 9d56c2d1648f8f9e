/**
 * `npm run demo` (in-process chain) or `npm run demo -- --network localhost` (a running
 * `npx hardhat node` or anvil): the whole Preflight flow through the SDK, with gas from receipts.
 *
 *  1. deploy; the payer deposits test USDC with an EIP-2612 permit (one transaction)
 *  2. the payer signs a grant for a browser session key (one provider, two models); a relayer submits it
 *  3. the session key signs a stream of requests; the provider preflights each one and batches them
 *  4. single settlements (payer-signed, delegate-signed) and a cumulative voucher
 *  5. one rejected request per kind of bad input: the verifier's reason and the contract's
 *  6. the provider withdraws earnings; the payer withdraws the rest after the notice period
 *  7. a gas table per transaction and per request
 */
import { ethers, network } from "hardhat";
import { Signature, Wallet, type ContractTransactionResponse, type Signer } from "ethers";
import {
  BatchSettler,
  NonceAllocator,
  PreflightVerifier,
  Reason,
  createSignedRequest,
  createSignedVoucher,
  cryptoBackend,
  getDomain,
  modelId,
  reasonName,
  signGrant,
  type BatchResult,
  type Decision,
  type GrantTerms,
  type PreflightDomain,
  type Request,
  type SignedRequest,
} from "@preflight/provider";
import type { Preflight } from "../typechain-types";
import { deploySystem } from "./deploySystem";
import { demoRegistry, stepRows } from "./demoGasSteps";

const DECIMALS = 6;
const usdc = (amount: string): bigint => ethers.parseUnits(amount, DECIMALS);
const fmt = (amount: bigint): string => `${ethers.formatUnits(amount, DECIMALS)} USDC`;
const NOTICE_PERIOD = 24n * 3600n;
const STREAM = 60;
const BATCH_SIZE = 30;

interface GasRow {
  operation: string;
  hash: string;
  gasUsed: bigint;
  requests: number;
  calldataBytes: number;
  note: string;
}
const gasRows: GasRow[] = [];

async function record(operation: string, sent: Promise<ContractTransactionResponse>, requests = 0, note = ""): Promise<bigint> {
  const tx = await sent;
  const receipt = await tx.wait();
  if (!receipt) throw new Error(`${operation}: no receipt`);
  gasRows.push({ operation, hash: tx.hash, gasUsed: receipt.gasUsed, requests, calldataBytes: (tx.data.length - 2) / 2, note });
  return receipt.gasUsed;
}

async function chainTime(): Promise<bigint> {
  return BigInt((await ethers.provider.getBlock("latest"))!.timestamp);
}

function step(title: string): void {
  console.log(`\n== ${title}`);
}

/** The custom error a call reverted with, from the revert data (in-process) or the node's message (JSON-RPC). */
function contractError(preflight: Preflight, error: unknown): string {
  const seen = new Set<unknown>();
  const findData = (e: unknown): string | undefined => {
    if (e === null || typeof e !== "object" || seen.has(e)) return undefined;
    seen.add(e);
    const record = e as Record<string, unknown>;
    if (typeof record.data === "string" && record.data.startsWith("0x") && record.data.length >= 10) return record.data;
    for (const key of ["error", "info", "data", "cause"]) {
      const found = findData(record[key]);
      if (found) return found;
    }
    return undefined;
  };
  const data = findData(error);
  const parsed = data ? preflight.interface.parseError(data) : null;
  if (parsed) return `${parsed.name}(${parsed.args.map((a: unknown) => String(a)).join(", ")})`;
  const message = String((error as Error).message);
  return /custom error '([^']+)'/.exec(message)?.[1] ?? message.slice(0, 80);
}

async function main(): Promise<void> {
  const started = Date.now();
  const [, payer, provider, relayer, otherProvider] = (await ethers.getSigners()) as unknown as Signer[];
  const [payerAddress, providerAddress, relayerAddress] = await Promise.all([payer.getAddress(), provider.getAddress(), relayer.getAddress()]);
  console.log(`Preflight demo on network "${network.name}" (chain ${(await ethers.provider.getNetwork()).chainId})`);

  // ------------------------------------------------------------------ 1. deploy and fund
  step("1. Deploy, and fund the payer with a permit deposit");
  const { preflight, token: usdcToken, deployBlock } = await deploySystem({ noticePeriod: NOTICE_PERIOD, feeBps: 50 });
  const token = await usdcToken.getAddress();
  const domain: PreflightDomain = await getDomain(preflight);
  console.log(`Preflight ${domain.verifyingContract} (block ${deployBlock}), test USDC ${token}, fee 0.5%, notice period 1 day`);
  await (await usdcToken.mint(payerAddress, usdc("1000"))).wait();
  const depositAmount = usdc("200");
  const permitDeadline = (await chainTime()) + 3600n;
  const permitSig = Signature.from(
    await payer.signTypedData(
      { name: "USD Coin", version: "1", chainId: domain.chainId, verifyingContract: token },
      { Permit: [{ name: "owner", type: "address" }, { name: "spender", type: "address" }, { name: "value", type: "uint256" }, { name: "nonce", type: "uint256" }, { name: "deadline", type: "uint256" }] },
      { owner: payerAddress, spender: domain.verifyingContract, value: depositAmount, nonce: await usdcToken.nonces(payerAddress), deadline: permitDeadline },
    ),
  );
  await record(
    "depositWithPermit (payer)",
    preflight.connect(payer).depositWithPermit(payerAddress, token, depositAmount, permitDeadline, permitSig.v, permitSig.r, permitSig.s),
    0,
    "EIP-2612 permit + deposit, one tx",
  );
  console.log(`payer escrow balance: ${fmt(await preflight.balanceOf(payerAddress, token))}`);

  // ------------------------------------------------------------------ 2. gasless grant
  step("2. The payer signs a grant for a session key; a relayer submits it (the payer pays no gas)");
  const sessionKey = Wallet.createRandom();
  const LLAMA = modelId("llama-3.1-70b");
  const MISTRAL = modelId("mistral-large");
  const now = await chainTime();
  const grantFor = async (delegate: string, over: Partial<GrantTerms>, label: string): Promise<void> => {
    const terms: GrantTerms = {
      delegate,
      token,
      provider: providerAddress,
      maxPrice: usdc("0.05"),
      budget: usdc("10"),
      period: 3600n,
      expiry: now + 7n * 24n * 3600n,
      models: [LLAMA, MISTRAL],
      ...over,
    };
    const { epoch } = await preflight.grantOf(payerAddress, token, delegate);
    const deadline = (await chainTime()) + 600n;
    const signature = await signGrant(payer, domain, { ...terms, payer: payerAddress, epoch, deadline });
    await record(`grantBySig (relayer) ${label}`, preflight.connect(relayer).grantBySig(payerAddress, terms, deadline, signature), 0, "payer signed off-chain");
  };
  const payerEthBefore = await ethers.provider.getBalance(payerAddress);
  await grantFor(sessionKey.address, {}, "session key");
  console.log(
    `session key ${sessionKey.address}: provider ${providerAddress}, models llama-3.1-70b + mistral-large, ` +
      `max 0.05 USDC/request, 10 USDC/hour, 7 days; submitted by ${relayerAddress}; ` +
      `payer ETH spent: ${ethers.formatEther(payerEthBefore - (await ethers.provider.getBalance(payerAddress)))}`,
  );

  // ------------------------------------------------------------------ 3. stream, preflight, batch
  step(`3. The session key signs ${STREAM} requests; the provider preflights each and settles in batches of ${BATCH_SIZE}`);
  // The verifier decides at chain time (the demo travels in time on the in-process chain).
  let clockNow = await chainTime();
  const verifier = await PreflightVerifier.create({ contract: preflight, provider: providerAddress, fromBlock: deployBlock, clock: () => clockNow });
  const backend = cryptoBackend();
  console.log(`verifier synced to block ${verifier.syncedBlock} (recovery: ${backend.recover}, keccak: ${backend.keccak})`);
  const nonces = await NonceAllocator.create(preflight, payerAddress, token);
  const batches: BatchResult[] = [];
  const settler = new BatchSettler({ contract: preflight.connect(provider), token, maxBatchSize: BATCH_SIZE, maxAgeMs: 5_000, onBatch: (b) => batches.push(b) });
  const base = async (over: Partial<Request> = {}): Promise<Request> => ({
    payer: payerAddress,
    provider: providerAddress,
    token,
    model: LLAMA,
    price: usdc("0.02"),
    nonce: await nonces.next(),
    deadline: (await chainTime()) + 3600n,
    inputHash: ethers.id(`prompt ${Math.random()}`),
    ...over,
  });
  const verifyTimesUs: number[] = [];
  const outcomes = [];
  for (let i = 0; i < STREAM; i++) {
    const request = await createSignedRequest(sessionKey, domain, await base({ model: i % 3 === 0 ? MISTRAL : LLAMA, price: usdc("0.01") + BigInt(i % 4) * usdc("0.01") }));
    const t0 = process.hrtime.bigint();
    const decision = verifier.verify(request);
    verifyTimesUs.push(Number(process.hrtime.bigint() - t0) / 1_000);
    if (!decision.accepted) throw new Error(`request ${i} refused: ${reasonName(decision.reason)}`);
    outcomes.push(settler.add(request)); // a batch goes out every BATCH_SIZE requests
  }
  await settler.flush();
  const results = await Promise.all(outcomes);
  verifyTimesUs.sort((a, b) => a - b);
  console.log(
    `preflight: ${STREAM}/${STREAM} accepted, median ${verifyTimesUs[STREAM >> 1].toFixed(0)} µs per request (no RPC; cold JIT, see npm run bench:preflight); ` +
      `reserved while pending: ${fmt(batches.reduce((s, b) => s + b.total, 0n))}`,
  );
  for (const b of batches) {
    gasRows.push({ operation: `settleBatch (provider) ${b.settled.length} session-key requests`, hash: b.txHash ?? "", gasUsed: b.gasUsed, requests: b.settled.length, calldataBytes: b.calldataBytes, note: "BatchSettler, 64-byte sigs" });
    console.log(`batch ${b.txHash}: ${b.settled.length} settled, ${b.skipped.length} skipped, ${fmt(b.total)}, gas ${b.gasUsed} (${b.gasUsed / BigInt(b.settled.length)}/request)`);
  }
  if (results.some((r) => r.reason !== Reason.Settled)) throw new Error("a preflighted request did not settle");
  await verifier.sync();
  clockNow = await chainTime();
  console.log(`after sync: pending ${verifier.pendingCount}, payer balance ${fmt(verifier.accountOf(payerAddress, token).balance)} (on-chain ${fmt(await preflight.balanceOf(payerAddress, token))})`);

  // ------------------------------------------------------------------ 4. single settlements and a voucher
  step("4. Single settlements and a cumulative voucher");
  const byPayer = await createSignedRequest(payer, domain, await base({ price: usdc("0.03") }));
  verifier.verify(byPayer);
  await record("settle (provider) payer-signed request", preflight.connect(provider).settle(byPayer), 1, "own transaction");
  const byKey = await createSignedRequest(sessionKey, domain, await base({ price: usdc("0.03") }));
  verifier.verify(byKey);
  await record("settle (provider) session-key request", preflight.connect(provider).settle(byKey), 1, "grant checked + spend recorded");
  const channel = ethers.id("chat-session-1");
  let cumulative = 0n;
  let latestVoucher;
  const VOUCHER_REQUESTS = 20;
  for (let i = 0; i < VOUCHER_REQUESTS; i++) {
    cumulative += usdc("0.015");
    latestVoucher = await createSignedVoucher(sessionKey, domain, { payer: payerAddress, provider: providerAddress, token, model: MISTRAL, channel, cumulativeAmount: cumulative });
    const d = verifier.verifyVoucher(latestVoucher);
    if (!d.accepted) throw new Error(`voucher ${i} refused: ${reasonName(d.reason)}`);
  }
  await record(`claimVoucher (provider) 1 voucher = ${VOUCHER_REQUESTS} requests`, preflight.connect(provider).claimVoucher(latestVoucher!), VOUCHER_REQUESTS, "one signature covers the stream");
  await verifier.sync();
  clockNow = await chainTime();
  console.log(`voucher stream of ${VOUCHER_REQUESTS} requests claimed with one transaction: ${fmt(cumulative)}`);
  console.log(`provider earnings so far: ${fmt(await preflight.earningsOf(providerAddress, token))} (after the 0.5% fee)`);

  // ------------------------------------------------------------------ 5. rejections
  step("5. One rejected request per kind of bad input (verifier vs contract)");
  const stranger = Wallet.createRandom();
  const tightKey = Wallet.createRandom();
  const elsewhereKey = Wallet.createRandom();
  const revokedKey = Wallet.createRandom();
  await grantFor(tightKey.address, { budget: usdc("0.03") }, "tight-budget key");
  await grantFor(elsewhereKey.address, { provider: await otherProvider.getAddress() }, "other-provider key");
  await grantFor(revokedKey.address, {}, "key to revoke");
  await record("revoke (payer)", preflight.connect(payer).revoke(token, revokedKey.address), 0, "effective at once");
  await verifier.sync();
  clockNow = await chainTime();
  const sign = async (signer: Signer, over: Partial<Request> = {}, compact = true): Promise<SignedRequest> => createSignedRequest(signer, domain, await base(over), compact);
  const highS = async (): Promise<SignedRequest> => {
    const r = await sign(sessionKey, {}, false);
    const sig = Signature.from(r.signature);
    const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
    return { ...r, signature: ethers.concat([sig.r, ethers.toBeHex(n - BigInt(sig.s), 32), sig.v === 27 ? "0x1c" : "0x1b"]) };
  };
  const cases: [string, SignedRequest][] = [
    ["wrong signer (not the payer, no grant)", await sign(stranger)],
    ["expired deadline", await sign(sessionKey, { deadline: (await chainTime()) - 1n })],
    ["price above the grant's cap", await sign(sessionKey, { price: usdc("0.06") })],
    ["over the grant's budget", await sign(tightKey, { price: usdc("0.04") })],
    ["replayed nonce", { ...byKey }],
    ["model outside the grant", await sign(sessionKey, { model: modelId("gpt-x") })],
    ["grant for another provider", await sign(elsewhereKey)],
    ["revoked grant", await sign(revokedKey)],
    ["balance too low", await sign(payer, { price: usdc("500") })],
    ["malleable signature (high s)", await highS()],
    ["signature of bad length (66 bytes)", await (async () => { const r = await sign(sessionKey, {}, false); return { ...r, signature: r.signature + "00" }; })()],
    ["signed for another provider", await sign(sessionKey, { provider: await otherProvider.getAddress() })],
  ];
  const rows: string[][] = [["bad input", "verifier", "settleBatch reason", "settle() reverts with"]];
  let disagreements = 0;
  for (const [label, request] of cases) {
    const decision: Decision = verifier.verify(request, { reserve: false });
    const [batchReason] = await preflight.connect(provider).settleBatch.staticCall(token, [request]);
    let single = "(settled)";
    try {
      await preflight.connect(provider).settle.staticCall(request);
    } catch (error) {
      single = contractError(preflight, error);
    }
    if (Number(batchReason) !== decision.reason) disagreements++;
    rows.push([label, reasonName(decision.reason), reasonName(Number(batchReason) as Reason), single]);
  }
  printTable(rows);
  if (disagreements > 0) throw new Error(`${disagreements} verifier/contract disagreements`);
  const mixed = [await sign(sessionKey), ...cases.map(([, r]) => r)];
  mixed.forEach((r) => verifier.verify(r));
  await record(`settleBatch (provider) 1 good + ${cases.length} bad`, preflight.connect(provider).settleBatch(token, mixed), 1, "bad items skipped, batch not held hostage");

  // ------------------------------------------------------------------ 6. withdrawals
  step("6. Withdrawals: provider earnings at once; payer after the notice period");
  const earnings = await preflight.earningsOf(providerAddress, token);
  await record("withdrawEarnings (provider)", preflight.connect(provider).withdrawEarnings(token, providerAddress));
  console.log(`provider withdrew ${fmt(earnings)}`);
  const remaining = await preflight.balanceOf(payerAddress, token);
  await record("requestWithdrawal (payer)", preflight.connect(payer).requestWithdrawal(token, remaining));
  try {
    await preflight.connect(payer).withdraw.staticCall(token, payerAddress);
  } catch (error) {
    console.log(`withdraw before the notice period: ${contractError(preflight, error)}`);
  }
  await ethers.provider.send("evm_increaseTime", [Number(NOTICE_PERIOD) + 1]);
  await ethers.provider.send("evm_mine", []);
  await record("withdraw (payer) after notice period", preflight.connect(payer).withdraw(token, payerAddress));
  await verifier.sync();
  clockNow = await chainTime();
  console.log(`payer withdrew ${fmt(remaining)}; escrow balance now ${fmt(await preflight.balanceOf(payerAddress, token))} (verifier: ${fmt(verifier.accountOf(payerAddress, token).balance)})`);
  const [feeBps, feeRecipient] = await preflight.fee();
  console.log(`fee recipient ${feeRecipient} (${feeBps} bps) earned ${fmt(await preflight.earningsOf(feeRecipient, token))}`);

  // ------------------------------------------------------------------ 7. gas table
  step("7. Gas per transaction and per request (gasUsed from receipts: 21,000 base + calldata + execution)");
  console.log("The 0.5% protocol fee is on here: every settlement also credits the fee recipient (one more storage write).");
  const table: string[][] = [["operation", "gasUsed", "requests", "gas/request", "calldata B", "note"]];
  for (const r of gasRows) {
    table.push([r.operation, r.gasUsed.toString(), r.requests ? String(r.requests) : "", r.requests ? (r.gasUsed / BigInt(r.requests)).toString() : "", String(r.calldataBytes), r.note]);
  }
  printTable(table);
  console.log(`\nPer verification step, from each settlement's own execution trace (steps add up exactly to gasUsed; docs/gas.md explains them):`);
  const settlements = gasRows.filter((r) => r.requests > 0 && r.hash !== "" && !r.operation.includes(" bad"));
  try {
    const registry = await demoRegistry({
      preflight: domain.verifyingContract,
      token,
      payer: payerAddress,
      providers: [providerAddress],
      delegates: [sessionKey.address],
      models: [LLAMA, MISTRAL],
      channels: [channel],
    });
    printTable(await stepRows(registry, settlements.map((r) => ({ label: r.operation, hash: r.hash, requests: r.requests }))));
    console.log("(the nonce shares the payer's balance slot, so it is counted under balances; off-chain preflight: " +
      `median ${verifyTimesUs[STREAM >> 1].toFixed(0)} µs per request, no RPC)`);
  } catch (error) {
    console.log(`Not available on this node: ${(error as Error).message.split("\n")[0]}. The receipts above still hold.`);
  }
  console.log(`\nDone in ${((Date.now() - started) / 1000).toFixed(1)} s.`);
}

function printTable(rows: string[][]): void {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const line = (r: string[]): string => r.map((cell, c) => (c > 0 && /^[0-9]+$/.test(cell) ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join("  ");
  console.log(line(rows[0]));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const r of rows.slice(1)) console.log(line(r));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
