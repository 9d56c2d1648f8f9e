/**
 * The verifier's public types (decisions, options, views) and the facts its rules read.
 */
import type { Preflight } from "@preflight/sdk/typechain";
import type { Reason } from "@preflight/sdk";

/** The verifier's answer for one signed item. */
export interface Decision {
  /** Whether the contract would settle it now (`reason === Reason.Settled`). */
  accepted: boolean;
  /**
   * `Reason.Settled` or the contract's reason code for skipping it. When `needsChainRead` is set,
   * the reason of the first check whose state is not known (the item is not accepted).
   */
  reason: Reason;
  /** The ECDSA signer (lowercase), when the signature recovered. */
  signer?: string;
  /** The delegate whose grant authorised it, when a delegate signed. */
  delegate?: string;
  /** The EIP-712 digest (0x hex), when it was computed. */
  digest?: string;
  /** The amount it debits: the request's price, or the voucher's excess over what its channel paid. */
  amount: bigint;
  /**
   * On an accepted request or voucher: what the funds it debits can still pay this provider, this
   * item included (a payer's balance less a withdrawal that can execute before the settlement and
   * less what this verifier reserved; a lane's funds, none while a close can execute). A store that
   * holds reservations of its own (the gateway's) checks its holds against this.
   */
  spendable?: bigint;
  /**
   * On an accepted item signed by a delegate: what its grant may still spend in the current period,
   * this item included (less what this verifier reserved). A store holding reservations of its own
   * checks its holds of the delegate's spend against this.
   */
  grantRemaining?: bigint;
  /**
   * ECDSA did not match and the payer is a contract whose ERC-1271 answer is unknown: call
   * `verifyAsync` (one eth_call) to decide.
   */
  needsErc1271?: boolean;
  /**
   * Some state this decision depends on is not known for sure (after a settlement whose effects the
   * logs did not name, a reorg, or a payer never seen): it was not accepted. `verifyAsync` reads that
   * state from the chain (at the synced block) and decides.
   */
  needsChainRead?: boolean;
}

/** Options of one verification. */
export interface VerifyOptions {
  /** Unix time the decision is for (defaults to the verifier's clock). */
  at?: bigint;
  /** Reserve what is accepted until the chain shows it settled or dead (default true). */
  reserve?: boolean;
}

/** How to build a verifier. */
export interface PreflightVerifierOptions {
  /** The Preflight contract, connected to a provider (a signer's provider is fine). */
  contract: Preflight;
  /** The provider (node operator) address that will settle: it is bound by every signature. */
  provider: string;
  /**
   * First block to follow from: the deployment block (default 0). When the contract already existed
   * before it, nothing is assumed about earlier state: every payer's state is read from the chain
   * before its first acceptance.
   */
  fromBlock?: number;
  /** The current unix time (default: the wall clock). */
  clock?: () => bigint;
  /**
   * Recent applied blocks kept to be taken back on a reorg (default 64): a reorg up to this deep
   * returns the cache exactly to the fork point and brings back the reservations the dropped blocks
   * ended; a deeper one makes every cached state unknown (read before it is used again).
   */
  reorgDepth?: number;
  /** Blocks fetched per `eth_getLogs` call when catching up (default 5,000). */
  logChunk?: number;
  /**
   * Apply only blocks at least this deep (default 0). Blocks newer than that are not applied; what
   * was accepted stays reserved meanwhile. A reorg that reaches applied blocks is detected on the
   * next sync: every cached state becomes unknown and is read from the chain before it is used again.
   */
  confirmations?: number;
  /**
   * Seconds within which the provider settles what it accepts (default 3,600). A payer's pending
   * withdrawal that matures within this window is subtracted from what the payer can spend: those
   * funds may leave before the settlement lands.
   */
  settlementWindow?: bigint;
}

/** What the verifier knows about one payer's funds in one token. */
export interface AccountView {
  /** The on-chain balance as of the last synced block (0 when not known). */
  balance: bigint;
  /** What this verifier accepted and has not seen settle. */
  reserved: bigint;
  /** `balance - reserved` (never negative). */
  available: bigint;
}

/** What the verifier knows about one grant (the contract's `grantOf`, plus the models and reservations). */
export interface GrantView {
  epoch: bigint;
  /** 0 = revoked (or never active). */
  expiry: bigint;
  /** Lowercase; the zero address = any provider. */
  provider: string;
  maxPrice: bigint;
  budget: bigint;
  period: bigint;
  periodEnd: bigint;
  /** Spent in the period ending at `periodEnd`, as of the last synced settlement. */
  spent: bigint;
  anyModel: boolean;
  /** Allowed model ids (lowercase) known to the verifier, empty when `anyModel`. */
  models: string[];
  /** What this verifier accepted under the grant and has not seen settle. */
  reserved: bigint;
}

/** What the verifier knows about a payer's lane to its provider. */
export interface LaneView {
  claimed: bigint;
  funds: bigint;
  closeReadyAt: bigint;
  closeExpiresAt: bigint;
  /** What the accepted, unclaimed lane voucher reserves of `funds`. */
  reserved: bigint;
}

// ------------------------------------------------------------------ facts the rules read

/**
 * A grant as the contract stores it (InferencePermissions' record and hot slot), with what is known
 * of its models.
 */
export interface GrantFacts {
  /** bumps on every grant and revoke; 0 = the signer is no delegate */
  epoch: bigint;
  /** 0 = revoked */
  expiry: bigint;
  /** lowercase; zero address = any provider */
  provider: string;
  maxPrice: bigint;
  budget: bigint;
  period: bigint;
  periodEnd: bigint;
  /** budget left in the period ending at `periodEnd` */
  remaining: bigint;
  anyModel: boolean;
  /** model (lowercase) -> allowed, for the models known */
  models: Map<string, boolean>;
  /** Whether `models` lists every allowed model (from the grant's own event). */
  modelsComplete: boolean;
}

/** A payer's pending withdrawal (amount 0 = none): executable in [readyAt, expiresAt). */
export interface WithdrawalFacts {
  amount: bigint;
  readyAt: bigint;
  expiresAt: bigint;
}

/** A lane (payer, this provider, token): funds only this provider can claim with lane vouchers. */
export interface LaneFacts {
  /** cumulative amount lane vouchers have paid, ever */
  claimed: bigint;
  /** what the provider may still claim */
  funds: bigint;
  /** a requested close may execute in [closeReadyAt, closeExpiresAt); 0 = none requested */
  closeReadyAt: bigint;
  closeExpiresAt: bigint;
}


/** A piece of chain state the rules needed and did not know; the verifier reads it before deciding. */
export type StateKey =
  | { kind: "account"; payer: string; token: string }
  | { kind: "word"; payer: string; token: string; word: bigint }
  | { kind: "grant"; payer: string; token: string; delegate: string }
  | { kind: "model"; payer: string; token: string; delegate: string; model: string }
  | { kind: "channel"; payer: string; token: string; channel: string }
  | { kind: "lane"; payer: string; token: string };
