/**
 * A lane claim whose delegate grant holds go uncharged (refused, given up) while a raise of the
 * same lane is under way at this gateway: the store has run the raise, holding only its increase
 * (it counted on those holds), but its voucher is not queued yet, so the settlement queue could not
 * move the holds to it. They must reach that voucher, not be let go; and a raise must not read the
 * store's marker while a forget of it is on its way.
 */
import { expect } from "chai";
import type { CoverOutcome, GrantHold, SettlementBatch } from "@preflight/provider/gateway";
import { Reason } from "@preflight/sdk";
import { LaneRaises } from "../../packages/provider/src/gateway/laneRaises";
import { settledBatchHandler } from "../../packages/provider/src/gateway/settledBatches";
import { laneKeyOf } from "../../packages/provider/src/gateway/memoryStore";
import type { HoldReleases, Hold } from "../../packages/provider/src/gateway/releases";
import { GatewayMetrics } from "../../packages/provider/src/gateway/metrics";
import { silentLogger } from "../../packages/provider/src/gateway/log";

const PAYER = "0x" + "11".repeat(20);
const TOKEN = "0x" + "22".repeat(20);
const LANE = laneKeyOf(PAYER, TOKEN);
const HOLD: GrantHold = { pool: "grant-pool", amount: 300n };

/** A promise settled from outside. */
function gate<T>(): { promise: Promise<T>; open: (value: T) => void } {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => (open = resolve));
  return { promise, open };
}

const raised = (carried: boolean): CoverOutcome => ({ status: "raised", held: 50n, grantHeld: 50n, carried });

describe("lane raises under way, and the grant holds a refused claim of their lane leaves", function () {
  let leftOver: [string, string, GrantHold[], boolean][];
  let raises: LaneRaises;
  beforeEach(function () {
    leftOver = [];
    raises = new LaneRaises((lane, payer, holds, forget) => leftOver.push([lane, payer, holds, forget]));
  });

  it("gives the holds to the raise that counted on them (carried), and lets nothing go", async function () {
    const store = gate<CoverOutcome>();
    const queued: GrantHold[][] = [];
    const running = raises.run(LANE, PAYER, () => store.promise, (_cover, carried) => queued.push(carried));
    expect(raises.park(LANE, [HOLD])).to.equal(true);
    store.open(raised(true));
    await running;
    expect([queued, leftOver]).to.deep.equal([[[HOLD]], []]);
  });

  it("lets them go after a raise that did not count on them, forgetting the marker only when no raise since made one", async function () {
    const whole = gate<CoverOutcome>();
    const queued: GrantHold[][] = [];
    const first = raises.run(LANE, PAYER, () => whole.promise, (_c, carried) => queued.push(carried));
    raises.park(LANE, [HOLD]);
    whole.open(raised(false)); // it held the whole excess itself: its marker is fresh
    await first;
    expect([queued, leftOver]).to.deep.equal([[[]], [[LANE, PAYER, [HOLD], false]]]);

    leftOver = [];
    const stale = gate<CoverOutcome>();
    const second = raises.run(LANE, PAYER, () => stale.promise, () => expect.fail("a stale raise queues nothing"));
    raises.park(LANE, [HOLD]);
    stale.open({ status: "stale", covered: 500n });
    await second;
    expect(leftOver).to.deep.equal([[LANE, PAYER, [HOLD], true]]);
  });

  it("parks nothing when no raise of the lane runs here (the holds go, as before)", function () {
    expect(raises.park(LANE, [HOLD])).to.equal(false);
    expect(raises.park(LANE, [])).to.equal(false);
  });

  it("makes a raise that begins while a forget is on its way wait for it", async function () {
    const forgetting = gate<void>();
    const order: string[] = [];
    raises.forget(LANE, () => forgetting.promise.then(() => void order.push("forgot")), () => expect.fail("no error"));
    const raise = raises.run(LANE, PAYER, async () => (order.push("raised"), raised(false)), () => undefined);
    await new Promise((r) => setTimeout(r, 20));
    expect(order).to.deep.equal([]);
    forgetting.open();
    await raise;
    expect(order).to.deep.equal(["forgot", "raised"]);
  });

  it("tries a forget that failed again until it lands, the lane's raises waiting (a marker left in place would count on holds that are gone)", async function () {
    raises = new LaneRaises(() => undefined, { baseMs: 5, maxMs: 10 });
    const errors: unknown[] = [];
    const order: string[] = [];
    let failures = 2;
    raises.forget(LANE, async () => {
      if (failures-- > 0) throw new Error("Connection is closed.");
      order.push("forgot");
    }, (e) => errors.push(e));
    expect((await raises.run(LANE, PAYER, async () => (order.push("raised"), raised(false)), () => undefined)).status).to.equal("raised");
    expect([order, errors.length]).to.deep.equal([["forgot", "raised"], 2]);
    // Shutting down, a forget that keeps failing is given up after its try under way.
    raises.forget(LANE, () => Promise.reject(new Error("down")), () => undefined);
    await raises.close();
  });

  it("lets go of parked holds a raise took when its voucher could not be queued", async function () {
    const store = gate<CoverOutcome>();
    const running = raises.run(LANE, PAYER, () => store.promise, () => {
      throw new Error("the settlement queue is closed");
    });
    raises.park(LANE, [HOLD]);
    store.open(raised(true));
    await expect(running).to.be.rejectedWith("closed");
    // And the marker is forgotten: it names a raise whose voucher no claim here carries.
    expect(leftOver).to.deep.equal([[LANE, PAYER, [HOLD], true]]);
  });

  it("the settled-batch handler parks a refused claim's grant holds while a raise of its lane runs, instead of releasing them and forgetting", async function () {
    const released: Hold[][] = [];
    const forgotten: string[] = [];
    const handle = settledBatchHandler({
      laneRaises: raises,
      forgetLaneGrant: (lane) => forgotten.push(lane),
      settlement: { queuedAmount: 0n },
      metrics: new GatewayMetrics(),
      log: silentLogger,
      releases: { release: (holds: Hold[]) => released.push(holds) } as unknown as HoldReleases,
      closing: () => false,
    });
    const refused = (): SettlementBatch => ({
      kind: "lane",
      gasUsed: 1n,
      blockNumber: 1,
      items: [{ kind: "lane", payer: PAYER, token: TOKEN, amount: 0n, reason: Reason.InsufficientBalance, held: 20n, grantHolds: [HOLD] }],
    });
    const store = gate<CoverOutcome>();
    const queued: GrantHold[][] = [];
    const running = raises.run(LANE, PAYER, () => store.promise, (_c, carried) => queued.push(carried));
    handle(refused());
    // The lane's funds hold goes; the grant hold waits for the raise, and the marker stays.
    expect([released, forgotten]).to.deep.equal([[[{ payer: PAYER, pool: `lane:${TOKEN}`, amount: 20n }]], []]);
    store.open(raised(true));
    await running;
    expect(queued).to.deep.equal([[HOLD]]);
    // With no raise under way: released with the claim, and the marker forgotten.
    handle(refused());
    expect(released[1]).to.deep.include({ payer: PAYER, pool: "grant-pool", amount: 300n });
    expect(forgotten).to.deep.equal([LANE]);
  });
});
