import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { ethers } from "hardhat";
import { expect } from "chai";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { hashLaneVoucher, signLaneVoucher } from "@preflight/sdk";
import type { SignedDataDescription } from "@preflight/provider";
import type { Preflight, TestToken } from "../../typechain-types";
import { expectTaskError, runTask, useTempRegistry } from "../helpers/tasks";
import type { DeploymentRecord } from "../../tasks/lib/registry";
import { laneVoucherToJson, type SignedLaneVoucherJson } from "../../tasks/lib/signed";
import { DEFAULT_LANE_VOUCHER_FILE, type LaneOutcome } from "../../tasks/lanes";

const USDC = 10n ** 6n;
const ADDRESS = "0x[0-9a-fA-F]{40}";

describe("Tasks: lane-fund, lane-status, sign-lane-voucher, lane-claim, lane-collect, lane-request-close, lane-close", function () {
  const registry = useTempRegistry();
  const file = (name: string): string => path.join(registry.dir(), name);
  const readVoucher = (name: string): SignedLaneVoucherJson => JSON.parse(fs.readFileSync(file(name), "utf8")) as SignedLaneVoucherJson;

  /**
   * Deployed through the deploy task; payer (1) has 50 test USDC in escrow and 50 in its wallet, and
   * granted the delegate (3) a 5 USDC budget for provider (2) and model "llama"; payer 4 holds 20 in its wallet.
   */
  async function lanesFixture() {
    const { result: record } = await runTask<DeploymentRecord>("deploy", { salt: "test.tasks.lanes" });
    const [, payer, provider, delegate, other] = await ethers.getSigners();
    const preflight = (await ethers.getContractAt("Preflight", record.contracts.Preflight.address)) as unknown as Preflight;
    const usdc = (await ethers.getContractAt("TestToken", record.contracts.TestToken!.address)) as unknown as TestToken;
    await usdc.mint(payer.address, 100n * USDC);
    await usdc.mint(other.address, 20n * USDC);
    await runTask("deposit", { from: "1", token: "test", amount: "50" });
    await runTask("grant", { from: "1", delegate: delegate.address, token: "test", provider: provider.address, models: "llama", maxPrice: "1", budget: "5" });
    return { preflight, usdc, token: await usdc.getAddress(), payer, provider, delegate, other };
  }

  /** The fixture with payer 1's lane for the provider funded with 10 from escrow. */
  async function fundedLaneFixture() {
    const f = await loadFixture(lanesFixture);
    await runTask("lane-fund", { from: "1", provider: f.provider.address, token: "test", amount: "10" });
    return f;
  }

  const signLane = async (from: string, provider: string, amount: string, out: string, extra: Record<string, unknown> = {}) =>
    runTask<SignedLaneVoucherJson>("sign-lane-voucher", { from, provider, token: "test", model: "llama", amount, out: file(out), ...extra });

  it("funds lanes from escrow and with fresh deposits (ERC-20 approved, ETH), and shows them", async function () {
    const { preflight, token, payer, provider, other } = await loadFixture(lanesFixture);
    const fromEscrow = await runTask("lane-fund", { from: "1", provider: provider.address, token: "test", amount: "12.5" });
    expect(fromEscrow.output).to.match(/Lane funding of 12\.5 tUSDC from the escrow balance: transaction/);
    expect(fromEscrow.output).to.contain(`See it with: npx hardhat lane-status --provider ${provider.address} --token test --from 1 --network hardhat`);
    expect(await preflight.balanceOf(payer.address, token)).to.equal(37_500_000n);

    // A fresh deposit into another payer's lane: the sender approves and pays, the lane is the payer's.
    const deposited = await runTask("lane-fund", { from: "4", provider: provider.address, token: "tUSDC", amount: "2", deposit: true, payer: payer.address });
    expect(deposited.output).to.match(/Approval of 2 tUSDC/);
    expect(deposited.output).to.match(/Lane deposit of 2 tUSDC/);
    await runTask("lane-fund", { from: "4", provider: provider.address, token: "ETH", amount: "0.5", deposit: true });
    expect((await preflight.laneOf(other.address, provider.address, ethers.ZeroAddress)).funds).to.equal(ethers.parseEther("0.5"));

    const { result, output } = await runTask<{ funds: bigint; claimed: bigint; close: string }>("lane-status", { from: "2", payer: payer.address, provider: provider.address, token: "test" });
    expect([result.funds, result.claimed, result.close]).to.deep.equal([14_500_000n, 0n, "none"]);
    expect(output).to.match(/funds {11}14\.5 tUSDC/);
    expect(output).to.match(/pending close {3}none/);
    const empty = await runTask("lane-status", { from: "1", provider: other.address, token: "test" });
    expect(empty.output).to.contain("no lane yet: the payer opens it with lane-fund");
  });

  it("signs vouchers as the payer and a delegate, claims one with claimLane and several with claimLanesPacked, collects, and closes after the notice", async function () {
    const { preflight, usdc, token, payer, provider, delegate, other } = await loadFixture(fundedLaneFixture);
    await runTask("lane-fund", { from: "4", provider: provider.address, token: "test", amount: "5", deposit: true });

    const signed = await signLane("1", provider.address, "3", "a.json");
    expect([signed.result.kind, signed.result.cumulativeAmount, signed.result.signer]).to.deep.equal(["preflight.lane-voucher", "3000000", payer.address]);
    expect(signed.output).to.contain(`The provider claims it with: npx hardhat lane-claim --file ${file("a.json")} --from 2 --network hardhat`);
    const one = await runTask<LaneOutcome[]>("lane-claim", { from: "2", file: file("a.json") });
    expect(one.result.map((o) => [o.reason, o.paid])).to.deep.equal([["Settled", 3n * USDC]]);
    expect(one.output).to.match(/Lane claim of .*a\.json: transaction/);
    expect(one.output).to.contain("move them to your earnings with: npx hardhat lane-collect --token tUSDC --from 2 --network hardhat");

    // The delegate raises the payer's lane to 4.5; payer 4 signs 2 on its own lane; a stale voucher rides along.
    await signLane("3", provider.address, "4.5", "b.json", { payer: payer.address, compact: true });
    expect(ethers.dataLength(readVoucher("b.json").signature)).to.equal(64);
    await signLane("4", provider.address, "2", "c.json");
    const many = await runTask<LaneOutcome[]>("lane-claim", { from: "2", file: `${file("b.json")},${file("c.json")},${file("a.json")}` });
    expect(many.result.map((o) => [o.reason, o.paid])).to.deep.equal([
      ["Settled", 1_500_000n],
      ["Settled", 2n * USDC],
      ["NothingToClaim", 0n],
    ]);
    expect(many.output).to.match(/Claim of 2 tUSDC lane voucher\(s\)/);
    expect(many.output).to.match(/Nothing to do for .*a\.json: its total is 3 tUSDC and the lane of 0x[0-9a-fA-F]{40} already paid 3 tUSDC\./);
    expect(many.output).to.contain("2 of 3 lane voucher(s) paid; 1 already paid by their lane: nothing to do for those.");
    expect((await preflight.grantOf(payer.address, token, delegate.address)).spent).to.equal(1_500_000n);

    // Collect every lane claimed from (found in the logs), then again: nothing to do.
    const collected = await runTask<{ amount: bigint; payers: string[] }>("lane-collect", { from: "2", token: "test" });
    expect(collected.result.amount).to.equal(6_500_000n);
    expect(collected.result.payers).to.have.members([payer.address, other.address]);
    expect(collected.output).to.contain(`withdraw with: npx hardhat withdraw-earnings --token test --from 2 --network hardhat`);
    expect(await preflight.earningsOf(provider.address, token)).to.equal(6_500_000n);
    const again = await runTask<{ amount: bigint }>("lane-collect", { from: "2", token: "test", payers: payer.address });
    expect(again.result.amount).to.equal(0n);
    expect(again.output).to.match(/^Nothing to do: no tUSDC claims wait in the lanes of the 1 payer\(s\); nothing was sent\.$/);

    // Close: notice first, then the rest (10 - 4.5) comes back.
    const requested = await runTask<{ readyAt: bigint; expiresAt: bigint }>("lane-request-close", { from: "1", provider: provider.address, token: "test" });
    expect(requested.output).to.contain(`then run: npx hardhat lane-close --provider ${provider.address} --token test --from 1 --network hardhat`);
    expect(requested.output).to.not.contain("advance-time"); // the in-process chain: no node to move
    const status = await runTask<{ close: string; closeLapsesAt: bigint }>("lane-status", { from: "1", provider: provider.address, token: "test" });
    expect(status.result.close).to.equal("notice");
    expect(status.result.closeLapsesAt).to.equal(requested.result.expiresAt);
    expect(status.output).to.match(/pending close {3}in its notice period: ready at \S+ \(in \d/);
    await time.increaseTo(requested.result.readyAt);
    expect((await runTask<{ close: string }>("lane-status", { from: "1", provider: provider.address, token: "test" })).result.close).to.equal("ready");
    const before = await usdc.balanceOf(payer.address);
    const closed = await runTask<{ amount: bigint }>("lane-close", { from: "1", provider: provider.address, token: "test" });
    expect(closed.result.amount).to.equal(5_500_000n);
    expect(closed.output).to.match(new RegExp(`Returned 5\\.5 tUSDC to ${ADDRESS}`));
    expect(await usdc.balanceOf(payer.address)).to.equal(before + 5_500_000n);
    expect(await preflight.laneOf(payer.address, provider.address, token)).to.deep.equal([4_500_000n, 0n, 0n, 0n]);
    const nothing = await runTask<{ requested: boolean }>("lane-request-close", { from: "1", provider: provider.address, token: "test" });
    expect(nothing.result.requested).to.equal(false);
    expect(nothing.output).to.match(/^Nothing to do: your lane for provider 0x[0-9a-fA-F]{40} holds no tUSDC/);
  });

  it("claims a contract wallet's 65-byte voucher with claimLane beside an ordinary payer's (a packed claim would shorten what the wallet checks)", async function () {
    const { preflight, token, provider } = await loadFixture(fundedLaneFixture);
    const owner = (await ethers.getSigners())[5]!;
    const wallet = await ethers.deployContract("ERC1271Wallet", [owner.address]);
    const walletAddress = await wallet.getAddress();
    await runTask("lane-fund", { from: "4", provider: provider.address, token: "test", amount: "2", deposit: true, payer: walletAddress });
    const eoa = await signLane("1", provider.address, "1", "eoa.json");
    const domain = { chainId: BigInt(eoa.result.chainId), verifyingContract: await preflight.getAddress() };
    const voucher = { payer: walletAddress, provider: provider.address, token, model: eoa.result.model, cumulativeAmount: 1_500_000n };
    // The wallet's owner signs in the ordinary 65-byte form, as most wallets do.
    const signature = await signLaneVoucher(owner, domain, voucher);
    expect(ethers.dataLength(signature)).to.equal(65);
    fs.writeFileSync(file("wallet.json"), JSON.stringify(laneVoucherToJson(domain, voucher, signature, owner.address)));
    const claimed = await runTask<LaneOutcome[]>("lane-claim", { from: "2", file: `${file("eoa.json")},${file("wallet.json")}` });
    const byPayer = new Map(claimed.result.map((o) => [o.payer.toLowerCase(), [o.reason, o.paid]]));
    expect(byPayer.get(walletAddress.toLowerCase())).to.deep.equal(["Settled", 1_500_000n]);
    expect(byPayer.size).to.equal(2);
    expect([...byPayer.values()].every(([reason]) => reason === "Settled")).to.equal(true);
    expect((await preflight.laneOf(walletAddress, provider.address, token))[0]).to.equal(1_500_000n);
  });

  it("refuses a claim by another provider, and a close not requested, not ready or lapsed", async function () {
    const { provider } = await loadFixture(fundedLaneFixture);
    await signLane("1", provider.address, "1", "v.json");
    await expectTaskError("lane-claim", { from: "4", file: file("v.json") }, new RegExp(`v\\.json pays provider ${ADDRESS}, but you are ${ADDRESS}: only that provider can claim it \\(use --from\\)\\.$`));

    const close = { from: "1", provider: provider.address, token: "test" };
    await expectTaskError("lane-close", close, new RegExp(`No close of your tUSDC lane for provider ${ADDRESS} is requested: first run npx hardhat lane-request-close --provider ${ADDRESS} --token test --from 1 --network hardhat$`));
    const { result } = await runTask<{ readyAt: bigint; expiresAt: bigint }>("lane-request-close", close);
    await expectTaskError("lane-close", close, /^The lane close is in its notice period until \S+ \(.+ from now\); try again then\.$/);
    await time.increaseTo(result.expiresAt);
    await expectTaskError(
      "lane-close",
      close,
      /^The lane close request lapsed at \S+ \(a close must run within 7d after it is ready\): request it again with npx hardhat lane-request-close --provider 0x[0-9a-fA-F]{40} --token test --from 1 --network hardhat$/,
    );
    // The provider may still claim from a lane whose close lapsed.
    const claimed = await runTask<LaneOutcome[]>("lane-claim", { from: "2", file: file("v.json") });
    expect(claimed.result[0].paid).to.equal(USDC);
  });

  it("claiming a voucher its lane already paid is nothing to do: exit 0, nothing sent", async function () {
    const { provider } = await loadFixture(fundedLaneFixture);
    await signLane("1", provider.address, "2", "v.json");
    await runTask("lane-claim", { from: "2", file: file("v.json") });
    const block = await ethers.provider.getBlockNumber();
    const { result, output } = await runTask<LaneOutcome[]>("lane-claim", { from: "2", file: file("v.json") });
    expect(result.map((o) => o.reason)).to.deep.equal(["NothingToClaim"]);
    expect(output).to.match(/Nothing to do for .*v\.json: its total is 2 tUSDC and the lane of 0x[0-9a-fA-F]{40} already paid 2 tUSDC\.\nNothing was sent\./);
    expect(await ethers.provider.getBlockNumber()).to.equal(block);
    await expectTaskError("sign-lane-voucher", { from: "1", provider: provider.address, token: "test", model: "llama", amount: "2", out: "-" }, /the lane has already paid 2 tUSDC: sign a total above that/);
  });

  it("refuses a voucher with a bad signature: alone by the contract's error, in a batch as a skipped item with its reason sentence", async function () {
    const { preflight, token, payer, provider } = await loadFixture(fundedLaneFixture);
    await signLane("1", provider.address, "1", "v.json");
    const tampered = { ...readVoucher("v.json"), cumulativeAmount: "9000000" }; // the payer signed 1, not 9
    fs.writeFileSync(file("bad.json"), JSON.stringify(tampered));
    await expectTaskError("lane-claim", { from: "2", file: file("bad.json") }, /^Lane claim of .*bad\.json was refused: InvalidSigner\(0x[0-9a-fA-F]{40}\)\.$/);

    await runTask("lane-fund", { from: "4", provider: provider.address, token: "test", amount: "3", deposit: true });
    await signLane("4", provider.address, "3", "good.json");
    fs.writeFileSync(file("both.json"), JSON.stringify([tampered, readVoucher("good.json")]));
    const message = await expectTaskError("lane-claim", { from: "2", file: file("both.json") }, /^1 of 2 lane voucher\(s\) were refused: .*both\.json item 0 \(InvalidSigner: the signature was not made by the payer or by a delegate with a grant from the payer\); 1 paid\.$/);
    expect(message).to.not.contain("\n");
    expect(await preflight.laneOf(payer.address, provider.address, token)).to.deep.equal([0n, 10n * USDC, 0n, 0n]);
    expect((await preflight.laneOf((await ethers.getSigners())[4].address, provider.address, token)).uncollected).to.equal(3n * USDC);
    // Every voucher refused: nothing is sent, and each says why.
    fs.writeFileSync(file("bad2.json"), JSON.stringify([tampered, { ...tampered, cumulativeAmount: "8000000" }]));
    const block = await ethers.provider.getBlockNumber();
    await expectTaskError("lane-claim", { from: "2", file: file("bad2.json") }, /^2 of 2 lane voucher\(s\) were refused: .*item 0 \(InvalidSigner\(0x[0-9a-fA-F]{40}\)\), .*item 1 \(InvalidSigner\(0x[0-9a-fA-F]{40}\)\); 0 paid\.$/);
    expect(await ethers.provider.getBlockNumber()).to.equal(block);
  });

  it("refuses a revoked delegate's vouchers at once, alone and in a batch", async function () {
    const { payer, provider, delegate } = await loadFixture(fundedLaneFixture);
    await signLane("3", provider.address, "1", "d1.json", { payer: payer.address });
    await runTask("lane-fund", { from: "4", provider: provider.address, token: "test", amount: "1", deposit: true });
    await signLane("4", provider.address, "1", "p4.json");
    await runTask("revoke", { from: "1", delegate: delegate.address, token: "test" });
    await expectTaskError("lane-claim", { from: "2", file: file("d1.json") }, /^Lane claim of .*d1\.json was refused: RevokedGrant\(0x[0-9a-fA-F]{40}\)\.$/);
    const { output } = await runTask("lane-claim", { from: "2", file: file("p4.json") });
    expect(output).to.match(/Claimed 1 tUSDC from the lane of/);
    await runTask("lane-fund", { from: "4", provider: provider.address, token: "test", amount: "1", deposit: true });
    await signLane("4", provider.address, "1.5", "p4.json");
    await expectTaskError("lane-claim", { from: "2", file: `${file("d1.json")},${file("p4.json")}` }, /^1 of 2 lane voucher\(s\) were refused: .*d1\.json \(GrantRevoked: the delegate's grant was revoked by the payer\); 1 paid\.$/);
    // Signing as the revoked delegate is refused up front.
    await expectTaskError("sign-lane-voucher", { from: "3", payer: payer.address, provider: provider.address, token: "test", model: "llama", amount: "2", out: "-" }, /has no tUSDC grant from/);
  });

  it("says what is wrong with the input, and writes its default file where git ignores it", async function () {
    const { payer, provider, other } = await loadFixture(fundedLaneFixture);
    const fund = { from: "1", provider: provider.address, token: "test" };
    await expectTaskError("lane-fund", { ...fund, amount: "41" }, /has 40 tUSDC in escrow, less than the 41 tUSDC to put in the lane: deposit the difference first \(npx hardhat deposit --token test --amount 1 --from 1 --network hardhat\), or add --deposit/);
    await expectTaskError("lane-fund", { ...fund, amount: "1", payer: other.address }, /--payer needs --deposit/);
    await expectTaskError("lane-fund", { ...fund, amount: "1000", deposit: true }, /holds 50 tUSDC, less than the 1000 tUSDC to put in the lane/);
    await expectTaskError("lane-fund", { ...fund, amount: "0" }, /--amount must be more than zero/);
    await expectTaskError("lane-collect", { from: "2", token: "test", payers: "0xnope" }, /--payers "0xnope" is not an address/);
    const none = await runTask<{ amount: bigint }>("lane-collect", { from: "2", token: "test" });
    expect(none.output).to.equal("Nothing to do: you have not claimed from any tUSDC lane yet; nothing was sent.");
    await expectTaskError("lane-claim", { from: "2", file: " , " }, /--file is empty/);
    await expectTaskError("sign-lane-voucher", { from: "3", payer: payer.address, provider: provider.address, token: "test", model: "gpt-x", amount: "1", out: "-" }, /does not cover model "gpt-x"/);
    const { result: signed } = await signLane("1", provider.address, "1", "v.json");
    fs.writeFileSync(file("req.json"), JSON.stringify({ ...signed, kind: "preflight.voucher" }));
    await expectTaskError("lane-claim", { from: "2", file: file("req.json") }, /is not a preflight\.lane-voucher .*use the file written by sign-lane-voucher/);
    // A voucher above the lane's funds is signed with a warning: it pays once the lane is funded.
    const warnings: string[] = [];
    const original = console.error;
    console.error = (line: string) => warnings.push(line);
    try {
      await signLane("1", provider.address, "12", "big.json");
    } finally {
      console.error = original;
    }
    expect(warnings).to.deep.equal(["Warning: the lane holds 10 tUSDC, less than the 12 tUSDC this voucher adds; it pays only once the payer funds the lane (lane-fund)."]);
    expect(() => execFileSync("git", ["check-ignore", "-q", DEFAULT_LANE_VOUCHER_FILE], { cwd: path.resolve(__dirname, "..", "..") })).to.not.throw();
  });

  it("signed-data describes a lane voucher file: its digest is the SDK's, its signer the payer", async function () {
    const { preflight, payer, provider } = await loadFixture(fundedLaneFixture);
    const { result: signed } = await signLane("1", provider.address, "1.25", "sd.json");
    const { result, output } = await runTask<SignedDataDescription[]>("signed-data", { file: file("sd.json") });
    const domain = { chainId: 31337n, verifyingContract: await preflight.getAddress() };
    expect(result[0].digest).to.equal(hashLaneVoucher(domain, { ...signed, cumulativeAmount: BigInt(signed.cumulativeAmount) }));
    expect(result[0].recoveredSigner).to.equal(payer.address);
    expect(output).to.contain("LaneVoucher(address payer,address provider,address token,bytes32 model,uint128 cumulativeAmount)");
  });
});
