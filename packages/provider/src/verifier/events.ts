/**
 * Turns the contract's logs into the effects they describe, and says what they leave open.
 *
 * Only logs are read, never a transaction's calldata (anyone can shape calldata: a decoy call
 * inside a forwarder, an undecodable field in an item the contract skipped). Where a log does not
 * name an effect (whose signature a settled request carried, which items of a batch settled), the
 * effect is an explicit `reread`: the follower reads that state with view calls at the end of the
 * block instead of guessing. Decoding never throws: a log that cannot be decoded makes every
 * state unknown.
 */
import { Interface, type Log, type Result } from "ethers";
import { Preflight__factory } from "../../../../typechain-types";

/** One effect of a block on the state the rules read. */
export type Effect =
  | { kind: "balance"; payer: string; token: string; delta: bigint }
  | { kind: "withdrawal"; payer: string; token: string; amount: bigint; readyAt: bigint }
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
  | { kind: "channel"; payer: string; provider: string; token: string; channel: string; cumulative: bigint }
  /** A delegate of (payer, token) may have spent: re-read its grants. */
  | { kind: "rereadGrants"; payer: string; token: string }
  /** Unnamed payers of `token` were debited and their nonces used: re-read all of the token's state. */
  | { kind: "rereadToken"; token: string }
  /** Nothing can be trusted any more. */
  | { kind: "unknown" };

const IFACE: Interface = Preflight__factory.createInterface();

/** Effects of one block's logs (in log order). Never throws. */
export function effectsOf(logs: readonly Log[]): Effect[] {
  const out: Effect[] = [];
  for (const log of logs) {
    try {
      decodeLog(log, out);
    } catch {
      out.push({ kind: "unknown" });
    }
  }
  return out;
}

/** Whether applying `effects` needs the block's timestamp (a grant's first period starts at it). */
export function needsBlockTime(effects: readonly Effect[]): boolean {
  return effects.some((e) => e.kind === "grantSet");
}

function decodeLog(log: Log, out: Effect[]): void {
  const event = IFACE.parseLog(log);
  if (event === null) {
    out.push({ kind: "unknown" });
    return;
  }
  const a = event.args;
  switch (event.name) {
    case "Deposited":
      out.push({ kind: "balance", payer: lc(a.payer), token: lc(a.token), delta: big(a.amount) });
      return;
    case "WithdrawalRequested":
      out.push({ kind: "withdrawal", payer: lc(a.payer), token: lc(a.token), amount: big(a.amount), readyAt: big(a.readyAt) });
      return;
    case "WithdrawalCancelled":
      out.push({ kind: "withdrawal", payer: lc(a.payer), token: lc(a.token), amount: 0n, readyAt: 0n });
      return;
    case "Withdrawn":
      out.push({ kind: "balance", payer: lc(a.payer), token: lc(a.token), delta: -big(a.amount) });
      out.push({ kind: "withdrawal", payer: lc(a.payer), token: lc(a.token), amount: 0n, readyAt: 0n });
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
    case "RequestSettled": {
      const payer = lc(a.payer);
      const token = lc(a.token);
      const nonce = big(a.nonce);
      out.push({ kind: "balance", payer, token, delta: -big(a.price) });
      out.push({ kind: "nonces", payer, token, word: nonce >> 6n, mask: 1n << (nonce & 63n) });
      out.push({ kind: "rereadGrants", payer, token }); // the log does not say who signed
      return;
    }
    case "BatchSettled":
      // The log names neither the settled items' payers nor their nonces.
      out.push({ kind: "rereadToken", token: lc(a.token) });
      return;
    case "VoucherClaimed": {
      const payer = lc(a.payer);
      const token = lc(a.token);
      out.push({ kind: "balance", payer, token, delta: -big(a.amount) });
      out.push({ kind: "channel", payer, provider: lc(a.provider), token, channel: lc(a.channel), cumulative: big(a.cumulativeAmount) });
      out.push({ kind: "rereadGrants", payer, token });
      return;
    }
    default:
      // RequestSkipped, VoucherSkipped (nothing moved), earnings, fee and ownership events: no payer state.
      return;
  }
}

function lc(value: unknown): string {
  return String(value).toLowerCase();
}
function big(value: unknown): bigint {
  return BigInt(value as bigint);
}
