/**
 * Forwarding to the model server with undici (connection pool, keep-alive, streaming bodies), and
 * the SSE pass-through that meters a stream: every event goes on as it arrives, except the last
 * one carrying `usage` (and `[DONE]`), which wait for the charge so the payment response can ride
 * in that last event.
 */
import { Pool, type Dispatcher } from "undici";
import { Transform, type TransformCallback } from "node:stream";
import type { IncomingHttpHeaders } from "node:http";
import type { Usage } from "./pricing";

// Hop-by-hop headers (RFC 9110 section 7.6.1), plus what must not reach the model server.
// The client's accept-encoding too: answers are metered from their text, so the model server answers uncompressed.
const DROP_REQUEST = new Set(["connection", "keep-alive", "proxy-authorization", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host", "content-length", "payment-signature", "expect", "accept-encoding"]);
// With the provider's own key for the model server, the client's credentials (the `openai` client always sends one) stay out.
const DROP_REQUEST_WITH_KEY = new Set([...DROP_REQUEST, "authorization", "api-key", "x-api-key"]);
const DROP_RESPONSE = new Set(["connection", "keep-alive", "transfer-encoding", "trailer", "upgrade", "content-length"]);

export interface UpstreamOptions {
  /** Connections kept to the model server (default 256). */
  connections?: number;
  /** Wait at most this long for the response headers (default 300 s: models queue). */
  headersTimeoutMs?: number;
  /** Wait at most this long between body chunks (default 300 s). */
  bodyTimeoutMs?: number;
  /**
   * The model server's API key (vLLM `--api-key`, a hosted OpenAI-compatible API): sent as
   * `Authorization: Bearer <key>` on every call, in place of whatever credentials the client sent.
   */
  apiKey?: string;
}

/** The model server behind the gateway. */
export class Upstream {
  private readonly pool: Pool;
  private readonly basePath: string;
  private readonly drop: Set<string>;
  private readonly authorization: string | undefined;

  constructor(url: string, options: UpstreamOptions = {}) {
    const u = new URL(url);
    this.basePath = u.pathname.replace(/\/$/, "");
    this.drop = options.apiKey ? DROP_REQUEST_WITH_KEY : DROP_REQUEST;
    this.authorization = options.apiKey ? `Bearer ${options.apiKey}` : undefined;
    this.pool = new Pool(u.origin, {
      connections: options.connections ?? 256,
      headersTimeout: options.headersTimeoutMs ?? 300_000,
      bodyTimeout: options.bodyTimeoutMs ?? 300_000,
    });
  }

  /** Sends a request; the response body is a stream the caller must consume or destroy. */
  request(method: string, path: string, headers: IncomingHttpHeaders, body: Uint8Array | undefined): Promise<Dispatcher.ResponseData> {
    const out: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(headers)) if (v !== undefined && !this.drop.has(k)) out[k] = v;
    out["accept-encoding"] = "identity";
    if (this.authorization) out.authorization = this.authorization;
    return this.pool.request({ method: method as Dispatcher.HttpMethod, path: this.basePath + path, headers: out, body: body && body.length > 0 ? body : undefined });
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/** Response headers safe to pass back to the client, less those `drop` names (e.g. the model server's CORS headers when the gateway has its own policy). */
export function responseHeaders(headers: Dispatcher.ResponseData["headers"], drop?: (name: string) => boolean): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined && !DROP_RESPONSE.has(k) && !drop?.(k)) out[k] = v;
  return out;
}

/**
 * Passes SSE events through, holding back the `usage` event and `[DONE]` until `finish(usage)`
 * resolves with the fields to add to the last event. A stream without a `usage` event gets one
 * (`choices: []`, like OpenAI's), with the count of content events as completion tokens; `progress.events`
 * follows that count as events pass (what a stream cut short delivered).
 */
export function meterStream(finish: (usage: Usage, reported: boolean) => Promise<Record<string, unknown>>, progress?: { events: number }): Transform {
  let buffer = "";
  let usageEvent: Record<string, unknown> | undefined;
  let done = false;
  let contentEvents = 0;
  const emitLast = async (push: (s: string) => void): Promise<void> => {
    const usage = (usageEvent?.usage as Usage | undefined) ?? { prompt_tokens: 0, completion_tokens: contentEvents };
    const extra = await finish(usage, usageEvent !== undefined);
    push(`data: ${JSON.stringify({ ...(usageEvent ?? { object: "chat.completion.chunk", choices: [], usage }), ...extra })}\n\n`);
    if (done) push("data: [DONE]\n\n");
  };
  return new Transform({
    transform(chunk: Buffer, _enc, callback: TransformCallback) {
      buffer += chunk.toString("utf8");
      let out = "";
      let end: number;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = event.startsWith("data:") ? event.slice(5).trim() : undefined;
        if (data === "[DONE]") {
          done = true;
          continue;
        }
        if (data !== undefined && data.includes('"usage"') && !/"usage"\s*:\s*null/.test(data)) {
          try {
            usageEvent = JSON.parse(data) as Record<string, unknown>;
            continue;
          } catch {
            // not JSON: pass it on as it is
          }
        }
        if (data !== undefined) contentEvents++;
        if (progress) progress.events = contentEvents;
        out += event + "\n\n";
      }
      callback(null, out.length > 0 ? out : undefined);
    },
    flush(callback: TransformCallback) {
      const parts: string[] = [];
      if (buffer.trim().length > 0) parts.push(buffer.endsWith("\n") ? buffer + "\n" : buffer + "\n\n");
      emitLast((s) => parts.push(s)).then(
        () => callback(null, parts.join("")),
        (e: unknown) => callback(e as Error),
      );
    },
  });
}
