/**
 * Attributes every unit of a transaction's `gasUsed` to a verification step, from the transaction's
 * own execution trace (`debug_traceTransaction`, opcode struct logs), and checks that the steps add
 * up exactly to the receipt.
 *
 *   gasUsed = max(intrinsic + execution - refund, EIP-7623 floor)
 *   intrinsic = 21,000 + 4 per zero / 16 per non-zero calldata byte
 *   floor     = 21,000 + 10 * (zero bytes + 4 * non-zero bytes)
 *   execution = sum over every opcode of the gas it consumed (a call: its own cost and the gas its
 *               callee did not return, minus what the callee's opcodes consumed themselves)
 *   refund    = the EIP-3529 SSTORE refunds, computed from each slot's value before the transaction,
 *               capped at a fifth of the gas used
 *
 * Each opcode goes to one step: KECCAK256 to "hashing" unless its result is a storage key of a
 * known mapping (then to that slot's step); SLOAD/SSTORE to the step owning the slot; a call to the
 * ecrecover precompile (or into an ERC-1271 wallet) to "recovery"; LOGn to "events"; the cost of a
 * call into a token to "balances"; everything else (dispatch, ABI decoding, stack, memory, locks)
 * to "rest". SSTORE refunds are credited back to the step of the slot that earned them.
 */
import { network, ethers } from "hardhat";
import type { TransactionReceipt } from "ethers";
import { emptySteps, type Step, type Steps, type SlotRegistry } from "./slots";

interface StructLog {
  depth: number;
  gas: number;
  gasCost: number;
  op: string;
  stack: string[];
}

interface Trace {
  failed: boolean;
  gas: number;
  structLogs: StructLog[];
}

const TX_BASE = 21_000;
const CALLS = new Set(["CALL", "CALLCODE", "STATICCALL", "DELEGATECALL"]);
const HALTS = new Set(["STOP", "RETURN", "REVERT", "SELFDESTRUCT", "INVALID"]);

/** Calldata bytes and the EIP-2028 / EIP-7623 figures of `data`. */
export function calldataCost(data: string): { bytes: number; intrinsic: number; floor: number } {
  const raw = ethers.getBytes(data);
  let zeros = 0;
  for (const b of raw) if (b === 0) zeros++;
  const nonZeros = raw.length - zeros;
  return {
    bytes: raw.length,
    intrinsic: TX_BASE + 4 * zeros + 16 * nonZeros,
    floor: TX_BASE + 10 * (zeros + 4 * nonZeros),
  };
}

/** A stack word as 0x-hex: Hardhat gives bare hex, anvil 0x-prefixed. */
const top = (log: StructLog, n = 0): string => {
  const word = log.stack[log.stack.length - 1 - n]!;
  return word.startsWith("0x") ? word : "0x" + word;
};

/** Thrown when a node returns no opcode trace, with what to do about it. */
export class TraceUnavailableError extends Error {}
const asAddress = (word: string): string => ethers.getAddress("0x" + word.slice(-40));

/** EIP-2200 / EIP-3529 refund delta of one SSTORE. */
function sstoreRefund(original: bigint, current: bigint, next: bigint): number {
  if (current === next) return 0;
  let refund = 0;
  if (original === current) {
    if (original !== 0n && next === 0n) refund += 4_800;
    return refund;
  }
  if (original !== 0n) {
    if (current === 0n) refund -= 4_800;
    else if (next === 0n) refund += 4_800;
  }
  if (original === next) refund += original === 0n ? 20_000 - 100 : 5_000 - 2_100 - 100;
  return refund;
}

/** The result of attributing one transaction. */
export interface Attribution {
  gasUsed: number;
  calldataBytes: number;
  steps: Steps;
}

/**
 * Traces `receipt`'s transaction and attributes its gas. Throws if the steps do not add up exactly
 * to the receipt's `gasUsed` (or if a reverted sub-call wrote storage, which this model does not undo).
 */
export async function attribute(receipt: TransactionReceipt, registry: SlotRegistry): Promise<Attribution> {
  const tx = await ethers.provider.getTransaction(receipt.hash);
  if (tx === null || tx.to === null) throw new Error("attribute: only calls are supported");
  const trace = (await network.provider.send("debug_traceTransaction", [
    receipt.hash,
    { disableMemory: true, disableStorage: true },
  ])) as Trace;
  if (trace.failed) throw new Error(`attribute: transaction ${receipt.hash} failed`);
  const logs = trace.structLogs;
  if (logs === undefined || logs.length === 0) {
    // anvil records opcode steps only when started with --steps-tracing; without it every trace is empty.
    throw new TraceUnavailableError(
      "the node returned an empty opcode trace (anvil records one only when started with --steps-tracing: restart it as anvil --steps-tracing)",
    );
  }
  const steps = emptySteps();

  // Frames: the code address (whose step rules apply) and the storage address of each depth.
  const frames: { code: string; storage: string; whole?: Step }[] = [];
  frames[1] = { code: tx.to, storage: tx.to, whole: registry.wholeContractStep(tx.to) };
  const pendingStores: { index: number; storage: string; key: string; value: bigint; step: Step }[] = [];

  // For each call that entered code: where its caller resumes.
  const resumeAt = new Map<number, number>();
  {
    const open: number[] = [];
    for (let i = 0; i < logs.length; i++) {
      const d = logs[i]!.depth;
      while (open.length > 0 && logs[open[open.length - 1]!]!.depth >= d) resumeAt.set(open.pop()!, i);
      const next = logs[i + 1];
      if (next !== undefined && next.depth > d) open.push(i);
    }
    if (open.length > 0) throw new Error("attribute: unterminated call in trace");
  }

  let execution = 0;
  for (let i = 0; i < logs.length; i++) {
    const log = logs[i]!;
    const frame = frames[log.depth]!;
    const next = logs[i + 1];
    let consumed: number;
    let step: Step = "rest";
    if (next !== undefined && next.depth > log.depth) {
      // A call (or create) that ran code: its own cost is what the caller lost minus what the callee used.
      const resume = resumeAt.get(i)!;
      let lastChild = resume - 1;
      while (logs[lastChild]!.depth !== log.depth + 1) lastChild--;
      const last = logs[lastChild]!;
      const childUsed = next.gas - (HALTS.has(last.op) ? last.gas - last.gasCost : 0);
      consumed = log.gas - logs[resume]!.gas - childUsed;
      const target = CALLS.has(log.op) ? asAddress(top(log, 1)) : "";
      const storage = log.op === "DELEGATECALL" || log.op === "CALLCODE" ? frame.storage : target;
      const whole = frame.whole ?? registry.wholeContractStep(target);
      frames[log.depth + 1] = { code: target, storage, whole };
      if (whole !== undefined) step = whole;
      else if (registry.isToken(target)) step = "balances";
      if (last.op === "REVERT" && pendingStores.some((s) => s.index > i && s.index < resume)) {
        throw new Error("attribute: a reverted sub-call wrote storage; refunds would be wrong");
      }
    } else {
      consumed = next !== undefined && next.depth === log.depth ? log.gas - next.gas : log.gasCost;
      if (frame.whole !== undefined) step = frame.whole;
      else if (log.op === "SLOAD") step = registry.slotStep(frame.storage, top(log)) ?? "rest";
      else if (log.op === "SSTORE") {
        step = registry.slotStep(frame.storage, top(log)) ?? "rest";
        pendingStores.push({ index: i, storage: frame.storage, key: top(log), value: BigInt(top(log, 1)), step });
      } else if (log.op === "KECCAK256") step = (next && registry.hashStep(top(next))) ?? "hashing";
      else if (log.op.startsWith("LOG")) step = "events";
      else if (CALLS.has(log.op)) {
        const target = BigInt(top(log, 1));
        if (target === 1n) step = "recovery";
      }
    }
    steps[step] += consumed;
    execution += consumed;
  }
  if (execution !== trace.structLogs[0]!.gas - remainingAtEnd(logs)) throw new Error("attribute: execution gas mismatch");

  // Refunds, from each written slot's value before this transaction (one transaction per block).
  let refund = 0;
  const current = new Map<string, bigint>();
  const original = new Map<string, bigint>();
  for (const s of pendingStores) {
    const id = `${s.storage}:${s.key}`;
    if (!original.has(id)) {
      const v = BigInt(await ethers.provider.getStorage(s.storage, s.key, receipt.blockNumber - 1));
      original.set(id, v);
      current.set(id, v);
    }
    const delta = sstoreRefund(original.get(id)!, current.get(id)!, s.value);
    current.set(id, s.value);
    refund += delta;
    steps[s.step] -= delta;
  }
  const { bytes, intrinsic, floor } = calldataCost(tx.data);
  steps.intrinsic = intrinsic;
  const beforeRefund = intrinsic + execution;
  const cap = Math.floor(beforeRefund / 5);
  if (refund > cap) {
    steps.rest += refund - cap; // the refund cap takes back what the steps were credited above it
    refund = cap;
  }
  let total = beforeRefund - refund;
  if (total < floor) {
    steps.intrinsic += floor - total; // EIP-7623: calldata-heavy transactions pay the floor
    total = floor;
  }
  const sum = Object.values(steps).reduce((a, b) => a + b, 0);
  const gasUsed = Number(receipt.gasUsed);
  if (total !== gasUsed || sum !== gasUsed) {
    throw new Error(`attribute: steps add up to ${sum} (model ${total}) but the receipt says ${gasUsed}`);
  }
  return { gasUsed, calldataBytes: bytes, steps };
}

function remainingAtEnd(logs: StructLog[]): number {
  const last = logs[logs.length - 1]!;
  return last.gas - last.gasCost;
}
