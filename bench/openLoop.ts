/**
 * An open-loop load generator for the gateway benchmark's fixed-rate runs: requests go out evenly
 * spaced in time (checked every millisecond), whether or not earlier ones have been answered, over
 * a pool of keep-alive connections; each latency runs from the request's issue to the end of its
 * response body.
 *
 * Why not autocannon's `overallRate`: it gives each connection a budget per second, reset by a
 * one-second timer that all connections start together, and each connection spends its budget as
 * fast as it can. Every second then begins with all connections in flight back to back until the
 * second's share is served, and the server idles for the rest of it: a "half load" run measures
 * latency at saturation for most of its calls (about connections / maximum rate, by Little's law),
 * not at half load.
 */
import { Pool } from "undici";

export interface OpenLoopOptions {
  /** Origin, e.g. http://127.0.0.1:8402. */
  url: string;
  path: string;
  body: string;
  headers?: Record<string, string>;
  /** Requests per second, issued evenly. */
  rate: number;
  seconds: number;
  /** Keep-alive connections at most (a request finding them all busy waits for one, and that wait counts). */
  connections: number;
  /**
   * Extra headers for the k-th request; `context` is one object per connection slot (request k gets
   * slot k mod connections), for callers that keep state per client, as with autocannon's contexts.
   */
  perRequest?: (k: number, context: Record<string, unknown>) => Record<string, string> | undefined;
}

export interface OpenLoopResult {
  /** Latencies of 2xx answers, in ms, sorted. */
  latencies: number[];
  issued: number;
  non2xx: number;
  errors: number;
  /** How late requests went out against their even schedule (the generator's own delays), in ms. */
  lagP99Ms: number;
  lagMaxMs: number;
}

/**
 * @example
 * const r = await openLoop({ url, path: "/v1/chat/completions", body, rate: 500, seconds: 5, connections: 32 });
 * console.log(r.latencies[Math.floor(r.latencies.length / 2)]);
 */
export async function openLoop(options: OpenLoopOptions): Promise<OpenLoopResult> {
  const pool = new Pool(options.url, { connections: options.connections, pipelining: 1 });
  const contexts = Array.from({ length: options.connections }, () => ({}) as Record<string, unknown>);
  const total = Math.max(1, Math.round(options.rate * options.seconds));
  const interval = 1000 / options.rate;
  const latencies: number[] = [];
  const lags: number[] = [];
  let issued = 0;
  let settled = 0;
  let non2xx = 0;
  let errors = 0;
  const started = performance.now();
  await new Promise<void>((resolve) => {
    const send = (k: number, now: number): void => {
      lags.push(now - (started + k * interval));
      const headers = { ...options.headers, ...options.perRequest?.(k, contexts[k % contexts.length]!) };
      pool
        .request({ method: "POST", path: options.path, headers, body: options.body })
        .then(
          async (response) => {
            await response.body.arrayBuffer();
            if (response.statusCode >= 200 && response.statusCode < 300) latencies.push(performance.now() - now);
            else non2xx++;
          },
          () => errors++,
        )
        .finally(() => {
          if (++settled === total) resolve();
        });
    };
    const tick = (): void => {
      const now = performance.now();
      // Everything due by now (more than one when the rate exceeds 1,000/s or the timer was late).
      const due = Math.min(total, Math.floor((now - started) / interval) + 1);
      while (issued < due) send(issued++, now);
      if (issued < total) setTimeout(tick, Math.max(1, Math.floor(started + issued * interval - performance.now())));
    };
    tick();
  });
  await pool.close();
  latencies.sort((a, b) => a - b);
  lags.sort((a, b) => a - b);
  return {
    latencies,
    issued,
    non2xx,
    errors,
    lagP99Ms: lags[Math.min(lags.length - 1, Math.floor(0.99 * lags.length))] ?? 0,
    lagMaxMs: lags[lags.length - 1] ?? 0,
  };
}
