/**
 * Voucher tasks: sign a cumulative voucher ("the total owed on this channel is X"), and claim one or
 * several as the provider.
 */
import { VOUCHERS_CLAIMED_TOPIC, decodeVouchersClaimed } from "@preflight/sdk";
import { task } from "hardhat/config";
import { signVoucher, type Voucher } from "@preflight/sdk";
import { PreflightError } from "./lib/errors";
import { common, loadContext, resolveToken, send, tokenInfo, type Common, type TaskContext } from "./lib/context";
import { formatAmount, parseAddress, parseAmount, parseBytes32, parseModel, readJsonFile, stringify, writeJsonFile } from "./lib/input";
import { parseVouchers, toVoucherStruct, voucherToJson, type ParsedVoucher } from "./lib/signed";
import { reasonName, refusedItems } from "./lib/reasons";
import { checkDelegateScope } from "./lib/delegate";

const log = (line: string): void => console.log(line);
const MAX_UINT128 = (1n << 128n) - 1n;

interface SignVoucherArgs extends Common {
  provider: string;
  token: string;
  model: string;
  channel: string;
  amount: string;
  payer?: string;
  out?: string;
  compact: boolean;
}

common(task("sign-voucher", "Signs a cumulative voucher: the total owed to a provider on a channel so far"))
  .addParam("provider", "the provider it pays")
  .addParam("token", "ETH, test or an ERC-20 address the payer has in escrow")
  .addParam("model", "model name or 32-byte id (checked against a delegate's grant)")
  .addParam("amount", "cumulative total owed on the channel, in human units (not the increment)")
  .addOptionalParam("channel", "channel name or 32-byte id: independent streams to one provider", "default")
  .addOptionalParam("payer", "whose escrow pays (default: the signer; set it when signing as a delegate)")
  .addOptionalParam("out", "JSON file to write (default: print to stdout)")
  .addFlag("compact", "64-byte EIP-2098 signature")
  .setAction(async (args: SignVoucherArgs, hre) => {
    const ctx = await loadContext(hre, args);
    const token = await resolveToken(ctx, args.token);
    const provider = parseAddress("--provider", args.provider);
    const payer = args.payer === undefined ? ctx.signer.address : parseAddress("--payer", args.payer);
    const model = parseModel("--model", args.model);
    const channel = parseBytes32("--channel", args.channel);
    const cumulativeAmount = parseAmount("--amount", args.amount, token.decimals, token.symbol);
    if (cumulativeAmount > MAX_UINT128) throw new PreflightError("--amount is more than a voucher can carry (2^128 - 1 base units).");
    const claimed = await ctx.preflight.claimedOf(payer, provider, token.address, channel);
    if (cumulativeAmount <= claimed) {
      throw new PreflightError(
        `--amount is the cumulative total, and channel "${args.channel}" has already paid ${formatAmount(claimed, token.decimals, token.symbol)}: ` +
          `sign a total above that (the voucher pays the difference).`,
      );
    }
    await checkDelegateScope(ctx, { payer, token, provider, model, modelName: args.model });
    const voucher: Voucher = { payer, provider, token: token.address, model, channel, cumulativeAmount };
    const signature = await signVoucher(ctx.signer, ctx.domain, voucher, args.compact);
    const json = voucherToJson(ctx.domain, voucher, signature, ctx.signer.address);
    if (args.out !== undefined) {
      writeJsonFile(args.out, json);
      log(`Signed a voucher for ${formatAmount(cumulativeAmount, token.decimals, token.symbol)} in total (${formatAmount(cumulativeAmount - claimed, token.decimals, token.symbol)} claimable now) into ${args.out}`);
    } else {
      log(stringify(json));
    }
    return json;
  });

/** The outcome of one voucher of a claim. */
export interface VoucherOutcome {
  index: number;
  payer: string;
  channel: string;
  reason: string;
  paid: bigint;
}

async function claim(ctx: TaskContext, file: string, parsed: ParsedVoucher[]): Promise<VoucherOutcome[]> {
  for (const [i, item] of parsed.entries()) {
    if (item.voucher.provider !== ctx.signer.address) {
      throw new PreflightError(`${file} item ${i} pays provider ${item.voucher.provider}, but you are ${ctx.signer.address}: only that provider can claim it (use --from).`);
    }
  }
  const paid = (receiptLogs: readonly { topics: readonly string[]; data: string }[]): Map<string, bigint> => {
    const byChannel = new Map<string, bigint>();
    for (const l of receiptLogs) {
      if (l.topics[0] !== VOUCHERS_CLAIMED_TOPIC) continue;
      for (const r of decodeVouchersClaimed(l).records) if (r.reason === 0) byChannel.set(`${r.payer}/${r.channel}`, r.amount);
    }
    return byChannel;
  };

  if (parsed.length === 1) {
    const v = parsed[0].voucher;
    const token = await tokenInfo(ctx, v.token);
    const claimed = await ctx.preflight.claimedOf(v.payer, v.provider, v.token, v.channel);
    if (v.cumulativeAmount <= claimed) {
      log(`Nothing to do: the voucher's total is ${formatAmount(v.cumulativeAmount, token.decimals, token.symbol)} and its channel already paid ${formatAmount(claimed, token.decimals, token.symbol)}; nothing was sent.`);
      return [{ index: 0, payer: v.payer, channel: v.channel, reason: "NothingToClaim", paid: 0n }];
    }
    const receipt = await send(ctx, `Voucher claim`, () => ctx.preflight.claimVoucher(toVoucherStruct(parsed[0])), log);
    const amount = paid(receipt.logs).get(`${v.payer}/${v.channel}`) ?? 0n;
    log(`Claimed ${formatAmount(amount, token.decimals, token.symbol)} from ${v.payer}`);
    return [{ index: 0, payer: v.payer, channel: v.channel, reason: "Settled", paid: amount }];
  }

  const outcomes: VoucherOutcome[] = [];
  for (const tokenAddress of [...new Set(parsed.map((p) => p.voucher.token))]) {
    const token = await tokenInfo(ctx, tokenAddress);
    const indexed = parsed.map((p, index) => ({ p, index })).filter(({ p }) => p.voucher.token === tokenAddress);
    const structs = indexed.map(({ p }) => toVoucherStruct(p));
    const reasons = (await ctx.preflight.claimVouchers.staticCall(tokenAddress, structs)).map((r) => reasonName(Number(r)) as string);
    let amounts = new Map<string, bigint>();
    if (reasons.some((r) => r === "Settled")) {
      const receipt = await send(ctx, `Claim of ${structs.length} ${token.symbol} voucher(s)`, () => ctx.preflight.claimVouchers(tokenAddress, structs), log);
      // One VouchersClaimed log lists every voucher in order, paid or skipped with its reason.
      const logged = receipt.logs.find((l) => l.topics[0] === VOUCHERS_CLAIMED_TOPIC);
      if (logged !== undefined) decodeVouchersClaimed(logged).records.forEach((r, k) => (reasons[k] = reasonName(r.reason)));
      amounts = paid(receipt.logs);
    } else {
      log(`No ${token.symbol} voucher in ${file} would pay; nothing was sent.`);
    }
    for (const [k, { p, index }] of indexed.entries()) {
      const amount = reasons[k] === "Settled" ? (amounts.get(`${p.voucher.payer}/${p.voucher.channel}`) ?? 0n) : 0n;
      outcomes.push({ index, payer: p.voucher.payer, channel: p.voucher.channel, reason: reasons[k], paid: amount });
      log(`  voucher ${index}: payer ${p.voucher.payer}: ${reasons[k] === "Settled" ? `paid ${formatAmount(amount, token.decimals, token.symbol)}` : `skipped (${reasons[k]})`}`);
    }
  }
  outcomes.sort((a, b) => a.index - b.index);
  const refused = refusedItems(outcomes);
  if (refused.length > 0) {
    const paidCount = outcomes.filter((o) => o.reason === "Settled").length;
    throw new PreflightError(`${refused.length} of ${outcomes.length} voucher(s) in ${file} were refused: ${refused.map((o) => `voucher ${o.index} (${o.reason})`).join(", ")}; ${paidCount} paid.`);
  }
  return outcomes;
}

common(task("claim-voucher", "Claims one signed voucher as the provider"))
  .addParam("file", "JSON file written by sign-voucher")
  .setAction(async (args: Common & { file: string }, hre) => {
    const ctx = await loadContext(hre, args);
    const data = readJsonFile("--file", args.file);
    if (Array.isArray(data)) throw new PreflightError(`${args.file} holds a list of vouchers: use claim-vouchers for several.`);
    return claim(ctx, args.file, parseVouchers(args.file, data, ctx.domain));
  });

common(task("claim-vouchers", "Claims several signed vouchers in one transaction, skipping (and reporting) invalid ones"))
  .addParam("file", "JSON file holding a list of vouchers written by sign-voucher")
  .setAction(async (args: Common & { file: string }, hre) => {
    const ctx = await loadContext(hre, args);
    return claim(ctx, args.file, parseVouchers(args.file, readJsonFile("--file", args.file), ctx.domain));
  });
