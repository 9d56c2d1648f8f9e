import { task, types } from "hardhat/config";
import { deploySystem, DEFAULT_SALT_LABEL } from "./lib/deploy";

task("deploy", "Deploys Preflight (and, on local chains, a test token) at the same CREATE2 address on every chain")
  .addOptionalParam("feeBps", "protocol fee in basis points, at most 1000; default PREFLIGHT_FEE_BPS or 0")
  .addOptionalParam("feeRecipient", "receives the fee; default PREFLIGHT_FEE_RECIPIENT (required when the fee is > 0)")
  .addOptionalParam("noticePeriod", "withdrawal notice period (3600, 12h, 3d); default PREFLIGHT_NOTICE_PERIOD or 3d")
  .addOptionalParam("salt", `CREATE2 salt: a label to hash or 32 bytes of hex; default PREFLIGHT_SALT or "${DEFAULT_SALT_LABEL}"`)
  .addOptionalParam("testToken", "deploy the mintable TestToken: auto (local chains only), yes or no", "auto", types.string)
  .addOptionalParam("tokenName", "TestToken name", "Test USD Coin", types.string)
  .addOptionalParam("tokenSymbol", "TestToken symbol", "tUSDC", types.string)
  .addOptionalParam("tokenDecimals", "TestToken decimals", "6", types.string)
  .addFlag("dryRun", "run every check and print the addresses and the cost, but send nothing and write nothing")
  .addFlag("noCompile", "do not compile first (like hardhat run --no-compile)")
  .addFlag("skipVerify", "do not verify on the block explorer even when ETHERSCAN_API_KEY is set")
  .setAction(async (args: Parameters<typeof deploySystem>[1], hre) => deploySystem(hre, args, (line) => console.log(line)));
