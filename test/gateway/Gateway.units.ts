/**
 * The gateway's pure parts: the x402 header encoding, payment parsing, the SSE meter, prices and
 * refusals, the CORS policy's options; and the CLI's one-line errors.
 */
import { expect } from "chai";
import { Readable } from "node:stream";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { contractRefusal, meteredCost, priceTable } from "@preflight/provider/gateway";
import { answerLimitError, callBound, cutShortCost } from "../../packages/provider/src/gateway/pricing";
import { parsePayment } from "../../packages/provider/src/gateway/payment";
import { meterStream } from "../../packages/provider/src/gateway/proxy";
import { addressBytesCall } from "../../packages/provider/src/gateway/rawSender";
import { corsPolicy } from "../../packages/provider/src/gateway/cors";
import { holdsOf } from "../../packages/provider/src/gateway/releases";
import { fundsKey, laneFundsPool } from "../../packages/provider/src/gateway/memoryStore";
import { Preflight__factory } from "@preflight/sdk/typechain";
import { decodeHeader, encodeHeader, PaymentProtocolError, STREAM_PAYMENT_FIELD } from "@preflight/sdk/fetch";
import { PreflightSdkError, Reason } from "@preflight/sdk";

const ADDRESS = "0x" + "ab".repeat(20);
const WORD = "0x" + "cd".repeat(32);
const SIG = "0x" + "11".repeat(65);

describe("Gateway units", function () {
  describe("x402 headers", function () {
    it("round-trips UTF-8 JSON through base64 and refuses anything else with a typed error", function () {
      const value = { x402Version: 2, error: "café ☕", n: "123456789012345678901234567890" };
      expect(decodeHeader(encodeHeader(value))).to.deep.equal(value);
      expect(() => decodeHeader("not base64 !")).to.throw(PaymentProtocolError);
      expect(() => decodeHeader(btoa("[1,2]"))).to.throw(PaymentProtocolError, /object/);
    });
  });

  describe("settlement calldata", function () {
    it("encodes settlePacked(address, bytes) exactly as the ABI does, for every padding", function () {
      const i = Preflight__factory.createInterface();
      for (const n of [0, 1, 31, 32, 33, 4801]) {
        const bytes = "0x" + "07".repeat(n);
        expect(addressBytesCall(i.getFunction("settlePacked").selector, ADDRESS, bytes)).to.equal(i.encodeFunctionData("settlePacked", [ADDRESS, bytes]));
      }
    });
  });

  describe("parsePayment", function () {
    const request = { payer: ADDRESS, token: ADDRESS, model: WORD, price: "10", nonce: "7", deadline: "99", inputHash: WORD, signature: SIG };
    it("reads a request and a lane voucher into bigint items", function () {
      const p = parsePayment(encodeHeader({ x402Version: 2, payload: { request } }));
      expect(p.scheme).to.equal("preflight-request");
      if (p.scheme === "preflight-request") expect(p.request).to.include({ price: 10n, nonce: 7n, deadline: 99n });
      const v = parsePayment(encodeHeader({ x402Version: 2, payload: { laneVoucher: { payer: ADDRESS, token: ADDRESS, model: WORD, cumulativeAmount: "5", signature: SIG } } }));
      expect(v.scheme).to.equal("preflight-lane");
      if (v.scheme === "preflight-lane") expect(v.voucher).to.include({ cumulativeAmount: 5n });
    });
    it("names the malformed field instead of throwing", function () {
      for (const [field, value] of [["price", "-1"], ["price", "1e3"], ["nonce", "0x10"], ["payer", "0x12"], ["signature", "0x" + "11".repeat(63)]] as const) {
        const p = parsePayment(encodeHeader({ x402Version: 2, payload: { request: { ...request, [field]: value } } }));
        expect(p).to.deep.equal({ scheme: undefined, error: `payload field ${field} is missing or malformed` });
      }
      expect(parsePayment(encodeHeader({ x402Version: 1, payload: { request } }))).to.deep.equal({ scheme: undefined, error: "x402Version must be 2" });
      expect(parsePayment("%%%").scheme).to.equal(undefined);
    });
  });

  describe("meterStream", function () {
    async function run(chunks: string[]): Promise<{ out: string; usage: unknown }> {
      let usage: unknown;
      const meter = meterStream(async (u) => {
        usage = u;
        return { [STREAM_PAYMENT_FIELD]: "PAID" };
      });
      const out: string[] = [];
      await new Promise<void>((resolve, reject) => {
        Readable.from(chunks).pipe(meter).on("data", (d: Buffer) => out.push(d.toString())).on("end", resolve).on("error", reject);
      });
      return { out: out.join(""), usage };
    }
    it("passes events on as they come, and adds the payment to the usage event before [DONE], across chunk boundaries", async function () {
      const usage = { prompt_tokens: 3, completion_tokens: 2 };
      const { out, usage: seen } = await run(['data: {"choices":[{"delta":{"content":"a"}}]}\n\nda', 'ta: {"choices":[],"usage":', JSON.stringify(usage) + "}\n\n", "data: [DONE]\n\n"]);
      expect(seen).to.deep.equal(usage);
      const events = out.split("\n\n").filter(Boolean);
      expect(events[0]).to.equal('data: {"choices":[{"delta":{"content":"a"}}]}');
      expect(JSON.parse(events[1]!.slice(6))).to.deep.equal({ choices: [], usage, [STREAM_PAYMENT_FIELD]: "PAID" });
      expect(events[2]).to.equal("data: [DONE]");
    });
    it("counts content events as completion tokens when the server reports no usage", async function () {
      const { out, usage } = await run(['data: {"choices":[{"delta":{"content":"a"}}]}\n\n', 'data: {"choices":[{"delta":{"content":"b"}}]}\n\n', "data: [DONE]\n\n"]);
      expect(usage).to.deep.equal({ prompt_tokens: 0, completion_tokens: 2 });
      expect(out).to.contain(`"${STREAM_PAYMENT_FIELD}":"PAID"`);
      expect(out.endsWith("data: [DONE]\n\n")).to.equal(true);
    });
  });

  describe("prices and refusals", function () {
    it("prices usage exactly and refuses a model with no price", function () {
      const model = priceTable({ m: { perInputToken: 2n, perOutputToken: 5n } }).get("m")!;
      expect(meteredCost(model, { prompt_tokens: 3, completion_tokens: 8 })).to.equal(46n);
      expect(meteredCost(model, { prompt_tokens: -4, completion_tokens: 1.5 })).to.equal(0n);
      expect(model.holdPerCall).to.equal(5n * 1024n);
      expect(() => priceTable({ m: {} })).to.throw(/perRequest/);
    });
    it("holds a metered call for a bound of its cost: a token per body byte, its answer limit x n answers (or the limit the model's hold covers)", function () {
      const model = priceTable({ m: { perInputToken: 2n, perOutputToken: 5n, holdPerCall: 100n } }).get("m")!;
      // No limit given: the gateway sets the one the hold covers (100 / 5 tokens), per answer.
      expect(callBound(model, {}, 50)).to.deep.equal({ hold: 50n * 2n + 100n, maxTokens: 20 });
      expect(callBound(model, { max_tokens: null, n: 3 }, 50)).to.deep.equal({ hold: 50n * 2n + 6n * 3n * 5n, maxTokens: 6 });
      expect(callBound(model, { n: 1_000 }, 0)).to.deep.equal({ hold: 1_000n * 5n, maxTokens: 1 }); // at least a token each
      // A limit given is used as it is: the larger of the two fields.
      expect(callBound(model, { max_tokens: 10 }, 50)).to.deep.equal({ hold: 50n * 2n + 10n * 5n });
      expect(callBound(model, { max_tokens: 10, max_completion_tokens: 20, n: 3 }, 50)).to.deep.equal({ hold: 50n * 2n + 20n * 3n * 5n });
      expect(callBound(model, { max_tokens: 20, max_completion_tokens: 10 }, 0)).to.deep.equal({ hold: 20n * 5n });
      // Free answers need no limit.
      const free = priceTable({ f: { perInputToken: 2n, perOutputToken: 0n, holdPerCall: 7n } }).get("f")!;
      expect(callBound(free, {}, 1)).to.deep.equal({ hold: 2n + 7n });
      // A limit that is not a whole number is refused, not guessed at.
      expect(answerLimitError({ max_tokens: 10, max_completion_tokens: null, n: 2 })).to.equal(undefined);
      expect(answerLimitError({ max_tokens: "10" })).to.match(/max_tokens/);
      expect(answerLimitError({ max_completion_tokens: 1.5 })).to.match(/max_completion_tokens/);
      expect(answerLimitError({ n: 0 })).to.match(/^n /);
      // Cut short: the prompt's bound and what was passed on, at least the hold per call, at most the call's hold.
      expect(cutShortCost(model, 1_000n, 50, 3)).to.equal(50n * 2n + 100n);
      expect(cutShortCost(model, 1_000n, 50, 40)).to.equal(50n * 2n + 40n * 5n);
      expect(cutShortCost(model, 250n, 50, 40)).to.equal(250n);
    });

    it("answers 402 where a new payment can cure it and 403 where the key may not pay", function () {
      expect(contractRefusal(Reason.InsufficientBalance)).to.include({ status: 402, code: 12, name: "InsufficientBalance" });
      expect(contractRefusal(Reason.NonceUsed).status).to.equal(402);
      expect(contractRefusal(Reason.InvalidSigner)).to.include({ status: 403, name: "InvalidSigner" });
      expect(contractRefusal(Reason.ModelNotAllowed).status).to.equal(403);
    });
  });

  describe("holdsOf", function () {
    it("sums what a batch's items held per payer and pool: a request's token, a lane's funds, and each delegate's grant pool", function () {
      const payer = "0x" + "aa".repeat(20);
      const other = "0x" + "bb".repeat(20);
      const token = "0x" + "cc".repeat(20);
      const holds = holdsOf([
        { kind: "request", payer, token, held: 10n, grantHolds: [{ pool: "g1", amount: 10n }] },
        { kind: "request", payer: payer.toUpperCase().replace("0X", "0x"), token, held: 5n, grantHolds: [{ pool: "g1", amount: 5n }] },
        { kind: "lane", payer, token, held: 7n, grantHolds: [{ pool: "g1", amount: 9n }, { pool: "g2", amount: 3n }, { pool: "g3", amount: 0n }] },
        { kind: "request", payer: other, token, held: 0n },
      ]);
      const byKey = new Map(holds.map((h) => [fundsKey(h.payer, h.pool), h.amount]));
      expect(Object.fromEntries(byKey)).to.deep.equal({
        [fundsKey(payer, token)]: 15n,
        [fundsKey(payer, "g1")]: 24n,
        [fundsKey(payer, laneFundsPool(token))]: 7n,
        [fundsKey(payer, "g2")]: 3n,
      });
    });
  });

  describe("CORS policy", function () {
    it("takes origins as browsers send them, or *, and refuses anything else with a typed error", function () {
      for (const origins of [["*"], ["https://app.example.com"], ["http://127.0.0.1:5173", "https://app.example.com"]]) expect(() => corsPolicy({ origins })).to.not.throw();
      // A trailing slash, a path, no scheme, another scheme, a default port spelled out: a browser's Origin never looks like these.
      for (const bad of ["https://app.example.com/", "https://app.example.com/app", "app.example.com", "ftp://files.example.com", "https://app.example.com:443"]) {
        expect(() => corsPolicy({ origins: [bad] }), bad).to.throw(PreflightSdkError, `cors origin ${JSON.stringify(bad)}: write an origin as browsers send it`);
      }
      expect(() => corsPolicy({ origins: [] })).to.throw(PreflightSdkError, "give at least one origin");
      expect(() => corsPolicy({ origins: ["*"], maxAgeSeconds: -1 })).to.throw(PreflightSdkError, "cors maxAgeSeconds -1");
    });
  });

  describe("CLI", function () {
    const cli = path.join(__dirname, "../../packages/provider/src/gateway/cli.ts");
    const run = (args: string[], env: Record<string, string> = {}) =>
      spawnSync(process.execPath, ["-r", "ts-node/register/transpile-only", "-r", "tsconfig-paths/register", cli, ...args], { encoding: "utf8", cwd: path.join(__dirname, "../.."), env: { ...process.env, PREFLIGHT_RPC_URL: "", ...env, TS_NODE_TRANSPILE_ONLY: "true", TS_NODE_PROJECT: path.join(__dirname, "../../tsconfig.json") } });

    it("says in one line what is missing and how to fix it", function () {
      const r = run(["--upstream", "http://127.0.0.1:8000"]);
      expect(r.status, r.stderr).to.equal(2);
      expect(r.stderr.split("\n")[0]).to.equal("preflight-gateway: --rpc is required (or PREFLIGHT_RPC_URL): the chain's JSON-RPC URL");
    });

    it("refuses a --cors-origin a browser never sends, before calling the chain", function () {
      // The RPC URL is never called: the options are checked first.
      const args = ["--upstream", "http://127.0.0.1:8000", "--rpc", "http://127.0.0.1:9", "--contract", ADDRESS, "--token", ADDRESS, "--price", "m=request:1", "--cors-origin", "https://app.example.com/"];
      const r = run(args, { PREFLIGHT_PROVIDER_KEY: "0x" + "11".repeat(32) });
      expect(r.status, r.stderr).to.equal(2);
      expect(r.stderr.split("\n")[0]).to.equal('preflight-gateway: --cors-origin "https://app.example.com/": write an origin as browsers send it, scheme://host[:port] with no path (e.g. https://app.example.com), or "*" for any');
    });
  });
});
