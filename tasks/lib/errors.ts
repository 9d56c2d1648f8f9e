import { HardhatPluginError } from "hardhat/plugins";

/**
 * An error the user can fix. Every message is one line that says what is wrong and how to fix it.
 * From the command line it is printed as that one line (`Error: ...`) and the command exits 1,
 * whether or not Hardhat believes it runs in CI; `--verbose`, `--show-stack-traces` or `DEBUG`
 * show the stack instead (see `printUserErrors` in tasks/index.ts).
 */
export class PreflightError extends HardhatPluginError {
  constructor(message: string) {
    super("preflight", message);
  }
}

export function isUserError(e: unknown): e is PreflightError {
  return HardhatPluginError.isHardhatPluginError(e) && e.pluginName === "preflight";
}

/** Whether the user asked to see stack traces: `--verbose`, `--show-stack-traces`, or `DEBUG` set. */
export function wantsStackTraces(argv: readonly string[] = process.argv, env: NodeJS.ProcessEnv = process.env): boolean {
  return (
    argv.includes("--verbose") ||
    argv.includes("--show-stack-traces") ||
    (env.DEBUG ?? "") !== "" ||
    env.HARDHAT_VERBOSE === "true" ||
    env.HARDHAT_SHOW_STACK_TRACES === "true"
  );
}

/** The one line a user error prints as. */
export function userErrorLine(e: PreflightError): string {
  return `Error: ${e.message.replace(/\s*\n\s*/g, " ")}`;
}

/**
 * For checks made while Hardhat loads its config (before any task runs): a user error prints its
 * one line and exits 1, instead of reaching Hardhat's handler, which adds the stack trace in CI.
 */
export function exitOnUserError<T>(check: () => T): T {
  try {
    return check();
  } catch (e) {
    if (!isUserError(e) || wantsStackTraces()) throw e;
    console.error(userErrorLine(e));
    process.exit(1);
  }
}
