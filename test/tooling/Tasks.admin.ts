import { ethers } from "hardhat";
import { expect } from "chai";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import type { Preflight, TestToken } from "../../typechain-types";
import { expectTaskError, runTask, useTempRegistry } from "../helpers/tasks";
import type { DeploymentRecord } from "../../tasks/lib/registry";
import { signRequest } from "@preflight/sdk";

describe("Tasks: fee, withdraw-fees", function () {
  useTempRegistry();

  /** A deployment with a 1% fee through the deploy task, and one settled, withdrawn request. */
  async function deployedFixture() {
    const [deployer, payer, provider, recipient] = await ethers.getSigners();
    const { result: record } = await runTask<DeploymentRecord>("deploy", { salt: "test.tasks.fee", testToken: "yes", feeBps: "100", feeRecipient: recipient!.address });
    const preflight = (await ethers.getContractAt("Preflight", record.contracts.Preflight.address)) as unknown as Preflight;
    const token = (await ethers.getContractAt("TestToken", record.contracts.TestToken!.address)) as unknown as TestToken;
    return { preflight, token, deployer: deployer!, payer: payer!, provider: provider!, recipient: recipient! };
  }

  it("shows the fee fixed at deployment and sends accrued fees to its recipient", async function () {
    const { preflight, token, payer, provider, recipient } = await loadFixture(deployedFixture);
    const t = await token.getAddress();
    await expectTaskError("withdraw-fees", { token: "test" }, /No fees have accrued in tUSDC/);
    await token.mint(payer.address, 1_000_000n);
    await token.connect(payer).approve(await preflight.getAddress(), ethers.MaxUint256);
    await preflight.connect(payer).deposit(payer.address, t, 1_000_000n);
    const { chainId } = await ethers.provider.getNetwork();
    const request = { payer: payer.address, provider: provider.address, token: t, model: ethers.id("m"), price: 999n, nonce: 0n, deadline: BigInt(await time.latest()) + 3_600n, inputHash: ethers.ZeroHash };
    const signature = await signRequest(payer, { chainId, verifyingContract: await preflight.getAddress() }, request);
    await preflight.connect(provider).settle({ ...request, signature });
    await preflight.connect(provider).withdrawEarnings(t, provider.address);
    const { result } = await runTask<{ feeBps: bigint; accrued: bigint }>("fee", { token: "test" });
    expect(result).to.deep.include({ feeBps: 100n, accrued: 10n }); // ceil(999 * 1%) = 10
    await runTask("withdraw-fees", { token: "test" });
    expect(await token.balanceOf(recipient.address)).to.equal(10n);
    expect(await preflight.feesOf(t)).to.equal(0n);
  });
});
