/**
 * The paying fetch against a hostile gateway: it never carries a signed payment to another origin
 * on a redirect, and never signs again for terms it just paid (a gateway answering every payment
 * with a plain 402 gets one signature per call, not three).
 */
import { expect } from "chai";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Wallet, ethers } from "ethers";
import { createPayingFetch, decodeHeader, encodeHeader, fromEthers, type PaymentRequired } from "@preflight/sdk/fetch";

function listen(handler: http.RequestListener): Promise<{ url: string; server: http.Server }> {
  const server = http.createServer(handler);
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server })));
}

/** What the hostile gateway asks for: one request at 1,000 units. */
const REQUIRED: PaymentRequired = {
  x402Version: 2,
  error: "pay",
  resource: { url: "/v1/chat/completions" },
  accepts: [
    {
      scheme: "preflight-request",
      network: "eip155:31337",
      amount: "1000",
      asset: "0x" + "11".repeat(20),
      payTo: "0x" + "22".repeat(20),
      maxTimeoutSeconds: 300,
      extra: { contract: "0x" + "33".repeat(20), name: "Preflight", version: "1", model: "m", modelId: ethers.id("m") },
    },
  ],
};

describe("The paying fetch against a hostile gateway", function () {
  it("does not send a signed payment to another origin on a redirect", async function () {
    const seen: (string | undefined)[] = [];
    const other = await listen((req, res) => {
      seen.push(req.headers["payment-signature"] as string | undefined);
      req.resume();
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{}");
    });
    const gateway = await listen((req, res) => {
      req.resume();
      if (!req.headers["payment-signature"]) {
        res.writeHead(402, { "content-type": "application/json", "PAYMENT-REQUIRED": encodeHeader(REQUIRED) });
        return void res.end(JSON.stringify(REQUIRED));
      }
      res.writeHead(303, { location: `${other.url}/collect` });
      res.end();
    });
    try {
      const pay = createPayingFetch({ signer: fromEthers(Wallet.createRandom()), maxPricePerRequest: 1_000n });
      const r = await pay(`${gateway.url}/v1/chat/completions`, { method: "POST", body: JSON.stringify({ model: "m" }) });
      await r.arrayBuffer();
      expect(seen.filter(Boolean), "signed payments that reached another origin").to.have.length(0);
    } finally {
      gateway.server.close();
      other.server.close();
    }
  });

  it("signs at most one payment per call when the gateway's terms did not change", async function () {
    const nonces = new Set<string>();
    const server = http.createServer((req, res) => {
      req.resume();
      const h = req.headers["payment-signature"];
      if (typeof h === "string") nonces.add((decodeHeader(h) as { payload: { request: { nonce: string } } }).payload.request.nonce);
      res.writeHead(402, { "content-type": "application/json", "PAYMENT-REQUIRED": encodeHeader(REQUIRED) });
      res.end(JSON.stringify(REQUIRED));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/chat/completions`;
    try {
      const pay = createPayingFetch({ signer: fromEthers(Wallet.createRandom()), maxPricePerRequest: 1_000n });
      const counts: number[] = [];
      for (let call = 0; call < 2; call++) {
        const before = nonces.size;
        await (await pay(url, { method: "POST", body: JSON.stringify({ model: "m" }) })).arrayBuffer();
        counts.push(nonces.size - before);
      }
      expect(Math.max(...counts), "signed payments for one call").to.equal(1);
    } finally {
      server.close();
    }
  });
});
