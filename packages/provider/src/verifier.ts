/**
 * The provider's preflight: decides, before serving, whether a signed request (or voucher) would
 * settle, applying exactly the contract's checks in the contract's order (Settlement._settleRequest,
 * Settlement._authorize, InferencePermissions._checkGrant), against chain state cached in memory and
 * kept current from the contract's events. No RPC call per request (ERC-1271 payers excepted: see
 * `verifyAsync`).
 *
 * It also reserves what it accepted until it settles (balance, nonce, grant spend, voucher channel),
 * so a payer cannot spend the same funds twice with one provider before settlement.
 */
import { Interface, ZeroAddress, type Log, type Provider, type Result, type TransactionDescription, type TransactionResponse } from "ethers";
import type { Preflight } from "@preflight/sdk/typechain";
import { Preflight__factory } from "@preflight/sdk/typechain";
import { DigestComputer } from "./digest";
import { hexToBytes, publicKeyToAddress, recoverSignature, SignatureStatus, toHex } from "./crypto";
import { PreflightSdkError } from "@preflight/sdk";
import { decodePacked } from "@preflight/sdk";
import { Reason, type SignedRequest, type SignedVoucher } from "@preflight/sdk";
import type { PreflightDomain } from "@preflight/sdk";

/** The verifier's answer for one signed item. */
export interface Decision {
  /** Whether the contract would settle it now (`reason === Reason.Settled`). */
  accepted: boolean;
  /** `Reason.Settled` or the contract's reason code for skipping it. */
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
   * ECDSA did not match and the payer is a contract whose ERC-1271 answer is unknown: call
   * `verifyAsync` (one eth_call) to decide.
   */
  needsErc1271?: boolean;
}

/** Options of one verification. */
export interface VerifyOptions {
  /** Unix time the decision is for (defaults to the verifier's clock). */
  at?: bigint;
  /** Reserve what is accepted until it settles or expires (default true). */
  reserve?: boolean;
}

/** How to build a verifier. */
export interface PreflightVerifierOptions {
  /** The Preflight contract, connected to a provider (a signer's provider is fine). */
  contract: Preflight;
  /** The provider (node operator) address that will settle: it is bound by every signature. */
  provider: string;
  /** First block to replay events from: the deployment block (default 0). */
  fromBlock?: number;
  /** The current unix time (default: the wall clock). */
  clock?: () => bigint;
  /** Blocks fetched per `eth_getLogs` call when catching up (default 5,000). */
  logChunk?: number;
  /**
   * Apply only blocks at least this deep (default 0). On chains that reorganise, a depth keeps the
   * cache on final blocks; what was accepted and settled in the newer blocks stays reserved meanwhile.
   */
  confirmations?: number;
}

/** What the verifier knows about one payer's funds in one token. */
export interface AccountView {
  /** The on-chain balance as of the last synced block. */
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
  /** Allowed model ids (lowercase), empty when `anyModel`. */
  models: string[];
  /** What this verifier accepted under the grant and has not seen settle. */
  reserved: bigint;
}

/** State to re-read at the end of a block (settlements sent through another contract). */
interface Dirty {
  /** accountKey(payer, token) whose grants must be re-read */
  grantsOf: Set<string>;
  /** tokens whose every cached account and grant must be re-read (a batch with unknown items) */
  tokens: Set<string>;
}

interface Account {
  balance: bigint;
  reserved: bigint;
  words: Map<bigint, bigint>; // used nonce bits on-chain
  pending: Map<bigint, bigint>; // nonce bits reserved by this verifier
}

interface Grant {
  epoch: bigint;
  expiry: bigint; // 0 = none / revoked
  provider: string;
  maxPrice: bigint;
  budget: bigint;
  period: bigint;
  periodEnd: bigint;
  spent: bigint;
  anyModel: boolean;
  models: Set<string>;
  reserved: bigint;
}

interface Reservation {
  payer: string;
  token: string;
  amount: bigint;
  delegate?: string;
  deadline: bigint;
  /** set for vouchers: the reserved cumulative amount of the channel */
  cumulative?: bigint;
}

const UINT32_MAX = (1n << 32n) - 1n;
const UINT96_MAX = (1n << 96n) - 1n;
const UINT128_MAX = (1n << 128n) - 1n;
const UINT256_MAX = (1n << 256n) - 1n;
const ERC1271_MAGIC_WORD = "0x1626ba7e" + "0".repeat(56);
const ERC1271_GAS_LIMIT = 200_000n;
const ADDRESS_RE = /^0x[0-9a-fA-F]{40}$/;
const BYTES32_RE = /^0x[0-9a-fA-F]{64}$/;
const HEX_RE = /^0x([0-9a-fA-F]{2})*$/;
const ZERO = ZeroAddress.toLowerCase();
const PUBKEY_CACHE_LIMIT = 100_000;

/** Contract-side rules of `InferencePermissions._checkGrant`'s budget period rollover. */
function rollover(g: Grant, now: bigint): { spent: bigint; periodEnd: bigint } {
  if (now < g.periodEnd || g.period === 0n) return { spent: g.spent, periodEnd: g.periodEnd };
  let periodEnd = g.periodEnd + ((now - g.periodEnd) / g.period + 1n) * g.period;
  if (periodEnd > UINT32_MAX) periodEnd = UINT32_MAX;
  return { spent: 0n, periodEnd };
}

/**
 * Off-chain preflight with the contract's exact rules, from an event-synced cache.
 * @example
 * const verifier = await PreflightVerifier.create({ contract: preflight, provider: await providerSigner.getAddress() });
 * verifier.start(1_000); // follow new blocks every second
 * const decision = verifier.verify(signedRequest);
 * if (!decision.accepted) throw new Error(`rejected: ${reasonName(decision.reason)}`);
 */
export class PreflightVerifier {
  /** The provider address (lowercase) every verified signature must name. */
  readonly provider: string;
  /** The contract address (lowercase). */
  readonly address: string;
  private readonly contract: Preflight;
  private readonly rpc: Provider;
  private readonly iface: Interface;
  private readonly digests: DigestComputer;
  private readonly clock: () => bigint;
  private readonly logChunk: number;
  private readonly confirmations: number;
  private readonly accounts = new Map<string, Account>();
  private readonly grants = new Map<string, Grant>();
  private readonly channels = new Map<string, bigint>();
  private readonly reservations = new Map<string, Reservation>();
  private readonly codeCache = new Map<string, boolean>();
  private readonly pubkeyToAddress = new Map<string, string>();
  private readonly blockTimes = new Map<number, bigint>();
  private nextBlock: number;
  private timer: NodeJS.Timeout | undefined;
  private syncing: Promise<number> | undefined;

  private constructor(options: PreflightVerifierOptions, rpc: Provider, domain: PreflightDomain) {
    this.contract = options.contract;
    this.rpc = rpc;
    this.iface = Preflight__factory.createInterface();
    this.provider = options.provider.toLowerCase();
    this.address = domain.verifyingContract.toLowerCase();
    this.digests = new DigestComputer(domain);
    this.clock = options.clock ?? (() => BigInt(Math.floor(Date.now() / 1000)));
    this.logChunk = options.logChunk ?? 5_000;
    this.confirmations = options.confirmations ?? 0;
    this.nextBlock = options.fromBlock ?? 0;
  }

  /**
   * Builds a verifier and replays the contract's events from `fromBlock` to the latest block.
   * @example
   * const verifier = await PreflightVerifier.create({ contract: preflight, provider: providerAddress, fromBlock: deployBlock });
   */
  static async create(options: PreflightVerifierOptions): Promise<PreflightVerifier> {
    if (!ADDRESS_RE.test(options.provider)) throw new PreflightSdkError("INVALID_ADDRESS", `provider ${options.provider}`);
    for (const [name, value] of [["fromBlock", options.fromBlock], ["logChunk", options.logChunk], ["confirmations", options.confirmations]] as const) {
      if (value !== undefined && (!Number.isInteger(value) || value < (name === "logChunk" ? 1 : 0))) {
        throw new PreflightSdkError("INVALID_OPTION", `${name} ${String(value)}`);
      }
    }
    const rpc = options.contract.runner?.provider;
    if (!rpc) throw new PreflightSdkError("INVALID_OPTION", "the contract must be connected to a provider");
    const { chainId } = await rpc.getNetwork();
    const verifier = new PreflightVerifier(options, rpc, { chainId, verifyingContract: await options.contract.getAddress() });
    await verifier.sync();
    return verifier;
  }

  // ================================================================== decisions

  /**
   * Decides whether `request` would settle to this verifier's provider, with no RPC call. Accepted
   * requests are reserved (balance, nonce, grant spend) until they settle or expire. A payer known
   * to be a contract (see `verifyAsync`) whose signature ECDSA does not match gets `needsErc1271`.
   * @example
   * const d = verifier.verify(request, { at: BigInt(Math.floor(Date.now() / 1000)) });
   * console.log(d.accepted, reasonName(d.reason));
   */
  verify(request: SignedRequest, options: VerifyOptions = {}): Decision {
    return this.decideRequest(request, options, undefined);
  }

  /**
   * Like `verify`, and for a contract payer (ERC-1271 wallet, e.g. Safe) whose signature ECDSA does
   * not match, asks the wallet with one `eth_call` to `isValidSignature` (gas-capped at 200,000 like
   * the contract), after one `eth_getCode` per payer (cached).
   * @example
   * const d = await verifier.verifyAsync(requestFromSafe);
   */
  async verifyAsync(request: SignedRequest, options: VerifyOptions = {}): Promise<Decision> {
    return this.decideWithErc1271(
      request.payer,
      request.signature,
      options,
      (o, erc1271Accepted) => this.decideRequest(request, o, erc1271Accepted),
      () => this.digests.request(request, this.provider),
    );
  }

  /**
   * Decides whether `voucher` would pay this verifier's provider, with no RPC call: its channel must
   * owe more than it paid (or than an accepted voucher already reserved), and the excess must be
   * authorised and covered. Accepted vouchers reserve that excess until claimed.
   * @example
   * const d = verifier.verifyVoucher(signedVoucher);
   */
  verifyVoucher(voucher: SignedVoucher, options: VerifyOptions = {}): Decision {
    return this.decideVoucher(voucher, options, undefined);
  }

  /**
   * `verifyVoucher` with the ERC-1271 path of `verifyAsync`, for vouchers of contract-wallet payers.
   * @example
   * const d = await verifier.verifyVoucherAsync(voucherFromSafe);
   */
  async verifyVoucherAsync(voucher: SignedVoucher, options: VerifyOptions = {}): Promise<Decision> {
    return this.decideWithErc1271(
      voucher.payer,
      voucher.signature,
      options,
      (o, erc1271Accepted) => this.decideVoucher(voucher, o, erc1271Accepted),
      () => this.digests.voucher(voucher, this.provider),
    );
  }

  /**
   * The ERC-1271 path shared by requests and vouchers: decide without reserving; only when the
   * signature alone was refused and the payer is a contract, ask the wallet, then decide for real.
   */
  private async decideWithErc1271(
    payer: string,
    signature: string,
    options: VerifyOptions,
    decide: (options: VerifyOptions, erc1271Accepted: boolean | undefined) => Decision,
    digestOf: () => Uint8Array,
  ): Promise<Decision> {
    const first = decide({ ...options, reserve: false }, undefined);
    const signatureRefused =
      first.delegate === undefined && first.reason >= Reason.SignatureLength && first.reason <= Reason.InvalidSigner;
    if (!signatureRefused || !(await this.isContract(payer.toLowerCase()))) {
      return first.accepted && options.reserve !== false ? decide(options, undefined) : first;
    }
    const digest = first.digest ?? "0x" + toHex(digestOf());
    return decide(options, await this.erc1271(payer.toLowerCase(), digest, signature));
  }

  private decideVoucher(voucher: SignedVoucher, options: VerifyOptions, erc1271Accepted: boolean | undefined): Decision {
    validateVoucher(voucher);
    const payer = voucher.payer.toLowerCase();
    const token = voucher.token.toLowerCase();
    const channelKey = this.channelKey(payer, this.provider, token, voucher.channel);
    const claimed = this.channels.get(channelKey) ?? 0n;
    const previous = this.reservations.get("v|" + channelKey);
    // An accepted, unclaimed voucher of the channel is what the provider will claim: one that does
    // not exceed it adds nothing (the contract would answer NothingToClaim once that one is claimed).
    const floor = previous?.cumulative !== undefined && previous.cumulative > claimed ? previous.cumulative : claimed;
    if (voucher.cumulativeAmount <= floor) return reject(Reason.NothingToClaim, 0n);
    const amount = voucher.cumulativeAmount - claimed;
    const digestBytes = this.digests.voucher(voucher, this.provider);
    const auth = this.authorize(payer, token, voucher.model, amount, false, digestBytes, voucher.signature, options.at ?? this.clock(), erc1271Accepted, previous);
    if (auth.reason !== Reason.Settled) return { ...auth.decision, amount };
    const known = this.accounts.get(accountKey(payer, token));
    const heldHere = previous?.amount ?? 0n;
    if ((known?.balance ?? 0n) < (known?.reserved ?? 0n) - heldHere + amount) {
      return { ...auth.decision, accepted: false, reason: Reason.InsufficientBalance, amount };
    }
    if (options.reserve !== false) {
      if (previous) this.release("v|" + channelKey);
      this.hold("v|" + channelKey, { payer, token, amount, delegate: auth.decision.delegate, deadline: UINT256_MAX, cumulative: voucher.cumulativeAmount });
    }
    return { ...auth.decision, accepted: true, reason: Reason.Settled, amount };
  }

  /**
   * Forgets the reservation of an accepted request that will not be settled (e.g. not served).
   * @example
   * verifier.releaseRequest(request); // e.g. the request was never served
   */
  releaseRequest(request: Pick<SignedRequest, "payer" | "token" | "nonce">): void {
    this.release(requestKey(request.payer.toLowerCase(), request.token.toLowerCase(), request.nonce));
  }

  /**
   * A payer's cached balance, what this verifier reserved of it, and what remains.
   * @example
   * const { available } = verifier.accountOf(payer, token);
   */
  accountOf(payer: string, token: string): AccountView {
    const a = this.accounts.get(accountKey(payer.toLowerCase(), token.toLowerCase()));
    if (!a) return { balance: 0n, reserved: 0n, available: 0n };
    return { balance: a.balance, reserved: a.reserved, available: a.balance > a.reserved ? a.balance - a.reserved : 0n };
  }

  /**
   * The cached state of a grant (as the contract stores it after the last synced settlement), or
   * undefined when none was ever made.
   * @example
   * const g = verifier.grantOf(payer, token, sessionKey);
   * if (g && g.expiry === 0n) console.log("revoked");
   */
  grantOf(payer: string, token: string, delegate: string): GrantView | undefined {
    const g = this.grants.get(grantKey(payer.toLowerCase(), token.toLowerCase(), delegate.toLowerCase()));
    if (!g) return undefined;
    const { epoch, expiry, provider, maxPrice, budget, period, periodEnd, spent, anyModel, reserved } = g;
    return { epoch, expiry, provider, maxPrice, budget, period, periodEnd, spent, anyModel, models: [...g.models], reserved };
  }

  /**
   * Whether the cached on-chain bitmap has `nonce` of (payer, token) used (reservations aside).
   * @example
   * if (verifier.isNonceUsed(payer, token, 5n)) console.log("already settled or invalidated");
   */
  isNonceUsed(payer: string, token: string, nonce: bigint): boolean {
    const a = this.accounts.get(accountKey(payer.toLowerCase(), token.toLowerCase()));
    return a !== undefined && ((a.words.get(nonce >> 6n) ?? 0n) & (1n << (nonce & 63n))) !== 0n;
  }

  /**
   * Number of accepted items not yet seen settled.
   * @example
   * console.log(`${verifier.pendingCount} requests awaiting settlement`);
   */
  get pendingCount(): number {
    return this.reservations.size;
  }

  /**
   * The last block whose events are applied.
   * @example
   * console.log(`synced to block ${verifier.syncedBlock}`);
   */
  get syncedBlock(): number {
    return this.nextBlock - 1;
  }

  // ================================================================== the contract's rules

  private decideRequest(request: SignedRequest, options: VerifyOptions, erc1271Accepted: boolean | undefined): Decision {
    validateRequest(request);
    const now = options.at ?? this.clock();
    // Settlement._settleRequest: the deadline first (inclusive).
    if (now > request.deadline) return reject(Reason.Expired, 0n);
    const payer = request.payer.toLowerCase();
    const token = request.token.toLowerCase();
    const price = request.price;
    const digestBytes = this.digests.request(request, this.provider);
    const auth = this.authorize(payer, token, request.model, price, true, digestBytes, request.signature, now, erc1271Accepted, undefined);
    if (auth.reason !== Reason.Settled) return { ...auth.decision, amount: price };
    // Then the balance (net of what this verifier reserved), then the nonce. (Unknown payers are
    // not added to the cache unless something is reserved for them.)
    const known = this.accounts.get(accountKey(payer, token));
    if ((known ? known.balance - known.reserved : 0n) < price) {
      return { ...auth.decision, accepted: false, reason: Reason.InsufficientBalance, amount: price };
    }
    const word = request.nonce >> 6n;
    const bit = 1n << (request.nonce & 63n);
    if (known && (((known.words.get(word) ?? 0n) | (known.pending.get(word) ?? 0n)) & bit) !== 0n) {
      return { ...auth.decision, accepted: false, reason: Reason.NonceUsed, amount: price };
    }
    if (options.reserve !== false) {
      const account = known ?? this.account(payer, token);
      this.hold(requestKey(payer, token, request.nonce), { payer, token, amount: price, delegate: auth.decision.delegate, deadline: request.deadline });
      account.pending.set(word, (account.pending.get(word) ?? 0n) | bit);
    }
    return { ...auth.decision, accepted: true, reason: Reason.Settled, amount: price };
  }

  /** Settlement._authorize: payer by ECDSA, else a delegate within its grant, else ERC-1271. */
  private authorize(
    payer: string,
    token: string,
    model: string,
    amount: bigint,
    checkPrice: boolean,
    digestBytes: Uint8Array,
    signature: string,
    now: bigint,
    erc1271Accepted: boolean | undefined,
    replacing: Reservation | undefined,
  ): { reason: Reason; decision: Decision } {
    const digest = "0x" + toHex(digestBytes);
    const recovered = recoverSignature(digestBytes, hexToBytes(signature));
    const signer = recovered.publicKey ? this.addressOf(recovered.publicKey) : undefined;
    const base: Decision = { accepted: false, reason: Reason.Settled, signer, digest, amount };
    if (signer !== undefined && signer === payer) return { reason: Reason.Settled, decision: base };
    const grant = signer === undefined ? undefined : this.grants.get(grantKey(payer, token, signer));
    if (grant !== undefined && grant.epoch !== 0n) {
      const reason = this.checkGrant(grant, model, amount, checkPrice, now, replacing !== undefined && replacing.delegate === signer ? replacing.amount : 0n);
      const decision = { ...base, delegate: signer, reason, accepted: false };
      return { reason, decision };
    }
    const sigReason =
      recovered.status === SignatureStatus.BadLength
        ? Reason.SignatureLength
        : recovered.status === SignatureStatus.Malleable
          ? Reason.SignatureMalleable
          : Reason.InvalidSigner;
    if (this.codeCache.get(payer) === true) {
      if (erc1271Accepted === true) return { reason: Reason.Settled, decision: base };
      if (erc1271Accepted === undefined) return { reason: sigReason, decision: { ...base, reason: sigReason, needsErc1271: true } };
    }
    return { reason: sigReason, decision: { ...base, reason: sigReason } };
  }

  /** InferencePermissions._checkGrant, with this verifier's reserved spend added to the budget. */
  private checkGrant(g: Grant, model: string, amount: bigint, checkPrice: boolean, now: bigint, replacedAmount: bigint): Reason {
    if (g.expiry === 0n) return Reason.GrantRevoked;
    if (now >= g.expiry) return Reason.GrantExpired;
    if (g.provider !== ZERO && g.provider !== this.provider) return Reason.ProviderNotAllowed;
    if (checkPrice && amount > g.maxPrice) return Reason.PriceAboveCap;
    if (!g.anyModel && !g.models.has(model.toLowerCase())) return Reason.ModelNotAllowed;
    const { spent } = rollover(g, now);
    if (spent + g.reserved - replacedAmount + amount > g.budget) return Reason.BudgetExceeded;
    return Reason.Settled;
  }

  // ================================================================== reservations

  private hold(key: string, r: Reservation): void {
    this.reservations.set(key, r);
    this.account(r.payer, r.token).reserved += r.amount;
    if (r.delegate !== undefined) {
      const g = this.grants.get(grantKey(r.payer, r.token, r.delegate));
      if (g) g.reserved += r.amount;
    }
  }

  private release(key: string): void {
    const r = this.reservations.get(key);
    if (!r) return;
    this.reservations.delete(key);
    const account = this.account(r.payer, r.token);
    account.reserved -= r.amount;
    if (r.cumulative === undefined) {
      const nonce = BigInt(key.slice(key.lastIndexOf("|") + 1));
      const word = nonce >> 6n;
      const rest = (account.pending.get(word) ?? 0n) & ~(1n << (nonce & 63n));
      if (rest === 0n) account.pending.delete(word);
      else account.pending.set(word, rest);
    }
    if (r.delegate !== undefined) {
      const g = this.grants.get(grantKey(r.payer, r.token, r.delegate));
      if (g) g.reserved = g.reserved > r.amount ? g.reserved - r.amount : 0n;
    }
  }

  /** Drops reservations of requests whose deadline passed before `now`: they can never settle. */
  private pruneExpired(now: bigint): void {
    for (const [key, r] of this.reservations) if (now > r.deadline) this.release(key);
  }

  // ================================================================== event sync

  /**
   * Applies the contract's events up to the latest block (or `toBlock`); returns the last block applied.
   * Safe to call concurrently (calls share one catch-up).
   * @example
   * await preflight.connect(payer).deposit(payer.address, token, amount);
   * await verifier.sync(); // the deposit is now in the cache
   */
  sync(toBlock?: number): Promise<number> {
    if (!this.syncing) {
      this.syncing = this.catchUp(toBlock).finally(() => {
        this.syncing = undefined;
      });
    }
    return this.syncing;
  }

  /**
   * Follows new blocks by polling every `intervalMs` (works over HTTP and in-process). Errors are
   * passed to `onError` and the next poll retries.
   * @example
   * verifier.start(2_000, (e) => console.error("sync failed", e));
   */
  start(intervalMs = 1_000, onError: (error: unknown) => void = () => undefined): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      this.sync().catch(onError);
    }, intervalMs);
    this.timer.unref();
  }

  /**
   * Stops following new blocks.
   * @example
   * verifier.stop();
   */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private async catchUp(toBlock?: number): Promise<number> {
    const latest = toBlock ?? (await this.rpc.getBlockNumber()) - this.confirmations;
    while (this.nextBlock <= latest) {
      const to = Math.min(latest, this.nextBlock + this.logChunk - 1);
      const logs = await this.rpc.getLogs({ address: this.address, fromBlock: this.nextBlock, toBlock: to });
      await this.applyLogs(logs);
      this.nextBlock = to + 1;
    }
    this.pruneExpired(this.clock());
    return this.nextBlock - 1;
  }

  private async applyLogs(logs: readonly Log[]): Promise<void> {
    // Group by block, then by transaction, in chain order; each transaction is applied as a unit.
    let i = 0;
    while (i < logs.length) {
      const blockNumber = logs[i].blockNumber;
      const byTx: Log[][] = [];
      for (; i < logs.length && logs[i].blockNumber === blockNumber; i++) {
        const last = byTx[byTx.length - 1];
        if (last && last[0].transactionHash === logs[i].transactionHash) last.push(logs[i]);
        else byTx.push([logs[i]]);
      }
      const dirty: Dirty = { grantsOf: new Set(), tokens: new Set() };
      for (const txLogs of byTx) await this.applyTransaction(txLogs, dirty);
      if (dirty.grantsOf.size > 0 || dirty.tokens.size > 0) await this.refresh(blockNumber, dirty);
    }
  }

  /**
   * For settlements sent through another contract (e.g. a multisig), whose items are not in the
   * transaction's calldata: re-reads the affected state with view calls at the end of the block
   * (which includes every transaction of the block, so the values replace the cached ones exactly).
   */
  private async refresh(blockNumber: number, dirty: Dirty): Promise<void> {
    const at = { blockTag: blockNumber };
    const reads: Promise<void>[] = [];
    for (const [key, account] of this.accounts) {
      const [payer, token] = key.split("|");
      if (!dirty.tokens.has(token)) continue;
      reads.push(
        this.contract.balanceOf(payer, token, at).then((b) => {
          account.balance = b;
        }),
      );
      for (const word of new Set([...account.words.keys(), ...account.pending.keys()])) {
        reads.push(
          this.contract.nonceBitmap(payer, token, word, at).then((bits) => {
            account.words.set(word, bits);
          }),
        );
      }
    }
    for (const [key, g] of this.grants) {
      const [payer, token, delegate] = key.split("|");
      if (!dirty.tokens.has(token) && !dirty.grantsOf.has(accountKey(payer, token))) continue;
      reads.push(
        this.contract.grantOf(payer, token, delegate, at).then((onChain) => {
          g.spent = onChain.spent;
          g.periodEnd = onChain.periodEnd;
          g.expiry = onChain.expiry;
          g.epoch = onChain.epoch;
        }),
      );
    }
    await Promise.all(reads);
    // Requests reserved here whose nonce is now used on-chain settled (or can no longer settle).
    for (const [key, r] of [...this.reservations]) {
      if (r.cumulative !== undefined || !dirty.tokens.has(r.token)) continue;
      const nonce = BigInt(key.slice(key.lastIndexOf("|") + 1));
      if (this.isNonceUsed(r.payer, r.token, nonce)) this.release(key);
    }
  }

  private async applyTransaction(logs: Log[], dirty: Dirty): Promise<void> {
    const parsed = logs.map((l) => ({ log: l, event: this.iface.parseLog(l) }));
    const blockNumber = logs[0].blockNumber;
    let tx: TransactionResponse | null | undefined;
    /**
     * The Preflight calls of this transaction: its own calldata when sent to Preflight, else every
     * Preflight call embedded verbatim in it (how a Safe, a multisig or a forwarder passes it on).
     */
    let calls: TransactionDescription[] | undefined;
    /**
     * Whether those calls were found inside another contract's calldata. Such calldata is the sender's
     * to shape (a decoy encoding before the real call), so what it says is only a first estimate: the
     * tokens it touched are re-read with view calls at the end of the block, which overwrites it.
     */
    let wrapped = false;
    const preflightCalls = async (): Promise<TransactionDescription[]> => {
      if (calls) return calls;
      if (tx === undefined) tx = await this.rpc.getTransaction(logs[0].transactionHash);
      if (!tx) throw new PreflightSdkError("UNEXPECTED_TRANSACTION", `transaction ${logs[0].transactionHash} not found`);
      wrapped = (tx.to ?? "").toLowerCase() !== this.address;
      calls = wrapped ? this.embeddedCalls(tx.data) : [this.iface.parseTransaction(tx)].filter(isCall);
      return calls;
    };
    const skipped = new Set<string>();
    for (const { event } of parsed) {
      if (event?.name === "RequestSkipped") skipped.add(`${String(event.args.provider).toLowerCase()}|${String(event.args.index)}`);
    }
    for (const { event } of parsed) {
      if (!event) continue;
      const a = event.args;
      switch (event.name) {
        case "Deposited": {
          this.account(lc(a.payer), lc(a.token)).balance += big(a.amount);
          break;
        }
        case "Withdrawn": {
          this.account(lc(a.payer), lc(a.token)).balance -= big(a.amount);
          break;
        }
        case "GrantSet": {
          const key = grantKey(lc(a.payer), lc(a.token), lc(a.delegate));
          const period = big(a.period);
          const ts = await this.blockTime(blockNumber);
          let periodEnd = period === 0n ? UINT32_MAX : ts + period;
          if (periodEnd > UINT32_MAX) periodEnd = UINT32_MAX;
          const models = (a.models as Result).toArray().map((m) => String(m).toLowerCase());
          this.grants.set(key, {
            epoch: big(a.epoch),
            expiry: big(a.expiry),
            provider: lc(a.provider),
            maxPrice: big(a.maxPrice),
            budget: big(a.budget),
            period,
            periodEnd,
            spent: 0n,
            anyModel: models.length === 0,
            models: new Set(models),
            reserved: this.grants.get(key)?.reserved ?? 0n,
          });
          break;
        }
        case "GrantRevoked": {
          const key = grantKey(lc(a.payer), lc(a.token), lc(a.delegate));
          const g = this.grants.get(key) ?? emptyGrant();
          g.expiry = 0n;
          g.epoch = big(a.epoch);
          this.grants.set(key, g);
          break;
        }
        case "NoncesInvalidated": {
          const payer = lc(a.payer);
          const token = lc(a.token);
          const word = big(a.word);
          const mask = big(a.mask);
          const account = this.account(payer, token);
          account.words.set(word, (account.words.get(word) ?? 0n) | mask);
          for (let i = 0n; i < 64n; i++) if ((mask >> i) & 1n) this.release(requestKey(payer, token, (word << 6n) | i));
          break;
        }
        case "RequestSettled": {
          const payer = lc(a.payer);
          const token = lc(a.token);
          const nonce = big(a.nonce);
          const call = (await preflightCalls()).find((c) => {
            if (c.name !== "settle") return false;
            const r = toSignedRequest(c.args[0] as Result);
            return r.payer.toLowerCase() === payer && r.token.toLowerCase() === token && r.nonce === nonce && r.price === big(a.price);
          });
          if (call) {
            await this.applySettledRequest(toSignedRequest(call.args[0] as Result), lc(a.provider), blockNumber);
          } else {
            // Not decodable: the event says what moved; who signed (a delegate's spend) is re-read.
            this.release(requestKey(payer, token, nonce));
            const account = this.account(payer, token);
            account.balance -= big(a.price);
            account.words.set(nonce >> 6n, (account.words.get(nonce >> 6n) ?? 0n) | (1n << (nonce & 63n)));
            dirty.grantsOf.add(accountKey(payer, token));
          }
          break;
        }
        case "BatchSettled": {
          const provider = lc(a.provider);
          const token = lc(a.token);
          const count = Number(a.settled);
          const total = big(a.total);
          // The settleBatch or settlePacked call whose items match the event (token, settled count and total).
          const call = (await preflightCalls()).find((c) => {
            if ((c.name !== "settleBatch" && c.name !== "settlePacked") || lc(c.args[0]) !== token) return false;
            const settledItems = requestsOf(c).filter((_, i) => !skipped.has(`${provider}|${i}`));
            return settledItems.length === count && settledItems.reduce((sum, r) => sum + r.price, 0n) === total;
          });
          if (!call) {
            // Not decodable: skipped items are named by their events; the rest is re-read at block end.
            for (const { event: e } of parsed) {
              if (e?.name === "RequestSkipped" && lc(e.args.provider) === this.provider && provider === this.provider) {
                this.release(requestKey(lc(e.args.payer), token, big(e.args.nonce)));
              }
            }
            dirty.tokens.add(token);
            break;
          }
          const items = requestsOf(call);
          for (let i = 0; i < items.length; i++) {
            const item = items[i];
            if (skipped.has(`${provider}|${i}`)) {
              // Skipped: nothing moved on-chain, and it will not settle in this form.
              if (provider === this.provider) this.release(requestKey(item.payer.toLowerCase(), item.token.toLowerCase(), item.nonce));
            } else {
              await this.applySettledRequest(item, provider, blockNumber);
            }
          }
          break;
        }
        case "VoucherSkipped": {
          // A skipped voucher of this provider will not be claimed in that form: drop its reservation.
          if (lc(a.provider) === this.provider) {
            const prefix = `v|${lc(a.payer)}|${this.provider}|`;
            const suffix = `|${String(a.channel).toLowerCase()}`;
            for (const key of [...this.reservations.keys()]) if (key.startsWith(prefix) && key.endsWith(suffix)) this.release(key);
          }
          break;
        }
        case "VoucherClaimed": {
          await this.applyClaimedVoucher(event.args, preflightCalls, blockNumber, dirty);
          break;
        }
        default:
          break;
      }
    }
    if (wrapped) {
      for (const { event } of parsed) {
        if (event !== null && event.args.token !== undefined) dirty.tokens.add(lc(event.args.token));
      }
      // Every nonce word any decoded request names (decoy or real) is re-read with the balances.
      for (const call of calls ?? []) {
        for (const r of requestsOf(call)) {
          const account = this.account(r.payer.toLowerCase(), r.token.toLowerCase());
          const word = r.nonce >> 6n;
          if (!account.words.has(word)) account.words.set(word, 0n);
        }
      }
    }
  }

  private async applySettledRequest(item: SignedRequest, provider: string, blockNumber: number): Promise<void> {
    const payer = item.payer.toLowerCase();
    const token = item.token.toLowerCase();
    this.release(requestKey(payer, token, item.nonce));
    const account = this.account(payer, token);
    account.balance -= item.price;
    const word = item.nonce >> 6n;
    account.words.set(word, (account.words.get(word) ?? 0n) | (1n << (item.nonce & 63n)));
    const digest = this.digests.request(item, provider);
    await this.recordDelegateSpend(payer, token, digest, item.signature, item.price, blockNumber);
  }

  private async applyClaimedVoucher(
    args: Result,
    preflightCalls: () => Promise<TransactionDescription[]>,
    blockNumber: number,
    dirty: Dirty,
  ): Promise<void> {
    const payer = lc(args.payer);
    const provider = lc(args.provider);
    const token = lc(args.token);
    const channel = String(args.channel).toLowerCase();
    const cumulative = big(args.cumulativeAmount);
    const amount = big(args.amount);
    const key = this.channelKey(payer, provider, token, channel);
    this.channels.set(key, cumulative);
    this.account(payer, token).balance -= amount;
    const held = this.reservations.get("v|" + key);
    if (held?.cumulative !== undefined) {
      const rest = held.cumulative > cumulative ? held.cumulative - cumulative : 0n;
      this.release("v|" + key);
      if (rest > 0n) this.hold("v|" + key, { ...held, amount: rest });
    }
    const vouchers = (await preflightCalls()).flatMap((c) =>
      c.name === "claimVoucher" ? [c.args[0] as Result] : c.name === "claimVouchers" ? (c.args[1] as Result).toArray().map((v) => v as Result) : [],
    );
    const match = vouchers
      .map((v) => toSignedVoucher(v))
      .find((v) => v.payer.toLowerCase() === payer && v.channel.toLowerCase() === channel && v.cumulativeAmount === cumulative);
    if (!match) {
      dirty.grantsOf.add(accountKey(payer, token)); // not decodable: re-read who spent
      return;
    }
    await this.recordDelegateSpend(payer, token, this.digests.voucher(match, provider), match.signature, amount, blockNumber);
  }

  /** InferencePermissions._recordSpend for an item that settled at `blockNumber`, if a delegate signed it. */
  private async recordDelegateSpend(payer: string, token: string, digest: Uint8Array, signature: string, amount: bigint, blockNumber: number): Promise<void> {
    const recovered = recoverSignature(digest, hexToBytes(signature));
    if (!recovered.publicKey) return;
    const signer = this.addressOf(recovered.publicKey);
    if (signer === payer) return;
    const g = this.grants.get(grantKey(payer, token, signer));
    if (!g || g.epoch === 0n) return;
    const rolled = rollover(g, await this.blockTime(blockNumber));
    g.spent = rolled.spent + amount;
    g.periodEnd = rolled.periodEnd;
  }

  // ================================================================== helpers

  /** Preflight settlement calls found verbatim inside another contract's calldata. */
  private embeddedCalls(data: string): TransactionDescription[] {
    const found: TransactionDescription[] = [];
    const hex = data.toLowerCase();
    for (const selector of SETTLEMENT_SELECTORS) {
      for (let at = hex.indexOf(selector, 2); at !== -1; at = hex.indexOf(selector, at + 2)) {
        if ((at - 2) % 2 !== 0) continue; // not on a byte boundary
        try {
          const call = this.iface.parseTransaction({ data: "0x" + hex.slice(at) });
          if (call) found.push(call);
        } catch {
          // not a call after all (the selector's bytes appeared inside other data)
        }
      }
    }
    return found;
  }

  private account(payer: string, token: string): Account {
    const key = accountKey(payer, token);
    let a = this.accounts.get(key);
    if (!a) {
      a = { balance: 0n, reserved: 0n, words: new Map(), pending: new Map() };
      this.accounts.set(key, a);
    }
    return a;
  }

  private addressOf(publicKey: Uint8Array): string {
    const key = Buffer.from(publicKey.buffer, publicKey.byteOffset + 1, 64).toString("latin1");
    let address = this.pubkeyToAddress.get(key);
    if (address === undefined) {
      address = publicKeyToAddress(publicKey);
      if (this.pubkeyToAddress.size >= PUBKEY_CACHE_LIMIT) this.pubkeyToAddress.clear();
      this.pubkeyToAddress.set(key, address);
    }
    return address;
  }

  private async blockTime(blockNumber: number): Promise<bigint> {
    let t = this.blockTimes.get(blockNumber);
    if (t === undefined) {
      const block = await this.rpc.getBlock(blockNumber);
      if (!block) throw new PreflightSdkError("UNEXPECTED_TRANSACTION", `block ${blockNumber} not found`);
      t = BigInt(block.timestamp);
      if (this.blockTimes.size > 1_000) this.blockTimes.clear();
      this.blockTimes.set(blockNumber, t);
    }
    return t;
  }

  private channelKey(payer: string, provider: string, token: string, channel: string): string {
    return `${payer}|${provider}|${token}|${channel.toLowerCase()}`;
  }

  private async isContract(payer: string): Promise<boolean> {
    let known = this.codeCache.get(payer);
    if (known === undefined) {
      known = (await this.rpc.getCode(payer)) !== "0x";
      this.codeCache.set(payer, known);
    }
    return known;
  }

  private async erc1271(payer: string, digest: string, signature: string): Promise<boolean> {
    const data = ERC1271_IFACE.encodeFunctionData("isValidSignature", [digest, signature]);
    try {
      const result = await this.rpc.call({ to: payer, data, gasLimit: ERC1271_GAS_LIMIT });
      return result.length >= 66 && result.slice(0, 66).toLowerCase() === ERC1271_MAGIC_WORD;
    } catch {
      return false;
    }
  }

  /**
   * The contract this verifier follows.
   * @example
   * const address = await verifier.preflight.getAddress();
   */
  get preflight(): Preflight {
    return this.contract;
  }
}

const SETTLEMENT_SELECTORS = (["settle", "settleBatch", "settlePacked", "claimVoucher", "claimVouchers"] as const).map((name) =>
  Preflight__factory.createInterface().getFunction(name)!.selector.slice(2),
);

function isCall(call: TransactionDescription | null): call is TransactionDescription {
  return call !== null;
}

const ERC1271_IFACE = new Interface(["function isValidSignature(bytes32 hash, bytes signature) view returns (bytes4)"]);

function reject(reason: Reason, amount: bigint): Decision {
  return { accepted: false, reason, amount };
}

function emptyGrant(): Grant {
  return {
    epoch: 0n,
    expiry: 0n,
    provider: ZERO,
    maxPrice: 0n,
    budget: 0n,
    period: 0n,
    periodEnd: UINT32_MAX,
    spent: 0n,
    anyModel: false,
    models: new Set(),
    reserved: 0n,
  };
}

function accountKey(payer: string, token: string): string {
  return payer + "|" + token;
}
function grantKey(payer: string, token: string, delegate: string): string {
  return payer + "|" + token + "|" + delegate;
}
function requestKey(payer: string, token: string, nonce: bigint): string {
  return payer + "|" + token + "|" + nonce.toString();
}
function lc(value: unknown): string {
  return String(value).toLowerCase();
}
function big(value: unknown): bigint {
  return BigInt(value as bigint);
}

/** The signed requests a decoded Preflight call carries (none for voucher claims). */
function requestsOf(call: TransactionDescription): SignedRequest[] {
  switch (call.name) {
    case "settle":
      return [toSignedRequest(call.args[0] as Result)];
    case "settleBatch":
      return (call.args[1] as Result).toArray().map((r) => toSignedRequest(r as Result));
    case "settlePacked":
      return decodePacked(String(call.args[0]), String(call.args[1]));
    default:
      return [];
  }
}

function toSignedRequest(r: Result): SignedRequest {
  return {
    payer: String(r.payer),
    token: String(r.token),
    model: String(r.model),
    price: big(r.price),
    nonce: big(r.nonce),
    deadline: big(r.deadline),
    inputHash: String(r.inputHash),
    signature: String(r.signature),
  };
}

function toSignedVoucher(v: Result): SignedVoucher {
  return {
    payer: String(v.payer),
    token: String(v.token),
    model: String(v.model),
    channel: String(v.channel),
    cumulativeAmount: big(v.cumulativeAmount),
    signature: String(v.signature),
  };
}

function checkUint(name: string, value: bigint, max: bigint): void {
  if (typeof value !== "bigint" || value < 0n || value > max) throw new PreflightSdkError("INVALID_AMOUNT", `${name} ${String(value)}`);
}

function checkAddress(name: string, value: string): void {
  if (typeof value !== "string" || !ADDRESS_RE.test(value)) throw new PreflightSdkError("INVALID_ADDRESS", `${name} ${String(value)}`);
}

function checkBytes32(name: string, value: string): void {
  if (typeof value !== "string" || !BYTES32_RE.test(value)) throw new PreflightSdkError("INVALID_HEX", `${name} ${String(value)}`);
}

/** Input that could not even be ABI-encoded into a settlement is refused with a typed error. */
function validateRequest(r: SignedRequest): void {
  checkAddress("payer", r.payer);
  checkAddress("token", r.token);
  checkBytes32("model", r.model);
  checkBytes32("inputHash", r.inputHash);
  checkUint("price", r.price, UINT96_MAX);
  checkUint("nonce", r.nonce, UINT256_MAX);
  checkUint("deadline", r.deadline, UINT256_MAX);
  if (typeof r.signature !== "string" || !HEX_RE.test(r.signature)) throw new PreflightSdkError("INVALID_HEX", "signature");
}

function validateVoucher(v: SignedVoucher): void {
  checkAddress("payer", v.payer);
  checkAddress("token", v.token);
  checkBytes32("model", v.model);
  checkBytes32("channel", v.channel);
  checkUint("cumulativeAmount", v.cumulativeAmount, UINT128_MAX);
  if (typeof v.signature !== "string" || !HEX_RE.test(v.signature)) throw new PreflightSdkError("INVALID_HEX", "signature");
}

