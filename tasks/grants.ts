/**
 * Grant tasks: grant a delegate (session key, agent, backend) a scope, by a call or by the payer's
 * signature that anyone submits; revoke it; show it.
 */
import { task } from "hardhat/config";
import type { ConfigurableTaskDefinition } from "hardhat/types";
import { ZeroAddress } from "ethers";
import { signGrant, type GrantMessage, type GrantTerms } from "@preflight/sdk";
import { PreflightError } from "./lib/errors";
import { common, latestTimestamp, loadContext, resolveToken, send, type Common, type TaskContext, type TokenInfo } from "./lib/context";
import { formatAmount, formatDuration, formatTime, parseAddress, parseAmount, parseDuration, parseModel, readJsonFile, stringify, writeJsonFile } from "./lib/input";
import { grantToJson, parseGrant } from "./lib/signed";

const log = (line: string): void => console.log(line);
const MAX_UINT88 = (1n << 88n) - 1n;
const MAX_UINT32 = (1n << 32n) - 1n;

interface GrantArgs extends Common {
  delegate: string;
  token: string;
  provider?: string;
  models?: string;
  maxPrice: string;
  budget: string;
  period: string;
  expiry: string;
}

/** The scope options `grant` and `sign-grant` share. */
function grantParams(t: ConfigurableTaskDefinition): ConfigurableTaskDefinition {
  return common(t)
    .addParam("delegate", "the delegate's address (session key, agent, backend)")
    .addParam("token", "ETH, test or an ERC-20 address: prices and budget are in this token")
    .addOptionalParam("provider", "the only provider it may pay (default: any)")
    .addOptionalParam("models", "comma-separated model names or 32-byte ids (default: any model)")
    .addParam("maxPrice", "cap per request, in human units")
    .addParam("budget", "spend allowed per period, in human units")
    .addOptionalParam("period", "budget period (1h, 1d, 30d); 0 = the budget never resets", "0")
    .addOptionalParam("expiry", "how long the grant lives from now (1h, 7d, 30d)", "30d");
}

/** Parses the scope options into the contract's `GrantTerms`, checking each against its on-chain width. */
async function parseTerms(ctx: TaskContext, args: GrantArgs): Promise<{ terms: GrantTerms; token: TokenInfo; modelNames: string[] }> {
  const token = await resolveToken(ctx, args.token);
  const delegate = parseAddress("--delegate", args.delegate);
  if (delegate === ctx.signer.address) throw new PreflightError("--delegate is your own address: a payer signs for itself without a grant.");
  const provider = args.provider === undefined || args.provider.toLowerCase() === "any" ? ZeroAddress : parseAddress("--provider", args.provider);
  const modelNames = (args.models ?? "")
    .split(",")
    .map((m) => m.trim())
    .filter((m) => m !== "" && m.toLowerCase() !== "any");
  const models = modelNames.map((m) => parseModel("--models", m));
  const maxPrice = parseAmount("--max-price", args.maxPrice, token.decimals, token.symbol);
  const budget = parseAmount("--budget", args.budget, token.decimals, token.symbol);
  for (const [name, v] of [["--max-price", maxPrice], ["--budget", budget]] as const) {
    if (v > MAX_UINT88) throw new PreflightError(`${name} is more than a grant can hold (2^88 - 1 base units).`);
  }
  if (maxPrice > budget) throw new PreflightError(`--max-price (${args.maxPrice}) is above --budget (${args.budget}): no request at the cap could ever settle.`);
  const period = parseDuration("--period", args.period);
  const lifetime = parseDuration("--expiry", args.expiry);
  if (lifetime === 0n) throw new PreflightError("--expiry must be more than zero.");
  const expiry = (await latestTimestamp(ctx.hre)) + lifetime;
  if (period > MAX_UINT32 || expiry > MAX_UINT32) throw new PreflightError("--period or --expiry is too far in the future (past year 2106).");
  return { terms: { delegate, token: token.address, provider, maxPrice, budget, period, expiry, models }, token, modelNames };
}

function describeTerms(terms: GrantTerms, token: TokenInfo, modelNames: string[]): string {
  const f = (v: bigint): string => formatAmount(v, token.decimals, token.symbol);
  return (
    `  provider ${terms.provider === ZeroAddress ? "any" : terms.provider}, models ${modelNames.length === 0 ? "any" : modelNames.join(", ")}, ` +
    `max ${f(terms.maxPrice)} per request, budget ${f(terms.budget)} ${terms.period === 0n ? "in total" : `per ${formatDuration(terms.period)}`}, expires ${formatTime(terms.expiry)}`
  );
}

grantParams(task("grant", "Grants a delegate key a scope to spend from your escrow (replaces any earlier grant)")).setAction(async (args: GrantArgs, hre) => {
  const ctx = await loadContext(hre, args);
  const { terms, token, modelNames } = await parseTerms(ctx, args);
  await send(ctx, `Grant to ${terms.delegate}`, () => ctx.preflight.grant(terms), log);
  log(describeTerms(terms, token, modelNames));
  return terms;
});

grantParams(task("sign-grant", "Signs a grant as the payer (EIP-712) for anyone to submit with submit-grant: gasless onboarding"))
  .addOptionalParam("deadline", "how long the signature may be submitted from now (1h, 1d)", "1d")
  .addOptionalParam("out", "JSON file to write (default: print to stdout)")
  .setAction(async (args: GrantArgs & { deadline: string; out?: string }, hre) => {
    const ctx = await loadContext(hre, args);
    const { terms, token, modelNames } = await parseTerms(ctx, args);
    const lifetime = parseDuration("--deadline", args.deadline);
    if (lifetime === 0n) throw new PreflightError("--deadline must be more than zero.");
    const deadline = (await latestTimestamp(hre)) + lifetime;
    // The signature binds the slot's current epoch: it applies once, and any grant or revoke kills it.
    const { epoch } = await ctx.preflight.grantOf(ctx.signer.address, terms.token, terms.delegate);
    const message: GrantMessage = { ...terms, payer: ctx.signer.address, epoch, deadline };
    const signature = await signGrant(ctx.signer, ctx.domain, message);
    const json = grantToJson(ctx.domain, message, signature);
    if (args.out !== undefined) {
      writeJsonFile(args.out, json);
      log(`Signed a grant to ${terms.delegate} for epoch ${epoch} (submit before ${formatTime(deadline)}) into ${args.out}`);
      log(`  (the epoch is the grant's current one; applying it bumps the epoch, so GrantSet reports ${epoch + 1n} and this signature cannot apply twice)`);
      log(describeTerms(terms, token, modelNames));
    } else {
      log(stringify(json));
    }
    return json;
  });

common(task("submit-grant", "Submits a grant a payer signed (sign-grant); anyone may send it and pay the gas"))
  .addParam("file", "JSON file written by sign-grant")
  .setAction(async (args: Common & { file: string }, hre) => {
    const ctx = await loadContext(hre, args);
    const { message, signature } = parseGrant(args.file, readJsonFile("--file", args.file), ctx.domain);
    const now = await latestTimestamp(hre);
    if (message.deadline < now) throw new PreflightError(`The signed grant expired at ${formatTime(message.deadline)}: ask the payer to sign a new one.`);
    const { epoch } = await ctx.preflight.grantOf(message.payer, message.token, message.delegate);
    if (epoch !== message.epoch) {
      throw new PreflightError(
        `The signed grant is for epoch ${message.epoch}, but the payer's grant to ${message.delegate} is at epoch ${epoch}: ` +
          `it was already submitted, or the payer granted or revoked since. Ask the payer to sign a new one.`,
      );
    }
    const { payer, epoch: _epoch, deadline, ...terms } = message;
    await send(ctx, `Signed grant of ${payer} to ${terms.delegate}`, () => ctx.preflight.grantBySig(payer, terms, deadline, signature), log);
    return message;
  });

common(task("revoke", "Revokes a delegate's grant at once (and every signed grant not yet applied)"))
  .addParam("delegate", "the delegate's address")
  .addParam("token", "ETH, test, a recorded token symbol (e.g. tUSDC) or an ERC-20 address")
  .setAction(async (args: Common & { delegate: string; token: string }, hre) => {
    const ctx = await loadContext(hre, args);
    const token = await resolveToken(ctx, args.token);
    const delegate = parseAddress("--delegate", args.delegate);
    const grant = await ctx.preflight.grantOf(ctx.signer.address, token.address, delegate);
    if (grant.expiry === 0n) log(`Note: ${delegate} has no active ${token.symbol} grant; revoking still cancels any signed grant not yet submitted.`);
    await send(ctx, `Revocation of ${delegate}`, () => ctx.preflight.revoke(token.address, delegate), log);
  });

common(task("grant-info", "Shows a delegate's grant: scope, spending, expiry"))
  .addParam("delegate", "the delegate's address")
  .addParam("token", "ETH, test, a recorded token symbol (e.g. tUSDC) or an ERC-20 address")
  .addOptionalParam("payer", "the payer who granted it (default: the --from account)")
  .addOptionalParam("model", "also say whether this model is allowed")
  .setAction(async (args: Common & { delegate: string; token: string; payer?: string; model?: string }, hre) => {
    const ctx = await loadContext(hre, args);
    const token = await resolveToken(ctx, args.token);
    const delegate = parseAddress("--delegate", args.delegate);
    const payer = args.payer === undefined ? ctx.signer.address : parseAddress("--payer", args.payer);
    const g = await ctx.preflight.grantOf(payer, token.address, delegate);
    const now = await latestTimestamp(hre);
    const status = g.expiry === 0n ? (g.epoch === 0n ? "none" : "revoked") : BigInt(g.expiry) <= now ? "expired" : "active";
    const f = (v: bigint): string => formatAmount(v, token.decimals, token.symbol);
    log(`Grant of ${payer} to ${delegate} in ${token.symbol}: ${status} (epoch ${g.epoch})`);
    // The spent figure resets when the period ends, at the next settlement.
    const spent = g.period !== 0n && BigInt(g.periodEnd) <= now ? 0n : g.spent;
    if (status !== "none" && status !== "revoked") {
      log(`  provider            ${g.provider === ZeroAddress ? "any" : g.provider}`);
      log(`  models              ${g.anyModel ? "any" : "a set (use --model to check one)"}`);
      log(`  max price           ${f(g.maxPrice)} per request`);
      log(`  budget              ${f(g.budget)} ${g.period === 0n ? "in total" : `per ${formatDuration(g.period)}`}`);
      log(`  spent               ${f(spent)}${g.period === 0n ? "" : ` (period ends ${formatTime(g.periodEnd)})`}`);
      log(`  expires             ${formatTime(g.expiry)}${status === "active" ? ` (in ${formatDuration(BigInt(g.expiry) - now)})` : ""}`);
    }
    let modelAllowed: boolean | undefined;
    if (args.model !== undefined) {
      modelAllowed = await ctx.preflight.isModelAllowed(payer, token.address, delegate, parseModel("--model", args.model));
      log(`  model ${args.model}: ${modelAllowed ? "allowed" : "not allowed"}`);
    }
    return { status, provider: g.provider, maxPrice: g.maxPrice, budget: g.budget, spent, period: g.period, expiry: g.expiry, epoch: g.epoch, anyModel: g.anyModel, modelAllowed };
  });
