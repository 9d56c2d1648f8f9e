import { expect } from "chai";
import { runHardhat } from "../helpers/nodes";

/**
 * The command line as a user sees it: one line per user error, exit code 1, even where Hardhat takes
 * the machine for CI (Linux without DISPLAY, or CI=true) and would add the message again with a stack
 * trace; DEBUG shows the stack. Runs the Hardhat CLI as a child process.
 */
describe("Command line: one line per user error", function () {
  this.timeout(300_000);
  const asCi = { CI: "true" };
  const badSepoliaKey = { SEPOLIA_RPC_URL: "https://rpc.sepolia.example", SEPOLIA_PRIVATE_KEY: "0x1234" };
  const errorLines = (stderr: string): string[] => stderr.split("\n").filter((l) => /error/i.test(l));
  const stackLines = (stderr: string): string[] => stderr.split("\n").filter((l) => /^\s+at /.test(l));

  it("prints one line and exits 1 for a task's error, an unknown network and a malformed key of the requested network; DEBUG shows the stack", async function () {
    const [task, unknown, badKey, debug, help] = await Promise.all([
      runHardhat(["balances"], { ...asCi, ...badSepoliaKey }),
      runHardhat(["--network", "sepolai", "balances"], asCi),
      runHardhat(["--network", "sepolia", "balances"], { ...asCi, ...badSepoliaKey }),
      runHardhat(["balances"], { ...asCi, DEBUG: "preflight" }),
      runHardhat(["help"], badSepoliaKey),
    ]);

    // A task's user error (nothing deployed on the in-process chain); a bad key of another network is a warning.
    expect(task.code).to.equal(1);
    expect(errorLines(task.stderr)).to.deep.equal([
      "Error: The in-process hardhat network starts empty with every command, so nothing is deployed on it yet. Run a node (npx hardhat node, or anvil), deploy there with: npm run deploy -- --network localhost, and add --network localhost to this command.",
    ]);
    expect(task.stderr).to.match(/^Warning: network "sepolia" is left out: SEPOLIA_PRIVATE_KEY: key #1 is not a private key/m);
    expect(stackLines(task.stderr)).to.deep.equal([]);

    expect(unknown.code).to.equal(1);
    expect(errorLines(unknown.stderr)).to.have.length(1);
    expect(unknown.stderr).to.match(/^Error: Unknown network "sepolai"\. Valid names: hardhat, localhost, sepolia \(needs \.env\), .*Did you mean "sepolia"\?$/m);
    expect(stackLines(unknown.stderr)).to.deep.equal([]);

    expect(badKey.code).to.equal(1);
    expect(errorLines(badKey.stderr)).to.have.length(1);
    expect(badKey.stderr).to.match(/^Error: SEPOLIA_PRIVATE_KEY: key #1 is not a private key/m);
    expect(badKey.stderr).to.not.contain("0x1234");

    expect(debug.code).to.equal(1);
    expect(stackLines(debug.stderr).length).to.be.greaterThan(0);

    // A malformed key of a network nobody asked for never stops other commands.
    expect(help.code).to.equal(0);
    expect(help.stdout).to.contain("advance-time");
    expect(help.stdout).to.contain("signed-data");
  });
});
