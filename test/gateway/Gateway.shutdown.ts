/**
 * Shutdown settles what is queued: calls served before `close` are on chain when it resolves, new
 * paid calls are refused while closing, and the health check says so.
 */
import { expect } from "chai";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { deployPreflightFixture } from "../helpers/fixtures";
import { fundedWallet, PER_REQUEST, PRICE, startTestGateway, chainNow } from "../helpers/gateway";
import { createPayingFetch, fromEthers } from "@preflight/sdk/fetch";

describe("Gateway shutdown", function () {
  it("settles the whole queue before it exits, even long before the batch would have been due", async function () {
    const f = await loadFixture(deployPreflightFixture);
    const token = await f.usdc.getAddress();
    // Batches of 4, due after 3 minutes (the longest that still leaves signed requests time to settle): only shutdown can settle the remainder.
    const gw = await startTestGateway(f, { maxBatchSize: 4, maxAgeMs: 180_000 });
    const payer = await fundedWallet(f, 1_000_000n);
    const pay = createPayingFetch({ now: chainNow, signer: fromEthers(payer), maxPricePerRequest: PRICE });
    const call = () => pay(`${gw.running.url}/v1/chat/completions`, { method: "POST", body: JSON.stringify({ model: PER_REQUEST, messages: [{ role: "user", content: "hi" }] }) });
    for (let i = 0; i < 10; i++) expect((await call()).status).to.equal(200);

    const healthy = (await (await fetch(`${gw.running.url}/healthz`)).json()) as { status: string; queued: number };
    expect(healthy.status).to.equal("ok");
    expect(healthy.queued).to.be.lessThan(10);

    const closing = gw.running.close();
    await closing;
    await gw.upstream.close();
    expect(await f.preflight.earningsOf(f.provider.address, token)).to.equal(10n * PRICE);
    expect(await f.preflight.balanceOf(payer.address, token)).to.equal(1_000_000n - 10n * PRICE);
  });

  it("exposes decisions, preflight latency and settlement in Prometheus format", async function () {
    const f = await loadFixture(deployPreflightFixture);
    const gw = await startTestGateway(f);
    const payer = await fundedWallet(f, 1_000_000n);
    const pay = createPayingFetch({ now: chainNow, signer: fromEthers(payer), maxPricePerRequest: PRICE });
    const body = JSON.stringify({ model: PER_REQUEST, messages: [{ role: "user", content: "hi" }] });
    await pay(`${gw.running.url}/v1/chat/completions`, { method: "POST", body });
    await fetch(`${gw.running.url}/v1/chat/completions`, { method: "POST", body }); // unpaid: the second 402 (the paying fetch met the first)
    await gw.running.gateway.close();
    const text = await gw.running.gateway.metrics.registry.metrics();
    expect(text).to.match(/preflight_gateway_decisions_total\{scheme="preflight-request",reason="Settled"\} 1/);
    expect(text).to.match(/preflight_gateway_decisions_total\{scheme="none",reason="PaymentRequired"\} 2/);
    expect(text).to.match(/preflight_gateway_preflight_seconds_count\{scheme="preflight-request"\} 1/);
    expect(text).to.match(/preflight_gateway_settled_amount_total\{kind="request"\} 1000/);
    expect(text).to.match(/preflight_gateway_settled_items_total\{kind="request",reason="Settled"\} 1/);
    expect(text).to.match(/preflight_gateway_settlement_gas_total\{kind="request"\} [1-9]/);
    await gw.close();
  });
});
