import fs from "node:fs";
import hre, { ethers } from "hardhat";
import { expect } from "chai";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import type { Preflight, TestToken } from "../../typechain-types";
import { expectTaskError, runTask, useTempRegistry } from "../helpers/tasks";
import { registryPath, type DeploymentRecord } from "../../tasks/lib/registry";

const USDC = 10n ** 6n;

describe("Tasks: deposit, withdrawals, earnings, balances", function () {
  const registry = useTempRegistry();

  /** A deployment through the deploy task, with a payer holding 1,000 test USDC in its wallet. */
  async function deployedWithFundedPayerFixture() {
    const { result: record } = await runTask<DeploymentRecord>("deploy", { salt: "test.tasks.escrow" });
    const [owner, payer, provider, other] = await ethers.getSigners();
    const preflight = (await ethers.getContractAt("Preflight", record.contracts.Preflight.address)) as unknown as Preflight;
    const usdc = (await ethers.getContractAt("TestToken", record.contracts.TestToken!.address)) as unknown as TestToken;
    await usdc.mint(payer.address, 1_000n * USDC);
    return { record, preflight, usdc, owner, payer, provider, other };
  }

  describe("deposit", function () {
    it("deposits an ERC-20 in human units, approving first", async function () {
      const { preflight, usdc, payer } = await loadFixture(deployedWithFundedPayerFixture);
      const { output } = await runTask("deposit", { from: "1", token: "test", amount: "12.5" });
      expect(await preflight.balanceOf(payer.address, await usdc.getAddress())).to.equal(12_500_000n);
      expect(output).to.match(/Approval of 12\.5 tUSDC/);
      expect(output).to.match(/Escrow balance of 0x[0-9a-fA-F]{40}: 12\.5 tUSDC/);
    });

    it("deposits with an EIP-2612 permit in one transaction", async function () {
      const { preflight, usdc, payer } = await loadFixture(deployedWithFundedPayerFixture);
      const { output } = await runTask("deposit", { from: "1", token: await usdc.getAddress(), amount: "3", permit: true });
      expect(output).to.not.match(/Approval/);
      expect(output).to.match(/with a permit/);
      expect(await preflight.balanceOf(payer.address, await usdc.getAddress())).to.equal(3n * USDC);
    });

    it("takes --token as the symbol of a token in the deployment record, in any case", async function () {
      const { preflight, usdc, payer } = await loadFixture(deployedWithFundedPayerFixture);
      await runTask("deposit", { from: "1", token: "tUSDC", amount: "2" });
      await runTask("deposit", { from: "1", token: "tusdc", amount: "1" });
      expect(await preflight.balanceOf(payer.address, await usdc.getAddress())).to.equal(3n * USDC);
    });

    it("deposits ETH, also into another payer's balance", async function () {
      const { preflight, other } = await loadFixture(deployedWithFundedPayerFixture);
      await runTask("deposit", { from: "1", token: "ETH", amount: "0.25", payer: other.address });
      expect(await preflight.balanceOf(other.address, ethers.ZeroAddress)).to.equal(ethers.parseEther("0.25"));
    });

    it("says what is wrong with the input", async function () {
      const { payer } = await loadFixture(deployedWithFundedPayerFixture);
      await expectTaskError("deposit", { from: "1", token: "test", amount: "1.0000001" }, /has 7 decimals, but tUSDC has only 6/);
      await expectTaskError("deposit", { from: "1", token: "test", amount: "-1" }, /is not an amount/);
      await expectTaskError("deposit", { from: "1", token: "test", amount: "0" }, /--amount must be more than zero/);
      await expectTaskError("deposit", { from: "1", token: "test", amount: "5000" }, /holds 1000 tUSDC, less than the 5000 tUSDC to deposit/);
      await expectTaskError("deposit", { from: "1", token: "0xnope", amount: "1" }, /--token "0xnope" is not an address/);
      await expectTaskError("deposit", { from: "1", token: "tUSDX", amount: "1" }, /--token "tUSDX" is not a token this deployment knows: give ETH, test, tUSDC or an ERC-20 address\./);
      await expectTaskError("deposit", { from: "1", token: payer.address, amount: "1" }, /has no code on hardhat: it is not a token/);
      await expectTaskError("deposit", { from: "1", token: "ETH", amount: "1", permit: true }, /--permit applies to ERC-20 tokens/);
      await expectTaskError("deposit", { from: "99", token: "ETH", amount: "1" }, /--from 99: network "hardhat" has 20 account\(s\)/);
      await expectTaskError("deposit", { from: "1", token: "ETH", amount: "1", payer: "nobody" }, /--payer "nobody" is not an address/);
    });

    it("says when no deployment is recorded, or the recorded one is gone", async function () {
      await loadFixture(deployedWithFundedPayerFixture);
      const file = registryPath(hre, 31337);
      const saved = fs.readFileSync(file, "utf8");
      fs.rmSync(file);
      try {
        await expectTaskError("balances", {}, /No Preflight deployment is recorded for chain 31337 .*npm run deploy -- --network hardhat/);
      } finally {
        fs.writeFileSync(file, saved);
      }
      const empty = ethers.Wallet.createRandom().address;
      await expectTaskError("balances", { preflight: empty }, /No contract at 0x[0-9a-fA-F]{40} on hardhat .*in-process hardhat network starts empty/);
      expect(registryPath(hre, 31337).startsWith(registry.dir())).to.equal(true);
    });

    it("never writes the in-process chain's record where tasks against a running node read it", async function () {
      await loadFixture(deployedWithFundedPayerFixture);
      const saved = process.env.PREFLIGHT_DEPLOYMENTS_DIR;
      delete process.env.PREFLIGHT_DEPLOYMENTS_DIR;
      const nodeRecord = registryPath(hre, 31337); // deployments/31337.json of the repository
      const before = fs.existsSync(nodeRecord) ? fs.readFileSync(nodeRecord, "utf8") : undefined;
      try {
        const { output } = await runTask<DeploymentRecord>("deploy", { salt: "test.tasks.in-memory" });
        expect(output).to.match(/Registry written: in memory: the in-process chain ends with this command/);
        // Tasks of the same process find it.
        const { result } = await runTask<{ symbol: string }[]>("balances", {});
        expect(result.map((r) => r.symbol)).to.deep.equal(["ETH", "tUSDC"]);
      } finally {
        process.env.PREFLIGHT_DEPLOYMENTS_DIR = saved;
      }
      expect(fs.existsSync(nodeRecord) ? fs.readFileSync(nodeRecord, "utf8") : undefined).to.equal(before);
    });

    it("diagnoses a recorded deployment the chain does not have: reset chain, or another chain with the same id", async function () {
      const { record } = await loadFixture(deployedWithFundedPayerFixture);
      const file = registryPath(hre, 31337);
      const saved = fs.readFileSync(file, "utf8");
      const gone = ethers.Wallet.createRandom().address;
      const rewrite = (patch: Partial<DeploymentRecord["contracts"]["Preflight"]>): void => {
        const r = JSON.parse(saved) as DeploymentRecord;
        r.contracts.Preflight = { ...r.contracts.Preflight, address: gone, ...patch };
        fs.writeFileSync(file, JSON.stringify(r));
      };
      // Another network name than "hardhat" is where this diagnosis is printed; run it as if on a node.
      const name = hre.network.name;
      (hre.network as { name: string }).name = "localhost";
      try {
        rewrite({ block: 1_000_000 });
        await expectTaskError("balances", {}, /No contract at 0x[0-9a-fA-F]{40} on localhost \(chain 31337\)\. The record .* says block 1000000, but this chain is only at block \d+: the chain was reset/);
        rewrite({ block: 1, blockHash: ethers.id("another chain") });
        await expectTaskError("balances", {}, /says block 1 is 0x[0-9a-f]{8}…, but here it is 0x[0-9a-f]{8}…: this is another chain with the same chain id/);
        rewrite({ block: record.contracts.Preflight.block });
        await expectTaskError("balances", {}, /names a contract this chain does not have; .* Deploy again with: npm run deploy -- --network localhost/);
      } finally {
        (hre.network as { name: string }).name = name;
        fs.writeFileSync(file, saved);
      }
    });
  });

  describe("withdrawals", function () {
    it("requests, refuses before the notice period, then withdraws", async function () {
      const { preflight, usdc, payer } = await loadFixture(deployedWithFundedPayerFixture);
      await runTask("deposit", { from: "1", token: "test", amount: "100" });
      const { output } = await runTask("request-withdrawal", { from: "1", token: "test", amount: "40" });
      expect(output).to.match(/Ready at .* \(in 3d\)/);
      // The next step is printed as a command that works as is: it keeps --from.
      expect(output).to.match(/then run: npx hardhat withdraw --token test --from 1 --network hardhat$/m);
      await expectTaskError("withdraw", { from: "1", token: "test" }, /in its notice period until .* \(3d from now\)/);
      await time.increase(3 * 24 * 3600);
      const before = await usdc.balanceOf(payer.address);
      const { result } = await runTask<{ amount: bigint }>("withdraw", { from: "1", token: "test" });
      expect(result.amount).to.equal(40n * USDC);
      expect(await usdc.balanceOf(payer.address)).to.equal(before + 40n * USDC);
      expect(await preflight.balanceOf(payer.address, await usdc.getAddress())).to.equal(60n * USDC);
    });

    it("withdraws all, to another address", async function () {
      const { other } = await loadFixture(deployedWithFundedPayerFixture);
      await runTask("deposit", { from: "1", token: "ETH", amount: "1" });
      await runTask("request-withdrawal", { from: "1", token: "ETH", amount: "all" });
      await time.increase(3 * 24 * 3600);
      const before = await ethers.provider.getBalance(other.address);
      await runTask("withdraw", { from: "1", token: "ETH", to: other.address });
      expect(await ethers.provider.getBalance(other.address)).to.equal(before + ethers.parseEther("1"));
    });

    it("advance-time moves a local chain past the notice period, then withdraw works", async function () {
      const { payer } = await loadFixture(deployedWithFundedPayerFixture);
      await runTask("deposit", { from: "1", token: "test", amount: "10" });
      await runTask("request-withdrawal", { from: "1", token: "test", amount: "10" });
      const { output, result } = await runTask<{ before: bigint; now: bigint }>("advance-time", {});
      expect(result.now - result.before).to.equal(3n * 24n * 3600n + 1n);
      expect(output).to.match(/Chain time moved by 3d/);
      const { result: withdrawn } = await runTask<{ amount: bigint }>("withdraw", { from: payer.address, token: "test" });
      expect(withdrawn.amount).to.equal(10n * USDC);
      const { result: byHour } = await runTask<{ before: bigint; now: bigint }>("advance-time", { by: "1h" });
      expect(byHour.now - byHour.before).to.equal(3600n);
      await expectTaskError("advance-time", { by: "soon" }, /--by/);
    });

    it("cancels a pending request", async function () {
      const { preflight, usdc, payer } = await loadFixture(deployedWithFundedPayerFixture);
      await runTask("deposit", { from: "1", token: "test", amount: "10" });
      await runTask("request-withdrawal", { from: "1", token: "test", amount: "10" });
      await runTask("cancel-withdrawal", { from: "1", token: "test" });
      expect((await preflight.pendingWithdrawal(payer.address, await usdc.getAddress()))[0]).to.equal(0n);
    });

    it("says what is wrong", async function () {
      await loadFixture(deployedWithFundedPayerFixture);
      await expectTaskError("request-withdrawal", { from: "1", token: "test", amount: "1" }, /has no tUSDC in escrow/);
      await runTask("deposit", { from: "1", token: "test", amount: "5" });
      await expectTaskError("request-withdrawal", { from: "1", token: "test", amount: "6" }, /more than the escrow balance, 5 tUSDC/);
      await expectTaskError("withdraw", { from: "1", token: "test" }, /no pending tUSDC withdrawal: first run npx hardhat request-withdrawal/);
      await expectTaskError("cancel-withdrawal", { from: "1", token: "test" }, /no pending tUSDC withdrawal to cancel/);
      await expectTaskError("withdraw-earnings", { from: "2", token: "test" }, /has no tUSDC earnings to withdraw/);
    });
  });

  describe("faucet", function () {
    it("mints the deployed test token in human units", async function () {
      const { usdc, other } = await loadFixture(deployedWithFundedPayerFixture);
      await runTask("faucet", { amount: "42.5", to: other.address });
      expect(await usdc.balanceOf(other.address)).to.equal(42_500_000n);
      await expectTaskError("faucet", { amount: "1", to: "0x0" }, /--to "0x0" is not an address/);
    });
  });

  describe("balances and earnings", function () {
    it("shows escrow balance, pending withdrawal, earnings and wallet in human units", async function () {
      const { payer } = await loadFixture(deployedWithFundedPayerFixture);
      await runTask("deposit", { from: "1", token: "test", amount: "250" });
      await runTask("request-withdrawal", { from: "1", token: "test", amount: "50" });
      const { output, result } = await runTask<{ symbol: string; balance: bigint; pending: bigint; wallet: bigint }[]>("balances", { account: payer.address });
      expect(result.map((r) => r.symbol)).to.deep.equal(["ETH", "tUSDC"]);
      expect(result[1].balance).to.equal(250n * USDC);
      expect(output).to.match(/escrow balance +250 tUSDC/);
      expect(output).to.match(/pending withdrawal +50 tUSDC, ready at .* \(in 3d\)/);
      expect(output).to.match(/wallet +750 tUSDC/);
    });
  });
});
