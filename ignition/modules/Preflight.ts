import { buildModule } from "@nomicfoundation/hardhat-ignition/modules";

/** Three days: long enough for a provider to settle what it served before a payer's funds leave. */
export const DEFAULT_NOTICE_PERIOD = 3n * 24n * 3600n;

/**
 * The Preflight system: one contract (escrow, lanes, inference permissions and settlement), with no
 * owner: every parameter is fixed at deployment, and a new fee is a new deployment at its own address.
 *
 * Parameters (module id "Preflight"):
 * - `noticePeriod`  seconds between a payer's withdrawal (or lane close) request and its execution (default 3 days)
 * - `feeBps`        protocol fee in basis points (default 0, at most 1,000), taken when providers withdraw
 * - `feeRecipient`  receives the fee (default: no recipient, allowed only while the fee is 0)
 *
 * `npm run deploy` runs it with Ignition's `create2` strategy so the address is the same on every
 * chain for the same parameters; `npx hardhat ignition deploy ignition/modules/Preflight.ts` works too.
 */
export default buildModule("Preflight", (m) => {
  const noticePeriod = m.getParameter<bigint>("noticePeriod", DEFAULT_NOTICE_PERIOD);
  const feeBps = m.getParameter<bigint>("feeBps", 0n);
  const feeRecipient = m.getParameter<string>("feeRecipient", "0x0000000000000000000000000000000000000000");
  const preflight = m.contract("Preflight", [noticePeriod, feeBps, feeRecipient]);
  return { preflight };
});
