/**
 * The model server behind the gateway: its API key (the provider's, never the client's), and what a
 * paying client is charged when the model server refuses or fails a call (nothing).
 */
import { expect } from "chai";
import http from "node:http";
import type { AddressInfo } from "node:net";
import OpenAI from "openai";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { createPayingFetch, fromEthers, PAYMENT_RESPONSE_HEADER } from "@preflight/sdk/fetch";
import { deployPreflightFixture, type PreflightFixture } from "../helpers/fixtures";
import { chainNow, fundedWallet, PER_REQUEST, PRICE, startTestGateway } from "../helpers/gateway";

const MESSAGES = [{ role: "user" as const, content: "say eight tokens" }];
const UPSTREAM_KEY = "sk-model-server-secret";

describe("Gateway in front of the model server", function () {
  let f: PreflightFixture;

  beforeEach(async function () {
    f = await loadFixture(deployPreflightFixture);
  });

  it("sends the provider's API key to a model server that asks for one, in place of the client's credentials", async function () {
    const gw = await startTestGateway(f, { mock: { apiKey: UPSTREAM_KEY }, upstreamOptions: { apiKey: UPSTREAM_KEY } });
    try {
      const payer = await fundedWallet(f, 1_000_000n);
      const pay = createPayingFetch({ now: chainNow, signer: fromEthers(payer), maxPricePerRequest: PRICE });
      // The openai client sends its own `Authorization: Bearer client-key`: the model server would refuse it.
      const openai = new OpenAI({ baseURL: `${gw.running.url}/v1`, apiKey: "client-key", fetch: pay, maxRetries: 0 });
      const completion = await openai.chat.completions.create({ model: PER_REQUEST, messages: MESSAGES });
      expect(completion.choices[0]!.message.content).to.equal("tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7");
      expect((await openai.models.list()).data.map((m) => m.id)).to.include(PER_REQUEST);
      const batches = await gw.running.gateway.close();
      expect(batches.flatMap((b) => b.items).filter((i) => i.reason === 0)).to.have.length(1);
    } finally {
      await gw.close();
    }
  });

  it("passes the client's credentials through as they are when it has no key of its own", async function () {
    // A model server that reports the Authorization header it received.
    const seen: (string | undefined)[] = [];
    const echo = http.createServer((req, res) => {
      seen.push(req.headers.authorization);
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ object: "list", data: [] }));
    });
    await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", resolve));
    const gw = await startTestGateway(f, { upstream: `http://127.0.0.1:${(echo.address() as AddressInfo).port}` });
    const keyed = await startTestGateway(f, { upstream: `http://127.0.0.1:${(echo.address() as AddressInfo).port}`, upstreamOptions: { apiKey: UPSTREAM_KEY } });
    try {
      await fetch(`${gw.running.url}/v1/models`, { headers: { authorization: "Bearer client-key" } });
      await fetch(`${keyed.running.url}/v1/models`, { headers: { authorization: "Bearer client-key", "x-api-key": "client-key" } });
      expect(seen).to.deep.equal(["Bearer client-key", `Bearer ${UPSTREAM_KEY}`]);
    } finally {
      await gw.close();
      await keyed.close();
      await new Promise((resolve) => echo.close(resolve));
    }
  });

  it("charges nothing for a call the model server refuses (4xx) or fails (5xx), only for the one it answers", async function () {
    // A model server that refuses with 429, then fails with 500, then answers.
    const statuses = [429, 500];
    const flaky = http.createServer((req, res) => {
      req.resume();
      req.on("end", () => {
        const status = statuses.shift();
        if (status !== undefined) return void res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify({ error: { message: `status ${status}` } }));
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ id: "x", object: "chat.completion", created: 0, model: PER_REQUEST, choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "stop" }] }));
      });
    });
    await new Promise<void>((resolve) => flaky.listen(0, "127.0.0.1", resolve));
    const gw = await startTestGateway(f, { upstream: `http://127.0.0.1:${(flaky.address() as AddressInfo).port}` });
    try {
      const payer = await fundedWallet(f, 1_000_000n);
      const pay = createPayingFetch({ now: chainNow, signer: fromEthers(payer), maxPricePerRequest: PRICE });
      const body = JSON.stringify({ model: PER_REQUEST, messages: MESSAGES });
      const url = `${gw.running.url}/v1/chat/completions`;
      // The first call learns the price (402), then pays: the model server refuses it.
      const refused = await pay(url, { method: "POST", headers: { "content-type": "application/json" }, body });
      expect(refused.status).to.equal(429);
      expect(refused.headers.get(PAYMENT_RESPONSE_HEADER)).to.equal(null);
      const failed = await pay(url, { method: "POST", headers: { "content-type": "application/json" }, body });
      expect(failed.status).to.equal(500);
      expect(failed.headers.get(PAYMENT_RESPONSE_HEADER)).to.equal(null);
      const answered = await pay(url, { method: "POST", headers: { "content-type": "application/json" }, body });
      expect(answered.status).to.equal(200);
      expect(answered.headers.get(PAYMENT_RESPONSE_HEADER)).to.be.a("string");

      const token = await f.usdc.getAddress();
      const batches = await gw.running.gateway.close();
      const settled = batches.flatMap((b) => b.items).filter((i) => i.reason === 0);
      expect(settled.map((i) => i.amount)).to.deep.equal([PRICE]);
      expect(await f.preflight.balanceOf(payer.address, token)).to.equal(1_000_000n - PRICE);
    } finally {
      await gw.close();
      await new Promise((resolve) => flaky.close(resolve));
    }
  });
});
