/**
 * The gateway benchmark's fixed-rate runs must offer the rate they name: requests spread evenly
 * over the run, not each second's share sent in a burst at the start of the second (what
 * autocannon's rate limit does, which made "half load" a measure of saturation).
 */
import { expect } from "chai";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { openLoop } from "../../bench/openLoop";

describe("Bench: open-loop load at a fixed rate", function () {
  this.timeout(20_000);
  let server: Server;
  let url: string;
  let arrivals: number[];
  let paid: (string | undefined)[];

  beforeEach(async function () {
    arrivals = [];
    paid = [];
    server = createServer((req, res) => {
      arrivals.push(performance.now());
      paid.push(req.headers["payment-signature"] as string | undefined);
      req.resume();
      req.once("end", () => setTimeout(() => res.end("{}"), 2));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterEach(async function () {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it("spreads a second's requests over the second instead of sending them in one burst", async function () {
    const rate = 400;
    const started = performance.now();
    const r = await openLoop({ url, path: "/v1/chat/completions", body: "{}", rate, seconds: 1, connections: 32 });
    expect(r.issued).to.equal(rate);
    expect(r.latencies).to.have.length(rate);
    expect(r.non2xx + r.errors).to.equal(0);
    // A burst puts nearly all of them in the first tenth of the second; evenly spread, each 200 ms
    // window holds about 80 (a stall of the generator on a busy machine may double one window).
    const windows = [0, 0, 0, 0, 0];
    for (const t of arrivals) windows[Math.min(4, Math.floor((t - started) / 200))]!++;
    for (const n of windows) expect(n).to.be.within(20, 160);
    expect(arrivals[arrivals.length - 1]! - arrivals[0]!).to.be.greaterThan(750);
    // Latency is the server's 2 ms and a little, not the wait behind a burst.
    expect(r.latencies[Math.floor(r.latencies.length / 2)]!).to.be.below(20);
  });

  it("gives request k the k-th headers and its connection slot's context (lanes keep per-client state there)", async function () {
    const slots: number[] = [];
    await openLoop({
      url,
      path: "/v1/chat/completions",
      body: "{}",
      rate: 200,
      seconds: 0.1,
      connections: 4,
      perRequest: (k, ctx) => {
        ctx.slot ??= slots.length;
        if (ctx.slot === slots.length) slots.push(k);
        return { "payment-signature": `p${k}:s${String(ctx.slot)}` };
      },
    });
    expect(paid).to.have.length(20);
    expect(new Set(paid).size).to.equal(20);
    expect(slots).to.deep.equal([0, 1, 2, 3]);
    for (const h of paid) {
      const [, k, s] = /^p(\d+):s(\d+)$/.exec(h!)!;
      expect(Number(s)).to.equal(Number(k) % 4);
    }
  });
});
