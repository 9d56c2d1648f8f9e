/**
 * Two gateway replicas of one provider behind a load balancer share one real Redis: duplicate
 * submissions of the same payment raced at both are accepted once, a payer's funds are never
 * accepted twice across them, and what they settle adds up on chain.
 */
import { expect } from "chai";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { keccak256, toUtf8Bytes, Wallet } from "ethers";
import { deployPreflightFixture, type PreflightFixture } from "../helpers/fixtures";
import { fundedWallet, METERED, PER_REQUEST, PRICE, startTestGateway, type TestGateway, chainNow } from "../helpers/gateway";
import { startRedis, type RedisServer } from "../helpers/redis";
import { createSignedRequest, createSignedVoucher, modelId } from "@preflight/sdk";
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

  it("opens a lane's funds once: two channels raced at both replicas cannot hold the same escrow", async function () {
    const payer = await fundedWallet(f, 150n);
    const voucher = async (channel: string) => {
      const v = await createSignedVoucher(payer, f.domain, { payer: payer.address, provider: f.provider.address, token, model: modelId(METERED), channel, cumulativeAmount: 100n });
      const wire = Object.fromEntries(Object.entries(v).map(([k, x]) => [k, typeof x === "bigint" ? x.toString() : x]));
      return encodeHeader({ x402Version: 2, accepted: {} as PaymentRequirements, payload: { voucher: wire } });
    };
    const [one, two] = await Promise.all([voucher("0x" + "01".repeat(32)), voucher("0x" + "02".repeat(32))]);
    const statuses = await Promise.all([post(a, one!, METERED_BODY), post(b, two!, METERED_BODY), post(b, one!, METERED_BODY), post(a, two!, METERED_BODY)]);
    // One channel opened (its voucher is accepted at both replicas); the other found the funds held.
    expect(statuses.filter((s) => s === 200)).to.have.length(2);
    expect(statuses.filter((s) => s === 402)).to.have.length(2);
  });
});
