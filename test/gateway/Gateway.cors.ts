/**
 * Browser dApps on other origins (CORS): the gateway answers the browser's preflight for the
 * origins it is given and lets their pages read the payment headers; a page in headless Chromium
 * pays through the `openai` client with the SDK's published browser build, per request and
 * metered (streamed), and the chain settles what it signed. Without a policy, browsers keep other
 * origins out and nothing is charged.
 */
import { expect } from "chai";
import http from "node:http";
import path from "node:path";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { chromium, type Browser } from "playwright-core";
import { deployPreflightFixture, type PreflightFixture } from "../helpers/fixtures";
import { bundlePage, launchChromium, pageResult, servePages, type RunningBrowser } from "../helpers/browser";
import { buildPackages, tempDir } from "../helpers/packages";
import { chainNow, fundedLane, fundedWallet, httpCall, METERED, PER_INPUT_TOKEN, PER_OUTPUT_TOKEN, PER_REQUEST, PRICE, startTestGateway, type TestGateway } from "../helpers/gateway";
import type { PayingPageInput, PayingPageOutput } from "./browser/payingPage";

const APP = "https://app.example.com";
// The page's prompt is 3 words (3 prompt tokens); the mock answers 8 completion tokens.
const CALL_COST = 3n * PER_INPUT_TOKEN + 8n * PER_OUTPUT_TOKEN;

const preflightFrom = (origin: string) => ({
  origin,
  "access-control-request-method": "POST",
  "access-control-request-headers": "authorization,content-type,payment-signature,x-stainless-os",
});
const chatBody = JSON.stringify({ model: PER_REQUEST, messages: [{ role: "user", content: "hi" }] });

describe("Gateway CORS: browser dApps on other origins", function () {
  let f: PreflightFixture;

  describe("over HTTP", function () {
    let gw: TestGateway;
    let plain: TestGateway;
    let upstreamWithCors: http.Server;

    before(async function () {
      f = await loadFixture(deployPreflightFixture);
      // A model server that sends CORS headers of its own (vLLM --allowed-origins, OLLAMA_ORIGINS).
      upstreamWithCors = http.createServer((_req, res) => {
        res.writeHead(200, { "content-type": "application/json", "access-control-allow-origin": "https://elsewhere.example" });
        res.end(JSON.stringify({ object: "list", data: [] }));
      });
      await new Promise<void>((resolve) => upstreamWithCors.listen(0, "127.0.0.1", resolve));
      gw = await startTestGateway(f, { cors: { origins: [APP, "http://127.0.0.1:5173"] } });
      plain = await startTestGateway(f);
    });

    after(async function () {
      await gw?.close();
      await plain?.close();
      await new Promise((resolve) => upstreamWithCors?.close(resolve));
    });

    it("answers an allowed origin's preflight with what it may send, and caches it", async function () {
      const r = await httpCall(`${gw.running.url}/v1/chat/completions`, "OPTIONS", preflightFrom(APP));
      expect(r.status).to.equal(204);
      expect(r.headers).to.include({
        "access-control-allow-origin": APP,
        "access-control-allow-methods": "GET, POST, OPTIONS",
        "access-control-allow-headers": "authorization,content-type,payment-signature,x-stainless-os",
        "access-control-max-age": "600",
        vary: "Origin",
      });
      expect(r.headers).to.not.have.property("access-control-allow-credentials");
    });

    it("refuses another origin's preflight with 403 and says how to allow it; its calls get no CORS headers", async function () {
      const r = await httpCall(`${gw.running.url}/v1/chat/completions`, "OPTIONS", preflightFrom("https://evil.example"));
      expect(r.status).to.equal(403);
      expect(r.headers).to.not.have.property("access-control-allow-origin");
      expect(JSON.parse(r.body).error.message).to.equal('origin https://evil.example may not call this gateway: start it with --cors-origin https://evil.example (or "*")');
      const unpaid = await httpCall(`${gw.running.url}/v1/chat/completions`, "POST", { origin: "https://evil.example", "content-type": "application/json" }, chatBody);
      expect(unpaid.status).to.equal(402);
      expect(unpaid.headers).to.not.have.property("access-control-allow-origin");
    });

    it("lets an allowed page read what to pay: the 402 exposes PAYMENT-REQUIRED (and a paid answer PAYMENT-RESPONSE)", async function () {
      const r = await httpCall(`${gw.running.url}/v1/chat/completions`, "POST", { origin: APP, "content-type": "application/json" }, chatBody);
      expect(r.status).to.equal(402);
      expect(r.headers["access-control-allow-origin"]).to.equal(APP);
      expect(r.headers["access-control-expose-headers"]).to.equal("PAYMENT-REQUIRED, PAYMENT-RESPONSE");
      expect(r.headers["payment-required"]).to.be.a("string");
    });

    it("answers any origin with * when so configured, and replaces the model server's own CORS headers", async function () {
      const any = await startTestGateway(f, { cors: { origins: ["*"] }, upstream: `http://127.0.0.1:${(upstreamWithCors.address() as { port: number }).port}` });
      try {
        const pre = await httpCall(`${any.running.url}/v1/models`, "OPTIONS", preflightFrom("https://anyone.example"));
        expect(pre.status).to.equal(204);
        expect(pre.headers["access-control-allow-origin"]).to.equal("*");
        expect(pre.headers).to.not.have.property("vary");
        const models = await httpCall(`${any.running.url}/v1/models`, "GET", { origin: "https://anyone.example" });
        expect(models.status).to.equal(200);
        expect(models.headers["access-control-allow-origin"]).to.equal("*");
      } finally {
        await any.close();
      }
    });

    it("without a policy sends no CORS headers and does not answer preflights (browsers keep other origins out)", async function () {
      const pre = await httpCall(`${plain.running.url}/v1/chat/completions`, "OPTIONS", preflightFrom(APP));
      expect(pre.status).to.equal(404);
      expect(pre.headers).to.not.have.property("access-control-allow-origin");
      const unpaid = await httpCall(`${plain.running.url}/v1/chat/completions`, "POST", { origin: APP, "content-type": "application/json" }, chatBody);
      expect(unpaid.status).to.equal(402);
      expect(unpaid.headers).to.not.have.property("access-control-allow-origin");
    });
  });

  describe("from a page in headless Chromium", function () {
    this.timeout(300_000);
    const temp = tempDir("preflight-cors-");
    let chrome: RunningBrowser;
    let browser: Browser;
    let site: { url: string; close: () => Promise<void> };
    let gw: TestGateway;
    let plain: TestGateway;

    before(async function () {
      f = await loadFixture(deployPreflightFixture);
      await buildPackages();
      await bundlePage(path.join(__dirname, "browser", "payingPage.ts"), "paying", temp.dir, "packages/sdk/dist/fetch/index.mjs");
      site = await servePages(temp.dir);
      // The page's origin (another port of 127.0.0.1) is allowed by one gateway and not the other.
      gw = await startTestGateway(f, { cors: { origins: [site.url] } });
      plain = await startTestGateway(f);
      chrome = await launchChromium();
      browser = await chromium.connectOverCDP(chrome.wsEndpoint);
    });

    after(async function () {
      await browser?.close().catch(() => undefined);
      await chrome?.stop();
      await site?.close();
      await gw?.close();
      await plain?.close();
      temp.dispose();
    });

    const inputFor = async (gateway: string): Promise<PayingPageInput> => ({
      gateway,
      payerKey: (await fundedWallet(f, 1_000_000n)).privateKey as `0x${string}`,
      laneKey: (await fundedLane(f, 1_000_000n)).privateKey as `0x${string}`,
      clockOffset: chainNow() - Math.floor(Date.now() / 1000),
      perRequestModel: PER_REQUEST,
      meteredModel: METERED,
      price: PRICE.toString(),
      maxLaneTotal: "100000",
    });

    it("pays per request and metered (streamed) through the openai client, reads the payment headers, and the chain settles it", async function () {
      const input = await inputFor(gw.running.url);
      const { result, errors } = await pageResult(browser, `${site.url}/paying.html#${encodeURIComponent(JSON.stringify(input))}`);
      const output = JSON.parse(result) as PayingPageOutput;
      expect(errors).to.deep.equal([]);
      expect(output.error).to.equal(undefined);
      expect(output.unpaidStatus).to.equal(402);
      expect(output.requiredAmount).to.equal(PRICE.toString());
      expect(output.completion).to.equal("tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7");
      expect(output.paidAmount).to.equal(PRICE.toString());
      expect(output.streamed).to.deep.equal(["tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7", "tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7"]);
      expect(output.laneOwed).to.deep.equal([CALL_COST.toString(), (2n * CALL_COST).toString()]);

      // What the page signed is good on chain: the request settles, the lane's opening voucher is claimed.
      const batches = await gw.running.gateway.close();
      const paid = batches.filter((b) => b.kind === "request").flatMap((b) => b.items).filter((i) => i.reason === 0);
      expect(paid.map((i) => i.amount)).to.deep.equal([PRICE]);
      const claims = batches.filter((b) => b.kind === "lane").flatMap((b) => b.items).filter((i) => i.reason === 0);
      expect(claims).to.have.length(1);
    });

    it("cannot call a gateway without a policy: the browser blocks the call before it is sent, and nothing is charged", async function () {
      const input = await inputFor(plain.running.url);
      const { result } = await pageResult(browser, `${site.url}/paying.html#${encodeURIComponent(JSON.stringify(input))}`);
      const output = JSON.parse(result) as PayingPageOutput;
      expect(output.error).to.match(/^TypeError: Failed to fetch/);
      expect(output.unpaidStatus).to.equal(0);
      const metrics = await (await fetch(`${plain.running.url}/metrics`)).text();
      expect(metrics).to.not.match(/^preflight_gateway_decisions_total\{/m);
    });
  });
});
