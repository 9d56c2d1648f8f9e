/**
 * Lane tasks: funds a payer reserves for one provider (docs/lanes.md). The payer funds the lane (from
 * its escrow balance or a fresh deposit) and signs cumulative lane vouchers (or a delegate does); the
 * provider claims them into the lane's uncollected amount and collects many lanes into its earnings
 * at once; the payer takes back what is left by closing the lane after the notice period.
 */
import { task } from "hardhat/config";
import { getAddress, zeroPadValue, type TransactionReceipt } from "ethers";
import type { HardhatRuntimeEnvironment } from "hardhat/types";
import {
  LANES_CLAIMED_TOPIC,
  LANES_COLLECTED_TOPIC,
  decodeLanesClaimed,
  decodeLanesCollected,
  encodeLaneClaims,
  isPackable,
  signLaneVoucher,
  type LaneVoucher,
} from "@preflight/sdk";
import { PreflightError, isUserError } from "./lib/errors";
import {
  ETH,
  approveIfNeeded,
  commandFor,
  common,
  explainError,
  latestTimestamp,
  loadContext,
  requireWalletBalance,
  resolveToken,
  send,
  tokenInfo,
  tokenOption,
  type Common,
  type TaskContext,
  type TokenInfo,
} from "./lib/context";
import { checkDelegateScope } from "./lib/delegate";
import { isLocalChain } from "./lib/networks";
import { formatAmount, formatDuration, formatTime, parseAddress, parseAmount, parseModel, readJsonFile, stringify, writeJsonFile } from "./lib/input";
import { laneVoucherToJson, parseLaneVouchers, toLaneVoucherStruct, type ParsedLaneVoucher } from "./lib/signed";
import { reasonName, reasonSentence, refusedItems } from "./lib/reasons";

const log = (line: string): void => console.log(line);
const MAX_UINT128 = (1n << 128n) - 1n;
/** Where sign-lane-voucher writes by default (git-ignored): a lane voucher is cumulative, so the latest replaces the previous. */
export const DEFAULT_LANE_VOUCHER_FILE = "lane-voucher.json";

/** A lane as `laneOf` reports it. */
export interface LaneState {
  claimed: bigint;
  funds: bigint;
  uncollected: bigint;
  closeReadyAt: bigint;
}

async function laneOf(ctx: TaskContext, payer: string, provider: string, token: string): Promise<LaneState> {
  const [claimed, funds, uncollected, closeReadyAt] = await ctx.preflight.laneOf(payer, provider, token);
  return { claimed, funds, uncollected, closeReadyAt };
}

/** "On this local chain …" when `advance-time` can skip a wait here (a node, not the in-process chain). */
function skipWaitHint(ctx: TaskContext): string | undefined {
  if (!isLocalChain(ctx.chainId) || ctx.hre.network.name === "hardhat") return undefined;
  return `On this local chain you may skip the wait: ${commandFor(ctx.hre, "advance-time", {})}`;
}

/** `--from` for a printed command run by `account`: its index among this network's accounts, when it is one. */
async function fromOption(hre: HardhatRuntimeEnvironment, account: string, args: Common): Promise<Common | undefined> {
  const index = (await hre.ethers.getSigners()).findIndex((s) => s.address === account);
  return index < 0 ? undefined : { from: String(index), preflight: args.preflight };
}

/** The events of `name` that `receipt` holds, parsed with the Preflight ABI. */
function events(ctx: TaskContext, receipt: TransactionReceipt, name: string): Record<string, unknown>[] {
  const found: Record<string, unknown>[] = [];
  for (const l of receipt.logs) {
    const parsed = ctx.preflight.interface.parseLog(l);
    if (parsed?.name === name) found.push(parsed.args.toObject());
  }
  return found;
}

interface LaneArgs extends Common {
  provider: string;
  token: string;
}

// ------------------------------------------------------------------ fund

common(task("lane-fund", "Reserves funds for one provider in a lane: from the escrow balance, or a fresh deposit with --deposit"))
  .addParam("provider", "the only provider that can claim the lane")
  .addParam("token", "ETH, test, a recorded token symbol (e.g. tUSDC) or an ERC-20 address")
  .addParam("amount", "amount in human units, e.g. 25.5")
  .addOptionalParam("payer", "with --deposit: whose lane to fund (default: the sender)")
  .addFlag("deposit", "pay from the wallet (ERC-20, approved as needed, or ETH) instead of the escrow balance")
  .setAction(async (args: LaneArgs & { amount: string; payer?: string; deposit: boolean }, hre) => {
    const ctx = await loadContext(hre, args);
    const token = await resolveToken(ctx, args.token);
    const provider = parseAddress("--provider", args.provider);
    const amount = parseAmount("--amount", args.amount, token.decimals, token.symbol);
    const f = (v: bigint): string => formatAmount(v, token.decimals, token.symbol);
    let payer = ctx.signer.address;
    if (args.payer !== undefined) {
      payer = parseAddress("--payer", args.payer);
      if (!args.deposit && payer !== ctx.signer.address) {
        throw new PreflightError("--payer needs --deposit: funding from the escrow balance always funds the sender's own lane.");
      }
    }
    if (args.deposit) {
      await requireWalletBalance(ctx, token, amount, "put in the lane");
      if (token.address === ETH) {
        await send(ctx, `Lane deposit of ${f(amount)}`, () => ctx.preflight.depositETHToLane(payer, provider, { value: amount }), log);
      } else {
        await approveIfNeeded(ctx, token, amount, log);
        await send(ctx, `Lane deposit of ${f(amount)}`, () => ctx.preflight.depositToLane(payer, provider, token.address, amount), log);
      }
    } else {
      const balance = await ctx.preflight.balanceOf(payer, token.address);
      if (balance < amount) {
        const deposit = commandFor(hre, "deposit", { token: args.token, amount: formatAmount(amount - balance, token.decimals, "").trim() }, args);
        throw new PreflightError(
          `${payer} has ${f(balance)} in escrow, less than the ${f(amount)} to put in the lane: deposit the difference first (${deposit}), or add --deposit to pay from the wallet.`,
        );
      }
      await send(ctx, `Lane funding of ${f(amount)} from the escrow balance`, () => ctx.preflight.fundLane(provider, token.address, amount), log);
    }
    const lane = await laneOf(ctx, payer, provider, token.address);
    log(`Lane of ${payer} for provider ${provider}: ${f(lane.funds)} reserved (${f(lane.claimed)} claimed so far)`);
    if (lane.closeReadyAt !== 0n) {
      log(`A close of this lane is pending (ready at ${formatTime(lane.closeReadyAt)}): it returns only what was in the lane when it was requested, less claims since; these funds stay in the lane.`);
    }
    log(`See it with: ${commandFor(hre, "lane-status", { provider, token: args.token, payer: payer === ctx.signer.address ? undefined : payer }, args)}`);
    return { payer, provider, token: token.address, amount, ...lane };
  });

// ------------------------------------------------------------------ status

/** Where a lane's close request stands. */
export type CloseState = "none" | "notice" | "ready" | "lapsed";

common(task("lane-status", "Shows a lane: funds, claimed total, uncollected claims and a pending close"))
  .addParam("provider", "the lane's provider")
  .addParam("token", "ETH, test, a recorded token symbol (e.g. tUSDC) or an ERC-20 address")
  .addOptionalParam("payer", "the lane's payer (default: the --from account)")
  .setAction(async (args: LaneArgs & { payer?: string }, hre) => {
    const ctx = await loadContext(hre, args);
    const token = await resolveToken(ctx, args.token);
    const provider = parseAddress("--provider", args.provider);
    const payer = args.payer === undefined ? ctx.signer.address : parseAddress("--payer", args.payer);
    const [lane, window, now] = await Promise.all([laneOf(ctx, payer, provider, token.address), ctx.preflight.WITHDRAWAL_WINDOW(), latestTimestamp(hre)]);
    const f = (v: bigint): string => formatAmount(v, token.decimals, token.symbol);
    const lapsesAt = lane.closeReadyAt === 0n ? 0n : lane.closeReadyAt + window;
    const close: CloseState = lane.closeReadyAt === 0n ? "none" : now < lane.closeReadyAt ? "notice" : now < lapsesAt ? "ready" : "lapsed";
    log(`Lane of ${payer} for provider ${provider} in ${token.symbol} on ${hre.network.name} (Preflight ${await ctx.preflight.getAddress()})`);
    log(`  funds           ${f(lane.funds)} (only the provider can claim them)`);
    log(`  claimed         ${f(lane.claimed)} in total (a voucher pays what its total adds to this)`);
    log(`  uncollected     ${f(lane.uncollected)} (claimed, not yet in the provider's earnings: lane-collect)`);
    const closeLine = {
      none: "none",
      notice: `in its notice period: ready at ${formatTime(lane.closeReadyAt)} (in ${formatDuration(lane.closeReadyAt - now)}), lapses at ${formatTime(lapsesAt)}`,
      ready: `ready now: lane-close until ${formatTime(lapsesAt)} (in ${formatDuration(lapsesAt - now)}), when it lapses`,
      lapsed: `lapsed at ${formatTime(lapsesAt)} (ready at ${formatTime(lane.closeReadyAt)}): request it again`,
    }[close];
    log(`  pending close   ${closeLine}`);
    if (lane.claimed === 0n && lane.funds === 0n && lane.uncollected === 0n) log("  (no lane yet: the payer opens it with lane-fund)");
    return { payer, provider, token: token.address, ...lane, closeLapsesAt: lapsesAt, close };
  });

// ------------------------------------------------------------------ close

common(task("lane-request-close", "Starts the notice period for taking back what is left in your lane for a provider"))
  .addParam("provider", "the lane's provider")
  .addParam("token", "ETH, test, a recorded token symbol (e.g. tUSDC) or an ERC-20 address")
  .setAction(async (args: LaneArgs, hre) => {
    const ctx = await loadContext(hre, args);
    const token = await resolveToken(ctx, args.token);
    const provider = parseAddress("--provider", args.provider);
    const f = (v: bigint): string => formatAmount(v, token.decimals, token.symbol);
    const lane = await laneOf(ctx, ctx.signer.address, provider, token.address);
    if (lane.funds === 0n) {
      log(`Nothing to do: your lane for provider ${provider} holds no ${token.symbol}, so a close would return nothing; nothing was sent.`);
      return { requested: false, ...lane };
    }
    if (lane.closeReadyAt !== 0n) log(`This replaces the close requested earlier (ready at ${formatTime(lane.closeReadyAt)}): the notice period starts again.`);
    const receipt = await send(ctx, `Lane close request (${f(lane.funds)} in the lane)`, () => ctx.preflight.requestLaneClose(provider, token.address), log);
    const [event] = events(ctx, receipt, "LaneCloseRequested");
    const readyAt = event.readyAt as bigint;
    const expiresAt = event.expiresAt as bigint;
    const now = await latestTimestamp(hre);
    log(`The provider may keep claiming until then; the close returns at most ${f(lane.funds)} less what it claims.`);
    log(
      `Ready at ${formatTime(readyAt)} (in ${formatDuration(readyAt - now)}), until ${formatTime(expiresAt)} when the request lapses; then run: ${commandFor(hre, "lane-close", { provider, token: args.token }, args)}`,
    );
    const skip = skipWaitHint(ctx);
    if (skip !== undefined) log(skip);
    return { requested: true, readyAt, expiresAt };
  });

common(task("lane-close", "Takes back what is left in your lane after the notice period (within the close window)"))
  .addParam("provider", "the lane's provider")
  .addParam("token", "ETH, test, a recorded token symbol (e.g. tUSDC) or an ERC-20 address")
  .addOptionalParam("to", "recipient (default: the sender)")
  .setAction(async (args: LaneArgs & { to?: string }, hre) => {
    const ctx = await loadContext(hre, args);
    const token = await resolveToken(ctx, args.token);
    const provider = parseAddress("--provider", args.provider);
    const to = args.to === undefined ? ctx.signer.address : parseAddress("--to", args.to);
    const f = (v: bigint): string => formatAmount(v, token.decimals, token.symbol);
    const request = commandFor(hre, "lane-request-close", { provider, token: args.token }, args);
    const lane = await laneOf(ctx, ctx.signer.address, provider, token.address);
    if (lane.closeReadyAt === 0n) throw new PreflightError(`No close of your ${token.symbol} lane for provider ${provider} is requested: first run ${request}`);
    const [window, now] = await Promise.all([ctx.preflight.WITHDRAWAL_WINDOW(), latestTimestamp(hre)]);
    if (now < lane.closeReadyAt) {
      const skip = skipWaitHint(ctx);
      throw new PreflightError(
        `The lane close is in its notice period until ${formatTime(lane.closeReadyAt)} (${formatDuration(lane.closeReadyAt - now)} from now); try again then.${skip === undefined ? "" : ` ${skip}`}`,
      );
    }
    if (now >= lane.closeReadyAt + window) {
      throw new PreflightError(
        `The lane close request lapsed at ${formatTime(lane.closeReadyAt + window)} (a close must run within ${formatDuration(window)} after it is ready): request it again with ${request}`,
      );
    }
    const receipt = await send(ctx, "Lane close", () => ctx.preflight.closeLane(provider, token.address, to), log);
    const [event] = events(ctx, receipt, "LaneClosed");
    const amount = event.amount as bigint;
    const after = await laneOf(ctx, ctx.signer.address, provider, token.address);
    log(amount === 0n ? "The provider claimed everything that was under notice: nothing was returned." : `Returned ${f(amount)} to ${to}`);
    if (after.funds > 0n) log(`${f(after.funds)} stays in the lane (added after the request); to take it back too, run: ${request}`);
    return { amount, to, ...after };
  });

// ------------------------------------------------------------------ vouchers

interface SignLaneVoucherArgs extends LaneArgs {
  model: string;
  amount: string;
  payer?: string;
  out: string;
  compact: boolean;
}

common(task("sign-lane-voucher", "Signs a cumulative lane voucher: the total owed to the lane's provider so far"))
  .addParam("provider", "the lane's provider")
  .addParam("token", "ETH, test, a recorded token symbol (e.g. tUSDC) or an ERC-20 address")
  .addParam("model", "model name or 32-byte id (checked against a delegate's grant)")
  .addParam("amount", "cumulative total owed from the lane, in human units (not the increment)")
  .addOptionalParam("payer", "whose lane pays (default: the signer; set it when signing as a delegate)")
  .addOptionalParam("out", 'JSON file to write ("-" prints it)', DEFAULT_LANE_VOUCHER_FILE)
  .addFlag("compact", "64-byte EIP-2098 signature")
  .setAction(async (args: SignLaneVoucherArgs, hre) => {
    const ctx = await loadContext(hre, args);
    const token = await resolveToken(ctx, args.token);
    const provider = parseAddress("--provider", args.provider);
    const payer = args.payer === undefined ? ctx.signer.address : parseAddress("--payer", args.payer);
    const model = parseModel("--model", args.model);
    const cumulativeAmount = parseAmount("--amount", args.amount, token.decimals, token.symbol);
    const f = (v: bigint): string => formatAmount(v, token.decimals, token.symbol);
    if (cumulativeAmount > MAX_UINT128) throw new PreflightError("--amount is more than a voucher can carry (2^128 - 1 base units).");
    const lane = await laneOf(ctx, payer, provider, token.address);
    if (cumulativeAmount <= lane.claimed) {
      throw new PreflightError(`--amount is the cumulative total, and the lane has already paid ${f(lane.claimed)}: sign a total above that (the voucher pays the difference).`);
    }
    await checkDelegateScope(ctx, { payer, token, provider, model, modelName: args.model });
    const adds = cumulativeAmount - lane.claimed;
    if (adds > lane.funds) {
      // To stderr, so that printing the voucher to stdout stays valid JSON.
      console.error(`Warning: the lane holds ${f(lane.funds)}, less than the ${f(adds)} this voucher adds; it pays only once the payer funds the lane (lane-fund).`);
    }
    const voucher: LaneVoucher = { payer, provider, token: token.address, model, cumulativeAmount };
    const signature = await signLaneVoucher(ctx.signer, ctx.domain, voucher, args.compact);
    const json = laneVoucherToJson(ctx.domain, voucher, signature, ctx.signer.address);
    if (args.out === "-") {
      log(stringify(json));
      return json;
    }
    writeJsonFile(args.out, json);
    log(`Signed a lane voucher for ${f(cumulativeAmount)} in total (${f(adds)} claimable now) into ${args.out}`);
    const asProvider = await fromOption(hre, provider, args);
    const claim = commandFor(hre, "lane-claim", { file: args.out }, asProvider ?? { preflight: args.preflight });
    log(`The provider claims it with: ${claim}${asProvider === undefined ? ` (from the provider's account, ${provider})` : ""}`);
    return json;
  });

/** The outcome of one lane voucher of a claim. */
export interface LaneOutcome {
  index: number;
  /** "file" or "file item i" */
  item: string;
  payer: string;
  token: string;
  /** `Settled`, a `Reason` name, or the custom error a readable claim reverted with */
  reason: string;
  /** what the reason means, for skipped items */
  sentence?: string;
  paid: bigint;
}

interface Item {
  index: number;
  label: string;
  parsed: ParsedLaneVoucher;
}

/**
 * Whether `claimLanesPacked` carries the voucher's signature unchanged (the SDK's rule, `isPackable`):
 * a 65-byte signature packs as 64 bytes only for a payer without code, since a contract payer's
 * wallet would check the shortened bytes. Everything else goes through `claimLane`.
 */
async function packable(ctx: TaskContext, item: Item): Promise<boolean> {
  const payerIsContract = (await ctx.hre.ethers.provider.getCode(item.parsed.voucher.payer)) !== "0x";
  return isPackable(item.parsed.signature, payerIsContract);
}

/** Claims the pending items of one token: `claimLanesPacked` per model, `claimLane` for signatures it cannot carry. */
async function claimToken(ctx: TaskContext, token: TokenInfo, items: Item[]): Promise<LaneOutcome[]> {
  const f = (v: bigint): string => formatAmount(v, token.decimals, token.symbol);
  const outcomes: LaneOutcome[] = [];
  const outcome = (item: Item, reason: string, paid: bigint, code?: number): LaneOutcome => {
    const o: LaneOutcome = { index: item.index, item: item.label, payer: item.parsed.voucher.payer, token: token.address, reason, paid };
    if (code !== undefined && code !== 0) o.sentence = reasonSentence(code, true);
    outcomes.push(o);
    return o;
  };
  const report = (o: LaneOutcome): void =>
    log(`  ${o.item}: payer ${o.payer}: ${o.reason === "Settled" ? `paid ${f(o.paid)}` : `skipped (${o.reason}${o.sentence === undefined ? "" : `: ${o.sentence}`})`}`);

  const models = new Map<string, Item[]>();
  for (const item of items) {
    if (!(await packable(ctx, item))) {
      // A contract wallet's (ERC-1271) signature: the readable entry point, which reverts with the reason.
      try {
        const receipt = await send(ctx, `Lane claim of ${item.label}`, () => ctx.preflight.claimLane(toLaneVoucherStruct(item.parsed)), log);
        report(outcome(item, "Settled", claimedIn(receipt)[0]?.amount ?? 0n));
      } catch (e) {
        if (!isUserError(e)) throw e;
        report(outcome(item, e.message.replace(/^.*refused: /, "").replace(/\.$/, ""), 0n));
      }
      continue;
    }
    const model = item.parsed.voucher.model;
    models.set(model, [...(models.get(model) ?? []), item]);
  }
  for (const [model, group] of models) {
    // Preview each claim with the readable entry point (same checks): send nothing if none would pay.
    const previews = await Promise.all(
      group.map(async (item) => {
        try {
          await ctx.preflight.claimLane.staticCall(toLaneVoucherStruct(item.parsed));
          return undefined;
        } catch (e) {
          return explainError(ctx.hre, e);
        }
      }),
    );
    if (previews.every((p) => p !== undefined)) {
      log(`No ${token.symbol} lane voucher of model ${model} would pay; nothing was sent.`);
      group.forEach((item, k) => report(outcome(item, previews[k]!, 0n)));
      continue;
    }
    const packed = encodeLaneClaims(
      model,
      group.map(({ parsed }) => ({ payer: parsed.voucher.payer, cumulativeAmount: parsed.voucher.cumulativeAmount, signature: parsed.signature })),
      // Every payer here was found to have no code (`packable`), so 65-byte signatures pack as 64.
      { isContract: () => false },
    );
    const receipt = await send(ctx, `Claim of ${group.length} ${token.symbol} lane voucher(s)`, () => ctx.preflight.claimLanesPacked(token.address, packed), log);
    // The receipt is the truth: one LanesClaimed log lists every claim in order, paid or skipped with its reason.
    const records = claimedIn(receipt);
    group.forEach((item, k) => {
      const r = records[k];
      report(outcome(item, r === undefined ? "Unreported" : reasonName(r.reason), r?.amount ?? 0n, r?.reason));
    });
  }
  return outcomes;
}

/** The claims of the `LanesClaimed` logs of `receipt`, in order. */
function claimedIn(receipt: TransactionReceipt): { payer: string; amount: bigint; reason: number }[] {
  return receipt.logs.filter((l) => l.topics[0] === LANES_CLAIMED_TOPIC).flatMap((l) => decodeLanesClaimed(l).records);
}

common(task("lane-claim", "Claims signed lane vouchers as the provider (one with claimLane, several with claimLanesPacked), skipping and reporting invalid ones"))
  .addParam("file", "JSON file(s) written by sign-lane-voucher, comma-separated; each holds one voucher or a list")
  .setAction(async (args: Common & { file: string }, hre) => {
    const ctx = await loadContext(hre, args);
    const files = args.file
      .split(",")
      .map((f) => f.trim())
      .filter((f) => f !== "");
    if (files.length === 0) throw new PreflightError("--file is empty: give the voucher file(s) sign-lane-voucher wrote, comma-separated.");
    const items: Item[] = [];
    for (const file of files) {
      const data = readJsonFile("--file", file);
      parseLaneVouchers(file, data, ctx.domain).forEach((parsed, i) => items.push({ index: items.length, label: Array.isArray(data) ? `${file} item ${i}` : file, parsed }));
    }
    for (const { label, parsed } of items) {
      if (parsed.voucher.provider !== ctx.signer.address) {
        throw new PreflightError(`${label} pays provider ${parsed.voucher.provider}, but you are ${ctx.signer.address}: only that provider can claim it (use --from).`);
      }
    }

    // A voucher whose total its lane already paid needs nothing more: "nothing to do", not sent.
    const outcomes: LaneOutcome[] = [];
    const pending: Item[] = [];
    for (const item of items) {
      const v = item.parsed.voucher;
      const lane = await laneOf(ctx, v.payer, v.provider, v.token);
      if (v.cumulativeAmount > lane.claimed) {
        pending.push(item);
        continue;
      }
      const token = await tokenInfo(ctx, v.token);
      const f = (x: bigint): string => formatAmount(x, token.decimals, token.symbol);
      log(`Nothing to do for ${item.label}: its total is ${f(v.cumulativeAmount)} and the lane of ${v.payer} already paid ${f(lane.claimed)}.`);
      outcomes.push({ index: item.index, item: item.label, payer: v.payer, token: v.token, reason: "NothingToClaim", paid: 0n });
    }
    if (pending.length === 0) {
      log("Nothing was sent.");
      return outcomes;
    }

    const tokens = [...new Set(pending.map((p) => p.parsed.voucher.token))];
    if (pending.length === 1) {
      // One voucher: the readable entry point, which reverts with the contract's specific error.
      const [item] = pending;
      const token = await tokenInfo(ctx, item.parsed.voucher.token);
      const receipt = await send(ctx, `Lane claim of ${item.label}`, () => ctx.preflight.claimLane(toLaneVoucherStruct(item.parsed)), log);
      const paid = claimedIn(receipt)[0]?.amount ?? 0n;
      log(`Claimed ${formatAmount(paid, token.decimals, token.symbol)} from the lane of ${item.parsed.voucher.payer}`);
      outcomes.push({ index: item.index, item: item.label, payer: item.parsed.voucher.payer, token: token.address, reason: "Settled", paid });
    } else {
      for (const address of tokens) {
        outcomes.push(...(await claimToken(ctx, await tokenInfo(ctx, address), pending.filter((p) => p.parsed.voucher.token === address))));
      }
    }
    outcomes.sort((a, b) => a.index - b.index);
    const paid = outcomes.filter((o) => o.reason === "Settled");
    const refused = refusedItems(outcomes);
    const done = outcomes.length - paid.length - refused.length;
    log(`${paid.length} of ${outcomes.length} lane voucher(s) paid${done > 0 ? `; ${done} already paid by their lane: nothing to do for those` : ""}.`);
    for (const address of new Set(paid.map((o) => o.token))) {
      const token = await tokenInfo(ctx, address);
      log(`The claims wait in the lanes as uncollected; move them to your earnings with: ${commandFor(hre, "lane-collect", { token: tokenOption(ctx, token) }, args)}`);
    }
    if (refused.length > 0) {
      throw new PreflightError(
        `${refused.length} of ${outcomes.length} lane voucher(s) were refused: ${refused.map((o) => `${o.item} (${o.reason}${o.sentence === undefined ? "" : `: ${o.sentence}`})`).join(", ")}; ${paid.length} paid.`,
      );
    }
    return outcomes;
  });

// ------------------------------------------------------------------ collect

/** Payers whose lanes for `provider` in `token` were ever claimed, from the `LanesClaimed` logs. */
async function claimedPayers(ctx: TaskContext, provider: string, token: string): Promise<string[]> {
  const address = await ctx.preflight.getAddress();
  const recorded = ctx.record?.contracts.Preflight;
  const fromBlock = recorded !== undefined && getAddress(recorded.address) === address ? (recorded.block ?? 0) : 0;
  let logs;
  try {
    logs = await ctx.hre.ethers.provider.getLogs({ address, fromBlock, toBlock: "latest", topics: [LANES_CLAIMED_TOPIC, zeroPadValue(provider, 32), zeroPadValue(token, 32)] });
  } catch (e) {
    throw new PreflightError(`Cannot read the LanesClaimed logs from block ${fromBlock} (${(e as Error).message.split("\n")[0]}): name the payers with --payers 0x…,0x….`);
  }
  const payers = new Set<string>();
  for (const l of logs) for (const r of decodeLanesClaimed(l).records) if (r.reason === 0) payers.add(r.payer);
  return [...payers];
}

common(task("lane-collect", "Moves the provider's uncollected lane claims into its earnings, many lanes in one transaction"))
  .addParam("token", "ETH, test, a recorded token symbol (e.g. tUSDC) or an ERC-20 address")
  .addOptionalParam("payers", "comma-separated payers whose lanes to collect (default: every lane you claimed from)")
  .setAction(async (args: Common & { token: string; payers?: string }, hre) => {
    const ctx = await loadContext(hre, args);
    const token = await resolveToken(ctx, args.token);
    const provider = ctx.signer.address;
    const f = (v: bigint): string => formatAmount(v, token.decimals, token.symbol);
    let payers: string[];
    if (args.payers !== undefined) {
      payers = [
        ...new Set(
          args.payers
            .split(",")
            .filter((p) => p.trim() !== "")
            .map((p) => parseAddress("--payers", p)),
        ),
      ];
      if (payers.length === 0) throw new PreflightError("--payers is empty: give the payers whose lanes to collect, comma-separated, or leave it out to collect every lane you claimed from.");
    } else {
      payers = await claimedPayers(ctx, provider, token.address);
    }
    const lanes = await Promise.all(payers.map(async (payer) => ({ payer, lane: await laneOf(ctx, payer, provider, token.address) })));
    const due = lanes.filter(({ lane }) => lane.uncollected > 0n).map(({ payer }) => payer);
    if (due.length === 0) {
      log(
        payers.length === 0
          ? `Nothing to do: you have not claimed from any ${token.symbol} lane yet; nothing was sent.`
          : `Nothing to do: no ${token.symbol} claims wait in the lanes of the ${payers.length} payer(s); nothing was sent.`,
      );
      return { amount: 0n, payers: [] as string[] };
    }
    const receipt = await send(ctx, `Collection of ${due.length} ${token.symbol} lane(s)`, () => ctx.preflight.collectLanes(token.address, due), log);
    const records = receipt.logs.filter((l) => l.topics[0] === LANES_COLLECTED_TOPIC).flatMap((l) => decodeLanesCollected(l).records);
    const amount = records.reduce((sum, r) => sum + r.amount, 0n);
    for (const r of records) log(`  lane of ${r.payer}: ${f(r.amount)}`);
    log(`Collected ${f(amount)} into your earnings (now ${f(await ctx.preflight.earningsOf(provider, token.address))}); withdraw with: ${commandFor(hre, "withdraw-earnings", { token: args.token }, args)}`);
    return { amount, payers: records.map((r) => r.payer) };
  });
