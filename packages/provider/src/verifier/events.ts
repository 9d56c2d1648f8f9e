/**
 * Turns the contract's logs into the effects they describe (docs/log-format.md).
 *
 * Only logs are read, never a transaction's calldata: anyone can shape calldata (a decoy call inside
 * a forwarder, an undecodable field in an item the contract skipped), while the logs are what the
 * contract did. Settlement logs are packed records, decoded here; every other event is ABI.
 * Decoding never throws: a log of the contract that cannot be decoded yields `unknown`, and the
 * follower then forgets every cached state (it is read from the chain before it is used again).
 */
import { Interface, type Log, type Result } from "ethers";
import { Preflight__factory } from "../../../../typechain-types";

/** One effect of a block on the state the rules read. Addresses and hex are lowercase. */
export type Effect =
  | { kind: "balance"; payer: string; token: string; delta: bigint }
  | { kind: "withdrawal"; payer: string; token: string; amount: bigint; readyAt: bigint; expiresAt: bigint }
  | { kind: "nonces"; payer: string; token: string; word: bigint; mask: bigint }
  | {
      kind: "grantSet";
      payer: string;
      token: string;
      delegate: string;
      epoch: bigint;
      provider: string;
      maxPrice: bigint;
      budget: bigint;
      period: bigint;
      expiry: bigint;
      models: string[];
    }
  | { kind: "grantRevoked"; payer: string; token: string; delegate: string; epoch: bigint }
  /** A delegate's grant paid `amount` at the block's timestamp (rolling its period over first if due). */
  | { kind: "grantSpent"; payer: string; token: string; delegate: string; amount: bigint }
  | { kind: "channel"; payer: string; provider: string; token: string; channel: string; cumulative: bigint }
  | { kind: "laneFunds"; payer: string; provider: string; token: string; funds: bigint }
  | { kind: "laneClose"; payer: string; provider: string; token: string; readyAt: bigint; expiresAt: bigint }
  | { kind: "laneClaimed"; payer: string; provider: string; token: string; cumulative: bigint; amount: bigint }
  /** Nothing cached can be trusted any more. */
  | { kind: "unknown" };

const IFACE: Interface = Preflight__factory.createInterface();
const REQUESTS_SETTLED = IFACE.getEvent("RequestsSettled")!.topicHash;
const VOUCHERS_CLAIMED = IFACE.getEvent("VouchersClaimed")!.topicHash;
const LANES_CLAIMED = IFACE.getEvent("LanesClaimed")!.topicHash;
const DELEGATE_TAG = 0x80;

/** Effects of one block's logs of the contract, in log order. Never throws. */
export function effectsOf(logs: readonly Log[], preflight: string): Effect[] {
  const out: Effect[] = [];
  for (const log of logs) {
    const start = out.length;
    try {
      decodeLog(log, preflight, out);
    } catch {
      out.length = start; // nothing half-applied from a log
      out.push({ kind: "unknown" });
    }
  }
  return out;
}

/** Whether applying `effects` needs the block's timestamp (grant periods start and roll over at it). */
export function needsBlockTime(effects: readonly Effect[]): boolean {
  return effects.some((e) => e.kind === "grantSet" || e.kind === "grantSpent");
}

function decodeLog(log: Log, preflight: string, out: Effect[]): void {
  const topic = log.topics[0];
  if (topic === REQUESTS_SETTLED) return requestsSettled(log, out);
  if (topic === VOUCHERS_CLAIMED) return claims(log, out, true);
  if (topic === LANES_CLAIMED) return claims(log, out, false);
  const event = IFACE.parseLog(log);
  if (event === null) throw new Error("not an event of the contract");
  const a = event.args;
  switch (event.name) {
    case "Deposited":
      out.push({ kind: "balance", payer: lc(a.payer), token: lc(a.token), delta: big(a.amount) });
      return;
    case "WithdrawalRequested":
      out.push({ kind: "withdrawal", payer: lc(a.payer), token: lc(a.token), amount: big(a.amount), readyAt: big(a.readyAt), expiresAt: big(a.expiresAt) });
      return;
    case "WithdrawalCancelled":
      out.push({ kind: "withdrawal", payer: lc(a.payer), token: lc(a.token), amount: 0n, readyAt: 0n, expiresAt: 0n });
      return;
    case "Withdrawn":
      out.push({ kind: "balance", payer: lc(a.payer), token: lc(a.token), delta: -big(a.amount) });
      out.push({ kind: "withdrawal", payer: lc(a.payer), token: lc(a.token), amount: 0n, readyAt: 0n, expiresAt: 0n });
      return;
    case "GrantSet":
      out.push({
        kind: "grantSet",
        payer: lc(a.payer),
        token: lc(a.token),
        delegate: lc(a.delegate),
        epoch: big(a.epoch),
        provider: lc(a.provider),
        maxPrice: big(a.maxPrice),
        budget: big(a.budget),
        period: big(a.period),
        expiry: big(a.expiry),
        models: (a.models as Result).toArray().map((m) => lc(m)),
      });
      return;
    case "GrantRevoked":
      out.push({ kind: "grantRevoked", payer: lc(a.payer), token: lc(a.token), delegate: lc(a.delegate), epoch: big(a.epoch) });
      return;
    case "NoncesInvalidated":
      out.push({ kind: "nonces", payer: lc(a.payer), token: lc(a.token), word: big(a.word), mask: big(a.mask) });
      return;
    case "LaneFunded": {
      const [payer, provider, token] = [lc(a.payer), lc(a.provider), lc(a.token)];
      // Funds moved from the payer's escrow balance when `from` is the contract itself.
      if (lc(a.from) === preflight) out.push({ kind: "balance", payer, token, delta: -big(a.amount) });
      out.push({ kind: "laneFunds", payer, provider, token, funds: big(a.funds) });
      out.push({ kind: "laneClose", payer, provider, token, readyAt: 0n, expiresAt: 0n });
      return;
    }
    case "LaneCloseRequested":
      out.push({ kind: "laneClose", payer: lc(a.payer), provider: lc(a.provider), token: lc(a.token), readyAt: big(a.readyAt), expiresAt: big(a.expiresAt) });
      return;
    case "LaneClosed": {
      const [payer, provider, token] = [lc(a.payer), lc(a.provider), lc(a.token)];
      out.push({ kind: "laneFunds", payer, provider, token, funds: 0n });
      out.push({ kind: "laneClose", payer, provider, token, readyAt: 0n, expiresAt: 0n });
      return;
    }
    default:
      // Earnings and fees: no payer state.
      return;
  }
}

/** Packed bytes of a log's data, read front to back; running past the end throws. */
class Packed {
  private at = 2;
  constructor(private readonly hex: string) {
    if (!/^0x([0-9a-fA-F]{2})*$/.test(hex)) throw new Error("log data is not hex");
  }
  get done(): boolean {
    return this.at >= this.hex.length;
  }
  hexOf(bytes: number): string {
    const end = this.at + 2 * bytes;
    if (end > this.hex.length) throw new Error("truncated settlement log");
    const out = "0x" + this.hex.slice(this.at, end).toLowerCase();
    this.at = end;
    return out;
  }
  int(bytes: number): bigint {
    return BigInt(this.hexOf(bytes));
  }
  /** A tag, and the delegate after it when the tag says a delegate signed. */
  tag(): { reason: number; delegate?: string } {
    const tag = Number(this.int(1));
    return tag === DELEGATE_TAG ? { reason: 0, delegate: this.hexOf(20) } : { reason: tag };
  }
}

/** One request of a `RequestsSettled` log (addresses lowercase). */
export interface SettledRequestRecord {
  payer: string;
  nonce: bigint;
  price: bigint;
  /** 0 = settled; otherwise the `Reason` code it was skipped for */
  reason: number;
  /** the delegate that signed it (settled items only) */
  delegate?: string;
}

/** One claim of a `VouchersClaimed` or `LanesClaimed` log (addresses lowercase). */
export interface ClaimRecord {
  payer: string;
  /** the channel (channel claims only) */
  channel?: string;
  cumulativeAmount: bigint;
  /** what was paid; 0 when skipped */
  amount: bigint;
  reason: number;
  delegate?: string;
}

/**
 * The requests of a `RequestsSettled` log, in call order: groups of payer 20 . firstNonce 8 .
 * price 12 . count 2 . (tag 1 [. delegate 20])*count. Throws on data that does not parse.
 */
export function settledRequests(log: { data: string }): SettledRequestRecord[] {
  const r = new Packed(log.data);
  const records: SettledRequestRecord[] = [];
  while (!r.done) {
    const payer = r.hexOf(20);
    const first = r.int(8);
    const price = r.int(12);
    const count = Number(r.int(2));
    for (let k = 0; k < count; k++) records.push({ payer, nonce: first + BigInt(k), price, ...r.tag() });
  }
  return records;
}

/**
 * The claims of a `VouchersClaimed` (`channels`) or `LanesClaimed` log, in call order: payer 20
 * [. channel 32] . cumulative 16 . amount 16 . tag 1 [. delegate 20]. Throws on data that does not parse.
 */
export function claimRecords(log: { data: string }, channels: boolean): ClaimRecord[] {
  const r = new Packed(log.data);
  const records: ClaimRecord[] = [];
  while (!r.done) {
    const payer = r.hexOf(20);
    const channel = channels ? r.hexOf(32) : undefined;
    const cumulativeAmount = r.int(16);
    const amount = r.int(16);
    records.push({ payer, ...(channel === undefined ? {} : { channel }), cumulativeAmount, amount, ...r.tag() });
  }
  return records;
}

/** Topic 0 of each settlement log. */
export const SETTLEMENT_TOPICS = { requests: REQUESTS_SETTLED, vouchers: VOUCHERS_CLAIMED, lanes: LANES_CLAIMED } as const;

function requestsSettled(log: Log, out: Effect[]): void {
  const token = topicAddress(log.topics[2]);
  for (const { payer, nonce, price, reason, delegate } of settledRequests(log)) {
    if (reason !== 0) continue; // skipped: nothing moved, the nonce stays free
    out.push({ kind: "balance", payer, token, delta: -price });
    out.push({ kind: "nonces", payer, token, word: nonce >> 6n, mask: 1n << (nonce & 63n) });
    if (delegate !== undefined) out.push({ kind: "grantSpent", payer, token, delegate, amount: price });
  }
}

function claims(log: Log, out: Effect[], channels: boolean): void {
  const provider = topicAddress(log.topics[1]);
  const token = topicAddress(log.topics[2]);
  for (const { payer, channel, cumulativeAmount: cumulative, amount, reason, delegate } of claimRecords(log, channels)) {
    if (reason !== 0) continue; // skipped: changed nothing
    if (channel !== undefined) {
      out.push({ kind: "balance", payer, token, delta: -amount });
      out.push({ kind: "channel", payer, provider, token, channel, cumulative });
    } else {
      out.push({ kind: "laneClaimed", payer, provider, token, cumulative, amount });
    }
    if (delegate !== undefined) out.push({ kind: "grantSpent", payer, token, delegate, amount });
  }
}

function topicAddress(topic: string | undefined): string {
  if (topic === undefined || !/^0x0{24}[0-9a-fA-F]{40}$/.test(topic)) throw new Error("not an address topic");
  return "0x" + topic.slice(26).toLowerCase();
}
function lc(value: unknown): string {
  return String(value).toLowerCase();
}
function big(value: unknown): bigint {
  return BigInt(value as bigint);
}
