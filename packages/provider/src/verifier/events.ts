/**
 * Turns the contract's logs into the effects they describe (docs/log-format.md).
 *
 * Only logs are read, never a transaction's calldata: anyone can shape calldata (a decoy call inside
 * a forwarder, an undecodable field in an item the contract skipped), while the logs are what the
 * contract did. Settlement logs are packed records (decoded by the SDK's `decode*` functions); every
 * other event is ABI.
 * Decoding never throws: a log of the contract that cannot be decoded yields `unknown`, and the
 * follower then forgets every cached state (it is read from the chain before it is used again).
 */
import { Interface, type Log, type Result } from "ethers";
import {
  decodeLanesClaimed,
  decodeRequestsSettled,
  decodeVouchersClaimed,
  LANES_CLAIMED_TOPIC,
  LANES_COLLECTED_TOPIC,
  REQUESTS_SETTLED_TOPIC,
  VOUCHERS_CLAIMED_TOPIC,
} from "@preflight/sdk";
import { Preflight__factory } from "@preflight/sdk/typechain";

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
  if (topic === REQUESTS_SETTLED_TOPIC) return requestsSettled(log, out);
  if (topic === VOUCHERS_CLAIMED_TOPIC) return claims(log, out, true);
  if (topic === LANES_CLAIMED_TOPIC) return claims(log, out, false);
  if (topic === LANES_COLLECTED_TOPIC) return; // lanes' uncollected claims moved to earnings: no payer state
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

function requestsSettled(log: Log, out: Effect[]): void {
  const { token, records } = decodeRequestsSettled(log);
  const t = token.toLowerCase();
  for (const { payer, nonce, price, reason, delegate } of records) {
    if (reason !== 0) continue; // skipped: nothing moved, the nonce stays free
    const p = payer.toLowerCase();
    out.push({ kind: "balance", payer: p, token: t, delta: -price });
    out.push({ kind: "nonces", payer: p, token: t, word: nonce >> 6n, mask: 1n << (nonce & 63n) });
    if (delegate !== undefined) out.push({ kind: "grantSpent", payer: p, token: t, delegate: delegate.toLowerCase(), amount: price });
  }
}

function claims(log: Log, out: Effect[], channels: boolean): void {
  const { provider, token, records } = channels ? decodeVouchersClaimed(log) : decodeLanesClaimed(log);
  const [pr, t] = [provider.toLowerCase(), token.toLowerCase()];
  for (const { payer, channel, cumulativeAmount: cumulative, amount, reason, delegate } of records) {
    if (reason !== 0) continue; // skipped: changed nothing
    const p = payer.toLowerCase();
    if (channels) {
      out.push({ kind: "balance", payer: p, token: t, delta: -amount });
      out.push({ kind: "channel", payer: p, provider: pr, token: t, channel: String(channel).toLowerCase(), cumulative });
    } else {
      out.push({ kind: "laneClaimed", payer: p, provider: pr, token: t, cumulative, amount });
    }
    if (delegate !== undefined) out.push({ kind: "grantSpent", payer: p, token: t, delegate: delegate.toLowerCase(), amount });
  }
}

function lc(value: unknown): string {
  return String(value).toLowerCase();
}
function big(value: unknown): bigint {
  return BigInt(value as bigint);
}
