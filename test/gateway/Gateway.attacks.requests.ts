/**
 * The per-request path under attack (a hostile review's findings, each fixed): a client that hangs up
 * on a stream it paid for, deadlines too short to settle, numbers wider than the contract's types, a
 * payer withdrawing behind the gateway's back, a delegate past its budget, a client stalling
 * shutdown, replicas releasing holds.
 */
import { expect } from "chai";
import http from "node:http";
import net from "node:net";
import { ethers } from "hardhat";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { createPayingFetch, fromEthers } from "@preflight/sdk/fetch";
import { startMockModelServer } from "@preflight/provider/gateway";
import { deployPreflightFixture, NOTICE_PERIOD } from "../helpers/fixtures";
import { chainNow, fundedWallet, PER_REQUEST, postRaw as post, PRICE, signedRequestHeader as paymentHeader, startTestGateway } from "../helpers/gateway";
import { makeGrant } from "../helpers/grants";
import { startRedis } from "../helpers/redis";

describe("Gateway under attack: per-request payments", function () {
  /** Sends a paid stream request and hangs up as soon as the last content token (finish_reason "stop") arrived. */
  function streamAndHangUp(url: string, body: string, header: string): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      const req = http.request(url, { method: "POST", headers: { "content-type": "application/json", "payment-signature": header } }, (res) => {
        let text = "";
        res.on("data", (c: Buffer) => {
          text += c.toString("utf8");
          if (text.includes('"finish_reason":"stop"')) {
            req.destroy();
            resolve({ status: res.statusCode!, text });
          }
        });
        res.on("end", () => resolve({ status: res.statusCode!, text }));
        res.on("error", () => undefined);
      });
      req.on("error", () => undefined);
      req.end(body);
    });
  }

  describe("a paid stream the client hangs up on", function () {
    it("does not let a client that hangs up at the end of a stream replay one payment for free answers", async function () {
      const f = await loadFixture(deployPreflightFixture);
      const model = await startMockModelServer({ models: [PER_REQUEST], completionTokens: 5, tokenIntervalMs: 100 });
      const gw = await startTestGateway(f, { upstream: model.url, maxAgeMs: 180_000 });
      try {
        const payer = await fundedWallet(f, PRICE); // pays for exactly one call
        const body = JSON.stringify({ model: PER_REQUEST, stream: true, messages: [{ role: "user", content: "hi" }] });
        const header = await paymentHeader(f, payer, body);
        const url = `${gw.running.url}/v1/chat/completions`;
        let fullAnswers = 0;
        for (let i = 0; i < 3; i++) {
          const r = await streamAndHangUp(url, body, header);
          if (r.status === 200 && r.text.includes("tok4")) fullAnswers++;
          await new Promise((r) => setTimeout(r, 300));
        }
        const health = (await (await fetch(`${gw.running.url}/healthz`)).json()) as { queued: number };
        // One payment, one answer: the replays must be refused (NonceUsed) and the served call queued.
        expect(fullAnswers, "full answers served for one signed payment").to.equal(1);
        expect(health.queued, "calls queued for settlement").to.equal(1);
      } finally {
        await gw.close();
        await model.close();
      }
    });
  });

  describe("deadlines too short to settle", function () {
    it("does not serve a request whose deadline passes before it can be settled", async function () {
      const f = await loadFixture(deployPreflightFixture);
      const token = await f.usdc.getAddress();
      const gw = await startTestGateway(f, { maxAgeMs: 2_000 }); // batches due 2 s after the first call
      try {
        const payer = await fundedWallet(f, 1_000_000n);
        const body = JSON.stringify({ model: PER_REQUEST, messages: [{ role: "user", content: "hi" }] });
        const statuses: number[] = [];
        for (let i = 0; i < 5; i++) statuses.push((await post(`${gw.running.url}/v1/chat/completions`, body, { "payment-signature": await paymentHeader(f, payer, body, { nonce: BigInt(i), deadline: BigInt(chainNow() + 1) }) })).status);
        // Refused before the model runs: the batch (due 2 s later, sent within a minute) would reach the chain too late.
        expect(statuses).to.deep.equal([402, 402, 402, 402, 402]);
        const ok = await post(`${gw.running.url}/v1/chat/completions`, body, { "payment-signature": await paymentHeader(f, payer, body, { nonce: 9n, deadline: BigInt(chainNow() + 120) }) });
        expect(ok.status).to.equal(200);
        await gw.running.close();
        expect(await f.preflight.earningsOf(f.provider.address, token)).to.equal(PRICE);
      } finally {
        await gw.close();
      }
    });
  });

  describe("numbers wider than the contract's types", function () {
    it("refuses a price above uint96 or a nonce above uint256 as a payment problem, not as an upstream failure", async function () {
      const f = await loadFixture(deployPreflightFixture);
      const gw = await startTestGateway(f);
      try {
        const payer = await fundedWallet(f, 1_000_000n);
        const body = JSON.stringify({ model: PER_REQUEST, messages: [{ role: "user", content: "hi" }] });
        const url = `${gw.running.url}/v1/chat/completions`;
        const header = await paymentHeader(f, payer, body);
        const bigPrice = await post(url, body, { "payment-signature": header.replace(/.*/, (h) => Buffer.from(Buffer.from(h, "base64").toString().replace(/"price":"\d+"/, `"price":"${"9".repeat(30)}"`)).toString("base64")) });
        const bigNonce = await post(url, body, { "payment-signature": Buffer.from(Buffer.from(header, "base64").toString().replace(/"nonce":"\d+"/, `"nonce":"${"9".repeat(78)}"`)).toString("base64") });
        expect(bigPrice.status, "price above uint96").to.be.oneOf([400, 402, 403]);
        expect(bigNonce.status, "nonce above uint256").to.be.oneOf([400, 402, 403]);
      } finally {
        await gw.close();
      }
    });
  });

  describe("a payer with a pending withdrawal", function () {
    it("accepts in total no more than the balance less a withdrawal that can execute before settlement", async function () {
      const f = await loadFixture(deployPreflightFixture);
      const token = await f.usdc.getAddress();
      const payer = (await fundedWallet(f, 10n * PRICE)).connect(ethers.provider);
      await f.owner.sendTransaction({ to: payer.address, value: ethers.parseEther("1") });
      // Withdraw 9 of the 10 calls' worth; the notice ends in 200 s (inside the default 1 h settlement window).
      await f.preflight.connect(payer).requestWithdrawal(token, 9n * PRICE);
      await time.increase(NOTICE_PERIOD - 200n);
      const gw = await startTestGateway(f, { maxAgeMs: 180_000 });
      try {
        const body = JSON.stringify({ model: PER_REQUEST, messages: [{ role: "user", content: "hi" }] });
        const url = `${gw.running.url}/v1/chat/completions`;
        const statuses: number[] = [];
        for (let i = 0; i < 10; i++) statuses.push((await post(url, body, { "payment-signature": await paymentHeader(f, payer, body, { nonce: BigInt(i), deadline: BigInt((await ethers.provider.getBlock("latest"))!.timestamp + 590) }) })).status);
        const accepted = statuses.filter((s) => s === 200).length;
        // The notice matures and the payer withdraws before the (hour-long) batch is due; shutdown settles what is left.
        await time.increase(201);
        await f.preflight.connect(payer).withdraw(token, payer.address);
        await gw.running.close();
        expect(BigInt(accepted) * PRICE, "accepted in total").to.be.at.most(10n * PRICE - 9n * PRICE);
      } finally {
        await gw.close();
      }
    });
  });

  describe("shutdown while a client holds a request body open", function () {
    it("settles the queue on shutdown even while a client holds a request body open", async function () {
      this.timeout(60_000);
      const f = await loadFixture(deployPreflightFixture);
      const token = await f.usdc.getAddress();
      const gw = await startTestGateway(f, { maxAgeMs: 180_000 });
      const payer = await fundedWallet(f, 1_000_000n);
      const pay = createPayingFetch({ now: chainNow, signer: fromEthers(payer), maxPricePerRequest: PRICE });
      const body = JSON.stringify({ model: PER_REQUEST, messages: [{ role: "user", content: "hi" }] });
      for (let i = 0; i < 3; i++) expect((await pay(`${gw.running.url}/v1/chat/completions`, { method: "POST", body })).status).to.equal(200);
      // An unpaid client: headers and 10 of 1000 body bytes, then silence.
      const { port } = new URL(gw.running.url);
      const socket = net.connect(Number(port), "127.0.0.1");
      await new Promise<void>((r) => socket.once("connect", () => r()));
      socket.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"model":"`);
      await new Promise((r) => setTimeout(r, 200));
      // Shutdown does not wait for a call that was never admitted: it settles, then cuts the stalled client off.
      const closed = await Promise.race([gw.running.close().then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 20_000))]);
      socket.destroy();
      await gw.upstream.close();
      expect(closed, "shutdown finished while the client stalled").to.equal(true);
      expect(await f.preflight.earningsOf(f.provider.address, token)).to.equal(3n * PRICE);
    });
  });

  describe("a replica that shuts down beside another", function () {
    it("never accepts a payer's funds twice across replicas when one replica shuts down", async function () {
      const f = await loadFixture(deployPreflightFixture);
      const redis = await startRedis();
      // Both follow the chain well within the (default) 5 s release grace.
      const a = await startTestGateway(f, { redis: `${redis.url}/0`, releaseGraceMs: 5_000, pollMs: 3_000, maxAgeMs: 180_000 });
      const b = await startTestGateway(f, { redis: `${redis.url}/0`, releaseGraceMs: 5_000, pollMs: 3_000, maxAgeMs: 180_000 });
      try {
        const payer = await fundedWallet(f, 2n * PRICE);
        await new Promise((r) => setTimeout(r, 3_500)); // both verifiers have seen the deposit
        const body = JSON.stringify({ model: PER_REQUEST, messages: [{ role: "user", content: "hi" }] });
        const call = async (gw: typeof a, nonce: bigint) => (await post(`${gw.running.url}/v1/chat/completions`, body, { "payment-signature": await paymentHeader(f, payer, body, { nonce }) })).status;
        expect(await call(a, 0n)).to.equal(200);
        expect(await call(a, 1n)).to.equal(200);
        expect(await call(b, 2n), "B sees A's holds").to.equal(402);
        await a.close(); // settles nonces 0 and 1: the balance is now 0 on chain
        const afterClose = [await call(b, 3n), await call(b, 4n)];
        const batches = await b.running.close();
        expect(batches.flatMap((x) => x.items).filter((i) => i.reason !== 0), "items B served that the chain skipped").to.deep.equal([]);
        expect(afterClose.filter((s) => s === 200).length, "calls B accepted on funds A already settled").to.equal(0);
      } finally {
        await b.close().catch(() => undefined);
        await redis.stop();
      }
    });
  });

  describe("a delegate past its grant's budget", function () {
    it("serves a delegate no more than its grant's budget across calls in flight, refused as BudgetExceeded", async function () {
      const f = await loadFixture(deployPreflightFixture);
      const token = await f.usdc.getAddress();
      await f.preflight.connect(f.payer).grant(await makeGrant({ delegate: f.delegate.address, token, maxPrice: PRICE, budget: 2n * PRICE }));
      const gw = await startTestGateway(f, { maxAgeMs: 180_000 });
      try {
        const body = JSON.stringify({ model: PER_REQUEST, messages: [{ role: "user", content: "hi" }] });
        const url = `${gw.running.url}/v1/chat/completions`;
        const statuses: number[] = [];
        for (let i = 0; i < 4; i++) statuses.push((await post(url, body, { "payment-signature": await paymentHeader(f, f.delegate, body, { nonce: BigInt(i), payer: f.payer.address }) })).status);
        expect(statuses).to.deep.equal([200, 200, 403, 403]); // BudgetExceeded: the key may not pay more
        const refused = await post(url, body, { "payment-signature": await paymentHeader(f, f.delegate, body, { nonce: 9n, payer: f.payer.address }) });
        expect(JSON.parse(refused.body).reason).to.deep.equal({ code: 10, name: "BudgetExceeded" });
        const batches = await gw.running.close();
        expect(batches.flatMap((b) => b.items).map((i) => i.reason)).to.deep.equal([0, 0]);
        expect(await f.preflight.earningsOf(f.provider.address, token)).to.equal(2n * PRICE);
      } finally {
        await gw.close();
      }
    });
    it("lets a delegate's spend go once the chain shows it settled, so the rest of its budget pays", async function () {
      const f = await loadFixture(deployPreflightFixture);
      const token = await f.usdc.getAddress();
      await f.preflight.connect(f.payer).grant(await makeGrant({ delegate: f.delegate.address, token, maxPrice: PRICE, budget: 3n * PRICE }));
      const gw = await startTestGateway(f, { maxAgeMs: 180_000, maxBatchSize: 2 }); // two calls make a batch
      try {
        const body = JSON.stringify({ model: PER_REQUEST, messages: [{ role: "user", content: "hi" }] });
        const url = `${gw.running.url}/v1/chat/completions`;
        const pay = async (nonce: bigint) => (await post(url, body, { "payment-signature": await paymentHeader(f, f.delegate, body, { nonce, payer: f.payer.address }) })).status;
        expect([await pay(0n), await pay(1n)]).to.deep.equal([200, 200]);
        // The batch settles. Once the gateway has followed it, its grant shows 1 call left: were the two
        // holds kept, 2 held + 1 would pass it and the last call of the budget would be refused.
        for (let tries = 0; tries < 100 && (await f.preflight.earningsOf(f.provider.address, token)) < 2n * PRICE; tries++) await new Promise((r) => setTimeout(r, 100));
        await new Promise((r) => setTimeout(r, 1_000)); // the gateway follows every 50 ms, releases with no grace
        expect(await pay(2n), "the rest of the budget pays after the settlement").to.equal(200);
        expect(await pay(3n), "and no more").to.equal(403);
      } finally {
        await gw.close();
      }
    });
  });
});
