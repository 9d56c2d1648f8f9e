/**
 * A mock OpenAI-compatible model server with a fixed service time: for tests, the benchmark and
 * the demo. It answers `/v1/chat/completions` and `/v1/completions` (streamed or not, with `usage`
 * when asked, like vLLM, Ollama and llama.cpp's server) and `/v1/models`.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface MockModelServerOptions {
  /** Time before the first byte of every answer, in ms (default 0). */
  serviceTimeMs?: number;
  /** Completion tokens per answer (default 8). */
  completionTokens?: number;
  /** Delay between streamed tokens, in ms (default 0). */
  tokenIntervalMs?: number;
  host?: string;
  port?: number;
  /** Models listed by /v1/models. */
  models?: string[];
  /** Answer 401 to calls without `Authorization: Bearer <apiKey>` (like vLLM's `--api-key`). */
  apiKey?: string;
}

export interface MockModelServer {
  url: string;
  server: Server;
  /** Calls answered so far. */
  readonly calls: number;
  /** The body of the last call answered, as the server parsed it. */
  readonly lastRequest: unknown;
  close(): Promise<void>;
}

/**
 * @example
 * const upstream = await startMockModelServer({ serviceTimeMs: 20 });
 * // point the gateway's --upstream at upstream.url
 */
export async function startMockModelServer(options: MockModelServerOptions = {}): Promise<MockModelServer> {
  const serviceTimeMs = options.serviceTimeMs ?? 0;
  const full = options.completionTokens ?? 8;
  const interval = options.tokenIntervalMs ?? 0;
  let calls = 0;
  let lastRequest: unknown;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const path = (req.url ?? "").split("?")[0];
      if (options.apiKey !== undefined && req.headers.authorization !== `Bearer ${options.apiKey}`) {
        res.writeHead(401, { "content-type": "application/json" });
        return void res.end(JSON.stringify({ error: { message: "invalid API key", type: "invalid_request_error" } }));
      }
      if (req.method === "GET" && path === "/v1/models") {
        const body = JSON.stringify({ object: "list", data: (options.models ?? ["mock-model"]).map((id) => ({ id, object: "model", created: 0, owned_by: "mock" })) });
        res.writeHead(200, { "content-type": "application/json" });
        return void res.end(body);
      }
      if (req.method !== "POST" || (path !== "/v1/chat/completions" && path !== "/v1/completions")) {
        res.writeHead(404, { "content-type": "application/json" });
        return void res.end(JSON.stringify({ error: { message: "not found" } }));
      }
      let request: { model?: string; stream?: boolean; stream_options?: { include_usage?: boolean }; messages?: { content?: string }[]; prompt?: string; max_tokens?: number | null; max_completion_tokens?: number | null };
      try {
        request = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") as typeof request;
      } catch {
        res.writeHead(400, { "content-type": "application/json" });
        return void res.end(JSON.stringify({ error: { message: "body is not JSON" } }));
      }
      calls++;
      const chat = path === "/v1/chat/completions";
      const promptText = chat ? (request.messages ?? []).map((m) => m.content ?? "").join(" ") : (request.prompt ?? "");
      // An answer stops at the request's token limit (the smaller, if it gives both), as a real server's does.
      const limits = [request.max_tokens, request.max_completion_tokens].filter((v): v is number => typeof v === "number");
      const n = limits.length > 0 ? Math.min(full, ...limits) : full;
      const finish = n < full ? "length" : "stop";
      lastRequest = request;
      const usage = { prompt_tokens: Math.max(1, promptText.split(/\s+/).filter(Boolean).length), completion_tokens: n, total_tokens: 0 };
      usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
      const id = `mock-${calls}`;
      const model = request.model ?? "mock-model";
      const words = Array.from({ length: n }, (_, i) => `tok${i}`);
      setTimeout(() => {
        if (!request.stream) {
          const choice = chat
            ? { index: 0, message: { role: "assistant", content: words.join(" ") }, finish_reason: finish }
            : { index: 0, text: words.join(" "), finish_reason: finish };
          const body = JSON.stringify({ id, object: chat ? "chat.completion" : "text_completion", created: 0, model, choices: [choice], usage });
          res.writeHead(200, { "content-type": "application/json" });
          return void res.end(body);
        }
        res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
        const object = chat ? "chat.completion.chunk" : "text_completion";
        const event = (i: number) => {
          const choice = chat ? { index: 0, delta: { content: (i ? " " : "") + words[i] }, finish_reason: i === n - 1 ? finish : null } : { index: 0, text: (i ? " " : "") + words[i], finish_reason: null };
          return `data: ${JSON.stringify({ id, object, created: 0, model, choices: [choice] })}\n\n`;
        };
        let i = 0;
        const next = () => {
          if (i < n) {
            res.write(event(i++));
            if (interval > 0) setTimeout(next, interval);
            else next();
            return;
          }
          if (request.stream_options?.include_usage) res.write(`data: ${JSON.stringify({ id, object, created: 0, model, choices: [], usage })}\n\n`);
          res.end("data: [DONE]\n\n");
        };
        next();
      }, serviceTimeMs);
    });
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    get calls() {
      return calls;
    },
    get lastRequest() {
      return lastRequest;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
