/**
 * A lane claim refused while a lower voucher of its lane sits in the queue again (its batch's
 * failure was not known to be final, so it was put back): the refused claim's grant holds must not
 * move to that voucher. It charges only up to its own total, every hold goes when it settles, and
 * the store's marker would still count on holds up to the refused claim's total: the lane's next
 * raise would be held for less than its claim charges. The chain is stood in for at the queue's
 * send seam (each batch's outcome scripted); the queue, the store, the batch handler and the lane
 * raises are the gateway's own.
 */
import { expect } from "chai";
import { Reason, type SignedLaneVoucher } from "@preflight/sdk";
import { ChainSettlementQueue } from "../../packages/provider/src/gateway/chainSettlement";
import { MemoryReservationStore, laneFundsPool, laneKeyOf } from "../../packages/provider/src/gateway/memoryStore";
import { laneItem, type QueuedLane } from "../../packages/provider/src/gateway/settlementSends";
import { LaneRaises } from "../../packages/provider/src/gateway/laneRaises";
import { settledBatchHandler } from "../../packages/provider/src/gateway/settledBatches";
import { GatewayMetrics } from "../../packages/provider/src/gateway/metrics";
import { silentLogger } from "../../packages/provider/src/gateway/log";
import type { Hold, HoldReleases } from "../../packages/provider/src/gateway/releases";

const PAYER = "0x" + "11".repeat(20);
const TOKEN = "0x" + "22".repeat(20);
const MODEL = "0x" + "33".repeat(32);
const D = "0x" + "44".repeat(20);
const G = "grant-pool-of-D";
const LANE = laneKeyOf(PAYER, TOKEN);
const voucher = (c: bigint) => ({ payer: PAYER, token: TOKEN, model: MODEL, cumulativeAmount: c, signature: "0x" }) as unknown as SignedLaneVoucher;

function gate<T>() {
  let open!: (v: T) => void;
  const promise = new Promise<T>((r) => (open = r));
  return { promise, open };
}

describe("a refused lane claim while a lower voucher of its lane is back in the queue", function () {
  it("lets the refused claim's grant holds go (and the marker), so the next raise holds what its claim charges", async function () {
    const store = new MemoryReservationStore();
    const queue = new ChainSettlementQueue({ contract: {} as never, token: TOKEN, store, maxAgeMs: 3_600_000, retry: { attempts: 1 } });
    let chainClaimed = 0n;
    const sends: ((b: QueuedLane[]) => Promise<unknown>)[] = [];
    const first = gate<unknown>();
    sends.push(() => first.promise); // F1: V100, RPC down
    sends.push(async (b) => ({ done: b.map((l) => laneItem(l, Reason.InsufficientBalance, 0n)), rest: [], txHash: "0x2", blockNumber: 2, gasUsed: 1n })); // F2: V200 refused
    sends.push(async (b) => {
      const amount = b[0].item.cumulativeAmount - chainClaimed;
      chainClaimed = b[0].item.cumulativeAmount;
      return { done: b.map((l) => laneItem(l, Reason.Settled, amount)), rest: [], txHash: "0x3", blockNumber: 3, gasUsed: 1n };
    }); // F3: V100 settles
    (queue as unknown as { sends: unknown }).sends = {
      lanes: (b: QueuedLane[]) => sends.shift()!(b),
      rpc: () => ({ getBlockNumber: async () => 1, getTransactionCount: async () => 0 }),
      providerAddressOf: async () => PAYER,
      providerLogs: async () => [],
    };
    const raises = new LaneRaises(() => undefined);
    queue.subscribe(
      settledBatchHandler({
        laneRaises: raises,
        forgetLaneGrant: (lane) => void store.forgetLaneGrant(lane),
        settlement: queue,
        metrics: new GatewayMetrics(),
        log: silentLogger,
        releases: { release: (holds: Hold[]) => holds.forEach((h) => void store.releaseFunds(h.payer, h.pool, h.amount)) } as unknown as HoldReleases,
        closing: () => false,
      }),
    );
    const grant = { pool: G, remaining: 1_000n };
    const raise = async (c: bigint, claimed: bigint) => {
      const cover = await store.raiseCover(LANE, PAYER, laneFundsPool(TOKEN), c, claimed, 10_000n, D, grant);
      if (cover.status !== "raised") throw new Error(cover.status);
      queue.enqueueLaneVoucher(voucher(c), cover.held, { pool: G, amount: cover.grantHeld });
    };
    // What D's grant pool holds, probed: the largest request it still admits within the budget of 1,000.
    let nonce = 0n;
    const pool = async (): Promise<bigint> => {
      for (let held = 0n; held <= 1_000n; held += 50n) {
        const n = nonce++;
        if ((await store.reserveRequest(PAYER, TOKEN, n, 1_000n - held, 1_000_000n, 60, grant)) === "reserved") {
          await store.cancelRequest(PAYER, TOKEN, n, 1_000n - held, G);
          return held;
        }
      }
      return 1_000n;
    };

    await raise(100n, 0n);
    const f1 = queue.flush(); // V100 taken
    await raise(200n, 0n); // carried: holds 100
    const f2 = queue.flush(); // V200 taken, waits behind F1
    first.open({ error: { code: "NETWORK_ERROR" } }); // F1 out of retries: V100 back in the queue
    await f1;
    await f2; // V200 refused: no voucher at or above 200 here, so its holds go and the marker is forgotten
    await queue.flush(); // V100 settles (charges 100), releasing all 200 of D's holds
    expect(chainClaimed).to.equal(100n);
    expect(await pool()).to.equal(0n);

    await raise(300n, chainClaimed); // before the fix the marker still said "D up to 200" here: held 100
    const chainWillCharge = 300n - chainClaimed; // 200
    expect(await pool(), "D's grant pool holds less than V300's claim will charge D").to.be.gte(chainWillCharge);
    await queue.close().catch(() => undefined);
  });
});
