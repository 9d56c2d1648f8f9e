/**
 * Settling a batch asks the chain for each distinct payer's code once, not once per item: a lookup
 * per item made the node do a JSON-RPC call for every paid call served.
 */
import { expect } from "chai";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { network } from "hardhat";
import { deployPreflightFixture } from "../helpers/fixtures";
import { fundedWallet, PER_REQUEST, PRICE, startTestGateway, chainNow } from "../helpers/gateway";
import { devAccount, providerFor } from "../helpers/nodes";
import { startFlakyRpc } from "../helpers/flakyRpc";
import { createPayingFetch, fromEthers } from "@preflight/sdk/fetch";

describe("Gateway settlement code lookups", function () {
  it("looks up one payer's code once for a batch of its requests, and settles them all in one packed transaction", async function () {
    const f = await loadFixture(deployPreflightFixture);
    const rpc = await startFlakyRpc();
    const providerSigner = devAccount(2, providerFor(rpc.url, Number(network.config.chainId ?? 31337)));
    const gw = await startTestGateway(f, { providerSigner, maxAgeMs: 180_000 });
    try {
      const payer = await fundedWallet(f, 1_000_000n);
      const pay = createPayingFetch({ now: chainNow, signer: fromEthers(payer), maxPricePerRequest: PRICE });
      for (let i = 0; i < 6; i++) {
        const r = await pay(`${gw.running.url}/v1/chat/completions`, { method: "POST", body: JSON.stringify({ model: PER_REQUEST, messages: [{ role: "user", content: "hi" }] }) });
        expect(r.status).to.equal(200);
      }
      const before = rpc.calls.get("eth_getCode") ?? 0;
      const batches = await gw.running.close();
      const settled = batches.filter((b) => b.kind === "request").flatMap((b) => b.items).filter((i) => i.reason === 0);
      expect(settled).to.have.length(6);
      expect((rpc.calls.get("eth_getCode") ?? 0) - before).to.equal(1);
      expect(rpc.sent).to.have.length(1);
    } finally {
      await gw.close();
      await rpc.close();
    }
  });
});
