import { buildModule } from "@nomicfoundation/hardhat-ignition/modules";

/** Three days: long enough for a provider to settle what it served before a payer's funds leave. */
export const DEFAULT_NOTICE_PERIOD = 3n * 24n * 3600n;

/**
 * The Preflight system: one contract (escrow, inference permissions and settlement).
 *
 * Parameters (module id "Preflight"):
 * - `owner`         may set the protocol fee (capped at 10%) and hand ownership over in two steps
 * - `noticePeriod`  seconds between a payer's withdrawal request and its execution (default 3 days)
 * - `feeBps`        protocol fee in basis points (default 0)
 * - `feeRecipient`  credited with the fee (default: no recipient, allowed only while the fee is 0)
 *
 * `npm run deploy` runs it with Ignition's `create2` strategy so the address is the same on every
 * chain for the same parameters; `npx hardhat ignition deploy ignition/modules/Preflight.ts` works too.
 */
export default buildModule("Preflight", (m) => {
  // Defaults to the first account; `npm run deploy` always passes it, since it is part of the CREATE2 address.
  const owner = m.getParameter("owner", m.getAccount(0) as unknown as string);
  const noticePeriod = m.getParameter<bigint>("noticePeriod", DEFAULT_NOTICE_PERIOD);
  const feeBps = m.getParameter<bigint>("feeBps", 0n);
  const feeRecipient = m.getParameter<string>("feeRecipient", "0x0000000000000000000000000000000000000000");
  const preflight = m.contract("Preflight", [owner, noticePeriod, feeBps, feeRecipient]);
  return { preflight };
});
