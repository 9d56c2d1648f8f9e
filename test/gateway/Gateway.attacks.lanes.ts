/**
 * The metered (lane voucher) path under attack (a hostile review's findings, each fixed): a stream
 * dropped before its usage event, a "stream" the model server reads differently, numbers wider than
 * the contract's types, a body that is not an object, a delegate outside its grant on a voucher that
 * adds nothing, a compressed answer that could not be metered, and an answer with no token limit
 * (or two different ones).
 */
import { expect } from "chai";
import http, { type Server } from "node:http";
import { gzipSync } from "node:zlib";
import type { AddressInfo } from "node:net";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import type { Wallet } from "ethers";
import { modelId, signLaneVoucher, type PreflightSigner } from "@preflight/sdk";
import { priceTable, startMockModelServer } from "@preflight/provider/gateway";
import { decodeHeader, encodeHeader, PAYMENT_SIGNATURE_HEADER, type PaymentRequirements } from "@preflight/sdk/fetch";
import { ethers } from "hardhat";
import { deployPreflightFixture, type PreflightFixture } from "../helpers/fixtures";
import { startRedis, type RedisServer } from "../helpers/redis";
import { fundedLane, METERED, PER_REQUEST, postRaw, PRICE, signedRequestHeader, startTestGateway, type TestGateway } from "../helpers/gateway";

const HOLD = 100n; // testModels' holdPerCall for METERED
const CHEAP = "cheap-model";
const DEAR = "dear-model";
const delegateModels = () =>
  priceTable({
    [CHEAP]: { perInputToken: 1n, perOutputToken: 1n, holdPerCall: 100n },
    [DEAR]: { perInputToken: 10n, perOutputToken: 10n, holdPerCall: 100n },
    [PER_REQUEST]: { perRequest: PRICE },
  });

/** An OpenAI-compatible answer of 1,000 completion tokens, gzip-compressed when the request accepts gzip (as nginx `gzip on`, or a compression middleware, does). */
async function compressingModelServer(): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      const body = JSON.stringify({ id: "x", object: "chat.completion", created: 0, model: METERED, choices: [{ index: 0, message: { role: "assistant", content: "long answer" }, finish_reason: "stop" }], usage: { prompt_tokens: 1, completion_tokens: 1000, total_tokens: 1001 } });
      if (String(req.headers["accept-encoding"] ?? "").includes("gzip")) {
        res.writeHead(200, { "content-type": "application/json", "content-encoding": "gzip" });
        res.end(gzipSync(body));
      } else {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(body);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise<void>((r) => { server.close(() => r()); server.closeAllConnections(); }) };
}

describe("metered calls that try not to pay", function () {
  this.timeout(120_000);
  let f: PreflightFixture;
  let gw: TestGateway;
  let token: string;

  beforeEach(async function () {
    f = await loadFixture(deployPreflightFixture);
    token = await f.usdc.getAddress();
    gw = await startTestGateway(f);
  });
  afterEach(async function () {
    await gw?.close();
  });

  async function voucher(payer: Wallet, cumulativeAmount: bigint | string, model = METERED): Promise<string> {
    const id = modelId(model);
    const amount = BigInt(cumulativeAmount);
    const signature = amount < 1n << 128n ? await signLaneVoucher(payer, f.domain, { payer: payer.address, provider: f.provider.address, token, model: id, cumulativeAmount: amount }) : "0x" + "11".repeat(65);
    const wire = { payer: payer.address, token, model: id, cumulativeAmount: cumulativeAmount.toString(), signature };
    return encodeHeader({ x402Version: 2, accepted: {} as PaymentRequirements, payload: { laneVoucher: wire } });
  }

  async function post(payment: string | undefined, body: string): Promise<{ status: number; text: string }> {
    const headers: Record<string, string> = {};
    if (payment) headers[PAYMENT_SIGNATURE_HEADER] = payment;
    const r = await fetch(`${gw.running.url}/v1/chat/completions`, { method: "POST", headers, body });
    return { status: r.status, text: await r.text() };
  }

  /** The lane's totals as the gateway's store has them. */
  async function totals(payer: Wallet) {
    // The store is not exposed: a non-stream call with a voucher that adds nothing reports the totals in PAYMENT-RESPONSE
    // (the probe's own cost included).
    const r = await fetch(`${gw.running.url}/v1/chat/completions`, {
      method: "POST",
      headers: { [PAYMENT_SIGNATURE_HEADER]: await voucher(payer, HOLD) },
      body: JSON.stringify({ model: METERED, messages: [{ role: "user", content: "x" }] }),
    });
    const header = r.headers.get("payment-response");
    const body = await r.text();
    if (!header) return { status: r.status, body };
    const { decodeHeader } = await import("@preflight/sdk/fetch");
    return decodeHeader<{ lane: { owed: string; covered: string } }>(header).lane;
  }

  /** Streams a metered call and drops the connection as soon as the last content event (finish_reason) arrives. */
  function streamAndAbort(payment: string, marker: string): Promise<string> {
    const body = JSON.stringify({ model: METERED, stream: true, max_tokens: 50, messages: [{ role: "user", content: "hi" }] });
    const url = new URL(`${gw.running.url}/v1/chat/completions`);
    return new Promise((resolve, reject) => {
      const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: "POST", headers: { [PAYMENT_SIGNATURE_HEADER]: payment, "content-type": "application/json" } }, (res) => {
        let text = "";
        res.on("data", (c: Buffer) => {
          text += c.toString("utf8");
          if (text.includes(marker)) {
            req.destroy();
            resolve(text);
          }
        });
        res.on("end", () => resolve(text));
        res.on("error", () => resolve(text));
      });
      req.on("error", () => undefined);
      req.end(body);
    });
  }

  it("a stream the client drops just before its end is still charged for what it received", async function () {
    await gw.close();
    // A model server that answers 50 tokens, 5 ms apart (as a real one streams).
    const slow = await startMockModelServer({ models: [METERED], completionTokens: 50, tokenIntervalMs: 5 });
    gw = await startTestGateway(f, { upstream: slow.url });
    try {
      const payer = await fundedLane(f, 1_000_000n);
      const open = await voucher(payer, HOLD); // the opening voucher: covered 100, all the client ever signs
      // 20 streams; each drops the connection once tok48 (49 of 50 tokens) has arrived.
      let received = 0;
      for (let i = 0; i < 20; i++) {
        const text = await streamAndAbort(open, "tok48");
        if (text.includes("tok48")) received++;
      }
      await new Promise((r) => setTimeout(r, 300));
      const t = await totals(payer);
      expect(received).to.equal(20);
      // 20 calls * 49 tokens * 5 = 4,900 at the least, beyond the 100 the client covered.
      expect(BigInt((t as { owed: string }).owed)).to.be.greaterThanOrEqual(20n * 49n * 5n);
    } finally {
      await slow.close();
    }
  });

  it("refuses a \"stream\" that is not a boolean (the model server could stream it unmetered), and charges nothing", async function () {
    const payer = await fundedLane(f, 1_000_000n);
    const open = await voucher(payer, HOLD);
    for (const stream of [1, "true"]) {
      const r = await post(open, JSON.stringify({ model: METERED, stream, messages: [{ role: "user", content: "hi" }] }));
      expect(r.status).to.equal(400);
      expect(JSON.parse(r.text).error.message).to.equal("stream must be true or false");
    }
    // Only the probe's own call (1 * 2 + 8 * 5) was charged.
    expect(((await totals(payer)) as { owed: string }).owed).to.equal("42");
  });

  it("refuses a call whose prompt alone could cost more than the lane's cover and credit, before it runs", async function () {
    const payer = await fundedLane(f, 1_000_000n);
    const open = await voucher(payer, HOLD); // covered 100: all the client ever signs
    const prompt = Array.from({ length: 100_000 }, () => "w").join(" "); // 200 KB, under the 1 MiB body limit
    const r = await post(open, JSON.stringify({ model: METERED, messages: [{ role: "user", content: prompt }] }));
    expect(r.status).to.equal(402);
    expect((JSON.parse(r.text) as { reason: { name: string } }).reason.name).to.equal("CreditLimit");
    // A max_tokens the lane cannot cover is refused the same way; an ordinary call still runs.
    const long = await post(open, JSON.stringify({ model: METERED, max_tokens: 100_000, messages: [{ role: "user", content: "hi" }] }));
    expect(long.status).to.equal(402);
    expect((await post(open, JSON.stringify({ model: METERED, messages: [{ role: "user", content: "hi" }] }))).status).to.equal(200);
  });

  it("an answer without max_tokens is limited to what its hold covers: the gateway sets max_tokens on the forwarded request", async function () {
    await gw.close();
    // A model server that would answer 50 tokens (250 at 5 a token) where the model's hold covers 20 (100).
    const long = await startMockModelServer({ models: [METERED], completionTokens: 50 });
    gw = await startTestGateway(f, { upstream: long.url });
    try {
      const payer = await fundedLane(f, 1_000_000n);
      const open = await voucher(payer, HOLD);
      for (const stream of [false, true]) {
        const r = await post(open, JSON.stringify({ model: METERED, stream, messages: [{ role: "user", content: "hi" }] }));
        expect(r.status).to.equal(200);
        expect(long.lastRequest).to.deep.include({ max_tokens: 20 });
        expect(r.text).to.include("tok19").and.not.include("tok20");
      }
      // Two calls of 1 * 2 + 20 * 5, and the probe's own (20 tokens too): never more than each call's hold.
      expect(((await totals(payer)) as { owed: string }).owed).to.equal((3n * 102n).toString());
      // A limit the client gave is forwarded as it was sent (and held for).
      const own = await post(open, JSON.stringify({ model: METERED, max_tokens: 3, messages: [{ role: "user", content: "hi" }] }));
      expect(own.status).to.equal(200);
      expect(long.lastRequest).to.deep.equal({ model: METERED, max_tokens: 3, messages: [{ role: "user", content: "hi" }] });
    } finally {
      await long.close();
    }
  });

  it("is held for the larger of max_tokens and max_completion_tokens (a model server may honour either), and refuses a limit it cannot read", async function () {
    const payer = await fundedLane(f, 1_000_000n);
    const open = await voucher(payer, HOLD);
    // 100,000 tokens at 5 pass the credit limit, whichever field the model server reads.
    for (const limits of [{ max_completion_tokens: 1, max_tokens: 100_000 }, { max_tokens: 1, max_completion_tokens: 100_000 }]) {
      const r = await post(open, JSON.stringify({ model: METERED, ...limits, messages: [{ role: "user", content: "hi" }] }));
      expect(r.status).to.equal(402);
      expect((JSON.parse(r.text) as { reason: { name: string } }).reason.name).to.equal("CreditLimit");
    }
    for (const [field, value] of [["max_tokens", "10"], ["max_completion_tokens", -1], ["max_tokens", 2.5], ["n", 0], ["n", "2"]] as const) {
      const r = await post(open, JSON.stringify({ model: METERED, [field]: value, messages: [{ role: "user", content: "hi" }] }));
      expect(r.status, `${field}: ${JSON.stringify(value)}`).to.equal(400);
      expect(JSON.parse(r.text).error.message).to.include(field);
    }
    // Nothing was charged: only the probe's own call (1 * 2 + 8 * 5).
    expect(((await totals(payer)) as { owed: string }).owed).to.equal("42");
  });

  it("a voucher whose cumulativeAmount does not fit uint128 is refused 402 MalformedPayment, not 502", async function () {
    const payer = await fundedLane(f, 1_000_000n);
    const r = await post(await voucher(payer, (1n << 200n).toString()), JSON.stringify({ model: METERED, messages: [{ role: "user", content: "hi" }] }));
    expect(r.status).to.be.oneOf([402, 403]);
  });

  it("a JSON body of `null` is a 400, not a 502 'model server could not be reached'", async function () {
    const r = await post(undefined, "null");
    expect(r.status).to.equal(400);
  });
});

describe("a delegate paying on its payer's lane", function () {
  this.timeout(120_000);
  let f: PreflightFixture;
  let gw: TestGateway;
  let token: string;

  beforeEach(async function () {
    f = await loadFixture(deployPreflightFixture);
    token = await f.usdc.getAddress();
    gw = await startTestGateway(f, { models: delegateModels() });
  });
  afterEach(async function () {
    await gw?.close();
  });

  async function laneVoucher(signer: PreflightSigner, cumulativeAmount: bigint, model: string): Promise<string> {
    const id = modelId(model);
    const signature = await signLaneVoucher(signer, f.domain, { payer: f.payer.address, provider: f.provider.address, token, model: id, cumulativeAmount });
    const wire = { payer: f.payer.address, token, model: id, cumulativeAmount: cumulativeAmount.toString(), signature };
    return encodeHeader({ x402Version: 2, accepted: {} as PaymentRequirements, payload: { laneVoucher: wire } });
  }

  const post = async (payment: string, body: string) => {
    const r = await fetch(`${gw.running.url}/v1/chat/completions`, { method: "POST", headers: { [PAYMENT_SIGNATURE_HEADER]: payment }, body });
    const text = await r.text();
    const header = r.headers.get("payment-response");
    return { status: r.status, text, receipt: header ? decodeHeader<{ amount: string; lane?: { owed: string; covered: string } }>(header) : undefined };
  };

  it("a delegate whose grant allows only one model cannot be served another model on the lane", async function () {
    await f.preflight.connect(f.payer).fundLane(f.provider.address, token, 100_000n);
    await f.preflight.connect(f.payer).grant({
      delegate: f.delegate.address,
      token,
      provider: f.provider.address,
      maxPrice: 10_000n,
      budget: 100_000n,
      period: 0n,
      expiry: BigInt(await time.latest()) + 86_400n,
      models: [modelId(CHEAP)],
    });
    const body = (model: string) => JSON.stringify({ model, messages: [{ role: "user", content: "hi" }] });
    // Sanity: a raising voucher for the model outside the grant is refused (403 ModelNotAllowed).
    const direct = await post(await laneVoucher(f.delegate, 1_000n, DEAR), body(DEAR));
    expect(direct.status).to.equal(403);
    // The delegate opens the lane with a voucher for the model it may use...
    const open = await post(await laneVoucher(f.delegate, 1_000n, CHEAP), body(CHEAP));
    expect(open.status).to.equal(200);
    // ...then sends a voucher that adds nothing, for the model its grant does not allow.
    const dear = await post(await laneVoucher(f.delegate, 1_000n, DEAR), body(DEAR));
    expect(dear.status, "served a model outside the delegate's grant, charged to the payer's lane").to.equal(403);
  });

  it("holds a delegate's lane raises and its requests against one budget, so together they never pass it", async function () {
    await f.preflight.connect(f.payer).fundLane(f.provider.address, token, 100_000n);
    const budget = 1_000n + PRICE; // the lane's opening raise and one request
    await f.preflight.connect(f.payer).grant({ delegate: f.delegate.address, token, provider: f.provider.address, maxPrice: 10_000n, budget, period: 0n, expiry: BigInt(await time.latest()) + 86_400n, models: [] });
    const open = await post(await laneVoucher(f.delegate, 1_000n, CHEAP), JSON.stringify({ model: CHEAP, messages: [{ role: "user", content: "hi" }] }));
    expect(open.status, open.text).to.equal(200);
    const body = JSON.stringify({ model: PER_REQUEST, messages: [{ role: "user", content: "hi" }] });
    const request = async (nonce: bigint) => (await postRaw(`${gw.running.url}/v1/chat/completions`, body, { "payment-signature": await signedRequestHeader(f, f.delegate, body, { nonce, payer: f.payer.address }) })).status;
    // The raise is held in the grant's pool until its claim settles: one request fits beside it, a
    // second would pass the budget. Before, it was served, and settlement skipped the lane's claim
    // as BudgetExceeded: the provider was never paid for the metered call.
    expect([await request(0n), await request(1n)]).to.deep.equal([200, 403]);
    // Nor may the delegate raise the lane past what is left.
    const raise = await post(await laneVoucher(f.delegate, 1_001n, CHEAP), JSON.stringify({ model: CHEAP, messages: [{ role: "user", content: "hi" }] }));
    expect([raise.status, JSON.parse(raise.text).reason?.name]).to.deep.equal([403, "BudgetExceeded"]);
    const batches = await gw.running.close();
    const items = batches.flatMap((b) => (b.kind === "collect" ? [] : b.items));
    expect(items.map((i) => [i.kind, i.reason, i.amount])).to.have.deep.members([["request", 0, PRICE], ["lane", 0, 1_000n]]);
  });

  describe("on a gateway whose verifier never saw the grant (a later --from-block, another replica)", function () {
    let redis: RedisServer;
    const more: TestGateway[] = [];
    before(async function () {
      redis = await startRedis();
    });
    after(async function () {
      await redis?.stop();
    });
    afterEach(async function () {
      await Promise.all(more.splice(0).map((g) => g.close()));
    });

    /** A lane and a grant for both models, then a block after them: the block a gateway may follow from. */
    async function grantBothModels(): Promise<number> {
      await f.preflight.connect(f.payer).fundLane(f.provider.address, token, 100_000n);
      await f.preflight.connect(f.payer).grant({ delegate: f.delegate.address, token, provider: f.provider.address, maxPrice: 10_000n, budget: 100_000n, period: 0n, expiry: BigInt(await time.latest()) + 86_400n, models: [modelId(CHEAP), modelId(DEAR)] });
      await ethers.provider.send("evm_mine", []);
      return ethers.provider.getBlockNumber();
    }
    const body = (model: string) => JSON.stringify({ model, messages: [{ role: "user", content: "hi" }] });

    it("reads the grant from the chain for a voucher that adds nothing, instead of refusing a model it allows", async function () {
      const fromBlock = await grantBothModels();
      await gw.close();
      gw = await startTestGateway(f, { models: delegateModels(), fromBlock });
      const cheap = await post(await laneVoucher(f.delegate, 1_000n, CHEAP), body(CHEAP));
      expect(cheap.status, cheap.text).to.equal(200);
      const dear = await post(await laneVoucher(f.delegate, 1_000n, DEAR), body(DEAR));
      expect(dear.status, dear.text).to.equal(200);
    });

    it("serves the lane's own delegate on a replica that did not see the raise", async function () {
      const fromBlock = await grantBothModels();
      const a = await startTestGateway(f, { models: delegateModels(), fromBlock, redis: `${redis.url}/0` });
      const b = await startTestGateway(f, { models: delegateModels(), fromBlock, redis: `${redis.url}/0` });
      more.push(a, b);
      const on = async (g: TestGateway, model: string) => (await fetch(`${g.running.url}/v1/chat/completions`, { method: "POST", headers: { [PAYMENT_SIGNATURE_HEADER]: await laneVoucher(f.delegate, 1_000n, model) }, body: body(model) })).status;
      expect(await on(a, CHEAP)).to.equal(200);
      expect(await on(b, CHEAP)).to.equal(200);
    });
  });
});

describe("a model server that compresses its answers", function () {
  this.timeout(120_000);
  let f: PreflightFixture;
  let gw: TestGateway;
  let upstream: { url: string; close(): Promise<void> };

  beforeEach(async function () {
    f = await loadFixture(deployPreflightFixture);
    upstream = await compressingModelServer();
    gw = await startTestGateway(f, { upstream: upstream.url });
  });
  afterEach(async function () {
    await gw?.close();
    await upstream?.close();
  });

  it("a metered call whose answer comes back gzip-compressed is charged its usage", async function () {
    const token = await f.usdc.getAddress();
    const payer: Wallet = await fundedLane(f, 1_000_000n);
    const id = modelId(METERED);
    const signature = await signLaneVoucher(payer, f.domain, { payer: payer.address, provider: f.provider.address, token, model: id, cumulativeAmount: 100n });
    const payment = encodeHeader({ x402Version: 2, accepted: {} as PaymentRequirements, payload: { laneVoucher: { payer: payer.address, token, model: id, cumulativeAmount: "100", signature } } });
    // A raw request that says it accepts gzip (browsers and most HTTP clients do).
    const url = new URL(`${gw.running.url}/v1/chat/completions`);
    const result = await new Promise<{ status: number; receipt?: string }>((resolve, reject) => {
      const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: "POST", headers: { [PAYMENT_SIGNATURE_HEADER]: payment, "accept-encoding": "gzip", "content-type": "application/json" } }, (res) => {
        res.resume();
        res.on("end", () => resolve({ status: res.statusCode ?? 0, receipt: res.headers["payment-response"] as string | undefined }));
        res.on("error", () => resolve({ status: res.statusCode ?? 0, receipt: res.headers["payment-response"] as string | undefined }));
      });
      req.on("error", reject);
      req.end(JSON.stringify({ model: METERED, messages: [{ role: "user", content: "hi" }] }));
    });
    const receipt = result.receipt ? decodeHeader<{ amount: string; lane: { owed: string } }>(result.receipt) : undefined;
    expect(result.status).to.equal(200);
    // 1 prompt token * 2 + 1,000 completion tokens * 5.
    expect(receipt?.amount).to.equal("5002");
  });
});
