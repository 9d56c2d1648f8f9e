/**
 * Owner tasks: the protocol fee (capped in the contract at 10%) and the two-step ownership handover.
 * The owner has no other power.
 */
import { task } from "hardhat/config";
import { ZeroAddress } from "ethers";
import { PreflightError } from "./lib/errors";
import { commandFor, common, loadContext, send, type Common, type TaskContext } from "./lib/context";
import { parseAddress, parseInteger } from "./lib/input";

const log = (line: string): void => console.log(line);

async function assertOwner(ctx: TaskContext): Promise<void> {
  const owner = await ctx.preflight.owner();
  if (owner !== ctx.signer.address) throw new PreflightError(`Only the owner, ${owner}, may do this; you are ${ctx.signer.address} (use --from).`);
}

common(task("set-fee", "Sets the protocol fee for later settlements (owner only, at most 1000 bps)"))
  .addParam("feeBps", "fee in basis points, 0 to 1000")
  .addOptionalParam("recipient", "receives the fee as earnings (required when the fee is above 0)")
  .setAction(async (args: Common & { feeBps: string; recipient?: string }, hre) => {
    const ctx = await loadContext(hre, args);
    await assertOwner(ctx);
    const max = await ctx.preflight.MAX_FEE_BPS();
    const feeBps = parseInteger("--fee-bps", args.feeBps, max);
    const recipient = args.recipient === undefined ? ZeroAddress : parseAddress("--recipient", args.recipient);
    if (feeBps > 0n && recipient === ZeroAddress) throw new PreflightError(`--fee-bps is ${feeBps}: give the --recipient that receives the fee.`);
    await send(ctx, `Fee change to ${feeBps} bps`, () => ctx.preflight.setFee(feeBps, recipient), log);
    return { feeBps, recipient };
  });

common(task("transfer-ownership", "Offers ownership to a new owner, who must accept it (owner only)"))
  .addParam("to", "the proposed owner")
  .setAction(async (args: Common & { to: string }, hre) => {
    const ctx = await loadContext(hre, args);
    await assertOwner(ctx);
    const to = parseAddress("--to", args.to);
    await send(ctx, `Ownership offer to ${to}`, () => ctx.preflight.transferOwnership(to), log);
    log(`Now the new owner must run: ${commandFor(hre, "accept-ownership", {}, { from: to, preflight: args.preflight })}`);
  });

common(task("accept-ownership", "Accepts an ownership offer (the proposed owner)"))
  .setAction(async (args: Common, hre) => {
    const ctx = await loadContext(hre, args);
    const pending = await ctx.preflight.pendingOwner();
    if (pending !== ctx.signer.address) {
      throw new PreflightError(pending === ZeroAddress ? "No ownership offer is pending." : `The pending offer is to ${pending}, not to you (${ctx.signer.address}); use --from.`);
    }
    await send(ctx, "Ownership acceptance", () => ctx.preflight.acceptOwnership(), log);
  });
