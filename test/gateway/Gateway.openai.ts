/**
 * The official `openai` client, with the paying fetch as its `fetch`, against the gateway in front
 * of a mock model server: per-request and metered payments, streamed and not, then settlement.
 */
import { expect } from "chai";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import OpenAI from "openai";
import { Wallet } from "ethers";
import { privateKeyToAccount } from "viem/accounts";
import { deployPreflightFixture, type PreflightFixture } from "../helpers/fixtures";
import { fundedLane, METERED, PER_INPUT_TOKEN, PER_OUTPUT_TOKEN, PER_REQUEST, PRICE, startTestGateway, type TestGateway, chainNow } from "../helpers/gateway";
import { createPayingFetch, fromEthers, fromViem, PAYMENT_REQUIRED_HEADER, PayingFetchError, decodeHeader, readPaymentRefusal, reasonSentence, type PaymentRequired, type PaymentResponse } from "@preflight/sdk/fetch";

const MESSAGES = [{ role: "user" as const, content: "say eight tokens" }];
// The mock answers 8 completion tokens; the prompt above is 3 words = 3 prompt tokens.
const CALL_COST = 3n * PER_INPUT_TOKEN + 8n * PER_OUTPUT_TOKEN;

describe("Gateway with the openai client", function () {
  let f: PreflightFixture;
  let gw: TestGateway;

  beforeEach(async function () {
    f = await loadFixture(deployPreflightFixture);
    gw = await startTestGateway(f);
  });

  afterEach(async function () {
    await gw?.close();
  });

  it("answers an unpaid call with 402 and both schemes' requirements", async function () {
    const res = await fetch(`${gw.running.url}/v1/chat/completions`, { method: "POST", body: JSON.stringify({ model: PER_REQUEST, messages: MESSAGES }) });
    expect(res.status).to.equal(402);
    const required = decodeHeader<PaymentRequired>(res.headers.get(PAYMENT_REQUIRED_HEADER)!);
    expect(required.x402Version).to.equal(2);
    expect(required.accepts[0]).to.include({ scheme: "preflight-request", amount: PRICE.toString(), payTo: f.provider.address, asset: await f.usdc.getAddress() });
    expect(required.accepts[0]!.network).to.equal(`eip155:${f.domain.chainId}`);
  });

  it("pays per request (ethers signer): completion and stream, then settles both", async function () {
    const seen: PaymentResponse[] = [];
    const pay = createPayingFetch({ now: chainNow, signer: fromEthers(f.payer), maxPricePerRequest: PRICE, onPaymentResponse: (r) => seen.push(r) });
    const openai = new OpenAI({ baseURL: `${gw.running.url}/v1`, apiKey: "unused", fetch: pay, maxRetries: 0 });

    const completion = await openai.chat.completions.create({ model: PER_REQUEST, messages: MESSAGES });
    expect(completion.choices[0]!.message.content).to.equal("tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7");
    const stream = await openai.chat.completions.create({ model: PER_REQUEST, messages: MESSAGES, stream: true });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
    expect(text).to.equal("tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7");
    expect(seen.map((s) => s.amount)).to.deep.equal([PRICE.toString(), PRICE.toString()]);

    const token = await f.usdc.getAddress();
    const before = await f.preflight.balanceOf(f.payer.address, token);
    const batches = await gw.running.gateway.close();
    const settled = batches.flatMap((b) => b.items).filter((i) => i.reason === 0);
    expect(settled).to.have.length(2);
    expect(await f.preflight.earningsOf(f.provider.address, token)).to.equal(2n * PRICE);
    expect(await f.preflight.balanceOf(f.payer.address, token)).to.equal(before - 2n * PRICE);
  });

  it("meters usage on a lane (viem account): the next call's voucher covers the reported total, streamed or not; claimed and collected on close", async function () {
    const wallet = await fundedLane(f, 1_000_000n);
    const pay = createPayingFetch({ now: chainNow, signer: fromViem(privateKeyToAccount(wallet.privateKey as `0x${string}`)), maxPricePerRequest: 0n, maxLaneTotal: 100_000n, prefer: "preflight-lane" });
    const openai = new OpenAI({ baseURL: `${gw.running.url}/v1`, apiKey: "unused", fetch: pay, maxRetries: 0 });

    await openai.chat.completions.create({ model: METERED, messages: MESSAGES });
    expect(pay.lanes()[0]!.owed).to.equal(CALL_COST);
    const stream = await openai.chat.completions.create({ model: METERED, messages: MESSAGES, stream: true });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
    expect(text).to.equal("tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7");
    // The stream's last event carried the new total.
    expect(pay.lanes()[0]!.owed).to.equal(2n * CALL_COST);
    // The opening voucher (100, the hold per call) still covers 92: it is sent again, not re-signed.
    await openai.chat.completions.create({ model: METERED, messages: MESSAGES });
    expect(pay.lanes()[0]).to.deep.include({ owed: 3n * CALL_COST, signed: 100n });
    // Now the lane owes more than it covered: the next call signs a voucher for the reported total.
    await openai.chat.completions.create({ model: METERED, messages: MESSAGES });
    expect(pay.lanes()[0]).to.deep.include({ owed: 4n * CALL_COST, signed: 3n * CALL_COST });

    const token = await f.usdc.getAddress();
    const batches = await gw.running.gateway.close();
    const claims = batches.filter((b) => b.kind === "lane").flatMap((b) => b.items);
    expect(claims).to.have.length(1);
    expect(claims[0]!.amount).to.equal(3n * CALL_COST);
    // The claim paid from the lane's own funds; collectLanes moved it into the provider's earnings.
    const [claimed, funds, uncollected] = await f.preflight.laneOf(wallet.address, f.provider.address, token);
    expect([claimed, funds, uncollected]).to.deep.equal([3n * CALL_COST, 1_000_000n - 3n * CALL_COST, 0n]);
    expect(batches.filter((b) => b.kind === "collect").map((b) => b.collected)).to.deep.equal([3n * CALL_COST]);
    expect(await f.preflight.earningsOf(f.provider.address, token)).to.equal(3n * CALL_COST);
  });

  it("a new session on a lane the chain already claimed from starts from the chain's total", async function () {
    const wallet = await fundedLane(f, 1_000_000n);
    const token = await f.usdc.getAddress();
    const session = () => createPayingFetch({ now: chainNow, signer: fromEthers(wallet), maxPricePerRequest: 0n, maxLaneTotal: 100_000n, prefer: "preflight-lane" });
    const call = (pay: ReturnType<typeof session>) => pay(`${gw.running.url}/v1/chat/completions`, { method: "POST", body: JSON.stringify({ model: METERED, messages: MESSAGES }) });
    expect((await call(session())).status).to.equal(200);
    await gw.close(); // claims the opening voucher (100)
    gw = await startTestGateway(f); // a fresh gateway: its store knows nothing of the lane
    const second = session();
    expect((await call(second)).status).to.equal(200);
    // Its first voucher was refused for not adding to the chain's 100; the 402 said so, and it re-signed 100 + 100.
    expect(second.lanes()[0]).to.deep.include({ signed: 200n, owed: 100n + CALL_COST });
    await gw.close();
    gw = undefined as unknown as TestGateway;
    const [claimed] = await f.preflight.laneOf(wallet.address, f.provider.address, token);
    expect(claimed).to.equal(200n);
  });

  it("refuses new metered work past the credit limit, with the reason and what to pay", async function () {
    const wallet = await fundedLane(f, 1_000_000n);
    const request = JSON.stringify({ model: METERED, messages: MESSAGES });
    // A call is held for its prompt's bound (a token per body byte) plus the model's hold per call (100).
    const hold = BigInt(Buffer.byteLength(request)) * PER_INPUT_TOKEN + 100n;
    await gw.close();
    gw = await startTestGateway(f, { creditLimit: CALL_COST + hold - 100n });
    // A client that never signs more than the opening voucher (100, the model's hold per call).
    const stingy = createPayingFetch({ now: chainNow, signer: fromEthers(wallet), maxPricePerRequest: 0n, maxLaneTotal: 100n, prefer: "preflight-lane" });
    const call = () => stingy(`${gw.running.url}/v1/chat/completions`, { method: "POST", body: request });
    expect((await call()).status).to.equal(200); // covered 100, owed 46
    expect((await call()).status).to.equal(200); // 46 owed + the hold <= 100 covered + the credit limit, just
    // owed 92: 92 + the hold passes 100 + the credit limit
    const refused = await call();
    expect(refused.status).to.equal(402);
    const body = (await refused.json()) as PaymentRequired;
    expect(body.reason?.name).to.equal("CreditLimit");
    expect(body.accepts[0]!.extra.lane).to.deep.include({ owed: (2n * CALL_COST).toString(), covered: "100" });
    expect(body.error).to.match(/send a voucher for 92/);
  });

  it("refuses an unfunded payer with 402 InsufficientBalance and a stranger's signature with 403 InvalidSigner", async function () {
    const broke = Wallet.createRandom();
    const pay = createPayingFetch({ now: chainNow, signer: fromEthers(broke), maxPricePerRequest: PRICE });
    const res = await pay(`${gw.running.url}/v1/chat/completions`, { method: "POST", body: JSON.stringify({ model: PER_REQUEST, messages: MESSAGES }) });
    expect(res.status).to.equal(402);
    const body = (await res.json()) as PaymentRequired;
    expect(body.reason).to.deep.equal({ code: 12, name: "InsufficientBalance" });
    // The sentence is the SDK's, read back the same way by the paying fetch.
    expect(body.error).to.equal(reasonSentence(12));
    expect(await readPaymentRefusal(res)).to.deep.equal({ status: 402, code: 12, name: "InsufficientBalance", message: reasonSentence(12) });

    const impostor = createPayingFetch({ now: chainNow, signer: fromEthers(broke), payer: f.payer.address, maxPricePerRequest: PRICE });
    const forged = await impostor(`${gw.running.url}/v1/chat/completions`, { method: "POST", body: JSON.stringify({ model: PER_REQUEST, messages: MESSAGES }) });
    expect(forged.status).to.equal(403);
    expect(((await forged.json()) as PaymentRequired).reason).to.deep.equal({ code: 4, name: "InvalidSigner" });

    // Asked to, the paying fetch throws instead, with the same code and sentence.
    const strict = createPayingFetch({ now: chainNow, signer: fromEthers(broke), payer: f.payer.address, maxPricePerRequest: PRICE, onRefusal: "throw" });
    const error = await strict(`${gw.running.url}/v1/chat/completions`, { method: "POST", body: JSON.stringify({ model: PER_REQUEST, messages: MESSAGES }) }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).to.be.instanceOf(PayingFetchError);
    expect((error as PayingFetchError).refusal).to.deep.equal({ status: 403, code: 4, name: "InvalidSigner", message: reasonSentence(4) });
  });
});
