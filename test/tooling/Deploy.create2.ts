import fs from "node:fs";
import hre, { ethers } from "hardhat";
import { expect } from "chai";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import type { Preflight, TestToken } from "../../typechain-types";
import { expectTaskError, runTask, useTempRegistry } from "../helpers/tasks";
import { CREATEX_ADDRESS, createXAddress, guardedSalt, saltMode } from "../../tasks/lib/createx";
import { registryPath, type DeploymentRecord } from "../../tasks/lib/registry";
import { OP_GAS_PRICE_ORACLE, verificationPlan } from "../../tasks/lib/deploy";

const SALT = "test.deploy.create2";

describe("Deploy (npm run deploy) on the in-process network", function () {
  const registry = useTempRegistry();

  async function deployWithDefaultsFixture() {
    const { result, output } = await runTask<DeploymentRecord>("deploy", { salt: SALT });
    const [deployer, other] = await ethers.getSigners();
    return { record: result, output, deployer, other };
  }

  describe("Deployment", function () {
    it("deploys Preflight and a TestToken at their CREATE2 addresses and records them", async function () {
      const { record, deployer } = await loadFixture(deployWithDefaultsFixture);
      const preflight = (await ethers.getContractAt("Preflight", record.contracts.Preflight.address)) as unknown as Preflight;
      expect(await preflight.NOTICE_PERIOD()).to.equal(3n * 24n * 3600n);
      expect([await preflight.FEE_BPS(), await preflight.FEE_RECIPIENT()]).to.deep.equal([0n, ethers.ZeroAddress]);
      const token = (await ethers.getContractAt("TestToken", record.contracts.TestToken!.address)) as unknown as TestToken;
      expect(await token.decimals()).to.equal(6n);

      // The address is what CREATE2 through CreateX gives for the salt and the init code.
      const factory = await ethers.getContractFactory("Preflight");
      const init = (await factory.getDeployTransaction(3n * 24n * 3600n, 0, ethers.ZeroAddress)).data;
      expect(record.contracts.Preflight.address).to.equal(createXAddress(ethers.id(SALT), deployer.address, 31337n, init));
      expect(record.contracts.Preflight.initCodeHash).to.equal(ethers.keccak256(init));
    });

    it("writes deployments/<chainId>.json with chain, block, transaction, constructor arguments and salt", async function () {
      const { record } = await loadFixture(deployWithDefaultsFixture);
      const file = registryPath(hre, 31337);
      expect(file.startsWith(registry.dir())).to.equal(true);
      const onDisk = JSON.parse(fs.readFileSync(file, "utf8")) as DeploymentRecord;
      expect(onDisk.chainId).to.equal(31337);
      expect(onDisk.salt).to.equal(ethers.id(SALT));
      expect(onDisk.factory).to.equal(CREATEX_ADDRESS);
      expect(onDisk.contracts.Preflight.constructorArgs).to.deep.equal({
        noticePeriod: "259200",
        feeBps: "0",
        feeRecipient: ethers.ZeroAddress,
      });
      const receipt = await ethers.provider.getTransactionReceipt(onDisk.contracts.Preflight.transactionHash!);
      expect(receipt!.blockNumber).to.equal(onDisk.contracts.Preflight.block);
      expect(receipt!.to).to.equal(CREATEX_ADDRESS);
      expect(onDisk.contracts.Preflight.reused).to.equal(false);
      expect(record.contracts.Preflight.verification).to.equal("skipped: local chain");
    });

    it("with --dry-run, checks everything and prints addresses and cost, but sends and writes nothing", async function () {
      await loadFixture(deployWithDefaultsFixture);
      const file = registryPath(hre, 31337);
      const registryBefore = fs.readFileSync(file, "utf8");
      const blockBefore = await ethers.provider.getBlockNumber();
      const { result, output } = await runTask<DeploymentRecord>("deploy", { salt: `${SALT}.dry`, dryRun: true });
      expect(output).to.match(/Preflight +0x[0-9a-fA-F]{40} +to deploy/);
      expect(output).to.match(/Estimated cost: about [0-9.]+ ETH/);
      expect(output).to.match(/Dry run: every check passed; nothing was sent and no file was written/);
      expect(await ethers.provider.getCode(result.contracts.Preflight.address)).to.equal("0x");
      expect(await ethers.provider.getBlockNumber()).to.equal(blockBefore);
      expect(fs.readFileSync(file, "utf8")).to.equal(registryBefore);
    });

    it("reuses a system already deployed at the expected address, and says so", async function () {
      const { record } = await loadFixture(deployWithDefaultsFixture);
      const blockBefore = await ethers.provider.getBlockNumber();
      const again = await runTask<DeploymentRecord>("deploy", { salt: SALT });
      expect(again.output).to.match(/already deployed: reusing it/);
      expect(again.result.contracts.Preflight.address).to.equal(record.contracts.Preflight.address);
      expect(again.result.contracts.Preflight.reused).to.equal(true);
      // The original deployment's block is kept, and nothing was sent.
      expect(again.result.contracts.Preflight.block).to.equal(record.contracts.Preflight.block);
      expect(await ethers.provider.getBlockNumber()).to.equal(blockBefore);
    });

    it("gives other parameters another address, and takes them from options", async function () {
      const { record, other } = await loadFixture(deployWithDefaultsFixture);
      const { result } = await runTask<DeploymentRecord>("deploy", {
        salt: SALT,
        feeBps: "25",
        feeRecipient: other.address,
        noticePeriod: "1d",
        testToken: "no",
      });
      expect(result.contracts.Preflight.address).to.not.equal(record.contracts.Preflight.address);
      const preflight = (await ethers.getContractAt("Preflight", result.contracts.Preflight.address)) as unknown as Preflight;
      expect([await preflight.FEE_BPS(), await preflight.FEE_RECIPIENT()]).to.deep.equal([25n, other.address]);
      expect(await preflight.NOTICE_PERIOD()).to.equal(86_400n);
      // The test token recorded earlier stays in the registry.
      expect(result.contracts.TestToken?.address).to.equal(record.contracts.TestToken!.address);
    });
  });

  describe("Validations (nothing is sent when one fails)", function () {
    async function expectNothingSent(args: Record<string, unknown>, pattern: RegExp): Promise<void> {
      const before = await ethers.provider.getBlockNumber();
      await expectTaskError("deploy", { salt: `${SALT}.invalid`, ...args }, pattern);
      expect(await ethers.provider.getBlockNumber()).to.equal(before);
    }

    it("refuses a fee above the cap", async function () {
      await loadFixture(deployWithDefaultsFixture);
      await expectNothingSent({ feeBps: "1001", feeRecipient: ethers.Wallet.createRandom().address }, /--fee-bps is 1001, more than the largest allowed, 1000/);
    });

    it("refuses a fee without a recipient", async function () {
      await loadFixture(deployWithDefaultsFixture);
      await expectNothingSent({ feeBps: "10" }, /no --fee-recipient is set/);
    });

    it("refuses malformed addresses, durations and salts", async function () {
      await loadFixture(deployWithDefaultsFixture);
      await expectNothingSent({ feeBps: "1", feeRecipient: "0x1234" }, /--fee-recipient "0x1234" is not an address/);
      await expectNothingSent({ noticePeriod: "3 days" }, /--notice-period "3 days" is not a duration/);
      await expectNothingSent({ noticePeriod: "0" }, /--notice-period must be more than zero/);
      await expectNothingSent({ noticePeriod: "366d" }, /--notice-period is 31622400 s, more than the largest allowed, 365 days/);
      await expectNothingSent({ salt: "0x1234" }, /--salt "0x1234" starts with 0x but is not 32 bytes/);
      await expectNothingSent({ testToken: "maybe" }, /--test-token must be auto, yes or no/);
    });

    it("says how much ETH the deployer needs when its balance is too low", async function () {
      const { deployer } = await loadFixture(deployWithDefaultsFixture);
      // 1 gwei of ETH: too little whatever base fee earlier tests left the in-process chain at.
      await hre.network.provider.send("hardhat_setBalance", [deployer.address, "0x3B9ACA00"]);
      const message = await expectTaskError("deploy", { salt: `${SALT}.poor` }, /holds 0\.000000001 ETH on hardhat, but the deployment needs about ([0-9.]+) ETH/);
      expect(message).to.match(/Nothing was sent/);
      const needed = Number(/needs about ([0-9.]+) ETH/.exec(message)![1]);
      expect(needed).to.be.greaterThan(0.000000001);
    });

    it("counts the L1 data fee on OP-stack chains", async function () {
      await loadFixture(deployWithDefaultsFixture);
      // A GasPriceOracle predeploy that quotes 10,000 ETH of L1 fee for any transaction.
      const fee = ethers.toBeHex(ethers.parseEther("10000"), 32).slice(2);
      await hre.network.provider.send("hardhat_setCode", [OP_GAS_PRICE_ORACLE, `0x7f${fee}60005260206000f3`]);
      await expectTaskError("deploy", { salt: `${SALT}.l2` }, /\+ 20000\.0 ETH L1 data fee, plus 30% margin/);
    });
  });

  describe("CreateX salts", function () {
    it("computes the same guarded salt as CreateX for every salt mode", async function () {
      const { deployer } = await loadFixture(deployWithDefaultsFixture);
      const createX = new ethers.Contract(
        CREATEX_ADDRESS,
        ["function deployCreate2(bytes32 salt, bytes initCode) payable returns (address)"],
        deployer,
      );
      const factory = await ethers.getContractFactory("TestToken");
      const prefix = deployer.address.toLowerCase();
      const salts = [
        ethers.id("anyone, any chain"),
        `${prefix}00${"ab".repeat(11)}`, // this deployer, any chain
        `${prefix}01${"cd".repeat(11)}`, // this deployer, this chain
        `0x${"00".repeat(20)}01${"ef".repeat(11)}`, // anyone, this chain
      ];
      const modes = [];
      for (const [i, salt] of salts.entries()) {
        const init = (await factory.getDeployTransaction(`T${i}`, `T${i}`, 18)).data;
        const predicted = createXAddress(salt, deployer.address, 31337n, init);
        expect(await createX.deployCreate2.staticCall(salt, init)).to.equal(predicted);
        modes.push(saltMode(salt, deployer.address));
      }
      expect(modes).to.deep.equal(["any-deployer-any-chain", "this-deployer-any-chain", "this-deployer-this-chain", "any-deployer-this-chain"]);
      // A chain-bound salt moves with the chain id; the default one does not.
      expect(guardedSalt(salts[3], deployer.address, 1n)).to.not.equal(guardedSalt(salts[3], deployer.address, 2n));
      expect(guardedSalt(salts[0], deployer.address, 1n)).to.equal(guardedSalt(salts[0], deployer.address, 2n));
    });

    it("rejects the salts CreateX rejects", async function () {
      const { deployer } = await loadFixture(deployWithDefaultsFixture);
      expect(() => saltMode(`0x${"00".repeat(20)}00${"ef".repeat(11)}`, deployer.address)).to.throw(/21st byte is 0x01/);
      expect(() => saltMode(`${deployer.address.toLowerCase()}02${"ef".repeat(11)}`, deployer.address)).to.throw(/0x00 or 0x01/);
    });
  });

  describe("Explorer verification", function () {
    it("is never attempted on local chains, without an API key or an explorer, or with --skip-verify", function () {
      const explorers = [11155111];
      expect(verificationPlan(31337, "key", false, explorers)).to.deep.equal({ verify: false, reason: "skipped: local chain" });
      expect(verificationPlan(11155111, "", false, explorers)).to.deep.equal({ verify: false, reason: "skipped: ETHERSCAN_API_KEY is not set" });
      expect(verificationPlan(11155111, "key", true, explorers)).to.deep.equal({ verify: false, reason: "skipped: --skip-verify" });
      expect(verificationPlan(424242, "key", false, explorers)).to.deep.equal({
        verify: false,
        reason: "skipped: no explorer configured for chain 424242 (set CUSTOM_EXPLORER_URL)",
      });
      expect(verificationPlan(11155111, "key", false, explorers)).to.deep.equal({ verify: true, reason: "pending" });
    });
  });
});
