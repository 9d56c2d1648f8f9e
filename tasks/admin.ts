/**
 * Fee tasks. Preflight has no owner: the fee and its recipient are fixed at deployment. The fee is
 * taken (rounded up) when a provider withdraws its earnings and accrues per token until anyone sends
 * it to the fixed recipient.
 */
import { task } from "hardhat/config";
import { PreflightError } from "./lib/errors";
import { common, loadContext, resolveToken, send, type Common } from "./lib/context";
import { formatAmount } from "./lib/input";

const log = (line: string): void => console.log(line);

common(task("fee", "Shows the protocol fee fixed at deployment and the fees accrued in a token"))
  .addParam("token", "ETH, test (the deployed test token) or an ERC-20 address")
  .setAction(async (args: Common & { token: string }, hre) => {
    const ctx = await loadContext(hre, args);
    const token = await resolveToken(ctx, args.token);
    const [feeBps, recipient, accrued] = await Promise.all([ctx.preflight.FEE_BPS(), ctx.preflight.FEE_RECIPIENT(), ctx.preflight.feesOf(token.address)]);
    log(`Fee: ${feeBps} bps, taken when providers withdraw, paid to ${recipient}; accrued: ${formatAmount(accrued, token.decimals, token.symbol)}`);
    return { feeBps, recipient, accrued };
  });

common(task("withdraw-fees", "Sends the fees accrued in a token to the fee recipient fixed at deployment (anyone may run it)"))
  .addParam("token", "ETH, test (the deployed test token) or an ERC-20 address")
  .setAction(async (args: Common & { token: string }, hre) => {
    const ctx = await loadContext(hre, args);
    const token = await resolveToken(ctx, args.token);
    const accrued = await ctx.preflight.feesOf(token.address);
    if (accrued === 0n) throw new PreflightError(`No fees have accrued in ${token.symbol}: nothing to send.`);
    await send(ctx, `Fee payout of ${formatAmount(accrued, token.decimals, token.symbol)}`, () => ctx.preflight.withdrawFees(token.address), log);
    return { amount: accrued, recipient: await ctx.preflight.FEE_RECIPIENT() };
  });
