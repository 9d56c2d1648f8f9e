/**
 * Request tasks: sign EIP-712 inference requests (as the payer or as a delegate) into a JSON file,
 * and settle a file of signed requests as the provider (one with `settle`, many with `settleBatch`).
 */
import { REQUESTS_SETTLED_TOPIC, decodeRequestsSettled } from "@preflight/sdk";
import fs from "node:fs";
import { task } from "hardhat/config";
import { getAddress, id } from "ethers";
import { signRequest, type Request } from "@preflight/sdk";
import { PreflightError } from "./lib/errors";
import { common, latestTimestamp, loadContext, resolveToken, send, tokenInfo, type Common, type TaskContext } from "./lib/context";
import { formatAmount, parseAddress, parseAmount, parseDuration, parseInteger, parseModel, readJsonFile, stringify, writeJsonFile } from "./lib/input";
import { parseRequests, requestToJson, toRequestStruct, type ParsedRequest, type SignedRequestJson } from "./lib/signed";
import { reasonName, refusedItems } from "./lib/reasons";
import { checkDelegateScope } from "./lib/delegate";

const log = (line: string): void => console.log(line);
const MAX_UINT96 = (1n << 96n) - 1n;
const FULL_WORD = (1n << 64n) - 1n;

/** The `count` lowest nonces of (payer, token) that are neither used on-chain nor in `taken`. */
export async function freeNonces(ctx: TaskContext, payer: string, token: string, count: number, taken: Set<bigint>): Promise<bigint[]> {
  const found: bigint[] = [];
  for (let word = 0n; found.length < count; word++) {
    const bitmap = await ctx.preflight.nonceBitmap(payer, token, word);
    if (bitmap === FULL_WORD) continue;
    for (let bit = 0n; bit < 64n && found.length < count; bit++) {
      const nonce = (word << 6n) | bit;
      if ((bitmap & (1n << bit)) === 0n && !taken.has(nonce)) found.push(nonce);
    }
  }
  return found;
}

interface SignRequestArgs extends Common {
  provider: string;
  token: string;
  model: string;
  price: string;
  payer?: string;
  nonce?: string;
  count: string;
  deadline: string;
  input?: string;
  inputHash?: string;
  out?: string;
  append: boolean;
  compact: boolean;
}

common(task("sign-request", "Signs inference request(s) as the payer or a delegate; prints or writes the signed JSON"))
  .addParam("provider", "the provider that will serve and settle it")
  .addParam("token", "ETH, test or an ERC-20 address the payer has in escrow")
  .addParam("model", "model name (hashed with keccak256) or 32-byte id")
  .addParam("price", "price in human units")
  .addOptionalParam("payer", "whose escrow pays (default: the signer; set it when signing as a delegate)")
  .addOptionalParam("nonce", "nonce of the first request (default: the lowest free ones)")
  .addOptionalParam("count", "how many requests to sign (consecutive free nonces)", "1")
  .addOptionalParam("deadline", "how long it stays valid from now (15m, 1h, 1d)", "1h")
  .addOptionalParam("input", "the inference input; its keccak256 is the request's inputHash")
  .addOptionalParam("inputHash", "the inputHash itself (32 bytes hex), instead of --input")
  .addOptionalParam("out", "JSON file to write (default: print to stdout)")
  .addFlag("append", "add to the requests already in --out (their nonces are skipped)")
  .addFlag("compact", "64-byte EIP-2098 signatures (less calldata)")
  .setAction(async (args: SignRequestArgs, hre) => {
    const ctx = await loadContext(hre, args);
    const token = await resolveToken(ctx, args.token);
    const provider = parseAddress("--provider", args.provider);
    const payer = args.payer === undefined ? ctx.signer.address : parseAddress("--payer", args.payer);
    const model = parseModel("--model", args.model);
    const price = parseAmount("--price", args.price, token.decimals, token.symbol);
    if (price > MAX_UINT96) throw new PreflightError("--price is more than a request can carry (2^96 - 1 base units).");
    const count = Number(parseInteger("--count", args.count, 10_000n));
    if (count === 0) throw new PreflightError("--count must be at least 1.");
    const lifetime = parseDuration("--deadline", args.deadline);
    if (lifetime === 0n) throw new PreflightError("--deadline must be more than zero: a request is valid up to its deadline.");
    if (args.input !== undefined && args.inputHash !== undefined) throw new PreflightError("Give --input or --input-hash, not both.");
    const inputHash = args.inputHash !== undefined ? parseModel("--input-hash", args.inputHash) : id(args.input ?? "");
    if (args.append && args.out === undefined) throw new PreflightError("--append needs --out, the file to add to.");

    // Say early what would make the provider's settlement fail.
    await checkDelegateScope(ctx, { payer, token, provider, model, modelName: args.model, price });
    const balance = await ctx.preflight.balanceOf(payer, token.address);
    if (balance < price * BigInt(count)) {
      // To stderr, so that printing the signed JSON to stdout stays valid JSON.
      console.error(`Warning: ${payer} has ${formatAmount(balance, token.decimals, token.symbol)} in escrow, less than ${count} x ${formatAmount(price, token.decimals, token.symbol)}; some requests would not settle.`);
    }

    let existing: SignedRequestJson[] = [];
    if (args.append && fs.existsSync(args.out!)) {
      const data = readJsonFile("--out", args.out!);
      existing = (Array.isArray(data) ? data : [data]) as SignedRequestJson[];
      parseRequests(args.out!, existing, ctx.domain);
    }
    const taken = new Set(existing.filter((r) => getAddress(r.payer) === payer && getAddress(r.token) === token.address).map((r) => BigInt(r.nonce)));
    let nonces: bigint[];
    if (args.nonce !== undefined) {
      const first = parseInteger("--nonce", args.nonce);
      nonces = Array.from({ length: count }, (_, i) => first + BigInt(i));
      for (const n of nonces) {
        const used = ((await ctx.preflight.nonceBitmap(payer, token.address, n >> 6n)) >> (n & 63n)) & 1n;
        if (used === 1n || taken.has(n)) throw new PreflightError(`--nonce: nonce ${n} of ${payer} is already used; omit --nonce to pick free ones.`);
      }
    } else {
      nonces = await freeNonces(ctx, payer, token.address, count, taken);
    }

    const deadline = (await latestTimestamp(hre)) + lifetime;
    const signed: SignedRequestJson[] = [];
    for (const nonce of nonces) {
      const request: Request = { payer, provider, token: token.address, model, price, nonce, deadline, inputHash };
      const signature = await signRequest(ctx.signer, ctx.domain, request, args.compact);
      signed.push(requestToJson(ctx.domain, request, signature, ctx.signer.address));
    }
    if (args.out !== undefined) {
      const all = [...existing, ...signed];
      writeJsonFile(args.out, all.length === 1 && !args.append ? all[0] : all);
      log(`Signed ${signed.length} request(s) of ${formatAmount(price, token.decimals, token.symbol)} (nonces ${nonces.join(", ")}) into ${args.out}`);
    } else {
      log(stringify(signed.length === 1 ? signed[0] : signed));
    }
    return signed;
  });

/** The outcome of one item of a settlement. */
export interface ItemOutcome {
  index: number;
  payer: string;
  nonce: bigint;
  price: bigint;
  reason: string;
}

async function settleOne(ctx: TaskContext, file: string, item: ParsedRequest): Promise<ItemOutcome[]> {
  const token = await tokenInfo(ctx, item.request.token);
  const { payer, nonce, price } = item.request;
  const used = ((await ctx.preflight.nonceBitmap(payer, item.request.token, nonce >> 6n)) >> (nonce & 63n)) & 1n;
  if (used === 1n) {
    log(`Nothing to do: nonce ${nonce} of ${payer} is already used (the request in ${file} settled before, or the payer cancelled it); nothing was sent.`);
    return [{ index: 0, payer, nonce, price, reason: "NonceUsed" }];
  }
  await send(ctx, `Settlement of nonce ${item.request.nonce} (${formatAmount(item.request.price, token.decimals, token.symbol)})`, () => ctx.preflight.settle(toRequestStruct(item)), log);
  return [{ index: 0, payer: item.request.payer, nonce: item.request.nonce, price: item.request.price, reason: "Settled" }];
}

common(task("settle", "Settles a file of signed requests as the provider: one with settle, several with settleBatch"))
  .addParam("file", "JSON file written by sign-request (one request or a list)")
  .setAction(async (args: Common & { file: string }, hre) => {
    const ctx = await loadContext(hre, args);
    const parsed = parseRequests(args.file, readJsonFile("--file", args.file), ctx.domain);
    for (const [i, item] of parsed.entries()) {
      if (item.request.provider !== ctx.signer.address) {
        throw new PreflightError(
          `${args.file} item ${i} is for provider ${item.request.provider}, but you are ${ctx.signer.address}: only that provider can settle it (use --from).`,
        );
      }
    }
    if (parsed.length === 1) return settleOne(ctx, args.file, parsed[0]);

    const outcomes: ItemOutcome[] = [];
    const tokens = [...new Set(parsed.map((p) => p.request.token))];
    for (const tokenAddress of tokens) {
      const token = await tokenInfo(ctx, tokenAddress);
      const indexed = parsed.map((p, index) => ({ p, index })).filter(({ p }) => p.request.token === tokenAddress);
      const structs = indexed.map(({ p }) => toRequestStruct(p));
      const preview = await ctx.preflight.settleBatch.staticCall(tokenAddress, structs);
      const reasons = preview.map((r) => reasonName(Number(r)));
      const settling = reasons.filter((r) => r === "Settled").length;
      if (settling > 0) {
        const receipt = await send(ctx, `Batch of ${structs.length} ${token.symbol} request(s)`, () => ctx.preflight.settleBatch(tokenAddress, structs), log);
        // The receipt is the truth: chain state may have moved since the preview.
        // One RequestsSettled log lists every item in order, settled or skipped with its reason.
        const logged = receipt.logs.find((l) => l.topics[0] === REQUESTS_SETTLED_TOPIC);
        if (logged !== undefined) decodeRequestsSettled(logged).records.forEach((r, k) => (reasons[k] = reasonName(r.reason)));
      } else {
        log(`No ${token.symbol} request in ${args.file} would settle; nothing was sent.`);
      }
      for (const [k, { p, index }] of indexed.entries()) {
        outcomes.push({ index, payer: p.request.payer, nonce: p.request.nonce, price: p.request.price, reason: reasons[k] });
        log(`  item ${index}: payer ${p.request.payer} nonce ${p.request.nonce} ${formatAmount(p.request.price, token.decimals, token.symbol)}: ${reasons[k] === "Settled" ? "settled" : `skipped (${reasons[k]})`}`);
      }
    }
    outcomes.sort((a, b) => a.index - b.index);
    const settled = outcomes.filter((o) => o.reason === "Settled").length;
    const refused = refusedItems(outcomes);
    const done = outcomes.length - settled - refused.length;
    log(`${settled} of ${outcomes.length} settled${done > 0 ? `; ${done} already used (settled before, or cancelled by the payer): nothing to do for those` : ""}.`);
    if (refused.length > 0) {
      throw new PreflightError(
        `${refused.length} of ${outcomes.length} request(s) in ${args.file} were refused: ${refused.map((o) => `item ${o.index} (${o.reason})`).join(", ")}; ${settled} settled.`,
      );
    }
    return outcomes;
  });

common(task("cancel-requests", "Burns nonces as the payer, so requests signed with them can never settle"))
  .addParam("token", "ETH, test or an ERC-20 address the requests pay in")
  .addParam("nonces", "comma-separated nonces, e.g. 4,5,9")
  .setAction(async (args: Common & { token: string; nonces: string }, hre) => {
    const ctx = await loadContext(hre, args);
    const token = await resolveToken(ctx, args.token);
    const nonces = [...new Set(args.nonces.split(",").filter((n) => n.trim() !== "").map((n) => parseInteger("--nonces", n)))];
    if (nonces.length === 0) throw new PreflightError("--nonces is empty: give the nonces to cancel, comma-separated.");
    // One transaction per 64-nonce word of the bitmap.
    const masks = new Map<bigint, bigint>();
    for (const n of nonces) masks.set(n >> 6n, (masks.get(n >> 6n) ?? 0n) | (1n << (n & 63n)));
    for (const [word, mask] of masks) {
      await send(ctx, `Cancellation of nonces ${nonces.filter((n) => n >> 6n === word).join(", ")}`, () => ctx.preflight.invalidateNonces(token.address, word, mask), log);
    }
    return nonces;
  });
