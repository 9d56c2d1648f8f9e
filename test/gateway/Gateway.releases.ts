/**
 * What a settled batch held is released once the chain shows it, per payer: a payer whose balance
 * covers three calls is served a third call after its first two settled in one batch (held 2 x price
 * while unsettled; released, the on-chain balance alone counts). Without the release the gateway
 * would count the settled calls twice (held and debited) and refuse the payer's remaining balance.
 */
import { expect } from "chai";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { deployPreflightFixture } from "../helpers/fixtures";
import { fundedWallet, PER_REQUEST, PRICE, startTestGateway, chainNow } from "../helpers/gateway";
import { createPayingFetch, fromEthers } from "@preflight/sdk/fetch";

describe("Gateway releases", function () {
  it("releases a settled batch's holds, so a payer's remaining balance pays for its next call", async function () {
    const f = await loadFixture(deployPreflightFixture);
    const token = await f.usdc.getAddress();
    // Batches of 2: the second call sends both of the payer's calls in one settlement.
    const gw = await startTestGateway(f, { maxBatchSize: 2, maxAgeMs: 180_000 });
    try {
      const payer = await fundedWallet(f, 3n * PRICE);
      const pay = createPayingFetch({ now: chainNow, signer: fromEthers(payer), maxPricePerRequest: PRICE });
      const call = () => pay(`${gw.running.url}/v1/chat/completions`, { method: "POST", body: JSON.stringify({ model: PER_REQUEST, messages: [{ role: "user", content: "hi" }] }) });
      for (let i = 0; i < 2; i++) expect((await call()).status).to.equal(200);
      const deadline = Date.now() + 20_000;
      while ((await f.preflight.balanceOf(payer.address, token)) !== PRICE && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(await f.preflight.balanceOf(payer.address, token)).to.equal(PRICE);
      // Once the batch is reported and the verifier has followed its block (polls every 50 ms; a
      // verifier that had not would still count the old balance, and the hold alone would pass the
      // call), the balance left on chain is the payer's to spend only if the holds were released.
      while ((await (await fetch(`${gw.running.url}/healthz`)).json()).settling !== 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 1_000));
      expect((await call()).status).to.equal(200);
      // The balance is spent: a fourth call is refused.
      expect((await call()).status).to.equal(402);
    } finally {
      await gw.close();
    }
  });
});
