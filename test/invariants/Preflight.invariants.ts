/**
 * Property-based tests: random sequences of deposits, grants (by call and by signature), revocations,
 * signed requests (alone, in batches and in packed batches), voucher claims (alone and several), lanes
 * (funding from escrow and by fresh deposits, readable and packed claims, collection, close requests and
 * closes, interleaved with everything else), nonce invalidations, withdrawal requests, withdrawals,
 * earnings withdrawals (with the deployment's fee), fee payouts and time jumps, over three payers, two
 * delegates, two providers and two tokens (6 and 18 decimals). A reference model
 * (test/helpers/model.ts) predicts every outcome; after every step the chain must agree with it and:
 *   - funds are conserved: per token, payer balances + lanes + earnings + accrued fees == tokens held;
 *   - no request (payer, token, nonce) is paid twice, and no voucher channel or lane pays more than its
 *     largest claimed cumulative amount;
 *   - no grant spends beyond its budget in a period;
 *   - every payer whose withdrawal matured can withdraw it; at the end every payer and provider
 *     withdraws everything and the escrow is left empty.
 *
 * Runs: FC_RUNS (default 40) sequences of up to FC_STEPS (default 40) steps, from seed FC_SEED
 * (fixed by default, so `npm test` is reproducible). A longer run, e.g.:
 *   FC_RUNS=500 FC_STEPS=60 FC_SEED=$RANDOM npx hardhat test test/invariants/Preflight.invariants.ts
 */
import { expect } from "chai";
import { ethers, network } from "hardhat";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import fc from "fast-check";
import { Wallet, type ContractTransactionResponse, type TransactionReceipt } from "ethers";
import { encodeLaneClaims, encodePacked, signGrant, signLaneVoucher, signVoucher, type PreflightDomain } from "@preflight/sdk";
import { lanesClaimed, requestsSettled, vouchersClaimed } from "../helpers/logs";
import { fastRequestSigner, Reason, type ReasonCode } from "../helpers/security";
import { PreflightModel, U128_MAX, WITHDRAWAL_WINDOW } from "../helpers/model";
import type { Preflight, TestToken } from "../../typechain-types";
import type { SignedRequestStruct, SignedVoucherStruct } from "../../typechain-types/contracts/Preflight";
import { budget } from "../helpers/timeouts";

const RUNS = Number(process.env.FC_RUNS ?? 40);
const STEPS = Number(process.env.FC_STEPS ?? 40);
const SEED = Number(process.env.FC_SEED ?? 20_260_523);
const NOTICE = 600n;
/** The deployment's fee (2.5%), taken when providers withdraw. */
const FEE_BPS = 250n;
const GAS = 3_000_000n;
const MODELS = [ethers.id("model-0"), ethers.id("model-1"), ethers.id("model-2")];
const CHANNELS = [ethers.ZeroHash, ethers.id("channel-1")];
const ZERO = ethers.ZeroAddress;

const ERROR_OF: Record<string, string> = {
  [String(Reason.Expired)]: "RequestExpired",
  [String(Reason.InvalidSigner)]: "InvalidSigner",
  [String(Reason.GrantRevoked)]: "RevokedGrant",
  [String(Reason.GrantExpired)]: "GrantExpired",
  [String(Reason.ProviderNotAllowed)]: "ProviderNotAllowed",
  [String(Reason.ModelNotAllowed)]: "ModelNotAllowed",
  [String(Reason.PriceAboveCap)]: "PriceAboveCap",
  [String(Reason.BudgetExceeded)]: "BudgetExceeded",
  [String(Reason.NonceUsed)]: "NonceAlreadyUsed",
  [String(Reason.InsufficientBalance)]: "InsufficientBalance",
  [String(Reason.NothingToClaim)]: "NothingToClaim",
};

/** What the runs exercised, printed after the property (so a generator that stops reaching a path shows). */
const STATS = new Map<string, number>();
const count = (what: string) => STATS.set(what, (STATS.get(what) ?? 0) + 1);
const REASON_NAME = Object.fromEntries(Object.entries(Reason).map(([name, code]) => [String(code), name]));

const wallet = (label: string) => new Wallet(ethers.id(`preflight invariants: ${label}`), ethers.provider);
const PAYERS = [0, 1, 2].map((i) => wallet(`payer ${i}`));
const DELEGATES = [0, 1].map((i) => wallet(`delegate ${i}`));
const PROVIDERS = [0, 1].map((i) => wallet(`provider ${i}`));
const FEE_RECIPIENT = wallet("fee recipient");

/** Each payer starts with 500 whole tokens of each token in escrow. */
const initialDeposit = async (token: TestToken) => 500n * 10n ** (await token.decimals());

/** Each payer starts with a grant to delegate 0 on each token: any provider, models 0 and 1, 5 tokens per
 * request, 8 tokens per 10 minutes, for a day. */
const initialGrant = async (token: TestToken) => {
  const unit = 10n ** (await token.decimals());
  const expiry = BigInt(await time.latest()) + 86_400n;
  const delegate = DELEGATES[0].address;
  return { delegate, token: await token.getAddress(), provider: ZERO, maxPrice: 5n * unit, budget: 8n * unit, period: 600n, expiry, models: MODELS.slice(0, 2) };
};

async function deployInvariantsFixture() {
  const [owner] = await ethers.getSigners();
  const preflight = await ethers.deployContract("Preflight", [NOTICE, FEE_BPS, FEE_RECIPIENT.address]);
  const address = await preflight.getAddress();
  const tokens: TestToken[] = [
    await ethers.deployContract("TestToken", ["Six", "SIX", 6]),
    await ethers.deployContract("TestToken", ["Eighteen", "EIGHTEEN", 18]),
  ];
  for (const w of [...PAYERS, ...PROVIDERS, FEE_RECIPIENT]) {
    await network.provider.send("hardhat_setBalance", [w.address, ethers.toBeHex(10n ** 22n)]);
  }
  for (const payer of PAYERS) {
    for (const token of tokens) {
      await token.mint(payer.address, 10n ** 30n);
      await token.connect(payer).approve(address, ethers.MaxUint256);
      await preflight.connect(payer).deposit(payer.address, await token.getAddress(), await initialDeposit(token));
      await preflight.connect(payer).grant(await initialGrant(token));
    }
  }
  const { chainId } = await ethers.provider.getNetwork();
  const domain: PreflightDomain = { chainId, verifyingContract: address };
  return { preflight, owner, tokens, domain, start: BigInt(await time.latest()) };
}

// ------------------------------------------------------------------ actions

type Signer = "payer" | "delegate0" | "delegate1" | "otherPayer";
interface ItemSpec {
  signer: Signer;
  payer: number;
  sameToken: boolean;
  model: number;
  price: bigint; // hundredths of a token
  nonce: number;
  deadlineIn: number;
}
interface VoucherSpec {
  signer: Signer;
  payer: number;
  sameToken: boolean;
  model: number;
  channel: number;
  delta: bigint; // hundredths of a token, relative to what the channel paid
}
type Action =
  | { kind: "deposit"; payer: number; token: number; amount: bigint }
  | {
      kind: "grant";
      payer: number;
      token: number;
      delegate: number;
      provider: number | null;
      maxPrice: bigint;
      budget: bigint;
      period: number;
      expiryIn: number;
      models: number[];
      bySig: boolean;
    }
  | { kind: "revoke"; payer: number; token: number; delegate: number }
  | { kind: "settle"; provider: number; token: number; item: ItemSpec }
  | { kind: "batch"; provider: number; token: number; items: ItemSpec[] }
  | { kind: "voucher"; provider: number; token: number; voucher: VoucherSpec }
  | { kind: "vouchers"; provider: number; token: number; vouchers: VoucherSpec[] }
  | { kind: "invalidate"; payer: number; token: number; word: number; mask: bigint }
  | { kind: "requestWithdrawal"; payer: number; token: number; amount: bigint }
  | { kind: "withdraw"; payer: number; token: number; waitForNotice: boolean }
  | { kind: "withdrawEarnings"; who: number; token: number }
  | { kind: "withdrawFees"; token: number }
  | { kind: "packed"; provider: number; token: number; items: ItemSpec[] }
  | { kind: "lane"; payer: number; provider: number; token: number; fund: bigint; readable: boolean; claims: { signer: Signer; delta: bigint; model: number }[] }
  | { kind: "laneDeposit"; payer: number; by: number; provider: number; token: number; amount: bigint }
  | { kind: "laneClaim"; payer: number; provider: number; token: number; signer: Signer; delta: bigint; model: number }
  | { kind: "collect"; provider: number; token: number }
  | { kind: "requestLaneClose"; payer: number; provider: number; token: number }
  | { kind: "closeLane"; payer: number; provider: number; token: number; request: boolean; wait: "none" | "notice" | "lapse" }
  | { kind: "warp"; seconds: number };

const payerIx = fc.nat({ max: 2 });
const tokenIx = fc.nat({ max: 1 });
const providerIx = fc.nat({ max: 1 });
const signerArb = fc.constantFrom<Signer>("payer", "payer", "payer", "delegate0", "delegate0", "delegate1", "otherPayer");
const sameToken = fc.constantFrom(true, true, true, true, true, false);
const itemArb: fc.Arbitrary<ItemSpec> = fc.record({
  signer: signerArb,
  payer: payerIx,
  sameToken,
  model: fc.nat({ max: 2 }),
  price: fc.bigInt({ min: 0n, max: 600n }),
  nonce: fc.oneof({ weight: 2, arbitrary: fc.nat({ max: 7 }) }, { weight: 1, arbitrary: fc.nat({ max: 191 }) }),
  deadlineIn: fc.integer({ min: -20, max: 20_000 }),
});
const voucherArb: fc.Arbitrary<VoucherSpec> = fc.record({
  signer: signerArb,
  payer: payerIx,
  sameToken,
  model: fc.nat({ max: 2 }),
  channel: fc.nat({ max: 1 }),
  delta: fc.bigInt({ min: -100n, max: 1_500n }),
});
const actionArb: fc.Arbitrary<Action> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("deposit" as const), payer: payerIx, token: tokenIx, amount: fc.bigInt({ min: 0n, max: 200_000n }) }) },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("grant" as const),
      payer: payerIx,
      token: tokenIx,
      delegate: fc.nat({ max: 1 }),
      provider: fc.option(providerIx),
      maxPrice: fc.bigInt({ min: 0n, max: 700n }),
      budget: fc.bigInt({ min: 0n, max: 1_500n }),
      period: fc.constantFrom(0, 60, 600, 3_600),
      expiryIn: fc.integer({ min: -10, max: 20_000 }),
      models: fc.subarray([0, 1, 2]),
      bySig: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("revoke" as const), payer: payerIx, token: tokenIx, delegate: fc.nat({ max: 1 }) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("settle" as const), provider: providerIx, token: tokenIx, item: itemArb }) },
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant("batch" as const), provider: providerIx, token: tokenIx, items: fc.array(itemArb, { maxLength: 8 }) }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("voucher" as const), provider: providerIx, token: tokenIx, voucher: voucherArb }) },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant("vouchers" as const), provider: providerIx, token: tokenIx, vouchers: fc.array(voucherArb, { maxLength: 5 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("invalidate" as const),
      payer: payerIx,
      token: tokenIx,
      word: fc.nat({ max: 2 }),
      mask: fc.oneof(fc.constant((1n << 64n) - 1n), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("requestWithdrawal" as const),
      payer: payerIx,
      token: tokenIx,
      amount: fc.oneof(fc.constant(U128_MAX + 1n), fc.bigInt({ min: 0n, max: 100_000n })),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("withdraw" as const), payer: payerIx, token: tokenIx, waitForNotice: fc.constantFrom(true, true, false) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("withdrawEarnings" as const), who: fc.nat({ max: 2 }), token: tokenIx }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("withdrawFees" as const), token: tokenIx }) },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant("packed" as const), provider: providerIx, token: tokenIx, items: fc.array(itemArb, { minLength: 1, maxLength: 8 }) }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("lane" as const),
      payer: payerIx,
      provider: providerIx,
      token: tokenIx,
      fund: fc.bigInt({ min: 0n, max: 2_000n }),
      readable: fc.boolean(),
      claims: fc.array(
        fc.record({ signer: fc.constantFrom<Signer>("payer", "payer", "delegate0", "delegate1", "otherPayer"), delta: fc.bigInt({ min: -100n, max: 1_500n }), model: fc.nat({ max: 2 }) }),
        { maxLength: 3 },
      ),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("laneDeposit" as const),
      payer: payerIx,
      by: payerIx,
      provider: providerIx,
      token: tokenIx,
      amount: fc.bigInt({ min: 0n, max: 2_000n }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("laneClaim" as const),
      payer: payerIx,
      provider: providerIx,
      token: tokenIx,
      signer: fc.constantFrom<Signer>("payer", "payer", "delegate0", "delegate1", "otherPayer"),
      delta: fc.bigInt({ min: -100n, max: 400n }),
      model: fc.nat({ max: 2 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("collect" as const), provider: providerIx, token: tokenIx }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("requestLaneClose" as const), payer: payerIx, provider: providerIx, token: tokenIx }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("closeLane" as const),
      payer: payerIx,
      provider: providerIx,
      token: tokenIx,
      request: fc.boolean(),
      wait: fc.constantFrom<"none" | "notice" | "lapse">("none", "notice", "notice", "notice", "lapse"),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("warp" as const), seconds: fc.integer({ min: 1, max: 1_500 }) }) },
);

// ------------------------------------------------------------------ the run

/** The custom error a failed transaction reverted with (from the hardhat error message). */
function errorName(e: unknown): string {
  const message = (e as Error).message ?? String(e);
  const match = /reverted with custom error '(\w+)\(/.exec(message);
  if (!match) throw e;
  return match[1];
}

describe("Invariants: random sequences against a reference model", function () {
  // A budget that grows with the run's size (a quarter of a second per step), never unbounded.
  this.timeout(budget(Math.max(120_000, RUNS * STEPS * 250)));

  it(`conserves funds, never pays twice, keeps grants in budget, always lets payers withdraw (${RUNS} runs × ≤${STEPS} steps, seed ${SEED})`, async function () {
    await fc.assert(
      fc.asyncProperty(fc.array(actionArb, { minLength: 1, maxLength: STEPS, size: "max" }), async (actions) => {
        const { preflight, tokens, domain, owner, start } = await loadFixture(deployInvariantsFixture);
        await new Run(preflight, tokens, domain, owner, start).play(actions);
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: process.env.FC_SHRINK === undefined },
    );
    const summary = [...STATS.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k} ${v}`);
    console.log(`      exercised: ${summary.join(", ")}`);
  });
});

class Run {
  readonly model = new PreflightModel(NOTICE, FEE_BPS);
  readonly tokenAddresses: string[] = [];
  readonly units: bigint[] = [];
  readonly signers = new Map<string, (r: Parameters<ReturnType<typeof fastRequestSigner>>[0]) => SignedRequestStruct>();
  /** Times each (payer, token, nonce) was paid on-chain, from the events. */
  readonly paid = new Map<string, number>();
  /** Sum of what each voucher channel paid on-chain, from the events. */
  readonly channelPaid = new Map<string, bigint>();
  /** Sum of what each lane (payer|provider|token) paid on-chain, from the LanesClaimed logs alone. */
  readonly lanePaid = new Map<string, bigint>();
  readonly touched = { grants: new Set<string>(), words: new Set<string>(), channels: new Set<string>() };

  constructor(
    readonly preflight: Preflight,
    readonly tokens: TestToken[],
    readonly domain: PreflightDomain,
    readonly owner: Awaited<ReturnType<typeof ethers.getSigners>>[number],
    start: bigint,
  ) {
    this.model.clock = start;
  }

  async play(actions: Action[]): Promise<void> {
    for (const token of this.tokens) {
      this.tokenAddresses.push(await token.getAddress());
      this.units.push(10n ** (await token.decimals()) / 100n);
      for (const payer of PAYERS) {
        const address = await token.getAddress();
        this.model.deposit(payer.address, address, await initialDeposit(token));
        // The fixture's grant, as the chain recorded it.
        const g = await this.preflight.grantOf(payer.address, address, DELEGATES[0].address);
        Object.assign(this.model.grant(payer.address, address, DELEGATES[0].address), {
          epoch: g.epoch,
          expiry: g.expiry,
          provider: g.provider,
          maxPrice: g.maxPrice,
          budget: g.budget,
          period: g.period,
          periodEnd: g.periodEnd,
          spent: g.spent,
          models: new Set(MODELS.slice(0, 2)),
        });
      }
    }
    for (const action of actions) {
      await this.step(action);
      await this.checkStep();
    }
    await this.checkAll();
    await this.drain();
  }

  // ---------------------------------------------------------------- transactions

  /** Sends a transaction at the model's clock and returns its receipt, or the custom error it reverted with. */
  private async send(tx: () => Promise<ContractTransactionResponse>): Promise<TransactionReceipt | string> {
    this.model.clock += 1n;
    await time.setNextBlockTimestamp(this.model.clock);
    try {
      return (await (await tx()).wait())!;
    } catch (e) {
      return errorName(e);
    }
  }

  private expectOk(result: TransactionReceipt | string, what: string): TransactionReceipt {
    if (typeof result === "string") expect.fail(`${what}: expected success, reverted with ${result}`);
    return result;
  }

  private expectError(result: TransactionReceipt | string, error: string, what: string): void {
    expect(result, what).to.equal(error);
  }

  private sign(signerKind: Signer, payer: number) {
    const key = signerKind === "payer" ? PAYERS[payer] : signerKind === "otherPayer" ? PAYERS[(payer + 1) % 3] : DELEGATES[Number(signerKind.slice(-1))];
    let sign = this.signers.get(key.address);
    if (!sign) this.signers.set(key.address, (sign = fastRequestSigner(key.privateKey, this.domain)));
    return { key, sign };
  }

  private itemToken(spec: { sameToken: boolean }, token: number): number {
    return spec.sameToken ? token : 1 - token;
  }

  private buildRequest(spec: ItemSpec, provider: number, token: number) {
    const t = this.itemToken(spec, token);
    const request = {
      payer: PAYERS[spec.payer].address,
      provider: PROVIDERS[provider].address,
      token: this.tokenAddresses[t],
      model: MODELS[spec.model],
      price: spec.price * this.units[t],
      nonce: BigInt(spec.nonce),
      deadline: this.model.clock + 1n + BigInt(spec.deadlineIn),
      inputHash: ethers.id(`input ${spec.nonce}`),
    };
    const { key, sign } = this.sign(spec.signer, spec.payer);
    this.touched.words.add(`${spec.payer}|${t}|${spec.nonce >> 6}`);
    for (const d of [0, 1]) this.touched.grants.add(`${spec.payer}|${t}|${d}`);
    return { request, signed: sign(request), signer: key.address, tokenIx: t };
  }

  private async buildVoucher(spec: VoucherSpec, provider: number, token: number) {
    const t = this.itemToken(spec, token);
    const payer = PAYERS[spec.payer].address;
    const claimed = this.model.channel(payer, PROVIDERS[provider].address, this.tokenAddresses[t], CHANNELS[spec.channel]);
    let cumulative = claimed + spec.delta * this.units[t];
    if (cumulative < 0n) cumulative = 0n;
    const voucher = {
      payer,
      provider: PROVIDERS[provider].address,
      token: this.tokenAddresses[t],
      model: MODELS[spec.model],
      channel: CHANNELS[spec.channel],
      cumulativeAmount: cumulative,
    };
    const { key } = this.sign(spec.signer, spec.payer);
    const signature = await signVoucher(key, this.domain, voucher);
    const signed: SignedVoucherStruct = { payer, token: voucher.token, model: voucher.model, channel: voucher.channel, cumulativeAmount: cumulative, signature };
    this.touched.channels.add(`${spec.payer}|${provider}|${t}|${spec.channel}`);
    for (const d of [0, 1]) this.touched.grants.add(`${spec.payer}|${t}|${d}`);
    return { voucher, signed, signer: key.address };
  }

  /** Adds what each lane paid, read from a LanesClaimed log alone. */
  private noteLanePaid(log: { provider: string; token: string; records: { payer: string; amount: bigint }[] }): void {
    for (const r of log.records) {
      const k = `${r.payer}|${log.provider}|${log.token}`;
      this.lanePaid.set(k, (this.lanePaid.get(k) ?? 0n) + r.amount);
    }
  }

  private notePaid(payer: string, token: string, nonce: bigint): void {
    const k = `${payer}|${token}|${nonce}`;
    this.paid.set(k, (this.paid.get(k) ?? 0) + 1);
  }

  /** Adds what each channel paid, read from the VouchersClaimed log alone. */
  private async noteVoucherPaid(receipt: TransactionReceipt): Promise<void> {
    const { provider, token, records } = await vouchersClaimed(receipt);
    for (const r of records) {
      const k = `${r.payer}|${provider}|${token}|${ethers.hexlify(r.channel!)}`;
      this.channelPaid.set(k, (this.channelPaid.get(k) ?? 0n) + r.amount);
    }
  }

  /** Settles `built` through `send` and checks the RequestsSettled log against the model's reasons. */
  private async expectRequestsLog(receipt: TransactionReceipt, built: { request: { payer: string; nonce: bigint; price: bigint; token: string } }[], expected: ReasonCode[]): Promise<void> {
    const { records } = await requestsSettled(receipt);
    expect(records.map((r) => r.reason), "logged reasons").to.deep.equal(expected.map(Number));
    records.forEach((r, i) => {
      expect([r.payer, r.nonce, r.price], `logged item ${i}`).to.deep.equal([built[i]!.request.payer, built[i]!.request.nonce, built[i]!.request.price]);
      if (BigInt(r.reason) === Reason.Settled) this.notePaid(built[i]!.request.payer, built[i]!.request.token, built[i]!.request.nonce);
    });
  }

  private async step(a: Action): Promise<void> {
    count(`steps`);
    const m = this.model;
    const p = this.preflight;
    switch (a.kind) {
      case "deposit": {
        const token = this.tokenAddresses[a.token];
        const amount = a.amount * this.units[a.token];
        const expected = m.deposit(PAYERS[a.payer].address, token, amount);
        const result = await this.send(() => p.connect(PAYERS[a.payer]).deposit(PAYERS[a.payer].address, token, amount, { gasLimit: GAS }));
        if (expected === "ok") this.expectOk(result, "deposit");
        else this.expectError(result, expected, "deposit");
        return;
      }
      case "grant": {
        const token = this.tokenAddresses[a.token];
        const payer = PAYERS[a.payer];
        const terms = {
          delegate: DELEGATES[a.delegate].address,
          token,
          provider: a.provider === null ? ZERO : PROVIDERS[a.provider].address,
          maxPrice: a.maxPrice * this.units[a.token],
          budget: a.budget * this.units[a.token],
          period: BigInt(a.period),
          expiry: m.clock + 1n + BigInt(a.expiryIn),
          models: a.models.map((i) => MODELS[i]),
        };
        this.touched.grants.add(`${a.payer}|${a.token}|${a.delegate}`);
        let tx: () => Promise<ContractTransactionResponse>;
        if (a.bySig) {
          const epoch = m.grant(payer.address, token, terms.delegate).epoch;
          const deadline = m.clock + 100n;
          const signature = await signGrant(payer, this.domain, { ...terms, payer: payer.address, epoch, deadline });
          tx = () => p.connect(PROVIDERS[0]).grantBySig(payer.address, terms, deadline, signature, { gasLimit: GAS });
        } else {
          tx = () => p.connect(payer).grant(terms, { gasLimit: GAS });
        }
        const clockAtTx = m.clock + 1n;
        m.clock = clockAtTx; // the model decides at the transaction's timestamp
        const expected = m.setGrant(payer.address, terms);
        m.clock = clockAtTx - 1n;
        const result = await this.send(tx);
        if (expected === "ok") this.expectOk(result, "grant");
        else this.expectError(result, expected, "grant");
        return;
      }
      case "revoke": {
        const token = this.tokenAddresses[a.token];
        m.revoke(PAYERS[a.payer].address, token, DELEGATES[a.delegate].address);
        this.touched.grants.add(`${a.payer}|${a.token}|${a.delegate}`);
        this.expectOk(await this.send(() => p.connect(PAYERS[a.payer]).revoke(token, DELEGATES[a.delegate].address, { gasLimit: GAS })), "revoke");
        return;
      }
      case "settle": {
        const { request, signed, signer } = this.buildRequest(a.item, a.provider, a.token);
        m.clock += 1n;
        const reason = m.settleRequest({ ...request, amount: request.price, signer, isRequest: true });
        count(`request:${REASON_NAME[String(reason)]}`);
        if (reason === Reason.Settled) m.credit(request.provider, request.token, request.price);
        m.clock -= 1n;
        const result = await this.send(() => p.connect(PROVIDERS[a.provider]).settle(signed, { gasLimit: GAS }));
        if (reason === Reason.Settled) {
          this.expectOk(result, "settle");
          this.notePaid(request.payer, request.token, request.nonce);
        } else {
          this.expectError(result, ERROR_OF[String(reason)], `settle (reason ${reason})`);
        }
        return;
      }
      case "batch": {
        const token = this.tokenAddresses[a.token];
        const built = a.items.map((item) => this.buildRequest(item, a.provider, a.token));
        m.clock += 1n;
        const expected: ReasonCode[] = [];
        let total = 0n;
        for (const { request, signer } of built) {
          const reason = request.token !== token ? Reason.TokenMismatch : m.settleRequest({ ...request, amount: request.price, signer, isRequest: true });
          expected.push(reason);
          count(`request:${REASON_NAME[String(reason)]}`);
          if (reason === Reason.Settled) total += request.price;
        }
        if (total !== 0n) m.credit(PROVIDERS[a.provider].address, token, total);
        m.clock -= 1n;
        const receipt = this.expectOk(
          await this.send(() => p.connect(PROVIDERS[a.provider]).settleBatch(token, built.map((b) => b.signed), { gasLimit: GAS })),
          "settleBatch",
        );
        await this.expectRequestsLog(receipt, built, expected);
        return;
      }
      case "packed": {
        // The compact entry point: the same checks, on the items of the batch's token (a packed batch
        // names one token), with 64-byte signatures.
        const token = this.tokenAddresses[a.token];
        const built = a.items.map((item) => this.buildRequest({ ...item, sameToken: true }, a.provider, a.token));
        m.clock += 1n;
        const expected: ReasonCode[] = [];
        let total = 0n;
        for (const { request, signer } of built) {
          const reason = m.settleRequest({ ...request, amount: request.price, signer, isRequest: true });
          expected.push(reason);
          count(`packed:${REASON_NAME[String(reason)]}`);
          if (reason === Reason.Settled) total += request.price;
        }
        if (total !== 0n) m.credit(PROVIDERS[a.provider].address, token, total);
        m.clock -= 1n;
        const packed = encodePacked(built.map((b) => ({ request: b.request, signature: String(b.signed.signature) })), { isContract: () => false }); // every payer here is a key
        const receipt = this.expectOk(await this.send(() => p.connect(PROVIDERS[a.provider]).settlePacked(token, packed, { gasLimit: GAS })), "settlePacked");
        await this.expectRequestsLog(receipt, built, expected);
        return;
      }
      case "lane": {
        const token = this.tokenAddresses[a.token];
        const payer = PAYERS[a.payer];
        const provider = PROVIDERS[a.provider];
        const fund = a.fund * this.units[a.token];
        m.clock += 1n;
        const funded = m.fundLane(payer.address, provider.address, token, fund);
        m.clock -= 1n;
        const result = await this.send(() => p.connect(payer).fundLane(provider.address, token, fund, { gasLimit: GAS }));
        if (funded === "ok") this.expectOk(result, "fundLane");
        else this.expectError(result, funded, "fundLane");
        if (a.claims.length === 0) return;
        const lane = m.lane(payer.address, provider.address, token);
        const claims: { payer: string; cumulativeAmount: bigint; signature: string }[] = [];
        const expected: ReasonCode[] = [];
        m.clock += 1n;
        let claimed = lane.claimed;
        const model = MODELS[a.claims[0]!.model];
        for (const c of a.claims) {
          let cumulative = claimed + c.delta * this.units[a.token];
          if (cumulative <= 0n) cumulative = 1n;
          const { key } = this.sign(c.signer, a.payer);
          const signature = await signLaneVoucher(key, this.domain, { payer: payer.address, provider: provider.address, token, model, cumulativeAmount: cumulative }, true);
          claims.push({ payer: payer.address, cumulativeAmount: cumulative, signature });
          const { reason } = m.claimLane({ payer: payer.address, token, provider: provider.address, model, amount: 0n, signer: key.address, isRequest: false, cumulative });
          expected.push(reason);
          count(`lane:${REASON_NAME[String(reason)]}`);
          claimed = m.lane(payer.address, provider.address, token).claimed;
        }
        m.clock -= 1n;
        for (const d of [0, 1]) this.touched.grants.add(`${a.payer}|${a.token}|${d}`);
        if (a.readable && claims.length === 1) {
          // One voucher through the readable entry point: it reverts where the packed one skips.
          const [claim] = claims;
          const result = await this.send(() => p.connect(provider).claimLane({ ...claim!, token, model }, { gasLimit: GAS }));
          if (expected[0] === Reason.Settled) this.noteLanePaid(await lanesClaimed(this.expectOk(result, "claimLane")));
          else this.expectError(result, ERROR_OF[String(expected[0])], `claimLane (reason ${expected[0]})`);
          return;
        }
        const receipt = this.expectOk(
          await this.send(() => p.connect(provider).claimLanesPacked(token, encodeLaneClaims(model, claims), { gasLimit: GAS })),
          "claimLanesPacked",
        );
        const log = await lanesClaimed(receipt);
        expect(log.records.map((r) => r.reason), "lane claim reasons").to.deep.equal(expected.map(Number));
        this.noteLanePaid(log);
        return;
      }
      case "laneDeposit": {
        // A fresh deposit by anyone (here another payer's wallet, or its own) into the payer's lane.
        const token = this.tokenAddresses[a.token];
        const payer = PAYERS[a.payer];
        const provider = PROVIDERS[a.provider];
        const amount = a.amount * this.units[a.token];
        const expected = m.depositToLane(payer.address, provider.address, token, amount);
        count(`laneDeposit:${expected}`);
        const result = await this.send(() => p.connect(PAYERS[a.by]).depositToLane(payer.address, provider.address, token, amount, { gasLimit: GAS }));
        if (expected === "ok") this.expectOk(result, "depositToLane");
        else this.expectError(result, expected, "depositToLane");
        return;
      }
      case "laneClaim": {
        // The readable entry point: one voucher, reverting with the rule's error where the packed one skips.
        const token = this.tokenAddresses[a.token];
        const payer = PAYERS[a.payer];
        const provider = PROVIDERS[a.provider];
        const model = MODELS[a.model];
        let cumulative = m.lane(payer.address, provider.address, token).claimed + a.delta * this.units[a.token];
        if (cumulative <= 0n) cumulative = 1n;
        const { key } = this.sign(a.signer, a.payer);
        const signature = await signLaneVoucher(key, this.domain, { payer: payer.address, provider: provider.address, token, model, cumulativeAmount: cumulative });
        m.clock += 1n;
        const { reason } = m.claimLane({ payer: payer.address, token, provider: provider.address, model, amount: 0n, signer: key.address, isRequest: false, cumulative });
        m.clock -= 1n;
        count(`laneClaim:${REASON_NAME[String(reason)]}`);
        for (const d of [0, 1]) this.touched.grants.add(`${a.payer}|${a.token}|${d}`);
        const result = await this.send(() => p.connect(provider).claimLane({ payer: payer.address, token, model, cumulativeAmount: cumulative, signature }, { gasLimit: GAS }));
        if (reason === Reason.Settled) this.noteLanePaid(await lanesClaimed(this.expectOk(result, "claimLane")));
        else this.expectError(result, ERROR_OF[String(reason)], `claimLane (reason ${reason})`);
        return;
      }
      case "requestLaneClose": {
        const token = this.tokenAddresses[a.token];
        const payer = PAYERS[a.payer];
        const provider = PROVIDERS[a.provider];
        m.clock += 1n;
        m.requestLaneClose(payer.address, provider.address, token);
        m.clock -= 1n;
        count("requestLaneClose");
        this.expectOk(await this.send(() => p.connect(payer).requestLaneClose(provider.address, token, { gasLimit: GAS })), "requestLaneClose");
        return;
      }
      case "collect": {
        const token = this.tokenAddresses[a.token];
        const provider = PROVIDERS[a.provider];
        const expected = m.collectLanes(provider.address, token, PAYERS.map((w) => w.address));
        const receipt = this.expectOk(await this.send(() => p.connect(provider).collectLanes(token, PAYERS.map((w) => w.address), { gasLimit: GAS })), "collectLanes");
        expect(receipt.logs.length).to.equal(1);
        count(`collect:${expected === 0n ? "nothing" : "some"}`);
        return;
      }
      case "closeLane": {
        const token = this.tokenAddresses[a.token];
        let payer = PAYERS[a.payer];
        let provider = PROVIDERS[a.provider];
        if (!a.request) {
          // Close a lane whose close an earlier step requested, when there is one, so that the steps in
          // between (claims, funding, time) run inside its notice period or window.
          const pending = PAYERS.flatMap((w) => PROVIDERS.map((v) => [w, v] as const)).filter(([w, v]) => m.lane(w.address, v.address, token).closeReadyAt !== 0n);
          if (pending.length > 0) [payer, provider] = pending[a.payer % pending.length]!;
        }
        if (a.request) {
          m.clock += 1n;
          m.requestLaneClose(payer.address, provider.address, token);
          m.clock -= 1n;
          this.expectOk(await this.send(() => p.connect(payer).requestLaneClose(provider.address, token, { gasLimit: GAS })), "requestLaneClose");
        }
        // Without a request of its own, the close meets whatever the sequence left: none, in notice, ready or lapsed.
        if (a.wait === "notice") m.clock += NOTICE - 1n;
        if (a.wait === "lapse") m.clock += NOTICE + WITHDRAWAL_WINDOW - 1n;
        m.clock += 1n;
        const expected = m.closeLane(payer.address, provider.address, token);
        m.clock -= 1n;
        const before = await this.tokens[a.token].balanceOf(payer.address);
        const result = await this.send(() => p.connect(payer).closeLane(provider.address, token, payer.address, { gasLimit: GAS }));
        count(`closeLane${a.request ? "" : "(interleaved)"}:${typeof expected === "bigint" ? "closed" : expected}`);
        if (typeof expected === "bigint") {
          this.expectOk(result, "closeLane");
          expect(await this.tokens[a.token].balanceOf(payer.address)).to.equal(before + expected);
        } else {
          this.expectError(result, expected, "closeLane");
        }
        return;
      }
      case "voucher": {
        const { voucher, signed, signer } = await this.buildVoucher(a.voucher, a.provider, a.token);
        m.clock += 1n;
        const { reason, amount } = m.claimVoucher({ ...voucher, cumulative: voucher.cumulativeAmount, amount: 0n, signer, isRequest: false });
        count(`voucher:${REASON_NAME[String(reason)]}`);
        if (reason === Reason.Settled) m.credit(voucher.provider, voucher.token, amount);
        m.clock -= 1n;
        const result = await this.send(() => p.connect(PROVIDERS[a.provider]).claimVoucher(signed, { gasLimit: GAS }));
        if (reason === Reason.Settled) await this.noteVoucherPaid(this.expectOk(result, "claimVoucher"));
        else this.expectError(result, ERROR_OF[String(reason)], `claimVoucher (reason ${reason})`);
        return;
      }
      case "vouchers": {
        const token = this.tokenAddresses[a.token];
        const built = await Promise.all(a.vouchers.map((v) => this.buildVoucher(v, a.provider, a.token)));
        m.clock += 1n;
        const expected: ReasonCode[] = [];
        let total = 0n;
        for (const { voucher, signer } of built) {
          if (voucher.token !== token) {
            expected.push(Reason.TokenMismatch);
            continue;
          }
          const { reason, amount } = m.claimVoucher({ ...voucher, cumulative: voucher.cumulativeAmount, amount: 0n, signer, isRequest: false });
          expected.push(reason);
          count(`voucher:${REASON_NAME[String(reason)]}`);
          total += amount;
        }
        if (total !== 0n) m.credit(PROVIDERS[a.provider].address, token, total);
        m.clock -= 1n;
        const receipt = this.expectOk(
          await this.send(() => p.connect(PROVIDERS[a.provider]).claimVouchers(token, built.map((b) => b.signed), { gasLimit: GAS })),
          "claimVouchers",
        );
        const { records } = await vouchersClaimed(receipt);
        expect(records.map((r) => r.reason), "voucher reasons").to.deep.equal(expected.map(Number));
        await this.noteVoucherPaid(receipt);
        return;
      }
      case "invalidate": {
        const token = this.tokenAddresses[a.token];
        m.invalidateNonces(PAYERS[a.payer].address, token, BigInt(a.word), a.mask);
        this.touched.words.add(`${a.payer}|${a.token}|${a.word}`);
        this.expectOk(
          await this.send(() => p.connect(PAYERS[a.payer]).invalidateNonces(token, a.word, a.mask, { gasLimit: GAS })),
          "invalidateNonces",
        );
        return;
      }
      case "requestWithdrawal": {
        const token = this.tokenAddresses[a.token];
        const amount = a.amount > U128_MAX ? ethers.MaxUint256 : a.amount * this.units[a.token];
        m.clock += 1n;
        const expected = m.requestWithdrawal(PAYERS[a.payer].address, token, amount);
        m.clock -= 1n;
        const result = await this.send(() => p.connect(PAYERS[a.payer]).requestWithdrawal(token, amount, { gasLimit: GAS }));
        if (expected === "ok") this.expectOk(result, "requestWithdrawal");
        else this.expectError(result, expected, "requestWithdrawal");
        return;
      }
      case "withdraw": {
        let [payerIndex, tokenIndex] = [a.payer, a.token];
        if (a.waitForNotice) {
          // Withdraw one of the pending requests (if any) once its notice has passed.
          const pendings = PAYERS.flatMap((w, i) => this.tokenAddresses.map((t, j) => [i, j, m.pending.get(`${w.address}|${t}`)] as const)).filter(
            ([, , pending]) => pending !== undefined,
          );
          if (pendings.length !== 0) {
            const [i, j, pending] = pendings[(a.payer + a.token) % pendings.length];
            [payerIndex, tokenIndex] = [i, j];
            if (pending!.readyAt > m.clock + 1n) m.clock = pending!.readyAt - 1n;
          }
        }
        const token = this.tokenAddresses[tokenIndex];
        const payer = PAYERS[payerIndex];
        m.clock += 1n;
        const expected = m.withdraw(payer.address, token);
        m.clock -= 1n;
        const before = await this.tokens[tokenIndex].balanceOf(payer.address);
        const result = await this.send(() => p.connect(payer).withdraw(token, payer.address, { gasLimit: GAS }));
        count(`withdraw:${typeof expected === "bigint" ? "paid" : expected}`);
        if (typeof expected === "bigint") {
          this.expectOk(result, "withdraw");
          expect(await this.tokens[tokenIndex].balanceOf(payer.address)).to.equal(before + expected);
        } else {
          this.expectError(result, expected, "withdraw");
        }
        return;
      }
      case "withdrawEarnings": {
        const token = this.tokenAddresses[a.token];
        const who = a.who === 2 ? FEE_RECIPIENT : PROVIDERS[a.who];
        const expected = m.withdrawEarnings(who.address, token);
        const before = await this.tokens[a.token].balanceOf(who.address);
        const result = await this.send(() => p.connect(who).withdrawEarnings(token, who.address, { gasLimit: GAS }));
        if (typeof expected === "bigint") {
          this.expectOk(result, "withdrawEarnings");
          expect(await this.tokens[a.token].balanceOf(who.address), "earnings less the fee, rounded up").to.equal(before + expected);
        } else {
          this.expectError(result, expected, "withdrawEarnings");
        }
        return;
      }
      case "withdrawFees": {
        const token = this.tokenAddresses[a.token];
        const expected = m.withdrawFees(token);
        const before = await this.tokens[a.token].balanceOf(FEE_RECIPIENT.address);
        const result = await this.send(() => p.connect(PROVIDERS[0]).withdrawFees(token, { gasLimit: GAS }));
        count(`withdrawFees:${typeof expected === "bigint" ? "paid" : expected}`);
        if (typeof expected === "bigint") {
          this.expectOk(result, "withdrawFees");
          expect(await this.tokens[a.token].balanceOf(FEE_RECIPIENT.address)).to.equal(before + expected);
        } else {
          this.expectError(result, expected, "withdrawFees");
        }
        return;
      }
      case "warp":
        m.clock += BigInt(a.seconds);
        await time.increaseTo(m.clock); // mines an empty block, so views see the new time
        return;
    }
  }

  // ---------------------------------------------------------------- checks

  /** After every step: conservation and model agreement on every balance, plus what the step touched. */
  private async checkStep(): Promise<void> {
    const m = this.model;
    const p = this.preflight;
    const address = await p.getAddress();
    for (let t = 0; t < this.tokens.length; t++) {
      const token = this.tokenAddresses[t];
      let accounted = 0n;
      for (const payer of PAYERS) {
        const balance = await p.balanceOf(payer.address, token);
        expect(balance, `balance of payer ${payer.address}`).to.equal(m.balance(payer.address, token));
        accounted += balance;
      }
      for (const who of [...PROVIDERS, FEE_RECIPIENT]) {
        const earned = await p.earningsOf(who.address, token);
        expect(earned, `earnings of ${who.address}`).to.equal(m.earned(who.address, token));
        accounted += earned;
      }
      for (const payer of PAYERS) {
        for (const provider of PROVIDERS) {
          const lane = await p.laneOf(payer.address, provider.address, token);
          const expected = m.lane(payer.address, provider.address, token);
          expect([lane.claimed, lane.funds, lane.uncollected, lane.closeReadyAt], `lane ${payer.address}/${provider.address}`).to.deep.equal([
            expected.claimed,
            expected.funds,
            expected.uncollected,
            expected.closeReadyAt,
          ]);
          accounted += lane.funds + lane.uncollected;
          expect(this.lanePaid.get(`${payer.address}|${provider.address}|${token}`) ?? 0n, `lane ${payer.address}/${provider.address} paid in total`).to.equal(lane.claimed);
        }
      }
      const fees = await p.feesOf(token);
      expect(fees, "accrued fees").to.equal(m.feesOf(token));
      accounted += fees;
      const held = await this.tokens[t].balanceOf(address);
      expect(accounted, "funds conserved: balances + lanes + earnings + fees == tokens held").to.equal(held);
      expect(held).to.equal(m.holding(token));
    }
    // No request paid twice; no channel paid beyond its largest claimed cumulative amount.
    for (const [k, count] of this.paid) expect(count, `request ${k} paid ${count} times`).to.be.at.most(1);
    for (const k of this.touched.channels) await this.checkChannel(k);
    for (const k of this.touched.grants) await this.checkGrant(k);
    for (const k of this.touched.words) await this.checkWord(k);
    await this.checkWithdrawable();
    this.touched.grants.clear();
    this.touched.words.clear();
    this.touched.channels.clear();
  }

  private async checkChannel(k: string): Promise<void> {
    const [payer, provider, t, channel] = k.split("|").map(Number);
    const args = [PAYERS[payer].address, PROVIDERS[provider].address, this.tokenAddresses[t], CHANNELS[channel]] as const;
    const claimed = await this.preflight.claimedOf(...args);
    expect(claimed, `channel ${k}`).to.equal(this.model.channel(...args));
    expect(this.channelPaid.get(args.join("|")) ?? 0n, `channel ${k} paid in total`).to.equal(claimed);
  }

  private async checkGrant(k: string): Promise<void> {
    const [payer, t, delegate] = k.split("|").map(Number);
    const args = [PAYERS[payer].address, this.tokenAddresses[t], DELEGATES[delegate].address] as const;
    const g = await this.preflight.grantOf(...args);
    const expected = this.model.grant(...args);
    expect(g.spent, `grant ${k}: budget never exceeded`).to.be.at.most(g.budget);
    expect([g.epoch, g.expiry, g.spent, g.periodEnd], `grant ${k}`).to.deep.equal([expected.epoch, expected.expiry, expected.spent, expected.periodEnd]);
  }

  private async checkWord(k: string): Promise<void> {
    const [payer, t, word] = k.split("|").map(Number);
    const args = [PAYERS[payer].address, this.tokenAddresses[t]] as const;
    expect(await this.preflight.nonceBitmap(...args, word), `nonce word ${k}`).to.equal(this.model.bitmap(...args, BigInt(word)));
  }

  /** Every matured withdrawal request can be executed, for the amount the model expects. */
  private async checkWithdrawable(): Promise<void> {
    for (const [i, payer] of PAYERS.entries()) {
      for (const [t, token] of this.tokenAddresses.entries()) {
        const pending = this.model.pending.get(`${payer.address}|${token}`);
        if (!pending || pending.readyAt > this.model.clock || this.model.clock + 1n >= pending.readyAt + WITHDRAWAL_WINDOW) continue;
        // Deposits made since the request are not withdrawable by it (the model's rule).
        const balance = this.model.balance(payer.address, token);
        const noticed = balance > pending.depositedSince ? balance - pending.depositedSince : 0n;
        const amount = pending.amount < noticed ? pending.amount : noticed;
        const call = this.preflight.connect(PAYERS[i]).withdraw.staticCall(token, payer.address);
        if (amount === 0n) await expect(call, `withdraw of payer ${i}, token ${t}`).to.be.revertedWithCustomError(this.preflight, "ZeroAmount");
        else expect(await call, `withdraw of payer ${i}, token ${t}`).to.equal(amount);
      }
    }
  }

  /** At the end of a run: every grant, nonce word and channel agrees with the model. */
  private async checkAll(): Promise<void> {
    for (let payer = 0; payer < PAYERS.length; payer++) {
      for (let t = 0; t < this.tokens.length; t++) {
        for (let d = 0; d < DELEGATES.length; d++) await this.checkGrant(`${payer}|${t}|${d}`);
        for (let w = 0; w < 3; w++) await this.checkWord(`${payer}|${t}|${w}`);
        for (let v = 0; v < PROVIDERS.length; v++) for (let c = 0; c < CHANNELS.length; c++) await this.checkChannel(`${payer}|${v}|${t}|${c}`);
      }
    }
  }

  /** Everyone takes everything out, after the notice: the escrow ends empty and nobody is short. */
  private async drain(): Promise<void> {
    const m = this.model;
    const p = this.preflight;
    const owed: { t: number; who: Wallet; amount: bigint }[] = [];
    for (const payer of PAYERS) {
      for (const [t, token] of this.tokenAddresses.entries()) {
        const balance = m.balance(payer.address, token);
        if (balance === 0n) continue;
        this.expectOk(await this.send(() => p.connect(payer).requestWithdrawal(token, ethers.MaxUint256, { gasLimit: GAS })), "drain request");
        owed.push({ t, who: payer, amount: balance });
      }
    }
    m.clock += NOTICE;
    for (const { t, who, amount } of owed) {
      const before = await this.tokens[t].balanceOf(who.address);
      this.expectOk(await this.send(() => p.connect(who).withdraw(this.tokenAddresses[t], who.address, { gasLimit: GAS })), "drain withdraw");
      expect(await this.tokens[t].balanceOf(who.address)).to.equal(before + amount);
    }
    // Lanes: providers collect what they claimed; payers close what is left after the notice.
    const closing: { t: number; payer: Wallet; provider: Wallet; amount: bigint }[] = [];
    for (const provider of PROVIDERS) {
      for (const [t, token] of this.tokenAddresses.entries()) {
        m.collectLanes(provider.address, token, PAYERS.map((w) => w.address));
        this.expectOk(await this.send(() => p.connect(provider).collectLanes(token, PAYERS.map((w) => w.address), { gasLimit: GAS })), "drain collect");
        for (const payer of PAYERS) {
          const lane = m.lane(payer.address, provider.address, token);
          if (lane.funds === 0n) continue;
          this.expectOk(await this.send(() => p.connect(payer).requestLaneClose(provider.address, token, { gasLimit: GAS })), "drain lane close request");
          closing.push({ t, payer, provider, amount: lane.funds });
        }
      }
    }
    m.clock += NOTICE;
    for (const { t, payer, provider, amount } of closing) {
      const before = await this.tokens[t].balanceOf(payer.address);
      this.expectOk(await this.send(() => p.connect(payer).closeLane(provider.address, this.tokenAddresses[t], payer.address, { gasLimit: GAS })), "drain lane close");
      expect(await this.tokens[t].balanceOf(payer.address)).to.equal(before + amount);
    }
    for (const who of [...PROVIDERS, FEE_RECIPIENT]) {
      for (const [t, token] of this.tokenAddresses.entries()) {
        if (m.earned(who.address, token) === 0n) continue;
        const amount = m.withdrawEarnings(who.address, token) as bigint;
        const before = await this.tokens[t].balanceOf(who.address);
        this.expectOk(await this.send(() => p.connect(who).withdrawEarnings(token, who.address, { gasLimit: GAS })), "drain earnings");
        expect(await this.tokens[t].balanceOf(who.address)).to.equal(before + amount);
      }
    }
    for (const [t, token] of this.tokenAddresses.entries()) {
      const amount = m.withdrawFees(token);
      if (amount === "ZeroAmount") continue;
      const before = await this.tokens[t].balanceOf(FEE_RECIPIENT.address);
      this.expectOk(await this.send(() => p.withdrawFees(token, { gasLimit: GAS })), "drain fees");
      expect(await this.tokens[t].balanceOf(FEE_RECIPIENT.address)).to.equal(before + amount);
    }
    for (const token of this.tokens) expect(await token.balanceOf(await p.getAddress()), "escrow empty after everyone withdrew").to.equal(0n);
  }
}
