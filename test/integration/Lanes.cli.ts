import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { expect } from "chai";
import { devAccount, freePort, providerFor, runHardhat, startHardhatNode, type CliRun, type RunningNode } from "../helpers/nodes";

/**
 * A lane as a user runs it on `npx hardhat node`, each command a child process of the Hardhat CLI:
 * the payer funds a lane and signs a voucher, the provider claims and collects, the payer asks to
 * close, skips the notice with advance-time and closes. Every next step is the command the previous
 * one printed, run exactly as printed.
 */
describe("Command line: a lane from funding to close on a Hardhat node", function () {
  // About ten CLI runs of several seconds each on a busy machine (97 s at load 8, 148 s at load 10 on
  // 2 cores, while the coverage run shares them).
  this.timeout(600_000);
  let node: RunningNode | undefined;
  let dir = "";
  let env: Record<string, string> = {};

  before(async function () {
    node = await startHardhatNode(await freePort());
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "preflight-lanes-cli-"));
    env = { LOCALHOST_RPC_URL: node.url, PREFLIGHT_DEPLOYMENTS_DIR: dir };
  });

  after(async function () {
    await node?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const ok = (run: CliRun): string => {
    expect(run.code, `${run.stdout}\n${run.stderr}`).to.equal(0);
    return run.stdout;
  };
  const cli = async (...args: string[]): Promise<string> => ok(await runHardhat([...args, "--network", "localhost"], env));
  /** The command a task printed after `marker`, run as printed (it starts with "npx hardhat"). */
  const printed = (stdout: string, marker: string): string[] => {
    const line = stdout.split("\n").find((l) => l.includes(marker));
    expect(line, `no "${marker}" in:\n${stdout}`).to.not.equal(undefined);
    const command = line!.slice(line!.indexOf(marker) + marker.length).trim().split(" (")[0]!;
    const words = command.split(/\s+/);
    expect(words.slice(0, 2)).to.deep.equal(["npx", "hardhat"]);
    return words.slice(2);
  };

  it("funds, signs, claims, collects, requests the close, advances time and closes", async function () {
    const chain = providerFor(node!.url, 31337);
    const payer = devAccount(1, chain).address;
    const provider = devAccount(2, chain).address;
    ok(await runHardhat(["deploy", "--no-compile", "--network", "localhost"], env));
    await cli("faucet", "--from", "1", "--amount", "100");
    await cli("deposit", "--from", "1", "--token", "tUSDC", "--amount", "40");
    const funded = await cli("lane-fund", "--from", "1", "--provider", provider, "--token", "tUSDC", "--amount", "10");
    expect(funded).to.contain(`Lane of ${payer} for provider ${provider}: 10 tUSDC reserved`);

    const voucher = path.join(dir, "lane-voucher.json");
    const signed = await cli("sign-lane-voucher", "--from", "1", "--provider", provider, "--token", "tUSDC", "--model", "llama-3.1-70b", "--amount", "2.5", "--out", voucher);
    const claim = printed(signed, "The provider claims it with:");
    expect(claim).to.include.members(["lane-claim", "--file", voucher, "--from", "2"]);
    const claimed = ok(await runHardhat(claim, env));
    expect(claimed).to.contain(`Claimed 2.5 tUSDC from the lane of ${payer}`);
    // Claiming it again is nothing to do: exit 0.
    expect(ok(await runHardhat(claim, env))).to.contain("Nothing was sent.");

    const collected = ok(await runHardhat(printed(claimed, "move them to your earnings with:"), env));
    expect(collected).to.contain("Collected 2.5 tUSDC into your earnings (now 2.5 tUSDC)");

    const requested = await cli("lane-request-close", "--from", "1", "--provider", provider, "--token", "tUSDC");
    const close = printed(requested, "then run:");
    const early = await runHardhat(close, env);
    expect(early.code).to.equal(1);
    expect(early.stderr.split("\n").filter((l) => l.startsWith("Error:"))).to.have.length(1);
    expect(early.stderr).to.match(/^Error: The lane close is in its notice period until .* On this local chain you may skip the wait: npx hardhat advance-time --network localhost$/m);

    const advanced = ok(await runHardhat(printed(requested, "On this local chain you may skip the wait:"), env));
    expect(advanced).to.contain("run withdraw or lane-close");
    const closed = ok(await runHardhat(close, env));
    expect(closed).to.contain(`Returned 7.5 tUSDC to ${payer}`);
    const status = await cli("lane-status", "--from", "2", "--payer", payer, "--provider", provider, "--token", "tUSDC");
    expect(status).to.match(/funds {11}0 tUSDC/);
    expect(status).to.match(/claimed {9}2\.5 tUSDC/);
    expect(status).to.match(/pending close {3}none/);
  });
});
