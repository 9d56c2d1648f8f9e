/**
 * Sends the settlement transactions of a provider key held in this process, without ethers'
 * transaction objects: ethers serialises a transaction through JavaScript arrays of bytes (about
 * 3 µs per calldata byte, several times per send, and again to parse what it sent), which for a
 * batch of 500 requests blocked the gateway's event loop for seconds. Here the EIP-1559 transaction
 * is RLP-encoded into one buffer, hashed and signed once, and sent and awaited through plain
 * JSON-RPC calls. The hash is known before the send, so a lost answer is looked up, never re-sent.
 *
 * The gas limit comes from what earlier settlements of the same function used per calldata byte,
 * checked by one `eth_call` at that limit, and from `eth_estimateGas` only when there is no such
 * history or the check fails: a node's estimate is a binary search that executes the transaction
 * some twenty times (on anvil, 0.45 s of CPU for a 500-request batch, against 0.02 s to execute it).
 */
import { secp256k1 } from "@noble/curves/secp256k1";
import { keccak256Bytes, toHex } from "../crypto";

/** The JSON-RPC the sender needs (an ethers `JsonRpcProvider` has it). */
export interface JsonRpcSend {
  send(method: string, params: unknown[]): Promise<unknown>;
}

/**
 * JSON-RPC over HTTP with Node's `fetch`: the request body is encoded and the answer decoded natively.
 * ethers' provider encodes every request body to UTF-8 in JavaScript, a character at a time: for a
 * settlement's ~100 KB of hex calldata (the `eth_call` check and the send), several milliseconds of
 * the gateway's event loop per call. Errors keep the shapes the settlement retry logic reads
 * (`isTransient`): an HTTP failure is a `SERVER_ERROR`, a node's refusal keeps its message (and
 * `data`), a revert is a `CALL_EXCEPTION`, a balance too low for the gas `INSUFFICIENT_FUNDS`.
 * @example
 * const sender = new RawTransactionSender(fetchJsonRpc("http://127.0.0.1:8545"), key, 31337n);
 */
export function fetchJsonRpc(url: string, headers: Record<string, string> = {}, timeoutMs = 300_000): JsonRpcSend {
  let id = 0;
  const sendHeaders = { ...headers, "content-type": "application/json" };
  return {
    async send(method: string, params: unknown[]): Promise<unknown> {
      const response = await fetch(url, { method: "POST", headers: sendHeaders, body: JSON.stringify({ jsonrpc: "2.0", id: ++id, method, params }), signal: AbortSignal.timeout(timeoutMs) });
      if (!response.ok) {
        await response.arrayBuffer().catch(() => undefined);
        throw Object.assign(new Error(`bad response (${response.status}) from ${method}`), { code: "SERVER_ERROR", status: response.status });
      }
      const answer = (await response.json()) as { result?: unknown; error?: { code?: number; message?: string; data?: unknown } };
      if (answer.error) throw rpcError(method, answer.error);
      return answer.result;
    },
  };
}

function rpcError(method: string, error: { code?: number; message?: string; data?: unknown }): Error {
  const message = String(error.message ?? "JSON-RPC error");
  const reverted = (method === "eth_call" || method === "eth_estimateGas") && (/revert/i.test(message) || (typeof error.data === "string" && error.data.length > 2));
  const code = reverted ? "CALL_EXCEPTION" : /insufficient funds/i.test(message) ? "INSUFFICIENT_FUNDS" : undefined;
  return Object.assign(new Error(`${method}: ${message}`), { code, error, data: error.data });
}

/**
 * The provider's own connection as a `fetchJsonRpc`, when it is a plain HTTP JSON-RPC provider
 * (an ethers `JsonRpcProvider` whose requests no hook rewrites); otherwise the provider itself.
 */
export function fastJsonRpcOf(provider: JsonRpcSend): JsonRpcSend {
  const connection = (provider as { _getConnection?: () => FetchRequestLike })._getConnection?.();
  if (!connection || !/^https?:/i.test(connection.url) || connection.preflightFunc || connection.processFunc || connection.retryFunc) return provider;
  const headers = { ...connection.headers };
  for (const h of Object.keys(headers)) if (/^(content-length|content-type|accept-encoding)$/i.test(h)) delete headers[h];
  return fetchJsonRpc(connection.url, headers, connection.timeout);
}

/** What `fastJsonRpcOf` reads of an ethers `FetchRequest`. */
interface FetchRequestLike {
  url: string;
  headers: Record<string, string>;
  timeout: number;
  preflightFunc: unknown;
  processFunc: unknown;
  retryFunc: unknown;
}

/** What a settlement needs of a receipt. */
export interface RawReceipt {
  hash: string;
  blockNumber: number;
  gasUsed: bigint;
  logs: { address: string; topics: string[]; data: string; transactionHash: string; blockNumber: number }[];
}

/** The transaction reverted: not a transient failure (the retry logic does not send it again). */
export class TransactionRevertedError extends Error {
  readonly code = "CALL_EXCEPTION";
  constructor(readonly hash: string) {
    super(`transaction ${hash} reverted`);
    this.name = "TransactionRevertedError";
  }
}

type Rlp = Uint8Array | Rlp[];

/**
 * @example
 * const sender = new RawTransactionSender(jsonRpcProvider, wallet.signingKey.privateKey, 8453n);
 * const receipt = await sender.send(contractAddress, calldata);
 */
export class RawTransactionSender {
  private readonly key: Uint8Array;
  /** The sending address (lowercase). */
  readonly address: string;
  /** Per function (`to` and selector) and calldata size class: gas per calldata byte of the last settlements. */
  private readonly gasPerByte = new Map<string, number[]>();

  constructor(
    private readonly rpc: JsonRpcSend,
    privateKey: string,
    private readonly chainId: bigint,
    private readonly pollMs = 50,
  ) {
    this.key = Buffer.from(privateKey.replace(/^0x/, ""), "hex");
    const publicKey = secp256k1.getPublicKey(this.key, false);
    this.address = "0x" + toHex(keccak256Bytes(publicKey.subarray(1)).subarray(12));
  }

  /** Finds a gas limit (`gasLimit`), signs, sends one transaction calling `to` with `data`, and waits for its receipt. */
  async send(to: string, data: string, timeoutMs = 180_000): Promise<RawReceipt> {
    const from = this.address;
    const [nonce, gasLimit, block, tip] = await Promise.all([
      this.rpc.send("eth_getTransactionCount", [from, "pending"]),
      this.gasLimit(to, data),
      this.rpc.send("eth_getBlockByNumber", ["latest", false]),
      this.rpc.send("eth_maxPriorityFeePerGas", []).catch(() => "0x3b9aca00"), // 1 gwei where the node has no opinion
    ]);
    const baseFee = BigInt((block as { baseFeePerGas?: string } | null)?.baseFeePerGas ?? "0x0");
    const priority = BigInt(tip as string);
    const fields: Rlp[] = [
      int(this.chainId),
      int(BigInt(nonce as string)),
      int(priority),
      int(baseFee * 2n + priority),
      int(gasLimit),
      Buffer.from(to.slice(2), "hex"),
      int(0n),
      Buffer.from(data.slice(2), "hex"),
      [],
    ];
    const unsigned = Buffer.concat([Buffer.from([2]), rlp(fields)]);
    const signature = secp256k1.sign(keccak256Bytes(unsigned), this.key, { lowS: true });
    const raw = Buffer.concat([Buffer.from([2]), rlp([...fields, int(BigInt(signature.recovery)), int(signature.r), int(signature.s)])]);
    const hash = "0x" + toHex(keccak256Bytes(raw));
    try {
      await this.rpc.send("eth_sendRawTransaction", ["0x" + raw.toString("hex")]);
    } catch (error) {
      // The node already has it (an earlier answer was lost): wait for it like any other.
      if (!/already known|known transaction/i.test(String((error as Error)?.message ?? error))) throw error;
    }
    const receipt = await this.wait(hash, timeoutMs);
    this.learnGas(to, data, receipt.gasUsed);
    return receipt;
  }

  /**
   * The gas limit to send `data` to `to` with: enough gas, as checked at the current state, plus a
   * tenth (state may move before inclusion). What is checked is the most gas per calldata byte of
   * the last settlements of the same function and size class (plus a fixed allowance), with one
   * `eth_call`; without such history, or when that call fails (too little gas for this batch, or a
   * revert), `eth_estimateGas` (which then reports a revert as before).
   */
  private async gasLimit(to: string, data: string): Promise<bigint> {
    const from = this.address;
    const history = this.gasPerByte.get(gasKey(to, data));
    if (history !== undefined) {
      const enough = BigInt(Math.ceil(Math.max(...history) * dataBytes(data))) + FIXED_GAS_ALLOWANCE;
      const fits = await this.rpc.send("eth_call", [{ from, to, data, gas: "0x" + enough.toString(16) }, "latest"]).then(
        () => true,
        () => false,
      );
      if (fits) return enough + enough / 10n;
    }
    const estimate = BigInt((await this.rpc.send("eth_estimateGas", [{ from, to, data }])) as string);
    return estimate + estimate / 10n;
  }

  private learnGas(to: string, data: string, gasUsed: bigint): void {
    const key = gasKey(to, data);
    const history = this.gasPerByte.get(key) ?? [];
    history.push(Number(gasUsed) / dataBytes(data));
    if (history.length > GAS_HISTORY) history.shift();
    this.gasPerByte.set(key, history);
  }

  /** Polls for the receipt of `hash`; throws `TransactionRevertedError` when it reverted. */
  async wait(hash: string, timeoutMs: number): Promise<RawReceipt> {
    const deadline = Date.now() + timeoutMs;
    for (let delay = this.pollMs; ; delay = Math.min(delay * 2, 1_000)) {
      const r = (await this.rpc.send("eth_getTransactionReceipt", [hash])) as {
        status: string;
        blockNumber: string;
        gasUsed: string;
        logs: { address: string; topics: string[]; data: string; transactionHash: string; blockNumber: string }[];
      } | null;
      if (r) {
        if (BigInt(r.status) !== 1n) throw new TransactionRevertedError(hash);
        return {
          hash,
          blockNumber: Number(BigInt(r.blockNumber)),
          gasUsed: BigInt(r.gasUsed),
          logs: r.logs.map((l) => ({ address: l.address, topics: l.topics, data: l.data, transactionHash: l.transactionHash, blockNumber: Number(BigInt(l.blockNumber)) })),
        };
      }
      if (Date.now() > deadline) throw Object.assign(new Error(`no receipt for ${hash} after ${timeoutMs} ms`), { code: "TIMEOUT" });
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

/** Settlements remembered per function for the gas limit (the most gas per byte among them is used). */
const GAS_HISTORY = 16;
/** Gas a settlement may need beyond its per-byte share (the transaction's base cost, first writes of the call). */
const FIXED_GAS_ALLOWANCE = 100_000n;

/** The function called, and the calldata's size to within a factor of two (a batch's fixed costs weigh more per byte in a small one). */
function gasKey(to: string, data: string): string {
  return `${to.toLowerCase()}${data.slice(0, 10).toLowerCase()}:${Math.floor(Math.log2(dataBytes(data)))}`;
}

function dataBytes(data: string): number {
  return Math.max(1, (data.length - 2) / 2);
}

/** A big-endian integer without leading zeros (RLP's form; zero is the empty string). */
function int(value: bigint): Uint8Array {
  if (value === 0n) return new Uint8Array(0);
  const hex = value.toString(16);
  return Buffer.from(hex.length % 2 ? "0" + hex : hex, "hex");
}

function rlp(item: Rlp): Buffer {
  if (item instanceof Uint8Array) {
    if (item.length === 1 && item[0]! < 0x80) return Buffer.from(item);
    return Buffer.concat([length(item.length, 0x80), item]);
  }
  const body = Buffer.concat(item.map(rlp));
  return Buffer.concat([length(body.length, 0xc0), body]);
}

function length(n: number, offset: number): Buffer {
  if (n < 56) return Buffer.from([offset + n]);
  const bytes = int(BigInt(n));
  return Buffer.concat([Buffer.from([offset + 55 + bytes.length]), bytes]);
}

/**
 * The calldata of `fn(address, bytes)` (`settlePacked`, `claimLanesPacked`), ABI-encoded with
 * Buffer copies: ethers' encoder parses and re-hexes the bytes one at a time (~10 ms per 48 KB).
 * @example
 * const data = addressBytesCall(preflight.interface.getFunction("settlePacked")!.selector, token, packed);
 */
export function addressBytesCall(selector: string, address: string, bytes: string): string {
  const payload = Buffer.from(bytes.slice(2), "hex");
  const padded = Math.ceil(payload.length / 32) * 32;
  const out = Buffer.alloc(4 + 32 * 3 + padded);
  Buffer.from(selector.slice(2), "hex").copy(out, 0);
  Buffer.from(address.slice(2), "hex").copy(out, 4 + 12);
  out.writeUInt32BE(0x40, 4 + 32 + 28);
  out.writeUInt32BE(payload.length, 4 + 64 + 28);
  payload.copy(out, 4 + 96);
  return "0x" + out.toString("hex");
}
