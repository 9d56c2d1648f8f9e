/**
 * Two gateway replicas of one provider behind a load balancer share one real Redis: duplicate
 * submissions of the same payment raced at both are accepted once, a payer's funds are never
 * accepted twice across them, a lane voucher is claimed once, and what they settle adds up on chain.
 */
import { expect } from "chai";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { keccak256, toUtf8Bytes, Wallet } from "ethers";
import { deployPreflightFixture, type PreflightFixture } from "../helpers/fixtures";
import { fundedLane, fundedWallet, METERED, PER_REQUEST, PRICE, startTestGateway, type TestGateway, chainNow } from "../helpers/gateway";
import { startRedis, type RedisServer } from "../helpers/redis";
import { createSignedRequest, modelId, signLaneVoucher } from "@preflight/sdk";
import { encodeHeader, PAYMENT_SIGNATURE_HEADER, type PaymentRequirements } from "@preflight/sdk/fetch";

const BODY = JSON.stringify({ model: PER_REQUEST, messages: [{ role: "user", content: "hi" }] });
const METERED_BODY = JSON.stringify({ model: METERED, messages: [{ role: "user", content: "hi" }] });

describe("Gateway replicas sharing one Redis", function () {
  let f: PreflightFixture;
  let redis: RedisServer;
  let a: TestGateway;
  let b: TestGateway;
  let token: string;

  before(async function () {
    redis = await startRedis();
  });
  after(async function () {
    await redis?.stop();
  });
  beforeEach(async function () {
    f = await loadFixture(deployPreflightFixture);
    token = await f.usdc.getAddress();
    // A fresh key prefix per test: the fixture's chain is reverted, Redis is not.
    const prefixed = `${redis.url}/0`;
    a = await startTestGateway(f, { redis: prefixed });
    b = await startTestGateway(f, { redis: prefixed });
  });
  afterEach(async function () {
    await Promise.all([a?.close(), b?.close()]);
    const { Redis } = await import("ioredis");
    const flush = new Redis(redis.url);
    await flush.flushall();
    flush.disconnect();
  });

  async function signed(payer: Wallet, nonce: bigint): Promise<string> {
    const request = await createSignedRequest(payer, f.domain, {
      payer: payer.address,
      provider: f.provider.address,
      token,
      model: modelId(PER_REQUEST),
      price: PRICE,
      nonce,
      deadline: BigInt(chainNow() + 600),
      inputHash: keccak256(toUtf8Bytes(BODY)),
    });
    const wire = Object.fromEntries(Object.entries(request).map(([k, v]) => [k, typeof v === "bigint" ? v.toString() : v]));
    return encodeHeader({ x402Version: 2, accepted: {} as PaymentRequirements, payload: { request: wire } });
  }

  const post = (gw: TestGateway, payment: string, body = BODY) =>
    fetch(`${gw.running.url}/v1/chat/completions`, { method: "POST", headers: { [PAYMENT_SIGNATURE_HEADER]: payment }, body }).then(async (r) => {
      await r.arrayBuffer();
      return r.status;
    });

  it("accepts each payment once, however often and wherever it is submitted at the same time", async function () {
    const payer = await fundedWallet(f, 1_000_000n);
    const payments = await Promise.all(Array.from({ length: 12 }, (_, i) => signed(payer, BigInt(i))));
    const statuses = await Promise.all(payments.flatMap((p) => [post(a, p), post(b, p), post(a, p), post(b, p)]));
    expect(statuses.filter((s) => s === 200)).to.have.length(12);
    expect(statuses.filter((s) => s === 402)).to.have.length(36);
    expect(a.upstream.calls + b.upstream.calls).to.equal(12);

    const batches = [...(await a.running.close()), ...(await b.running.close())];
    const items = batches.flatMap((x) => x.items);
    expect(items.filter((i) => i.reason === 0)).to.have.length(12);
    expect(items.filter((i) => i.reason !== 0)).to.have.length(0); // nothing was accepted twice
    expect(await f.preflight.earningsOf(f.provider.address, token)).to.equal(12n * PRICE);
  });

  it("never accepts more of a payer's funds than its escrow holds, across replicas", async function () {
    const payer = await fundedWallet(f, 5n * PRICE);
    const payments = await Promise.all(Array.from({ length: 10 }, (_, i) => signed(payer, BigInt(i))));
    const statuses = await Promise.all(payments.map((p, i) => post(i % 2 ? a : b, p)));
    expect(statuses.filter((s) => s === 200)).to.have.length(5);
    expect(statuses.filter((s) => s === 402)).to.have.length(5);
    const batches = [...(await a.running.close()), ...(await b.running.close())];
    expect(batches.flatMap((x) => x.items).filter((i) => i.reason === 0)).to.have.length(5);
    expect(await f.preflight.balanceOf(payer.address, token)).to.equal(0n);
  });

  it("claims a lane voucher raced at both replicas once, and never covers more than the lane's funds", async function () {
    const payer = await fundedLane(f, 150n);
    const voucher = async (cumulativeAmount: bigint) => {
      const model = modelId(METERED);
      const signature = await signLaneVoucher(payer, f.domain, { payer: payer.address, provider: f.provider.address, token, model, cumulativeAmount });
      const wire = { payer: payer.address, token, model, cumulativeAmount: cumulativeAmount.toString(), signature };
      return encodeHeader({ x402Version: 2, accepted: {} as PaymentRequirements, payload: { laneVoucher: wire } });
    };
    const [open, tooMuch] = await Promise.all([voucher(100n), voucher(200n)]);
    // The same opening voucher four times at each replica at once: it raises the lane's cover once
    // (the other calls ride on it); a voucher above the lane's funds is refused at both.
    const statuses = await Promise.all([...Array.from({ length: 8 }, (_, i) => post(i % 2 ? a : b, open!, METERED_BODY)), post(a, tooMuch!, METERED_BODY), post(b, tooMuch!, METERED_BODY)]);
    expect(statuses.slice(0, 8)).to.deep.equal(Array(8).fill(200));
    expect(statuses.slice(8)).to.deep.equal([402, 402]);

    const batches = [...(await a.running.close()), ...(await b.running.close())];
    const claims = batches.filter((x) => x.kind === "lane").flatMap((x) => x.items);
    expect(claims.map((c) => [c.reason, c.amount])).to.deep.equal([[0, 100n]]); // queued once, claimed once, never skipped as a duplicate
    const [claimed, funds] = await f.preflight.laneOf(payer.address, f.provider.address, token);
    expect([claimed, funds]).to.deep.equal([100n, 50n]);
  });

  /** The fixture's delegate on the fixture payer's lane, with a grant of `budget`. */
  async function delegateOnLane(budget: bigint) {
    await f.preflight.connect(f.payer).fundLane(f.provider.address, token, 100_000n);
    await f.preflight.connect(f.payer).grant({ delegate: f.delegate.address, token, provider: f.provider.address, maxPrice: 10_000n, budget, period: 0n, expiry: BigInt(await time.latest()) + 86_400n, models: [] });
    return async (cumulativeAmount: bigint) => {
      const model = modelId(METERED);
      const signature = await signLaneVoucher(f.delegate, f.domain, { payer: f.payer.address, provider: f.provider.address, token, model, cumulativeAmount });
      const wire = { payer: f.payer.address, token, model, cumulativeAmount: cumulativeAmount.toString(), signature };
      return encodeHeader({ x402Version: 2, accepted: {} as PaymentRequirements, payload: { laneVoucher: wire } });
    };
  }

  /** A metered call's status and, for a refusal, its reason's name. */
  const refusal = async (gw: TestGateway, payment: string) => {
    const r = await fetch(`${gw.running.url}/v1/chat/completions`, { method: "POST", headers: { [PAYMENT_SIGNATURE_HEADER]: payment }, body: METERED_BODY });
    const body = (await r.json()) as { reason?: { name: string } };
    return [r.status, body.reason?.name];
  };

  it("holds a delegate's lane raise at the other replica for the whole excess, since the first replica's claim may be refused and its hold let go", async function () {
    // Enough for one claim of the lane's whole excess beside another, not for both of 6,100 and 6,000.
    const voucher = await delegateOnLane(12_000n);
    expect(await post(a, await voucher(6_000n), METERED_BODY)).to.equal(200); // a holds 6,000 of the budget
    // b cannot count on a's hold: a's claim of 6,000 may be refused and its hold let go, and then b's
    // claim charges the delegate all 6,100. Before, b held only the increase (100), so the budget
    // that a's hold had kept could be spent again while b's claim waited.
    expect(await refusal(b, await voucher(6_100n))).to.deep.equal([403, "BudgetExceeded"]);
    // Once a's claim settled (its hold released), b holds what its own claim will charge: 100.
    await a.running.close();
    const deadline = Date.now() + 20_000;
    let last: unknown[] = [];
    while (Date.now() < deadline && (last = await refusal(b, await voucher(6_100n)))[0] !== 200) await new Promise((r) => setTimeout(r, 100));
    expect(last[0]).to.equal(200);
    const claims = (await b.running.close()).filter((x) => x.kind === "lane").flatMap((x) => x.items);
    expect(claims.map((c) => [c.reason, c.amount])).to.deep.equal([[0, 100n]]);
  });

  it("serves a delegate whose calls alternate between replicas within the lane's unclaimed excess once per replica", async function () {
    // The lane's excess reaches 6,000: each replica holds what its own claim will charge (a 5,000,
    // b 6,000), counted from its own last raise, not the whole excess again at every hop (18,000).
    const voucher = await delegateOnLane(11_000n);
    const answers = [];
    for (const [gw, cumulative] of [[a, 3_000n], [b, 4_000n], [a, 5_000n], [b, 6_000n]] as const) answers.push(await refusal(gw, await voucher(cumulative)));
    expect(answers).to.deep.equal(Array(4).fill([200, undefined]));
    expect(await refusal(b, await voucher(6_001n))).to.deep.equal([403, "BudgetExceeded"]);
    const claims = [...(await a.running.close()), ...(await b.running.close())].filter((x) => x.kind === "lane").flatMap((x) => x.items);
    expect(claims.map((c) => [c.reason, c.amount])).to.deep.equal([[0, 5_000n], [0, 1_000n]]);
  });
});
