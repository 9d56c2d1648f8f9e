/** Registers every Preflight task; hardhat.config.ts imports this file. */
import { task } from "hardhat/config";
import { HardhatContext } from "hardhat/internal/context";
import { isUserError, userErrorLine, wantsStackTraces } from "./lib/errors";

const definitions = (): Record<string, unknown> => HardhatContext.getHardhatContext().tasksDSL.getTaskDefinitions();
const builtin = new Set(Object.keys(definitions()));
/* eslint-disable @typescript-eslint/no-require-imports */
require("./admin");
require("./chain");
require("./deploy");
require("./escrow");
require("./grants");
require("./lanes");
require("./requests");
require("./signedData");
require("./vouchers");
/* eslint-enable @typescript-eslint/no-require-imports */
/** The tasks defined by the files above. */
export const PREFLIGHT_TASKS: readonly string[] = Object.keys(definitions()).filter((name) => !builtin.has(name));

/** The task the Hardhat command line runs (`npx hardhat <task>`), or undefined outside the Hardhat CLI. */
function commandLineTask(): string | undefined {
  if (!/hardhat[\\/](internal[\\/]cli[\\/](cli|bootstrap)\.js)?$|[\\/]\.bin[\\/]hardhat$/.test(process.argv[1] ?? "")) return undefined;
  try {
    /* eslint-disable @typescript-eslint/no-require-imports */
    const { ArgumentsParser } = require("hardhat/internal/cli/ArgumentsParser");
    const { HARDHAT_PARAM_DEFINITIONS } = require("hardhat/internal/core/params/hardhat-params");
    const { getEnvHardhatArguments } = require("hardhat/internal/core/params/env-variables");
    /* eslint-enable @typescript-eslint/no-require-imports */
    const parsed = new ArgumentsParser().parseHardhatArguments(
      HARDHAT_PARAM_DEFINITIONS,
      getEnvHardhatArguments(HARDHAT_PARAM_DEFINITIONS, process.env),
      process.argv.slice(2),
    ) as { scopeOrTaskName?: string };
    return parsed.scopeOrTaskName;
  } catch {
    return undefined;
  }
}

/**
 * One line per user error on the command line: when the task the user typed fails with a
 * PreflightError, print `Error: <message>` to stderr and exit 1 (Hardhat would print the message
 * twice and a stack trace when it takes the machine for CI, e.g. Linux without DISPLAY). Only the
 * top-level task is handled: a task run by a script or a test (`hre.run`) still throws.
 */
const cliTask = commandLineTask();
let depth = 0;
for (const name of PREFLIGHT_TASKS) {
  task(name).setAction(async (args, _hre, runSuper) => {
    const topLevel = depth === 0 && name === cliTask;
    depth++;
    try {
      return await runSuper(args);
    } catch (e) {
      if (!topLevel || !isUserError(e) || wantsStackTraces()) throw e;
      console.error(userErrorLine(e));
      process.exitCode = 1;
      return undefined;
    } finally {
      depth--;
    }
  });
}
