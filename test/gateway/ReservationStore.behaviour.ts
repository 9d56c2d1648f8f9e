/**
 * The two reservation stores obey the same rules: the in-memory one (one process) and the Redis
 * one (several replicas; exact decimal arithmetic in Lua beyond 2^53 and 2^64).
 */
import { expect } from "chai";
import { MemoryReservationStore, RedisReservationStore, type ReservationStore } from "@preflight/provider/gateway";
import { grantPool } from "../../packages/provider/src/gateway/memoryStore";
import { startRedis, type RedisServer } from "../helpers/redis";

const PAYER = "0x" + "11".repeat(20);
const TOKEN = "0x" + "22".repeat(20);
const BIG = 10n ** 30n; // an 18-decimal balance of 10^12 tokens: beyond 2^64

function behavesAsAReservationStore(make: () => Promise<ReservationStore>): void {
  let store: ReservationStore;
  beforeEach(async function () {
    store = await make();
  });
  afterEach(async function () {
    await store.close();
  });

  it("accepts a nonce once, until the call is cancelled", async function () {
    expect(await store.reserveRequest(PAYER, TOKEN, 7n, 10n, 100n, 60)).to.equal("reserved");
    expect(await store.reserveRequest(PAYER.toUpperCase().replace("0X", "0x"), TOKEN, 7n, 10n, 100n, 60)).to.equal("nonce-used");
    await store.cancelRequest(PAYER, TOKEN, 7n, 10n);
    expect(await store.reserveRequest(PAYER, TOKEN, 7n, 10n, 100n, 60)).to.equal("reserved");
  });

  it("never holds more than the balance, and lets go of settled funds", async function () {
    expect(await store.reserveRequest(PAYER, TOKEN, 1n, 60n, 100n, 60)).to.equal("reserved");
    expect(await store.reserveRequest(PAYER, TOKEN, 2n, 41n, 100n, 60)).to.equal("insufficient-balance");
    expect(await store.reserveRequest(PAYER, TOKEN, 2n, 40n, 100n, 60)).to.equal("reserved");
    await store.releaseFunds(PAYER, TOKEN, 60n);
    expect(await store.reserveRequest(PAYER, TOKEN, 3n, 60n, 100n, 60)).to.equal("reserved");
  });

  it("holds a delegate's spend within its grant's remaining budget, taking nothing when it refuses, and lets it go on cancel and release", async function () {
    const grant = { pool: grantPool(TOKEN, "0x" + "33".repeat(20)), remaining: 100n };
    expect(await store.reserveRequest(PAYER, TOKEN, 1n, 60n, 1_000n, 60, grant)).to.equal("reserved");
    expect(await store.reserveRequest(PAYER, TOKEN, 2n, 41n, 1_000n, 60, grant)).to.equal("budget-exceeded");
    // The refusal took nothing: nonce 2 and the payer's funds are still free.
    expect(await store.reserveRequest(PAYER, TOKEN, 2n, 40n, 1_000n, 60, grant)).to.equal("reserved");
    await store.cancelRequest(PAYER, TOKEN, 2n, 40n, grant.pool);
    expect(await store.reserveRequest(PAYER, TOKEN, 3n, 40n, 1_000n, 60, grant)).to.equal("reserved");
    // Settled: the chain's remaining budget now counts it, and the hold goes.
    await store.releaseFunds(PAYER, grant.pool, 100n);
    expect(await store.reserveRequest(PAYER, TOKEN, 4n, 100n, 1_000n, 60, grant)).to.equal("reserved");
    // Another delegate of the same payer has a budget of its own; the payer's funds still bound both.
    const other = { pool: grantPool(TOKEN, "0x" + "44".repeat(20)), remaining: 10_000n };
    expect(await store.reserveRequest(PAYER, TOKEN, 5n, 801n, 1_000n, 60, other)).to.equal("insufficient-balance"); // 200 held + 801
    expect(await store.reserveRequest(PAYER, TOKEN, 5n, 800n, 1_000n, 60, other)).to.equal("reserved");
  });

  it("holds a delegate's lane raise in its grant's pool with its requests: the increase after its own raise, the whole excess after another signer's", async function () {
    const delegate = "0x" + "33".repeat(20);
    const grant = { pool: grantPool(TOKEN, delegate), remaining: 1_000n };
    const pool = "lane-pool";
    // The payer raises to 300: nothing is held in the delegate's pool.
    expect(await store.raiseCover("lane", PAYER, pool, 300n, 0n, 10_000n, PAYER)).to.deep.equal({ status: "raised", held: 300n, grantHeld: 0n, carried: false });
    // The delegate raises to 500: its claim will charge its grant all 500.
    expect(await store.raiseCover("lane", PAYER, pool, 500n, 0n, 10_000n, delegate, grant)).to.deep.equal({ status: "raised", held: 200n, grantHeld: 500n, carried: false });
    // Its own next raise holds only the increase.
    expect(await store.raiseCover("lane", PAYER, pool, 600n, 0n, 10_000n, delegate, grant)).to.deep.equal({ status: "raised", held: 100n, grantHeld: 100n, carried: true });
    // 600 held: a request of 401 would pass the budget, and so would a raise of 401; neither takes anything.
    expect(await store.reserveRequest(PAYER, TOKEN, 1n, 401n, 10_000n, 60, grant)).to.equal("budget-exceeded");
    expect(await store.raiseCover("lane", PAYER, pool, 1_001n, 0n, 10_000n, delegate, grant)).to.deep.equal({ status: "budget-exceeded" });
    expect((await store.lane("lane")).covered).to.equal(600n);
    expect(await store.reserveRequest(PAYER, TOKEN, 1n, 400n, 10_000n, 60, grant)).to.equal("reserved");
    // Settled: the claim's hold goes, and the budget pays again.
    await store.releaseFunds(PAYER, grant.pool, 600n);
    expect(await store.raiseCover("lane", PAYER, pool, 1_200n, 600n, 10_000n, delegate, grant)).to.deep.equal({ status: "raised", held: 600n, grantHeld: 600n, carried: true });
    // That claim is refused (its grant holds go uncharged): forgotten, the next raise holds the whole excess again.
    await store.releaseFunds(PAYER, grant.pool, 600n);
    await store.forgetLaneGrant("lane");
    const regranted = { ...grant, remaining: 10_000n };
    expect(await store.raiseCover("lane", PAYER, pool, 1_300n, 600n, 10_000n, delegate, regranted)).to.deep.equal({ status: "raised", held: 100n, grantHeld: 700n, carried: false });
    // A payer's raise: its claim charges no grant, so the delegate's next raise holds the whole excess.
    expect((await store.raiseCover("lane", PAYER, pool, 1_350n, 600n, 10_000n, PAYER)).status).to.equal("raised");
    expect(await store.raiseCover("lane", PAYER, pool, 1_360n, 600n, 10_000n, delegate, regranted)).to.deep.equal({ status: "raised", held: 10n, grantHeld: 760n, carried: false });
  });

  it("is exact beyond 2^64", async function () {
    expect(await store.reserveRequest(PAYER, TOKEN, 1n, BIG - 1n, BIG, 60)).to.equal("reserved");
    expect(await store.reserveRequest(PAYER, TOKEN, 2n, 2n, BIG, 60)).to.equal("insufficient-balance");
    expect(await store.reserveRequest(PAYER, TOKEN, 2n, 1n, BIG, 60)).to.equal("reserved");
    await store.releaseFunds(PAYER, TOKEN, BIG - 10n ** 29n); // 10^29 still held
    expect(await store.reserveRequest(PAYER, TOKEN, 3n, BIG - 10n ** 29n + 1n, BIG, 60)).to.equal("insufficient-balance");
    expect(await store.reserveRequest(PAYER, TOKEN, 3n, BIG - 10n ** 29n, BIG, 60)).to.equal("reserved");
  });

  it("raises a lane's cover only upwards, holding the increase over what the lane paid, which it counts as owed", async function () {
    expect(await store.raiseCover("lane", PAYER, TOKEN, 100n, 30n, 1_000n, "0xAB")).to.deep.equal({ status: "raised", held: 70n, grantHeld: 0n, carried: false });
    expect(await store.raiseCover("lane", PAYER, TOKEN, 100n, 30n, 1_000n, "0xab")).to.deep.equal({ status: "stale", covered: 100n });
    // 70 held + (BIG - 100) more would pass a balance of BIG - 31.
    expect(await store.raiseCover("lane", PAYER, TOKEN, BIG, 0n, BIG - 31n, "0xab")).to.deep.equal({ status: "insufficient-balance" });
    expect(await store.raiseCover("lane", PAYER, TOKEN, 250n, 30n, 1_000n, "0xab")).to.deep.equal({ status: "raised", held: 150n, grantHeld: 0n, carried: false });
    expect(await store.lane("lane")).to.deep.equal({ owed: 30n, covered: 250n, held: 0n, signer: "0xab" });
  });

  it("admits calls within the credit limit, counting what is held for calls in flight", async function () {
    await store.raiseCover("lane", PAYER, TOKEN, 100n, 0n, 1_000n, "0xab");
    expect((await store.admit("lane", 60n, 50n)).admitted).to.equal(true); // 0 + 60 <= 150
    expect((await store.admit("lane", 60n, 50n)).admitted).to.equal(true); // 120 <= 150
    const third = await store.admit("lane", 60n, 50n); // 180 > 150
    expect(third).to.deep.equal({ admitted: false, totals: { owed: 0n, covered: 100n, held: 120n, signer: "0xab" } });
    expect(await store.charge("lane", 60n, 45n)).to.deep.include({ owed: 45n, held: 60n });
    expect((await store.admit("lane", 60n, 50n)).admitted).to.equal(false); // 45 + 60 + 60 = 165 > 150
    expect(await store.charge("lane", 60n, 10n)).to.deep.include({ owed: 55n, held: 0n });
    expect((await store.admit("lane", 60n, 50n)).admitted).to.equal(true); // 115
  });

  it("runs one holder of a lock at a time", async function () {
    let inside = 0;
    let most = 0;
    await Promise.all(
      Array.from({ length: 5 }, () =>
        store.withLock("settle", 5_000, async () => {
          most = Math.max(most, ++inside);
          await new Promise((r) => setTimeout(r, 10));
          inside--;
        }),
      ),
    );
    expect(most).to.equal(1);
  });
}

describe("MemoryReservationStore", function () {
  behavesAsAReservationStore(async () => new MemoryReservationStore());
});

describe("RedisReservationStore (a real redis-server)", function () {
  let redis: RedisServer;
  let n = 0;
  before(async function () {
    redis = await startRedis();
  });
  after(async function () {
    await redis?.stop();
  });
  behavesAsAReservationStore(() => RedisReservationStore.connect({ url: redis.url, prefix: `t${n++}:` }));

  it("forgets held funds and grant spend that nothing released, holdTtlSeconds after their payer's last reserve", async function () {
    const store = await RedisReservationStore.connect({ url: redis.url, prefix: `ttl${n++}:`, holdTtlSeconds: 1 });
    try {
      const grant = { pool: grantPool(TOKEN, "0x" + "33".repeat(20)), remaining: 100n };
      expect(await store.reserveRequest(PAYER, TOKEN, 1n, 60n, 100n, 60, grant)).to.equal("reserved");
      await store.releaseFunds(PAYER, TOKEN, 10n); // a release leaves the expiry as it was
      expect(await store.reserveRequest(PAYER, TOKEN, 2n, 51n, 100n, 60)).to.equal("insufficient-balance");
      await new Promise((r) => setTimeout(r, 1_300));
      // A replica that died with these held would otherwise have kept them for good.
      expect(await store.reserveRequest(PAYER, TOKEN, 2n, 100n, 100n, 60, grant)).to.equal("reserved");
      expect(await store.reserveRequest(PAYER, TOKEN, 1n, 1n, 1_000n, 60)).to.equal("nonce-used"); // nonces keep their own expiry
      // A lane's held increase too (the lane's totals stay: they are what the lane owes).
      const pool = "lane-pool";
      expect((await store.raiseCover("a", PAYER, pool, 100n, 0n, 100n, PAYER)).status).to.equal("raised");
      expect((await store.raiseCover("b", PAYER, pool, 1n, 0n, 100n, PAYER)).status).to.equal("insufficient-balance");
      await new Promise((r) => setTimeout(r, 1_300));
      expect((await store.raiseCover("b", PAYER, pool, 1n, 0n, 100n, PAYER)).status).to.equal("raised");
      expect((await store.lane("a")).covered).to.equal(100n);
      // A delegate's lane raise: once its grant hold expired, its next raise holds the whole excess again.
      const delegated = { pool: grantPool(TOKEN, "0x" + "55".repeat(20)), remaining: 1_000n };
      expect(await store.raiseCover("c", PAYER, "c-pool", 100n, 0n, 1_000n, "0x" + "55".repeat(20), delegated)).to.deep.equal({ status: "raised", held: 100n, grantHeld: 100n, carried: false });
      await new Promise((r) => setTimeout(r, 1_300));
      expect(await store.raiseCover("c", PAYER, "c-pool", 150n, 0n, 1_000n, "0x" + "55".repeat(20), delegated)).to.deep.equal({ status: "raised", held: 50n, grantHeld: 150n, carried: false });
    } finally {
      await store.close();
    }
  });

  it("holds a delegate's raise at another replica for the whole excess: the increase only after its own raise through the same store", async function () {
    // Two replicas of one provider: a store each, one Redis.
    const prefix = `replicas${n++}:`;
    const [a, b] = [await RedisReservationStore.connect({ url: redis.url, prefix }), await RedisReservationStore.connect({ url: redis.url, prefix })];
    try {
      const delegate = "0x" + "33".repeat(20);
      const grant = { pool: grantPool(TOKEN, delegate), remaining: 10_000n };
      expect(await a.raiseCover("lane", PAYER, "pool", 500n, 0n, 10_000n, delegate, grant)).to.deep.equal({ status: "raised", held: 500n, grantHeld: 500n, carried: false });
      // Replica a's claim of 500 may be refused and its hold let go without b knowing: b holds all 600.
      expect(await b.raiseCover("lane", PAYER, "pool", 600n, 0n, 10_000n, delegate, grant)).to.deep.equal({ status: "raised", held: 100n, grantHeld: 600n, carried: false });
      expect(await b.raiseCover("lane", PAYER, "pool", 650n, 0n, 10_000n, delegate, grant)).to.deep.equal({ status: "raised", held: 50n, grantHeld: 50n, carried: true });
      // a's refused claim forgets only a's own marker: b's next raise still carries its hold.
      await a.forgetLaneGrant("lane");
      expect(await b.raiseCover("lane", PAYER, "pool", 660n, 0n, 10_000n, delegate, grant)).to.deep.equal({ status: "raised", held: 10n, grantHeld: 10n, carried: true });
      await b.forgetLaneGrant("lane");
      expect(await b.raiseCover("lane", PAYER, "pool", 670n, 0n, 10_000n, delegate, grant)).to.deep.equal({ status: "raised", held: 10n, grantHeld: 670n, carried: false });
      expect(await a.raiseCover("lane", PAYER, "pool", 680n, 0n, 10_000n, delegate, grant)).to.deep.equal({ status: "raised", held: 10n, grantHeld: 680n, carried: false });
      // Behind a round-robin balancer each replica holds what its own claims will charge: its raises'
      // chain, counted from its own last raise (not the lane's), never more than the excess once per replica.
      const other = "0x" + "44".repeat(20);
      const rr = { pool: grantPool(TOKEN, other), remaining: 11_000n };
      const raises = [[a, 3_000n], [b, 4_000n], [a, 5_000n], [b, 6_000n]] as const;
      const held = [];
      for (const [store, cumulative] of raises) held.push((await store.raiseCover("rr", PAYER, "pool", cumulative, 0n, 100_000n, other, rr)) as { grantHeld: bigint });
      expect(held.map((h) => h.grantHeld)).to.deep.equal([3_000n, 4_000n, 2_000n, 2_000n]); // 11,000 held: a 5,000, b 6,000
      expect(await b.raiseCover("rr", PAYER, "pool", 6_001n, 0n, 100_000n, other, rr)).to.deep.equal({ status: "budget-exceeded" });
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("holds a delegate's raise for the whole excess once its own grant hold expired, though another delegate kept raising the lane", async function () {
    const prefix = `ttl-markers${n++}:`;
    const [a, b] = [await RedisReservationStore.connect({ url: redis.url, prefix, holdTtlSeconds: 1 }), await RedisReservationStore.connect({ url: redis.url, prefix, holdTtlSeconds: 1 })];
    try {
      const [d1, d2] = ["0x" + "33".repeat(20), "0x" + "44".repeat(20)];
      const [g1, g2] = [{ pool: grantPool(TOKEN, d1), remaining: 10_000n }, { pool: grantPool(TOKEN, d2), remaining: 10_000n }];
      expect(await a.raiseCover("lane", PAYER, "pool", 100n, 0n, 10_000n, d1, g1)).to.deep.include({ grantHeld: 100n });
      await new Promise((r) => setTimeout(r, 600));
      await b.raiseCover("lane", PAYER, "pool", 200n, 0n, 10_000n, d2, g2); // renews d2's hold, not d1's
      await new Promise((r) => setTimeout(r, 700));
      // d1's hold of 100 expired: its next raise at a must hold all 300 its claim will charge.
      expect(await a.raiseCover("lane", PAYER, "pool", 300n, 0n, 10_000n, d1, g1)).to.deep.include({ grantHeld: 300n, carried: false });
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("refuses a holdTtlSeconds that is not a whole number of seconds >= 1, before connecting", async function () {
    for (const holdTtlSeconds of [0, 1.5, -1, Number.NaN]) {
      await expect(RedisReservationStore.connect({ url: redis.url, holdTtlSeconds })).to.be.rejectedWith(RangeError, "holdTtlSeconds must be a whole number of seconds >= 1");
    }
  });
});
