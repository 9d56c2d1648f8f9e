/** The benchmark's mock model server, in a process of its own: prints `ready <url>`, stops on SIGTERM. */
import { startMockModelServer } from "@preflight/provider/gateway";

startMockModelServer({
  serviceTimeMs: Number(process.env.MOCK_SERVICE_TIME_MS ?? 2),
  completionTokens: Number(process.env.MOCK_COMPLETION_TOKENS ?? 8),
  models: ["bench-fixed", "bench-metered"],
}).then((server) => {
  process.stdout.write(`ready ${server.url}\n`);
  process.once("SIGTERM", () => void server.close().then(() => process.exit(0)));
});
