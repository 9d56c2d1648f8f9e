/**
 * The provider's preflight: decides, before serving, whether a signed request (or voucher) would
 * settle to this provider, with exactly the contract's rules (`rules.ts`), against chain state
 * followed from the contract's logs (`follower.ts`, `events.ts`) and cached in memory (`state.ts`),
 * net of what this provider already accepted (`reservations.ts`). No RPC call per decision, except
 * for state the cache does not know (`verifyAsync`, read in by `fill.ts`) and for ERC-1271 payers
 * (`erc1271.ts`).
 */
import type { Provider } from "ethers";
import type { Preflight } from "@preflight/sdk/typechain";
import { hexToBytes, publicKeyToAddress, recoverSignature, SignatureStatus, toHex } from "../crypto";
import { DigestComputer } from "../digest";
import { PreflightSdkError } from "@preflight/sdk";
import { Reason, type SignedLaneVoucher, type SignedRequest, type SignedVoucher } from "@preflight/sdk";
import { Erc1271Checker } from "./erc1271";
import { ChainFollower } from "./follower";
import { isAddress, validateLaneVoucher, validateRequest, validateVoucher } from "./input";
import { StateReader } from "./reader";
import { Reservations } from "./reservations";
import { decideLaneSigner, decideLaneVoucher, decideRequest, decideVoucher, type RecoveredSignature, type RuleState, type RuleTime, type Verdict } from "./rules";
import { ChainState } from "./state";
import { fillUnknown } from "./fill";
import type { AccountView, Decision, GrantView, LaneView, PreflightVerifierOptions, VerifyOptions } from "./types";

export type { AccountView, Decision, GrantView, LaneView, PreflightVerifierOptions, VerifyOptions } from "./types";

const PUBKEY_CACHE_LIMIT = 100_000;
const DEFAULT_SETTLEMENT_WINDOW = 3_600n;
const DEFAULT_REORG_DEPTH = 64;
/** Reads for unknown state are retried when a block is applied meanwhile (they would be stale). */
const READ_ATTEMPTS = 3;

/** How following the chain has gone so far. */
export interface FollowStats {
  /** Logs applied since the verifier was built. */
  logsApplied: number;
  /** The last block applied. */
  syncedBlock: number;
  /** Reorgs into applied blocks detected (each taken back to its fork point). */
  reorgs: number;
}

/**
 * Off-chain preflight with the contract's exact rules, from a log-followed cache.
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
  private readonly digests: DigestComputer;
  private readonly clock: () => bigint;
  private readonly settlementWindow: bigint;
  private readonly state: ChainState;
  private readonly reservations = new Reservations();
  private readonly reader: StateReader;
  private readonly follower: ChainFollower;
  private readonly erc1271: Erc1271Checker;
  private readonly rules: RuleState;
  private readonly pubkeyToAddress = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private syncing: Promise<number> | undefined;

  private constructor(options: PreflightVerifierOptions, rpc: Provider, chainId: bigint, address: string, complete: boolean, withdrawalWindow: bigint) {
    this.contract = options.contract;
    this.provider = options.provider.toLowerCase();
    this.address = address.toLowerCase();
    this.digests = new DigestComputer({ chainId, verifyingContract: address });
    this.clock = options.clock ?? (() => BigInt(Math.floor(Date.now() / 1000)));
    this.settlementWindow = options.settlementWindow ?? DEFAULT_SETTLEMENT_WINDOW;
    this.state = new ChainState(complete);
    this.reader = new StateReader(options.contract, this.provider, withdrawalWindow);
    this.follower = new ChainFollower(rpc, this.address, this.state, this.reservations, this.reader, {
      provider: this.provider,
      fromBlock: options.fromBlock ?? 0,
      logChunk: options.logChunk ?? 5_000,
      confirmations: options.confirmations ?? 0,
      reorgDepth: options.reorgDepth ?? DEFAULT_REORG_DEPTH,
    });
    this.erc1271 = new Erc1271Checker(rpc, this.state.codes);
    const state = this.state;
    const held = this.reservations;
    this.rules = {
      provider: this.provider,
      balance: (p, t) => state.balance(p, t),
      withdrawal: (p, t) => state.withdrawal(p, t),
      nonceWord: (p, t, w) => state.nonceWord(p, t, w),
      grant: (p, t, d) => state.grant(p, t, d),
      claimed: (p, t, c) => state.claimed(p, t, c),
      lane: (p, t) => state.lane(p, t),
      isContract: (p) => state.codes.get(p),
      reservedBalance: (p, t) => held.reservedBalance(p, t),
      reservedNonces: (p, t, w) => held.reservedNonces(p, t, w),
      reservedGrant: (p, t, d) => held.reservedGrant(p, t, d),
      voucherHold: (p, t, c) => held.voucherHold(p, t, c),
      laneHold: (p, t) => held.voucherHold(p, t, undefined),
    };
  }

  /**
   * Builds a verifier and applies the contract's logs from `fromBlock` to the confirmed head.
   * @example
   * const verifier = await PreflightVerifier.create({ contract: preflight, provider: providerAddress, fromBlock: deployBlock });
   */
  static async create(options: PreflightVerifierOptions): Promise<PreflightVerifier> {
    if (!isAddress(options.provider)) throw new PreflightSdkError("INVALID_ADDRESS", `provider ${options.provider}`);
    for (const [name, value] of [["fromBlock", options.fromBlock], ["logChunk", options.logChunk], ["confirmations", options.confirmations], ["reorgDepth", options.reorgDepth]] as const) {
      if (value !== undefined && (!Number.isInteger(value) || value < (name === "logChunk" || name === "reorgDepth" ? 1 : 0))) {
        throw new PreflightSdkError("INVALID_OPTION", `${name} ${String(value)}`);
      }
    }
    if (options.settlementWindow !== undefined && (typeof options.settlementWindow !== "bigint" || options.settlementWindow < 0n)) {
      throw new PreflightSdkError("INVALID_OPTION", `settlementWindow ${String(options.settlementWindow)}`);
    }
    const rpc = options.contract.runner?.provider;
    if (!rpc) throw new PreflightSdkError("INVALID_OPTION", "the contract must be connected to a provider");
    const { chainId } = await rpc.getNetwork();
    const address = await options.contract.getAddress();
    // Following from before the deployment sees every effect: what the logs never named is zero.
    // Following from a later block knows nothing of what came before: every state is read first.
    const fromBlock = options.fromBlock ?? 0;
    const complete = fromBlock === 0 || (await rpc.getCode(address, fromBlock - 1)) === "0x";
    const withdrawalWindow = await options.contract.WITHDRAWAL_WINDOW();
    const verifier = new PreflightVerifier(options, rpc, chainId, address, complete, withdrawalWindow);
    await verifier.sync();
    return verifier;
  }

  // ================================================================== decisions

  /**
   * Decides whether `request` would settle to this verifier's provider, with no RPC call. Accepted
   * requests are reserved (balance, nonce, grant spend) until the chain shows them settled or dead.
   * When the decision depends on state the verifier does not know, it is refused with
   * `needsChainRead` (call `verifyAsync`); a payer known to be a contract whose signature ECDSA does
   * not match gets `needsErc1271`.
   * @example
   * const d = verifier.verify(request, { at: BigInt(Math.floor(Date.now() / 1000)) });
   * console.log(d.accepted, reasonName(d.reason));
   */
  verify(request: SignedRequest, options: VerifyOptions = {}): Decision {
    return this.requestVerdict(request, options, undefined).decision;
  }

  /**
   * Like `verify`, and first reads from the chain (at the synced block) any state the decision
   * needs that the cache does not know; for a contract payer (ERC-1271 wallet, e.g. Safe) whose
   * signature ECDSA does not match, asks the wallet with one `eth_call` to `isValidSignature`, with
   * exactly the 200,000 gas the contract gives it, after one `eth_getCode` per payer (cached).
   * @example
   * const d = await verifier.verifyAsync(requestFromSafe);
   */
  async verifyAsync(request: SignedRequest, options: VerifyOptions = {}): Promise<Decision> {
    return this.decideAsync(request.payer, request.signature, options, (o, erc1271) => this.requestVerdict(request, o, erc1271), () =>
      this.digests.request(request, this.provider),
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
    return this.voucherVerdict(voucher, options, undefined).decision;
  }

  /**
   * `verifyVoucher` with the chain reads and the ERC-1271 path of `verifyAsync`.
   * @example
   * const d = await verifier.verifyVoucherAsync(voucherFromSafe);
   */
  async verifyVoucherAsync(voucher: SignedVoucher, options: VerifyOptions = {}): Promise<Decision> {
    return this.decideAsync(voucher.payer, voucher.signature, options, (o, erc1271) => this.voucherVerdict(voucher, o, erc1271), () =>
      this.digests.voucher(voucher, this.provider),
    );
  }

  /**
   * Decides whether a lane voucher would pay this verifier's provider, with no RPC call: the payer's
   * lane to this provider must owe more than it paid (or than an accepted lane voucher already
   * reserved), and its funds (not about to be closed) must cover the excess, authorised by the payer
   * or a delegate within its grant. Accepted lane vouchers reserve that excess until claimed.
   * @example
   * const d = verifier.verifyLaneVoucher(signedLaneVoucher);
   */
  verifyLaneVoucher(voucher: SignedLaneVoucher, options: VerifyOptions = {}): Decision {
    return this.laneVerdict(voucher, options, undefined).decision;
  }

  /**
   * `verifyLaneVoucher` with the chain reads and the ERC-1271 path of `verifyAsync`.
   * @example
   * const d = await verifier.verifyLaneVoucherAsync(laneVoucherFromSafe);
   */
  async verifyLaneVoucherAsync(voucher: SignedLaneVoucher, options: VerifyOptions = {}): Promise<Decision> {
    return this.decideAsync(voucher.payer, voucher.signature, options, (o, erc1271) => this.laneVerdict(voucher, o, erc1271), () =>
      this.digests.laneVoucher(voucher, this.provider),
    );
  }

  /**
   * Gives up the reservation of an accepted request that will not be settled (e.g. not served).
   * @example
   * verifier.releaseRequest(request); // e.g. the request was never served
   */
  releaseRequest(request: Pick<SignedRequest, "payer" | "token" | "nonce">): void {
    this.reservations.giveUpRequest(request.payer.toLowerCase(), request.token.toLowerCase(), request.nonce);
  }

  /**
   * Gives up the reservation of a channel's accepted voucher (e.g. the provider will not claim it).
   * @example
   * verifier.releaseVoucher(voucher);
   */
  releaseVoucher(voucher: Pick<SignedVoucher, "payer" | "token" | "channel">): void {
    this.reservations.giveUpVoucher(voucher.payer.toLowerCase(), voucher.token.toLowerCase(), voucher.channel.toLowerCase());
  }

  /**
   * Gives up the reservation of the payer's accepted lane voucher (e.g. the provider will not claim it).
   * @example
   * verifier.releaseLaneVoucher(laneVoucher);
   */
  releaseLaneVoucher(voucher: Pick<SignedLaneVoucher, "payer" | "token">): void {
    this.reservations.giveUpVoucher(voucher.payer.toLowerCase(), voucher.token.toLowerCase(), undefined);
  }

  /**
   * For a lane voucher that adds nothing: its signer, and whether that key may still use the lane for
   * the voucher's model (a delegate's grant not revoked or expired, still covering this provider and
   * the model; the payer always). No RPC, nothing reserved.
   * @example
   * const d = verifier.laneVoucherSigner(voucher);
   * if (!d.accepted) console.log(reasonName(d.reason)); // e.g. ModelNotAllowed
   */
  laneVoucherSigner(voucher: SignedLaneVoucher, options: VerifyOptions = {}): Decision {
    return this.laneSignerVerdict(voucher, options).decision;
  }

  /**
   * `laneVoucherSigner`, first reading from the chain the grant (or its entry for the voucher's
   * model) the cache does not hold: a verifier that followed from a later block, a replica that did
   * not see the lane's raise, or one that forgot its state after a reorg.
   * @example
   * const d = await verifier.laneVoucherSignerAsync(voucher);
   */
  async laneVoucherSignerAsync(voucher: SignedLaneVoucher, options: VerifyOptions = {}): Promise<Decision> {
    let verdict = this.laneSignerVerdict(voucher, options);
    for (let attempt = 0; verdict.unknown.length > 0 && attempt < READ_ATTEMPTS; attempt++) {
      await fillUnknown(this.state, this.reader, this.follower, verdict.unknown);
      verdict = this.laneSignerVerdict(voucher, options);
    }
    return verdict.decision;
  }

  private laneSignerVerdict(voucher: SignedLaneVoucher, options: VerifyOptions): Verdict {
    validateLaneVoucher(voucher);
    return decideLaneSigner(this.rules, voucher, this.recover(this.digests.laneVoucher(voucher, this.provider), voucher.signature), this.time(options, undefined));
  }

  private laneVerdict(voucher: SignedLaneVoucher, options: VerifyOptions, erc1271: boolean | undefined): Verdict {
    validateLaneVoucher(voucher);
    const verdict = decideLaneVoucher(this.rules, voucher, () => this.recover(this.digests.laneVoucher(voucher, this.provider), voucher.signature), this.time(options, erc1271));
    const d = verdict.decision;
    if (d.accepted && options.reserve !== false) {
      this.reservations.holdVoucher({ payer: voucher.payer.toLowerCase(), token: voucher.token.toLowerCase(), cumulative: voucher.cumulativeAmount, amount: d.amount, delegate: d.delegate });
    }
    return verdict;
  }

  private requestVerdict(request: SignedRequest, options: VerifyOptions, erc1271: boolean | undefined): Verdict {
    validateRequest(request);
    const verdict = decideRequest(this.rules, request, () => this.recover(this.digests.request(request, this.provider), request.signature), this.time(options, erc1271));
    const d = verdict.decision;
    if (d.accepted && options.reserve !== false) {
      this.reservations.holdRequest({
        payer: request.payer.toLowerCase(),
        token: request.token.toLowerCase(),
        nonce: request.nonce,
        amount: request.price,
        deadline: request.deadline,
        delegate: d.delegate,
      });
    }
    return verdict;
  }

  private voucherVerdict(voucher: SignedVoucher, options: VerifyOptions, erc1271: boolean | undefined): Verdict {
    validateVoucher(voucher);
    const verdict = decideVoucher(this.rules, voucher, () => this.recover(this.digests.voucher(voucher, this.provider), voucher.signature), this.time(options, erc1271));
    const d = verdict.decision;
    if (d.accepted && options.reserve !== false) {
      this.reservations.holdVoucher({
        payer: voucher.payer.toLowerCase(),
        token: voucher.token.toLowerCase(),
        channel: voucher.channel.toLowerCase(),
        cumulative: voucher.cumulativeAmount,
        amount: d.amount,
        delegate: d.delegate,
      });
    }
    return verdict;
  }

  /**
   * The async path shared by requests and vouchers: decide without reserving; read what was unknown
   * (until nothing is, or a few blocks applied meanwhile); only when the signature alone was refused
   * and the payer is a contract, ask the wallet; then decide for real.
   */
  private async decideAsync(
    payer: string,
    signature: string,
    options: VerifyOptions,
    decide: (options: VerifyOptions, erc1271: boolean | undefined) => Verdict,
    digestOf: () => Uint8Array,
  ): Promise<Decision> {
    const dry = { ...options, reserve: false };
    let first = decide(dry, undefined);
    for (let attempt = 0; first.unknown.length > 0 && attempt < READ_ATTEMPTS; attempt++) {
      await fillUnknown(this.state, this.reader, this.follower, first.unknown);
      first = decide(dry, undefined);
    }
    if (first.unknown.length > 0) return first.decision;
    const d = first.decision;
    const signatureRefused = d.delegate === undefined && d.reason >= Reason.SignatureLength && d.reason <= Reason.InvalidSigner;
    if (!signatureRefused || !(await this.erc1271.isContract(payer.toLowerCase()))) {
      return d.accepted && options.reserve !== false ? decide(options, undefined).decision : d;
    }
    const digest = d.digest ?? "0x" + toHex(digestOf());
    const valid = await this.erc1271.isValidSignature(payer.toLowerCase(), digest, signature);
    return decide(options, valid).decision;
  }

  private time(options: VerifyOptions, erc1271: boolean | undefined): RuleTime {
    return { now: options.at ?? this.clock(), settlementWindow: this.settlementWindow, erc1271 };
  }

  private recover(digest: Uint8Array, signature: string): RecoveredSignature {
    const recovered = recoverSignature(digest, hexToBytes(signature));
    const hex = "0x" + toHex(digest);
    if (recovered.publicKey === undefined) return { digest: hex, status: recovered.status };
    return { digest: hex, status: SignatureStatus.Ok, signer: this.addressOf(recovered.publicKey) };
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

  // ================================================================== views

  /**
   * A payer's cached balance, what this verifier reserved of it, and what remains (zeros when not known).
   * @example
   * const { available } = verifier.accountOf(payer, token);
   */
  accountOf(payer: string, token: string): AccountView {
    const p = payer.toLowerCase();
    const t = token.toLowerCase();
    const balance = this.state.balance(p, t) ?? 0n;
    const reserved = this.reservations.reservedBalance(p, t);
    return { balance, reserved, available: balance > reserved ? balance - reserved : 0n };
  }

  /**
   * The cached state of a grant (as the contract stores it after the last synced block), or
   * undefined when there is none or it is not known.
   * @example
   * const g = verifier.grantOf(payer, token, sessionKey);
   * if (g && g.expiry === 0n) console.log("revoked");
   */
  grantOf(payer: string, token: string, delegate: string): GrantView | undefined {
    const p = payer.toLowerCase();
    const t = token.toLowerCase();
    const d = delegate.toLowerCase();
    const g = this.state.grant(p, t, d);
    if (!g) return undefined;
    const { epoch, expiry, provider, maxPrice, budget, period, periodEnd, remaining, anyModel } = g;
    const models = [...g.models].filter(([, allowed]) => allowed).map(([m]) => m);
    const spent = budget - remaining;
    return { epoch, expiry, provider, maxPrice, budget, period, periodEnd, spent, anyModel, models, reserved: this.reservations.reservedGrant(p, t, d) };
  }

  /**
   * The payer's lane to this provider as of the synced block, and what this verifier reserved of
   * it; undefined when not known.
   * @example
   * const lane = verifier.laneOf(payer, token);
   * if (lane) console.log(lane.funds - lane.reserved);
   */
  laneOf(payer: string, token: string): LaneView | undefined {
    const p = payer.toLowerCase();
    const t = token.toLowerCase();
    const lane = this.state.lane(p, t);
    if (lane === undefined) return undefined;
    return { ...lane, reserved: this.reservations.voucherHold(p, t, undefined)?.amount ?? 0n };
  }

  /**
   * Whether `nonce` of (payer, token) is used on-chain as of the synced block (reservations aside);
   * `undefined` when the verifier does not know.
   * @example
   * if (verifier.isNonceUsed(payer, token, 5n)) console.log("already settled or invalidated");
   */
  isNonceUsed(payer: string, token: string, nonce: bigint): boolean | undefined {
    const bits = this.state.nonceWord(payer.toLowerCase(), token.toLowerCase(), nonce >> 6n);
    return bits === undefined ? undefined : ((bits >> (nonce & 63n)) & 1n) === 1n;
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
   * The last block whose logs are applied.
   * @example
   * console.log(`synced to block ${verifier.syncedBlock}`);
   */
  get syncedBlock(): number {
    return this.follower.syncedBlock;
  }

  /**
   * How many logs were applied, and up to which block.
   * @example
   * console.log(verifier.followStats.logsApplied);
   */
  get followStats(): FollowStats {
    return { logsApplied: this.follower.logsApplied, syncedBlock: this.follower.syncedBlock, reorgs: this.follower.reorgs };
  }

  // ================================================================== following the chain

  /**
   * Applies the contract's logs up to the confirmed head (or `toBlock`); returns the last block
   * applied. Safe to call concurrently (calls share one catch-up). No log content makes it throw; it
   * rejects only when the node fails to answer, and then applied nothing of the block it was on.
   * @example
   * await preflight.connect(payer).deposit(payer.address, token, amount);
   * await verifier.sync(); // the deposit is now in the cache
   */
  sync(toBlock?: number): Promise<number> {
    if (!this.syncing) {
      this.syncing = this.follower.catchUp(toBlock).finally(() => {
        this.syncing = undefined;
      });
    }
    return this.syncing;
  }

  /**
   * Follows new blocks by polling every `intervalMs` (works over HTTP and in-process). Node errors
   * are passed to `onError` and the next poll retries from the block that failed.
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

  /**
   * The contract this verifier follows.
   * @example
   * const address = await verifier.preflight.getAddress();
   */
  get preflight(): Preflight {
    return this.contract;
  }
}

