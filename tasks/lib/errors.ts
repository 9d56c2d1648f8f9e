import { HardhatPluginError } from "hardhat/plugins";

/**
 * An error the user can fix: Hardhat prints its message without a stack trace
 * ("Error in plugin preflight: ..."). Every message says what is wrong and how to fix it.
 */
export class PreflightError extends HardhatPluginError {
  constructor(message: string) {
    super("preflight", message);
  }
}
