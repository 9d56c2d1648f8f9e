/**
 * Settlement survives a flaky RPC: sends that never reach the node, and sends the node mined but
 * whose answer was lost, are retried with backoff; what a lost send settled is read back from the
 * chain, not sent again. Every served item settles exactly once, and shutdown still settles the
 * whole queue. A batch that fails for good lets its requests' holds go (nothing will debit them),
 * and a lane voucher's hold carries over to the lane's next voucher, whose claim takes the same
 * increase.
 */
import { expect } from "chai";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { ethers, network } from "hardhat";
import { deployPreflightFixture, type PreflightFixture } from "../helpers/fixtures";
import { fundedLane, fundedWallet, METERED, PER_REQUEST, PRICE, startTestGateway, chainNow } from "../helpers/gateway";
import { devAccount, providerFor } from "../helpers/nodes";
import { startFlakyRpc } from "../helpers/flakyRpc";
import { createPayingFetch, fromEthers } from "@preflight/sdk/fetch";
import { Reason, signLaneVoucher, type SignedRequest } from "@preflight/sdk";
import { ChainSettlementQueue, MemoryReservationStore, type SettlementBatch } from "@preflight/provider/gateway";
import { makeRequest, signedRequest } from "../helpers/requests";

/** A settlement queue whose provider key reaches the chain only through a flaky RPC. */
async function queueOverFlakyRpc() {
  const f = await loadFixture(deployPreflightFixture);
  const token = await f.usdc.getAddress();
  const rpc = await startFlakyRpc();
  const providerSigner = devAccount(2, providerFor(rpc.url, Number(network.config.chainId ?? 31337)));
  const queue = new ChainSettlementQueue({ contract: f.preflight.connect(providerSigner), token, store: new MemoryReservationStore(), maxAgeMs: 3_600_000, retry: { attempts: 2, baseDelayMs: 10, maxDelayMs: 20 } });
  return { f, token, rpc, queue };
}

/** Requests the fixture's payer signed, one per nonce. */
async function payerRequests(f: PreflightFixture, nonces: bigint[]): Promise<SignedRequest[]> {
  const token = await f.usdc.getAddress();
  const signed: SignedRequest[] = [];
  for (const nonce of nonces) signed.push((await signedRequest(f.payer, f.domain, await makeRequest({ payer: f.payer.address, provider: f.provider.address, token, nonce }))) as SignedRequest);
  return signed;
}

/** A lane of `funds` for the fixture's `other` key, and a signer of its (compact) vouchers. */
async function fundedLaneVouchers(f: PreflightFixture, funds: bigint) {
  const token = await f.usdc.getAddress();
  const model = ethers.id("model-metered");
  const laner = f.other;
  await f.preflight.connect(f.payer).depositToLane(laner.address, f.provider.address, token, funds);
  return async (cumulativeAmount: bigint) => ({
    payer: laner.address, token, model, cumulativeAmount,
    signature: await signLaneVoucher(laner, f.domain, { payer: laner.address, provider: f.provider.address, token, model, cumulativeAmount }, true),
  });
}

describe("Gateway settlement over a flaky RPC", function () {
  it("retries lost and refused sends, never sends an item twice, and settles everything on shutdown", async function () {
    const f = await loadFixture(deployPreflightFixture);
    const token = await f.usdc.getAddress();
    const rpc = await startFlakyRpc();
    // The provider's key signs locally and talks to the chain only through the flaky endpoint.
    const providerSigner = devAccount(2, providerFor(rpc.url, Number(network.config.chainId ?? 31337)));
    expect(providerSigner.address).to.equal(f.provider.address);
    const gw = await startTestGateway(f, { providerSigner, maxAgeMs: 180_000, settlementRetry: { baseDelayMs: 20, maxDelayMs: 200 } });
    try {
      const payer = await fundedWallet(f, 1_000_000n);
      const laner = await fundedLane(f, 1_000_000n);
      const pay = createPayingFetch({ now: chainNow, signer: fromEthers(payer), maxPricePerRequest: PRICE });
      const meter = createPayingFetch({ now: chainNow, signer: fromEthers(laner), maxPricePerRequest: 0n, maxLaneTotal: 10_000n });
      const call = (fetcher: typeof pay, model: string) =>
        fetcher(`${gw.running.url}/v1/chat/completions`, { method: "POST", body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }] }) }).then((r) => r.status);
      for (let i = 0; i < 5; i++) expect(await call(pay, PER_REQUEST)).to.equal(200);
      for (let i = 0; i < 2; i++) expect(await call(meter, METERED)).to.equal(200);
      const signed = meter.lanes()[0]!.signed;

      // The requests' batch is mined but its answer lost; the lane claim first finds the RPC down,
      // then is mined with its answer lost; collectLanes finds the RPC down once; and a few reads fail.
      rpc.sendFaults.push("drop-response", "refuse", "drop-response", "refuse");
      rpc.refuseNext = 3;
      const batches = await gw.running.close();
      expect([rpc.sendFaults.length, rpc.refuseNext]).to.deep.equal([0, 0]); // every fault was met

      const requests = batches.filter((b) => b.kind === "request");
      const settledNonces = requests.flatMap((b) => b.items).filter((i) => i.reason === 0);
      expect(settledNonces).to.have.length(5);
      expect(requests.every((b) => b.error === undefined && (b.attempts ?? 1) > 1)).to.equal(true);
      const claims = batches.filter((b) => b.kind === "lane").flatMap((b) => b.items);
      expect(claims.map((c) => [c.reason, c.amount])).to.deep.equal([[0, signed]]);
      expect(batches.filter((b) => b.kind === "collect").map((b) => [b.error, b.collected])).to.deep.equal([[undefined, signed]]);

      // One transaction each for the requests, the claim and the collection reached the chain.
      expect(rpc.sent).to.have.length(3);
      expect(await f.preflight.earningsOf(f.provider.address, token)).to.equal(5n * PRICE + signed);
      expect(await f.preflight.balanceOf(payer.address, token)).to.equal(1_000_000n - 5n * PRICE);
      const [claimed, , uncollected] = await f.preflight.laneOf(laner.address, f.provider.address, token);
      expect([claimed, uncollected]).to.deep.equal([signed, 0n]);
    } finally {
      await gw.close();
      await rpc.close();
    }
  });

  it("counts a batch whose send is being retried as settling in /healthz, not as settled", async function () {
    const f = await loadFixture(deployPreflightFixture);
    const rpc = await startFlakyRpc();
    const providerSigner = devAccount(2, providerFor(rpc.url, Number(network.config.chainId ?? 31337)));
    // Batches of 3; the first send finds the RPC down and waits 300 ms before its retry.
    const gw = await startTestGateway(f, { providerSigner, maxBatchSize: 3, maxAgeMs: 180_000, settlementRetry: { baseDelayMs: 300, maxDelayMs: 300 } });
    try {
      const payer = await fundedWallet(f, 1_000_000n);
      const pay = createPayingFetch({ now: chainNow, signer: fromEthers(payer), maxPricePerRequest: PRICE });
      const health = async () => (await (await fetch(`${gw.running.url}/healthz`)).json()) as { queued: number; settling: number };
      rpc.sendFaults.push("refuse");
      for (let i = 0; i < 3; i++) {
        const r = await pay(`${gw.running.url}/v1/chat/completions`, { method: "POST", body: JSON.stringify({ model: PER_REQUEST, messages: [{ role: "user", content: "hi" }] }) });
        expect(r.status).to.equal(200);
      }
      // The third call filled the batch (queued once its response is written): it leaves the queue
      // and is under way until its retry lands, 300 ms later.
      const deadline = Date.now() + 10_000;
      while ((await health()).queued !== 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      expect(await health()).to.deep.equal({ status: "ok", queued: 0, settling: 3 });
      while ((await health()).settling !== 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
      expect(await health()).to.deep.equal({ status: "ok", queued: 0, settling: 0 });
      expect(rpc.sendFaults).to.have.length(0);
      expect(await f.preflight.earningsOf(f.provider.address, await f.usdc.getAddress())).to.equal(3n * PRICE);
    } finally {
      await gw.close();
      await rpc.close();
    }
  });

  it("lets a payer's funds pay again once its batch fails for good (the holds of a reverted batch are released)", async function () {
    const f = await loadFixture(deployPreflightFixture);
    const rpc = await startFlakyRpc();
    const providerSigner = devAccount(2, providerFor(rpc.url, Number(network.config.chainId ?? 31337)));
    const gw = await startTestGateway(f, { providerSigner, maxBatchSize: 2, maxAgeMs: 180_000 });
    try {
      const payer = await fundedWallet(f, 2n * PRICE); // two calls' worth
      const pay = createPayingFetch({ now: chainNow, signer: fromEthers(payer), maxPricePerRequest: PRICE });
      const call = () => pay(`${gw.running.url}/v1/chat/completions`, { method: "POST", body: JSON.stringify({ model: PER_REQUEST, messages: [{ role: "user", content: "hi" }] }) }).then((r) => r.status);
      const failures = async () => /preflight_gateway_settlement_failures_total\{kind="request"\} (\d+)/.exec(await (await fetch(`${gw.running.url}/metrics`)).text())?.[1];
      expect(await call()).to.equal(200);
      // The second call fills the batch; its gas estimate comes back reverted.
      rpc.revertNext = 1;
      expect(await call()).to.equal(200);
      const deadline = Date.now() + 20_000;
      while ((await failures()) !== "1" && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(await failures()).to.equal("1");
      expect(rpc.revertNext).to.equal(0);
      expect(rpc.sent).to.have.length(0); // nothing reached the chain: the payer still has both calls' funds
      // Before the fix the two holds stayed and this call got 402 until the gateway restarted.
      let status = 0;
      while ((status = await call()) !== 200 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(status).to.equal(200);
    } finally {
      await gw.close();
      await rpc.close();
    }
  });

  it("reports the requests and lane claims a failed batch gave up on with their holds, moving a delegate's grant hold to the lane's queued voucher", async function () {
    const { f, token, rpc, queue } = await queueOverFlakyRpc();
    try {
      const requests = await payerRequests(f, [0n, 1n]);
      queue.enqueueRequest(requests[0]!, 1_000n);
      queue.enqueueRequest(requests[1]!, 1_000n, "grant-pool");
      rpc.revertNext = 1;
      const [failed] = await queue.flush();
      expect(failed!.error).to.not.equal(undefined);
      expect(failed!.items).to.deep.equal([]);
      expect(failed!.dropped).to.deep.equal([
        { kind: "request", payer: f.payer.address, token, held: 1_000n, grantHolds: undefined },
        { kind: "request", payer: f.payer.address, token, held: 1_000n, grantHolds: [{ pool: "grant-pool", amount: 1_000n }] },
      ]);
      expect(queue.queuedCount).to.equal(0); // a failure no retry cures is not sent again

      const laner = f.other;
      const voucher = await fundedLaneVouchers(f, 10_000n);
      queue.enqueueLaneVoucher(await voucher(300n), 300n, { pool: "grant-pool", amount: 300n });
      rpc.revertNext = 1;
      const [claimFailed] = await queue.flush();
      expect(claimFailed!.error).to.not.equal(undefined);
      // Nothing else of the lane is queued: its holds go (every raise is checked against the lane's
      // funds for its whole excess, and the gateway has the store forget the delegate's grant hold,
      // so that the next raise holds the whole excess again).
      expect(claimFailed!.dropped).to.deep.equal([{ kind: "lane", payer: laner.address, token, held: 300n, grantHolds: [{ pool: "grant-pool", amount: 300n }] }]);
      queue.enqueueLaneVoucher(await voucher(500n), 200n, { pool: "grant-pool", amount: 500n });
      expect(queue.queuedAmount).to.equal(200n);
      // That claim fails too, while the lane's next voucher (the same key's, holding its increase) is
      // already queued: the grant hold moves to it, since its claim charges the whole excess.
      rpc.revertNext = 1;
      const failing = queue.flush();
      queue.enqueueLaneVoucher(await voucher(600n), 100n, { pool: "grant-pool", amount: 100n });
      const [failedAgain] = await failing;
      expect(failedAgain!.dropped).to.deep.equal([{ kind: "lane", payer: laner.address, token, held: 200n, grantHolds: undefined }]);
      const [claimed] = await queue.flush();
      expect(claimed!.error).to.equal(undefined);
      const grantHeld = claimed!.items[0]!.grantHolds!.reduce((sum, g) => sum + g.amount, 0n);
      expect([claimed!.items[0]!.amount, claimed!.items[0]!.held, grantHeld]).to.deep.equal([600n, 100n, 600n]); // all the claim charged the grant
    } finally {
      await queue.close();
      await rpc.close();
    }
  });

  it("reads back a batch whose send was mined but answered with an unknown error, and reports it settled, not given up", async function () {
    const { f, rpc, queue } = await queueOverFlakyRpc();
    try {
      for (const request of await payerRequests(f, [0n, 1n])) queue.enqueueRequest(request, 1_000n);
      rpc.sendFaults.push("error-after-send");
      const [batch] = await queue.flush();
      expect(rpc.sendFaults).to.have.length(0);
      expect(rpc.sent).to.have.length(1); // mined once, never sent again
      // Given up, its holds would have been released while the chain had spent the funds.
      expect([batch!.error, batch!.dropped, batch!.items.map((i) => i.reason)]).to.deep.equal([undefined, undefined, [0, 0]]);
      expect(batch!.blockNumber).to.be.a("number");
    } finally {
      await queue.close();
      await rpc.close();
    }
  });

  it("moves the grant hold of a lane claim the contract refused to the lane's queued voucher, whose claim charges the whole excess", async function () {
    const f = await loadFixture(deployPreflightFixture);
    const token = await f.usdc.getAddress();
    const queue = new ChainSettlementQueue({ contract: f.preflight.connect(f.provider), token, store: new MemoryReservationStore(), maxAgeMs: 3_600_000 });
    try {
      const voucher = await fundedLaneVouchers(f, 100n);
      // 300 is more than the lane's 100: the claim is refused (InsufficientBalance), charging no grant.
      queue.enqueueLaneVoucher(await voucher(300n), 300n, { pool: "grant-pool", amount: 300n });
      const flushing = queue.flush();
      queue.enqueueLaneVoucher(await voucher(350n), 50n, { pool: "grant-pool", amount: 50n });
      const [refused] = await flushing;
      expect(refused!.items.map((i) => [i.reason, i.grantHolds])).to.deep.equal([[Reason.InsufficientBalance, undefined]]);
      // Refused again, with nothing of the lane queued: the item keeps every hold, for the gateway to let go.
      const [again] = await queue.flush();
      expect(again!.items.map((i) => [i.reason, i.held, i.grantHolds])).to.deep.equal([[Reason.InsufficientBalance, 50n, [{ pool: "grant-pool", amount: 50n }, { pool: "grant-pool", amount: 300n }]]]);
    } finally {
      await queue.close();
    }
  });

  it("puts a batch back in the queue when its failure is not known to be final, so nothing served is lost", async function () {
    const { f, rpc, queue } = await queueOverFlakyRpc();
    try {
      // An error of unknown meaning, the transaction never passed on: neither given up nor forgotten.
      for (const request of await payerRequests(f, [0n, 1n])) queue.enqueueRequest(request, 1_000n);
      rpc.sendFaults.push("error-without-send");
      const [unknown] = await queue.flush();
      expect([unknown!.error !== undefined, unknown!.dropped, queue.queuedCount]).to.deep.equal([true, undefined, 2]);
      // A revert whose read-back failed: what an earlier attempt did is not known, so back to the queue too.
      rpc.revertNext = 1;
      rpc.refuseNextOf = { eth_getLogs: 1 };
      const [unread] = await queue.flush();
      expect([unread!.error !== undefined, unread!.dropped, queue.queuedCount, rpc.refuseNextOf.eth_getLogs]).to.deep.equal([true, undefined, 2, 0]);
      const [settled] = await queue.flush();
      expect(settled!.items.map((i) => i.reason)).to.deep.equal([0, 0]);
    } finally {
      await queue.close();
      await rpc.close();
    }
  });

  it("moves a given-up lane claim's grant hold to the lane's next voucher when a later flush took it (it is sent after)", async function () {
    const f = await loadFixture(deployPreflightFixture);
    const token = await f.usdc.getAddress();
    const rpc = await startFlakyRpc();
    const providerSigner = devAccount(2, providerFor(rpc.url, Number(network.config.chainId ?? 31337)));
    // Batches of one voucher: each enqueue starts a flush, the second waiting behind the first.
    const queue = new ChainSettlementQueue({ contract: f.preflight.connect(providerSigner), token, store: new MemoryReservationStore(), maxBatchSize: 1, maxAgeMs: 3_600_000, retry: { attempts: 2, baseDelayMs: 10, maxDelayMs: 20 } });
    const batches: SettlementBatch[] = [];
    queue.subscribe((b) => batches.push(b));
    try {
      const voucher = await fundedLaneVouchers(f, 10_000n);
      rpc.revertNext = 1; // the first claim reverts in its gas estimate: given up
      queue.enqueueLaneVoucher(await voucher(300n), 300n, { pool: "grant-pool", amount: 300n }); // a delegate's first raise: the whole excess
      queue.enqueueLaneVoucher(await voucher(500n), 200n, { pool: "grant-pool", amount: 200n }); // its next: the increase
      const deadline = Date.now() + 20_000;
      while (batches.filter((b) => b.kind === "lane").length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const [failed, claimed] = batches.filter((b) => b.kind === "lane");
      const sum = (holds: { amount: bigint }[] | undefined) => (holds ?? []).reduce((s, g) => s + g.amount, 0n);
      // Released uncharged, the 300 would have left the claim of 500 held for 200 only.
      expect([sum(failed!.dropped![0]!.grantHolds), claimed!.items[0]!.amount, sum(claimed!.items[0]!.grantHolds)]).to.deep.equal([0n, 500n, 500n]);
    } finally {
      await queue.close();
      await rpc.close();
    }
  });
});
