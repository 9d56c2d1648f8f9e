/**
 * `npm run demo:gateway`: pay-per-inference over HTTP, end to end, on a local node.
 *
 *  1. start anvil, deploy Preflight and a test USDC; the payer deposits, funds a lane for the
 *     provider (funds only that provider can claim, for metered calls) and grants an agent's
 *     session key (this provider, these two models, a price cap and a daily budget)
 *  2. start a mock OpenAI-compatible model server and the gateway in front of it
 *  3. the agent (the official `openai` client with the paying fetch, viem session key) calls a
 *     fixed-price model per request (plain and streamed), then a metered model per token (streamed)
 *  4. shut the gateway down: it settles what it queued (settleBatch for the requests,
 *     claimLanesPacked for the lane's latest voucher, then collectLanes); print each call's preflight
 *     latency, the settlement transactions with their gas per settled item, and the balances
 */
import { ZeroAddress, formatUnits, type JsonRpcProvider } from "ethers";
import OpenAI from "openai";
import { privateKeyToAccount, generatePrivateKey } from "viem/accounts";
import { Preflight__factory, TestToken__factory } from "../typechain-types";
import { modelId } from "@preflight/sdk";
import { priceTable, startGateway, startMockModelServer, type Logger } from "@preflight/provider/gateway";
import { createPayingFetch, fromViem, type PaymentResponse } from "@preflight/sdk/fetch";
import { devAccount, freePort, providerFor, startAnvil } from "../test/helpers/nodes";

const usdc = (n: bigint) => `${formatUnits(n, 6)} USDC`;
const FIXED = "llama-3.1-8b";
const METERED = "qwen-2.5-7b";

async function main(): Promise<void> {
  console.log("1. local node, deployment, deposit, lane and grant");
  const anvil = await startAnvil(await freePort());
  const rpc: JsonRpcProvider = providerFor(anvil.url, 31337);
  const [deployer, provider, payer] = [devAccount(0, rpc), devAccount(1, rpc), devAccount(2, rpc)];
  const preflight = await (await new Preflight__factory(deployer).deploy(24n * 3600n, 0, ZeroAddress)).waitForDeployment();
  const token = await (await new TestToken__factory(deployer).deploy("USD Coin", "USDC", 6)).waitForDeployment();
  const [contract, tokenAddress] = [await preflight.getAddress(), await token.getAddress()];
  await (await token.mint(payer.address, 100_000_000n)).wait();
  await (await token.connect(payer).approve(contract, 100_000_000n)).wait();
  await (await preflight.connect(payer).deposit(payer.address, tokenAddress, 20_000_000n)).wait();
  await (await preflight.connect(payer).fundLane(provider.address, tokenAddress, 5_000_000n)).wait();
  const sessionKey = privateKeyToAccount(generatePrivateKey());
  const now = BigInt((await rpc.getBlock("latest"))!.timestamp);
  await (
    await preflight.connect(payer).grant({
      delegate: sessionKey.address,
      token: tokenAddress,
      provider: provider.address,
      maxPrice: 10_000n,
      budget: 5_000_000n,
      period: 86_400n,
      expiry: now + 86_400n,
      models: [modelId(FIXED), modelId(METERED)],
    })
  ).wait();
  console.log(`   payer ${payer.address} deposited ${usdc(20_000_000n)} and moved ${usdc(5_000_000n)} of it into a lane for the provider; session key ${sessionKey.address} may spend ${usdc(5_000_000n)} a day with provider ${provider.address}`);

  console.log("2. mock model server and gateway");
  const upstream = await startMockModelServer({ serviceTimeMs: 20, completionTokens: 12, tokenIntervalMs: 5, models: [FIXED, METERED] });
  const accepted: { scheme: string; preflightUs: number }[] = [];
  const settled: { kind: string; txHash: string; gasUsed: string; items?: number; lanes?: number; amount: string }[] = [];
  const logger: Logger = (_level, event, fields) => {
    if (event === "accepted") accepted.push(fields as { scheme: string; preflightUs: number });
    if (event === "settled" || event === "collected") settled.push({ kind: "collect", ...JSON.parse(JSON.stringify(fields, (_, v) => (typeof v === "bigint" ? v.toString() : v))) });
  };
  const gateway = await startGateway({
    upstream: upstream.url,
    port: 0,
    providerSigner: provider,
    contract,
    token: tokenAddress,
    models: priceTable({ [FIXED]: { perRequest: 2_000n }, [METERED]: { perInputToken: 5n, perOutputToken: 20n, holdPerCall: 2_000n } }),
    creditLimit: 5_000n,
    maxBatchSize: 5,
    maxAgeMs: 60_000,
    pollMs: 200,
    releaseGraceMs: 0,
    logger,
  });
  console.log(`   model server ${upstream.url}, gateway ${gateway.url} (402 for unpaid calls)`);

  console.log("3. the agent calls through the openai client with the paying fetch");
  const receipts: PaymentResponse[] = [];
  const pay = createPayingFetch({ signer: fromViem(sessionKey), payer: payer.address, maxPricePerRequest: 10_000n, maxLaneTotal: 1_000_000n, onPaymentResponse: (r) => receipts.push(r) });
  const openai = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: "not-needed", fetch: pay, maxRetries: 0 });
  const messages = [{ role: "user" as const, content: "Name twelve colours." }];
  for (let i = 0; i < 6; i++) {
    if (i % 2 === 0) {
      const c = await openai.chat.completions.create({ model: FIXED, messages });
      console.log(`   ${FIXED} per request, plain:    "${c.choices[0]!.message.content!.slice(0, 30)}..."`);
    } else {
      let text = "";
      for await (const chunk of await openai.chat.completions.create({ model: FIXED, messages, stream: true })) text += chunk.choices[0]?.delta?.content ?? "";
      console.log(`   ${FIXED} per request, streamed: "${text.slice(0, 30)}..."`);
    }
  }
  for (let i = 0; i < 6; i++) {
    let text = "";
    for await (const chunk of await openai.chat.completions.create({ model: METERED, messages, stream: true })) text += chunk.choices[0]?.delta?.content ?? "";
    const lane = pay.lanes()[0]!;
    console.log(`   ${METERED} metered, streamed: "${text.slice(0, 20)}..." lane owes ${usdc(lane.owed)}, voucher signed for ${usdc(lane.signed)}`);
  }

  console.log("4. shutdown settles the queue");
  await gateway.close();
  await upstream.close();

  console.log("\n   preflight latency per accepted call (arrival to decision, in-process):");
  accepted.forEach((a, i) => console.log(`   #${String(i + 1).padStart(2)} ${a.scheme.padEnd(18)} ${String(a.preflightUs).padStart(6)} us`));
  console.log("\n   settlement transactions:");
  for (const s of settled) {
    const what = s.kind === "collect" ? `${s.lanes} lane  collected` : `${String(s.items).padStart(2)} items ${s.kind === "lane" ? "  claimed" : "  settled"}`;
    const per = s.kind === "collect" ? "" : ` (${Math.round(Number(s.gasUsed) / Math.max(1, s.items ?? 0))} per settled item)`;
    console.log(`   ${s.kind.padEnd(8)} ${s.txHash}  ${what}  ${usdc(BigInt(s.amount)).padStart(14)}  gas ${s.gasUsed}${per}`);
  }
  const after = await preflight.balanceOf(payer.address, tokenAddress);
  console.log("\n   balances:");
  const [claimed, funds, uncollected] = await preflight.laneOf(payer.address, provider.address, tokenAddress);
  console.log(`   payer escrow        ${usdc(after)} (deposited ${usdc(20_000_000n)}, ${usdc(5_000_000n)} into the lane, settled ${usdc(20_000_000n - 5_000_000n - after)})`);
  console.log(`   payer's lane        ${usdc(funds)} left, ${usdc(claimed)} claimed by the provider, ${usdc(uncollected)} not yet collected`);
  console.log(`   provider earnings   ${usdc(await preflight.earningsOf(provider.address, tokenAddress))}`);
  const lane = pay.lanes()[0]!;
  console.log(`   charged for service ${usdc(receipts.reduce((s, r) => s + BigInt(r.amount), 0n))}: per request, plus ${usdc(lane.owed)} metered against a voucher of ${usdc(lane.signed)} (the opening voucher pays ahead; the lane's next calls use it up)`);
  await anvil.stop();
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
