/**
 * The raw sender's gas limit: a node's `eth_estimateGas` is a binary search that executes the
 * transaction some twenty times (on anvil, most of its CPU while the gateway settled), so a
 * settlement of a function already sent is given the gas earlier ones used per calldata byte, checked
 * by one `eth_call` at that limit; the estimate is asked for only without such history, or when the
 * check fails. Either way the limit keeps a tenth over what was found enough.
 */
import { expect } from "chai";
import { FetchRequest, JsonRpcProvider, Transaction, Wallet } from "ethers";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { network } from "hardhat";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { fastJsonRpcOf, fetchJsonRpc, RawTransactionSender, type JsonRpcSend } from "../../packages/provider/src/gateway/rawSender";
import { isTransient } from "../../packages/provider/src/gateway/chainSettlement";
import { deployPreflightFixture } from "../helpers/fixtures";
import { fundedWallet, PER_REQUEST, PRICE, startTestGateway, chainNow } from "../helpers/gateway";
import { devAccount, providerFor } from "../helpers/nodes";
import { startFlakyRpc } from "../helpers/flakyRpc";
import { createPayingFetch, fromEthers } from "@preflight/sdk/fetch";

const TO = "0x" + "11".repeat(20);
const KEY = Wallet.createRandom().privateKey;

/** A node that needs `need(data)` gas for a call, estimates it exactly, and mines every send at once. */
function fakeNode(need: (data: string) => bigint, revert = false) {
  const calls: { method: string; params: unknown[] }[] = [];
  const sent: Transaction[] = [];
  const rpc: JsonRpcSend = {
    async send(method, params) {
      calls.push({ method, params });
      const tx = params[0] as { data?: string; gas?: string };
      switch (method) {
        case "eth_getTransactionCount":
          return "0x" + sent.length.toString(16);
        case "eth_getBlockByNumber":
          return { baseFeePerGas: "0x7" };
        case "eth_maxPriorityFeePerGas":
          return "0x1";
        case "eth_estimateGas":
          if (revert) throw Object.assign(new Error("execution reverted"), { code: "CALL_EXCEPTION" });
          return "0x" + need(tx.data!).toString(16);
        case "eth_call":
          if (revert || BigInt(tx.gas ?? "0x0") < need(tx.data!)) throw new Error("out of gas");
          return "0x";
        case "eth_sendRawTransaction": {
          const t = Transaction.from(params[0] as string);
          sent.push(t);
          return t.hash;
        }
        case "eth_getTransactionReceipt": {
          const t = sent.find((s) => s.hash === params[0]);
          return t ? { status: "0x1", blockNumber: "0x1", gasUsed: "0x" + need(t.data).toString(16), logs: [] } : null;
        }
        default:
          throw new Error(`unexpected ${method}`);
      }
    },
  };
  const count = (method: string) => calls.filter((c) => c.method === method).length;
  return { rpc, calls, sent, count };
}

/** Calldata of `bytes` bytes after a selector. */
const calldata = (selector: string, bytes: number, fill = "ab") => "0x" + selector + fill.repeat(bytes - 4);

describe("Raw sender gas limit", function () {
  it("estimates the first send of a function, then checks the learned limit with one eth_call instead", async function () {
    const node = fakeNode((data) => 21_000n + 50n * BigInt((data.length - 2) / 2));
    const sender = new RawTransactionSender(node.rpc, KEY, 31337n, 1);
    await sender.send(TO, calldata("aabbccdd", 40_000));
    expect([node.count("eth_estimateGas"), node.count("eth_call")]).to.deep.equal([1, 0]);
    expect(node.sent[0]!.gasLimit).to.equal(((21_000n + 2_000_000n) * 11n) / 10n);

    // The same function with a batch of about the same size: no estimate, one check at the learned gas.
    await sender.send(TO, calldata("aabbccdd", 45_000));
    expect([node.count("eth_estimateGas"), node.count("eth_call")]).to.deep.equal([1, 1]);
    const checked = BigInt((node.calls.find((c) => c.method === "eth_call")!.params[0] as { gas: string }).gas);
    expect(checked >= 21_000n + 50n * 45_000n).to.equal(true);
    expect(node.sent[1]!.gasLimit).to.equal(checked + checked / 10n);

    // Another function, or a batch of another size class, has no history yet: estimated.
    await sender.send(TO, calldata("11223344", 45_000));
    await sender.send(TO, calldata("aabbccdd", 500));
    expect([node.count("eth_estimateGas"), node.count("eth_call")]).to.deep.equal([3, 1]);
  });

  it("falls back to the estimate when the learned limit is too little for this batch", async function () {
    let perByte = 50n;
    const node = fakeNode((data) => 21_000n + perByte * BigInt((data.length - 2) / 2));
    const sender = new RawTransactionSender(node.rpc, KEY, 31337n, 1);
    await sender.send(TO, calldata("aabbccdd", 40_000));
    perByte = 100n; // e.g. many payers seen for the first time: twice the gas per byte
    await sender.send(TO, calldata("aabbccdd", 40_000));
    expect([node.count("eth_call"), node.count("eth_estimateGas")]).to.deep.equal([1, 2]);
    expect(node.sent[1]!.gasLimit).to.equal(((21_000n + 4_000_000n) * 11n) / 10n);
    // And the next batch is checked at what that one used.
    await sender.send(TO, calldata("aabbccdd", 40_000));
    expect([node.count("eth_call"), node.count("eth_estimateGas")]).to.deep.equal([2, 2]);
  });

  it("sends nothing when the transaction would revert, with the estimate's error", async function () {
    const node = fakeNode(() => 100_000n);
    const sender = new RawTransactionSender(node.rpc, KEY, 31337n, 1);
    await sender.send(TO, calldata("aabbccdd", 1_000));
    const reverting = fakeNode(() => 100_000n, true);
    // History from a good send, then a batch that reverts: the check fails, the estimate says why.
    Object.assign(node.rpc, { send: reverting.rpc.send });
    const error = await sender.send(TO, calldata("aabbccdd", 1_000)).then(
      () => undefined,
      (e: unknown) => e as { code?: string },
    );
    expect(error?.code).to.equal("CALL_EXCEPTION");
    expect([reverting.count("eth_call"), reverting.count("eth_estimateGas"), reverting.sent.length]).to.deep.equal([1, 1, 0]);
  });

  it("settles a gateway's second batch without asking the node for a gas estimate", async function () {
    const f = await loadFixture(deployPreflightFixture);
    const rpc = await startFlakyRpc();
    const providerSigner = devAccount(2, providerFor(rpc.url, Number(network.config.chainId ?? 31337)));
    const gw = await startTestGateway(f, { providerSigner, maxAgeMs: 180_000, maxBatchSize: 3 });
    try {
      const payer = await fundedWallet(f, 1_000_000n);
      // One clock reading for all six calls: a second passing between calls (a busy machine) would
      // give later calls another deadline, hence another section, and the second batch another
      // calldata size class than the first (whose gas history it would then not use).
      const startedAt = chainNow();
      const pay = createPayingFetch({ now: () => startedAt, signer: fromEthers(payer), maxPricePerRequest: PRICE });
      for (let i = 0; i < 6; i++) {
        const r = await pay(`${gw.running.url}/v1/chat/completions`, { method: "POST", body: JSON.stringify({ model: PER_REQUEST, messages: [{ role: "user", content: "hi" }] }) });
        expect(r.status).to.equal(200);
      }
      await gw.running.close();
      // Both batches of three settled, each in one packed transaction.
      expect(await f.preflight.earningsOf(f.provider.address, await f.usdc.getAddress())).to.equal(6n * PRICE);
      expect(rpc.sent).to.have.length(2);
      expect(rpc.calls.get("eth_estimateGas") ?? 0).to.equal(1);
      expect(rpc.calls.get("eth_call") ?? 0).to.be.greaterThanOrEqual(1);
    } finally {
      await gw.close();
      await rpc.close();
    }
  });

  it("sends over fetch with the error shapes the retry logic reads", async function () {
    const answers: Record<string, (id: number) => [number, unknown]> = {
      eth_blockNumber: (id) => [200, { jsonrpc: "2.0", id, result: "0x2a" }],
      eth_estimateGas: (id) => [200, { jsonrpc: "2.0", id, error: { code: 3, message: "execution reverted", data: "0x08c379a0" } }],
      eth_sendRawTransaction: (id) => [200, { jsonrpc: "2.0", id, error: { code: -32000, message: "nonce too low" } }],
      eth_getBalance: (id) => [200, { jsonrpc: "2.0", id, error: { code: -32000, message: "insufficient funds for gas * price + value" } }],
      eth_chainId: () => [502, "bad gateway"],
    };
    const seen: { method: string; auth?: string }[] = [];
    const server = createServer((req, res) => {
      let raw = "";
      req.on("data", (d: Buffer) => (raw += d.toString()));
      req.on("end", () => {
        const call = JSON.parse(raw) as { id: number; method: string };
        seen.push({ method: call.method, auth: req.headers.authorization });
        const [status, body] = answers[call.method]!(call.id);
        res.writeHead(status, { "content-type": "application/json" });
        res.end(typeof body === "string" ? body : JSON.stringify(body));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const rpc = fetchJsonRpc(url);
      expect(await rpc.send("eth_blockNumber", [])).to.equal("0x2a");
      const failure = (method: string) => rpc.send(method, []).then(() => undefined, (e: unknown) => e as { code?: string; message: string; data?: unknown });
      const revert = await failure("eth_estimateGas");
      expect([revert?.code, revert?.data, isTransient(revert)]).to.deep.equal(["CALL_EXCEPTION", "0x08c379a0", false]);
      const nonce = await failure("eth_sendRawTransaction");
      expect([nonce?.message, isTransient(nonce)]).to.deep.equal(["eth_sendRawTransaction: nonce too low", true]);
      const funds = await failure("eth_getBalance");
      expect([funds?.code, isTransient(funds)]).to.deep.equal(["INSUFFICIENT_FUNDS", true]); // settles once the key is topped up
      const down = await failure("eth_chainId");
      expect([down?.code, isTransient(down)]).to.deep.equal(["SERVER_ERROR", true]);
      const unreachable = await fetchJsonRpc("http://127.0.0.1:1").send("eth_blockNumber", []).then(() => undefined, (e: unknown) => e);
      expect(isTransient(unreachable)).to.equal(true);

      // An ethers provider's URL and headers are used as they are; a provider whose requests a hook rewrites is kept.
      const provider = new JsonRpcProvider(url, undefined, { staticNetwork: true });
      const fast = fastJsonRpcOf(provider);
      expect(fast).to.not.equal(provider);
      expect(await fast.send("eth_blockNumber", [])).to.equal("0x2a");
      const request = new FetchRequest(url);
      request.preflightFunc = async (r) => r;
      const hooked = new JsonRpcProvider(request, undefined, { staticNetwork: true });
      expect(fastJsonRpcOf(hooked)).to.equal(hooked);
      provider.destroy();
      hooked.destroy();
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
