import { ethers } from "hardhat";
import { expect } from "chai";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import type { Preflight } from "../../typechain-types";
import { expectTaskError, runTask, useTempRegistry } from "../helpers/tasks";
import type { DeploymentRecord } from "../../tasks/lib/registry";

describe("Tasks: set-fee, transfer-ownership, accept-ownership", function () {
  useTempRegistry();

  /** A deployment through the deploy task, owned by account 0. */
  async function deployedFixture() {
    const { result: record } = await runTask<DeploymentRecord>("deploy", { salt: "test.tasks.admin", testToken: "no" });
    const [owner, other, recipient] = await ethers.getSigners();
    const preflight = (await ethers.getContractAt("Preflight", record.contracts.Preflight.address)) as unknown as Preflight;
    return { preflight, owner, other, recipient };
  }

  it("sets the fee as the owner, within the cap", async function () {
    const { preflight, recipient } = await loadFixture(deployedFixture);
    await runTask("set-fee", { feeBps: "30", recipient: recipient.address });
    expect(await preflight.fee()).to.deep.equal([30n, recipient.address]);
    await expectTaskError("set-fee", { feeBps: "1001", recipient: recipient.address }, /--fee-bps is 1001, more than the largest allowed, 1000/);
    await expectTaskError("set-fee", { feeBps: "5" }, /give the --recipient that receives the fee/);
    await expectTaskError("set-fee", { from: "1", feeBps: "0" }, /Only the owner, 0x[0-9a-fA-F]{40}, may do this; you are 0x[0-9a-fA-F]{40}/);
  });

  it("hands ownership over in two steps", async function () {
    const { preflight, other } = await loadFixture(deployedFixture);
    await expectTaskError("accept-ownership", { from: "1" }, /No ownership offer is pending/);
    await runTask("transfer-ownership", { to: other.address });
    await expectTaskError("accept-ownership", { from: "2" }, /The pending offer is to 0x[0-9a-fA-F]{40}, not to you/);
    await runTask("accept-ownership", { from: "1" });
    expect(await preflight.owner()).to.equal(other.address);
  });
});
