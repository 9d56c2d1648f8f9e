/**
 * A JSON-RPC endpoint on 127.0.0.1 in front of the in-process Hardhat node that fails on command:
 * it can refuse requests before they reach the node (an RPC that is down: 502), or pass a
 * transaction to the node and then drop the connection before the answer (the transaction is
 * mined, the sender never hears of it), or answer gas estimates and calls as reverted (a failure
 * no retry cures). Every call is counted by method.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { network } from "hardhat";

/**
 * What happens to the next `eth_sendRawTransaction`: refused before the node sees it, mined with the
 * answer lost, or answered with an error of unknown meaning (JSON-RPC -32603) after the node mined it
 * or without passing it on.
 */
export type SendFault = "refuse" | "drop-response" | "error-after-send" | "error-without-send";

export interface FlakyRpc {
  url: string;
  /** Faults for the next sends, in order (each send takes one; then sends go through). */
  sendFaults: SendFault[];
  /** Refuse this many more requests of any method (after the send faults are applied). */
  refuseNext: number;
  /** Answer this many more `eth_call` / `eth_estimateGas` requests with "execution reverted". */
  revertNext: number;
  /** Refuse (502) the next this-many requests of a method, e.g. `{ eth_getLogs: 1 }`. */
  refuseNextOf: Record<string, number>;
  /** Requests seen, by method (including refused ones). */
  calls: Map<string, number>;
  /** Transactions the node accepted. */
  sent: string[];
  close(): Promise<void>;
}

interface RpcCall {
  id: number | string;
  method: string;
  params?: unknown[];
}

export async function startFlakyRpc(): Promise<FlakyRpc> {
  const state: Omit<FlakyRpc, "url" | "close"> = { sendFaults: [], refuseNext: 0, revertNext: 0, refuseNextOf: {}, calls: new Map(), sent: [] };
  const answer = async (call: RpcCall): Promise<unknown> => {
    try {
      return { jsonrpc: "2.0", id: call.id, result: await network.provider.request({ method: call.method, params: call.params ?? [] }) };
    } catch (e) {
      const error = e as { code?: number; message?: string; data?: unknown };
      return { jsonrpc: "2.0", id: call.id, error: { code: error.code ?? -32000, message: error.message ?? String(e), data: error.data } };
    }
  };
  const server: Server = createServer((req, res) => {
    let raw = "";
    req.on("data", (d: Buffer) => (raw += d.toString()));
    req.on("end", () => {
      void (async () => {
        const body = JSON.parse(raw) as RpcCall | RpcCall[];
        const calls = Array.isArray(body) ? body : [body];
        for (const c of calls) state.calls.set(c.method, (state.calls.get(c.method) ?? 0) + 1);
        const sends = calls.some((c) => c.method === "eth_sendRawTransaction");
        const fault = sends ? state.sendFaults.shift() : undefined;
        const refusedMethod = calls.find((c) => (state.refuseNextOf[c.method] ?? 0) > 0)?.method;
        if (refusedMethod !== undefined) state.refuseNextOf[refusedMethod]!--;
        if (fault === "refuse" || refusedMethod !== undefined || (fault === undefined && state.refuseNext > 0)) {
          if (fault === undefined && refusedMethod === undefined) state.refuseNext--;
          res.writeHead(502, { "content-type": "text/plain" });
          return void res.end("bad gateway");
        }
        const answers = [];
        if (fault === "error-without-send") {
          res.writeHead(200, { "content-type": "application/json" });
          const error = (c: RpcCall) => ({ jsonrpc: "2.0", id: c.id, error: { code: -32603, message: "internal error" } });
          return void res.end(JSON.stringify(Array.isArray(body) ? calls.map(error) : error(calls[0]!)));
        }
        for (const c of calls) {
          if ((c.method === "eth_call" || c.method === "eth_estimateGas") && state.revertNext > 0) {
            state.revertNext--;
            answers.push({ jsonrpc: "2.0", id: c.id, error: { code: 3, message: "execution reverted", data: "0x" } });
            continue;
          }
          const a = await answer(c);
          if (c.method === "eth_sendRawTransaction" && (a as { result?: string }).result) state.sent.push((a as { result: string }).result);
          answers.push(a);
        }
        if (fault === "drop-response") return void res.socket?.destroy();
        if (fault === "error-after-send") {
          for (const [i, c] of calls.entries()) if (c.method === "eth_sendRawTransaction") answers[i] = { jsonrpc: "2.0", id: c.id, error: { code: -32603, message: "internal error" } };
        }
        const json = JSON.stringify(Array.isArray(body) ? answers : answers[0]);
        res.writeHead(200, { "content-type": "application/json" });
        res.end(json);
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}
