import { buildModule } from "@nomicfoundation/hardhat-ignition/modules";

/**
 * A mintable EIP-2612 test token (anyone may mint), for local chains and testnets only.
 *
 * Parameters (module id "TestToken"): `name` (default "Test USD Coin"), `symbol` (default "tUSDC"),
 * `decimals` (default 6, like USDC).
 */
export default buildModule("TestToken", (m) => {
  const name = m.getParameter<string>("name", "Test USD Coin");
  const symbol = m.getParameter<string>("symbol", "tUSDC");
  const decimals = m.getParameter<bigint>("decimals", 6n);
  const testToken = m.contract("TestToken", [name, symbol, decimals]);
  return { testToken };
});
