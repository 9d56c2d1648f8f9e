/**
 * `advance-time`: a local-chain helper that moves the chain's clock, by default just past the
 * deployment's withdrawal notice period, so `withdraw` can be tried at once on `npx hardhat node`
 * or anvil. Refused on any other chain: only development nodes let anyone move time.
 */
import { task } from "hardhat/config";
import { PreflightError } from "./lib/errors";
import { latestTimestamp, loadContext, type Common } from "./lib/context";
import { formatDuration, formatTime, parseDuration } from "./lib/input";
import { isLocalChain } from "./lib/networks";

task("advance-time", "Local chains only: moves the chain's clock forward, by default just past the notice period")
  .addOptionalParam("by", "how far (3600, 12h, 3d); default: the deployment's notice period plus one second")
  .addOptionalParam("preflight", "Preflight address (default: the one in deployments/<chainId>.json)")
  .setAction(async (args: Common & { by?: string }, hre) => {
    const ctx = await loadContext(hre, args);
    if (!isLocalChain(ctx.chainId)) {
      throw new PreflightError(`advance-time works on local development chains only (chain ids 31337, 1337); ${hre.network.name} is chain ${ctx.chainId}, whose clock nobody can move.`);
    }
    const seconds = args.by !== undefined ? parseDuration("--by", args.by) : (await ctx.preflight.NOTICE_PERIOD()) + 1n;
    if (seconds === 0n) throw new PreflightError("--by must be more than zero.");
    const before = await latestTimestamp(hre);
    // From the latest block's time, not the wall clock: the move is exact whatever the node's clock says.
    await hre.network.provider.send("evm_setNextBlockTimestamp", [Number(before + seconds)]);
    await hre.network.provider.send("evm_mine", []);
    const now = await latestTimestamp(hre);
    console.log(`Chain time moved by ${formatDuration(now - before)}: now ${formatTime(now)} (block mined).`);
    if (args.by === undefined) console.log("Every withdrawal and lane close requested before this command is now past its notice period: run withdraw or lane-close.");
    return { before, now };
  });
