/**
 * Decoders for Preflight's settlement logs (`RequestsSettled`, `VouchersClaimed`, `LanesClaimed`):
 * their data is packed bytes, not ABI (see docs/log-format.md). A follower rebuilds every effect of
 * every settlement from these records alone, without reading calldata.
 */
import { bytesToBigint, bytesToHex, checksumAddress, hexToBytes, isHexBytes, keccak256, type Hex } from "./hex";
import { PreflightSdkError } from "./errors";

/** topic 0 of `RequestsSettled(address indexed provider, address indexed token)` */
export const REQUESTS_SETTLED_TOPIC = keccak256("RequestsSettled(address,address)");
/** topic 0 of `VouchersClaimed(address indexed provider, address indexed token)` */
export const VOUCHERS_CLAIMED_TOPIC = keccak256("VouchersClaimed(address,address)");
/** topic 0 of `LanesClaimed(address indexed provider, address indexed token)` */
export const LANES_CLAIMED_TOPIC = keccak256("LanesClaimed(address,address)");
/** topic 0 of `LanesCollected(address indexed provider, address indexed token)` */
export const LANES_COLLECTED_TOPIC = keccak256("LanesCollected(address,address)");
/** The tag of an item a delegate signed; the delegate's address follows it in the log. */
export const DELEGATE_TAG = 0x80;

/** The part of a log these decoders read (an ethers `Log` fits). */
export interface RawLog {
  topics: readonly string[];
  data: string;
}

/** One request of a `RequestsSettled` log. */
export interface SettledRequestRecord {
  payer: string;
  nonce: bigint;
  price: bigint;
  /** 0 = settled; otherwise the `Reason` code it was skipped for */
  reason: number;
  /** the delegate that signed it, when one did (settled items only) */
  delegate?: string;
}

/** One claim of a `VouchersClaimed` or `LanesClaimed` log. */
export interface ClaimRecord {
  payer: string;
  /** the channel (channel claims only) */
  channel?: string;
  cumulativeAmount: bigint;
  /** what was paid; 0 when skipped */
  amount: bigint;
  /** 0 = paid; otherwise the `Reason` code */
  reason: number;
  delegate?: string;
}

/** A decoded settlement log: the provider credited (topic 1), the token (topic 2), and its records. */
export interface SettlementLog<T> {
  provider: string;
  token: string;
  records: T[];
}

class Reader {
  private at = 0;
  private readonly bytes: Uint8Array;
  constructor(data: string, private readonly what: string) {
    if (!isHexBytes(data)) throw new PreflightSdkError("INVALID_HEX", `${what}: data is not hex of whole bytes`);
    this.bytes = hexToBytes(data);
  }
  get done(): boolean {
    return this.at >= this.bytes.length;
  }
  take(length: number): Uint8Array {
    if (this.at + length > this.bytes.length) throw new PreflightSdkError("INVALID_HEX", `${this.what}: truncated at byte ${this.at}`);
    const out = this.bytes.subarray(this.at, this.at + length);
    this.at += length;
    return out;
  }
  address(): Hex {
    return checksumAddress(bytesToHex(this.take(20)));
  }
  int(length: number): bigint {
    return bytesToBigint(this.take(length));
  }
  /** A tag, and the delegate after it when the tag says so. */
  tag(): { reason: number; delegate?: string } {
    const tag = Number(this.int(1));
    return tag === DELEGATE_TAG ? { reason: 0, delegate: this.address() } : { reason: tag };
  }
}

function topicAddress(topic: string): Hex {
  if (!isHexBytes(topic, 32)) throw new PreflightSdkError("INVALID_HEX", `topic ${topic} is not 32 bytes`);
  return checksumAddress(`0x${topic.slice(26)}`);
}

function topics(log: RawLog, topic: string, what: string): { provider: string; token: string } {
  if (log.topics[0]?.toLowerCase() !== topic || log.topics.length !== 3) throw new PreflightSdkError("INVALID_HEX", `${what}: not a ${what} log`);
  return { provider: topicAddress(log.topics[1]!), token: topicAddress(log.topics[2]!) };
}

/**
 * Decodes a `RequestsSettled` log into its requests, in call order.
 * @example
 * for (const log of receipt.logs) if (log.topics[0] === REQUESTS_SETTLED_TOPIC) console.log(decodeRequestsSettled(log).records);
 */
export function decodeRequestsSettled(log: RawLog): SettlementLog<SettledRequestRecord> {
  const head = topics(log, REQUESTS_SETTLED_TOPIC, "RequestsSettled");
  const r = new Reader(log.data, "RequestsSettled");
  const records: SettledRequestRecord[] = [];
  while (!r.done) {
    const payer = r.address();
    const firstNonce = r.int(8);
    const price = r.int(12);
    const count = Number(r.int(2));
    for (let k = 0; k < count; k++) records.push({ payer, nonce: firstNonce + BigInt(k), price, ...r.tag() });
  }
  return { ...head, records };
}

function decodeClaims(log: RawLog, topic: string, what: string, withChannel: boolean): SettlementLog<ClaimRecord> {
  const head = topics(log, topic, what);
  const r = new Reader(log.data, what);
  const records: ClaimRecord[] = [];
  while (!r.done) {
    const payer = r.address();
    const channel = withChannel ? bytesToHex(r.take(32)) : undefined;
    const cumulativeAmount = r.int(16);
    const amount = r.int(16);
    records.push({ payer, ...(channel === undefined ? {} : { channel }), cumulativeAmount, amount, ...r.tag() });
  }
  return { ...head, records };
}

/**
 * Decodes a `VouchersClaimed` log (channel claims on the payer's shared balance).
 * @example
 * const { records } = decodeVouchersClaimed(log);
 */
export function decodeVouchersClaimed(log: RawLog): SettlementLog<ClaimRecord> {
  return decodeClaims(log, VOUCHERS_CLAIMED_TOPIC, "VouchersClaimed", true);
}

/**
 * Decodes a `LanesClaimed` log (lane claims).
 * @example
 * const { provider, records } = decodeLanesClaimed(log);
 */
export function decodeLanesClaimed(log: RawLog): SettlementLog<ClaimRecord> {
  return decodeClaims(log, LANES_CLAIMED_TOPIC, "LanesClaimed", false);
}

/** One lane of a `LanesCollected` log: its uncollected `amount` went to the provider's earnings. */
export interface CollectedRecord {
  payer: string;
  amount: bigint;
}

/**
 * Decodes a `LanesCollected` log.
 * @example
 * const { provider, records } = decodeLanesCollected(log);
 */
export function decodeLanesCollected(log: RawLog): SettlementLog<CollectedRecord> {
  const head = topics(log, LANES_COLLECTED_TOPIC, "LanesCollected");
  const r = new Reader(log.data, "LanesCollected");
  const records: CollectedRecord[] = [];
  while (!r.done) records.push({ payer: r.address(), amount: r.int(16) });
  return { ...head, records };
}
