/**
 * Escrow tasks: deposit (ERC-20, with an EIP-2612 permit, or ETH), request / cancel / execute a
 * withdrawal, withdraw earnings, and show balances. Amounts are in human units of the token.
 */
import { task } from "hardhat/config";
import { Contract, Signature, type ContractTransactionResponse } from "ethers";
import { PreflightError } from "./lib/errors";
import {
  ETH,
  approveIfNeeded,
  commandFor,
  common,
  latestTimestamp,
  loadContext,
  requireWalletBalance,
  resolveToken,
  send,
  walletBalance,
  type Common,
  type TaskContext,
  type TokenInfo,
} from "./lib/context";
import { isLocalChain } from "./lib/networks";
import { formatAmount, formatDuration, formatTime, parseAddress, parseAmount } from "./lib/input";

const log = (line: string): void => console.log(line);

/** Signs an EIP-2612 permit for `spender` (the escrow). */
async function signPermit(ctx: TaskContext, token: TokenInfo, value: bigint, deadline: bigint): Promise<Signature> {
  const contract = new Contract(
    token.address,
    [
      "function nonces(address) view returns (uint256)",
      "function name() view returns (string)",
      "function eip712Domain() view returns (bytes1, string, string, uint256, address, bytes32, uint256[])",
    ],
    ctx.hre.ethers.provider,
  );
  let name: string;
  let version = "1";
  let nonce: bigint;
  try {
    nonce = (await contract.nonces(ctx.signer.address)) as bigint;
    name = (await contract.name()) as string;
  } catch {
    throw new PreflightError(`--permit: ${token.symbol} (${token.address}) does not support EIP-2612 permits; deposit without --permit (approve + deposit).`);
  }
  try {
    const domain = (await contract.eip712Domain()) as [string, string, string];
    name = domain[1];
    version = domain[2];
  } catch {
    // Tokens without EIP-5267 use their name and version "1".
  }
  const signature = await ctx.signer.signTypedData(
    { name, version, chainId: ctx.chainId, verifyingContract: token.address },
    {
      Permit: [
        { name: "owner", type: "address" },
        { name: "spender", type: "address" },
        { name: "value", type: "uint256" },
        { name: "nonce", type: "uint256" },
        { name: "deadline", type: "uint256" },
      ],
    },
    { owner: ctx.signer.address, spender: await ctx.preflight.getAddress(), value, nonce, deadline },
  );
  return Signature.from(signature);
}

common(task("deposit", "Deposits ERC-20 tokens or ETH into a payer's escrow balance"))
  .addParam("token", "ETH, test (the deployed test token), its symbol (e.g. tUSDC) or an ERC-20 address")
  .addParam("amount", "amount in human units, e.g. 25.5")
  .addOptionalParam("payer", "whose balance to credit (default: the sender)")
  .addFlag("permit", "approve through an EIP-2612 permit in the same transaction")
  .setAction(async (args: Common & { token: string; amount: string; payer?: string; permit: boolean }, hre) => {
    const ctx = await loadContext(hre, args);
    const token = await resolveToken(ctx, args.token);
    const amount = parseAmount("--amount", args.amount, token.decimals, token.symbol);
    const payer = args.payer === undefined ? ctx.signer.address : parseAddress("--payer", args.payer);
    await requireWalletBalance(ctx, token, amount, "deposit");
    if (token.address === ETH) {
      if (args.permit) throw new PreflightError("--permit applies to ERC-20 tokens; ETH deposits need no approval.");
      await send(ctx, `Deposit of ${formatAmount(amount, 18, "ETH")}`, () => ctx.preflight.depositETH(payer, { value: amount }), log);
    } else if (args.permit) {
      const deadline = (await latestTimestamp(hre)) + 3600n;
      const sig = await signPermit(ctx, token, amount, deadline);
      await send(
        ctx,
        `Deposit of ${formatAmount(amount, token.decimals, token.symbol)} with a permit`,
        () => ctx.preflight.depositWithPermit(payer, token.address, amount, deadline, sig.v, sig.r, sig.s),
        log,
      );
    } else {
      await approveIfNeeded(ctx, token, amount, log);
      await send(ctx, `Deposit of ${formatAmount(amount, token.decimals, token.symbol)}`, () => ctx.preflight.deposit(payer, token.address, amount), log);
    }
    const balance = await ctx.preflight.balanceOf(payer, token.address);
    log(`Escrow balance of ${payer}: ${formatAmount(balance, token.decimals, token.symbol)}`);
    return { payer, token: token.address, amount, balance };
  });

common(task("request-withdrawal", "Starts the notice period for withdrawing escrowed funds"))
  .addParam("token", "ETH, test, a recorded token symbol (e.g. tUSDC) or an ERC-20 address")
  .addParam("amount", 'amount in human units, or "all"')
  .setAction(async (args: Common & { token: string; amount: string }, hre) => {
    const ctx = await loadContext(hre, args);
    const token = await resolveToken(ctx, args.token);
    const balance = await ctx.preflight.balanceOf(ctx.signer.address, token.address);
    if (balance === 0n) throw new PreflightError(`${ctx.signer.address} has no ${token.symbol} in escrow: nothing to withdraw.`);
    const amount = args.amount.trim().toLowerCase() === "all" ? balance : parseAmount("--amount", args.amount, token.decimals, token.symbol);
    if (amount > balance) {
      throw new PreflightError(
        `--amount ${formatAmount(amount, token.decimals, token.symbol)} is more than the escrow balance, ${formatAmount(balance, token.decimals, token.symbol)}; ask for at most that, or "all".`,
      );
    }
    await send(ctx, `Withdrawal request of ${formatAmount(amount, token.decimals, token.symbol)}`, () => ctx.preflight.requestWithdrawal(token.address, amount), log);
    const [, readyAt] = await ctx.preflight.pendingWithdrawal(ctx.signer.address, token.address);
    log(`Ready at ${formatTime(readyAt)} (in ${formatDuration(readyAt - (await latestTimestamp(hre)))}); then run: ${commandFor(hre, "withdraw", { token: args.token }, args)}`);
    if (isLocalChain(ctx.chainId) && hre.network.name !== "hardhat") {
      log(`On this local chain, skip the wait first with: ${commandFor(hre, "advance-time", {})}`);
    }
    return { amount, readyAt };
  });

common(task("cancel-withdrawal", "Cancels a pending withdrawal request"))
  .addParam("token", "ETH, test, a recorded token symbol (e.g. tUSDC) or an ERC-20 address")
  .setAction(async (args: Common & { token: string }, hre) => {
    const ctx = await loadContext(hre, args);
    const token = await resolveToken(ctx, args.token);
    const [amount] = await ctx.preflight.pendingWithdrawal(ctx.signer.address, token.address);
    if (amount === 0n) throw new PreflightError(`${ctx.signer.address} has no pending ${token.symbol} withdrawal to cancel.`);
    await send(ctx, "Withdrawal cancellation", () => ctx.preflight.cancelWithdrawal(token.address), log);
  });

common(task("withdraw", "Withdraws escrowed funds after the notice period"))
  .addParam("token", "ETH, test, a recorded token symbol (e.g. tUSDC) or an ERC-20 address")
  .addOptionalParam("to", "recipient (default: the sender)")
  .setAction(async (args: Common & { token: string; to?: string }, hre) => {
    const ctx = await loadContext(hre, args);
    const token = await resolveToken(ctx, args.token);
    const to = args.to === undefined ? ctx.signer.address : parseAddress("--to", args.to);
    const [requested, readyAt] = await ctx.preflight.pendingWithdrawal(ctx.signer.address, token.address);
    if (requested === 0n) {
      throw new PreflightError(`${ctx.signer.address} has no pending ${token.symbol} withdrawal: first run ${commandFor(hre, "request-withdrawal", { token: args.token, amount: "all" }, args)}`);
    }
    const now = await latestTimestamp(hre);
    if (readyAt > now) {
      const skip = isLocalChain(ctx.chainId) && hre.network.name !== "hardhat" ? ` On this local chain you may skip the wait: ${commandFor(hre, "advance-time", {})}` : "";
      throw new PreflightError(`The withdrawal is in its notice period until ${formatTime(readyAt)} (${formatDuration(readyAt - now)} from now); try again then.${skip}`);
    }
    const before = await walletBalance(ctx, token, to);
    const receipt = await send(ctx, "Withdrawal", () => ctx.preflight.withdraw(token.address, to), log);
    const event = receipt.logs.map((l) => ctx.preflight.interface.parseLog(l)).find((e) => e?.name === "Withdrawn");
    const amount = event === undefined || event === null ? (await walletBalance(ctx, token, to)) - before : (event.args.amount as bigint);
    log(`Withdrew ${formatAmount(amount, token.decimals, token.symbol)} to ${to}`);
    return { amount };
  });

common(task("withdraw-earnings", "Withdraws a provider's earnings (any time)"))
  .addParam("token", "ETH, test, a recorded token symbol (e.g. tUSDC) or an ERC-20 address")
  .addOptionalParam("to", "recipient (default: the sender)")
  .setAction(async (args: Common & { token: string; to?: string }, hre) => {
    const ctx = await loadContext(hre, args);
    const token = await resolveToken(ctx, args.token);
    const to = args.to === undefined ? ctx.signer.address : parseAddress("--to", args.to);
    const earnings = await ctx.preflight.earningsOf(ctx.signer.address, token.address);
    if (earnings === 0n) throw new PreflightError(`${ctx.signer.address} has no ${token.symbol} earnings to withdraw.`);
    await send(ctx, `Earnings withdrawal of ${formatAmount(earnings, token.decimals, token.symbol)}`, () => ctx.preflight.withdrawEarnings(token.address, to), log);
    return { amount: earnings };
  });

common(task("balances", "Shows an account's escrow balance, pending withdrawal, earnings and wallet balance"))
  .addOptionalParam("token", "ETH, test, a recorded token symbol or an ERC-20 address (default: ETH and the test token)")
  .addOptionalParam("account", "whose balances (default: the --from account)")
  .setAction(async (args: Common & { token?: string; account?: string }, hre) => {
    const ctx = await loadContext(hre, args);
    const account = args.account === undefined ? ctx.signer.address : parseAddress("--account", args.account);
    const tokens = args.token !== undefined ? [args.token] : ["ETH", ...(ctx.record?.contracts.TestToken !== undefined ? ["test"] : [])];
    const now = await latestTimestamp(hre);
    log(`Account ${account} on ${hre.network.name} (Preflight ${await ctx.preflight.getAddress()})`);
    const rows = [];
    for (const t of tokens) {
      const token = await resolveToken(ctx, t);
      const [balance, earnings, [pending, readyAt], wallet] = await Promise.all([
        ctx.preflight.balanceOf(account, token.address),
        ctx.preflight.earningsOf(account, token.address),
        ctx.preflight.pendingWithdrawal(account, token.address),
        walletBalance(ctx, token, account),
      ]);
      const f = (v: bigint): string => formatAmount(v, token.decimals, token.symbol);
      log(`  ${token.symbol}${token.address === ETH ? "" : ` (${token.address})`}`);
      log(`    escrow balance      ${f(balance)}`);
      log(
        `    pending withdrawal  ${pending === 0n ? "none" : `${f(pending)}, ${readyAt <= now ? "ready now" : `ready at ${formatTime(readyAt)} (in ${formatDuration(readyAt - now)})`}`}`,
      );
      log(`    provider earnings   ${f(earnings)}`);
      log(`    wallet              ${f(wallet)}`);
      rows.push({ token: token.address, symbol: token.symbol, decimals: token.decimals, balance, earnings, pending, readyAt, wallet });
    }
    return rows;
  });

common(task("faucet", "Mints the deployed TestToken (local chains and testnets only) to an address"))
  .addParam("amount", "amount in human units")
  .addOptionalParam("to", "recipient (default: the sender)")
  .setAction(async (args: Common & { amount: string; to?: string }, hre) => {
    const ctx = await loadContext(hre, args);
    const token = await resolveToken(ctx, "test");
    const amount = parseAmount("--amount", args.amount, token.decimals, token.symbol);
    const to = args.to === undefined ? ctx.signer.address : parseAddress("--to", args.to);
    const contract = new Contract(token.address, ["function mint(address to, uint256 amount)"], ctx.signer);
    await send(ctx, `Mint of ${formatAmount(amount, token.decimals, token.symbol)} to ${to}`, () => contract.mint(to, amount) as Promise<ContractTransactionResponse>, log);
    return { to, amount };
  });
