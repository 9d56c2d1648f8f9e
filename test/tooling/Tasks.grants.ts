import fs from "node:fs";
import path from "node:path";
import { ethers } from "hardhat";
import { expect } from "chai";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import type { Preflight, TestToken } from "../../typechain-types";
import { expectTaskError, runTask, useTempRegistry } from "../helpers/tasks";
import type { DeploymentRecord } from "../../tasks/lib/registry";
import type { SignedGrantJson } from "../../tasks/lib/signed";

const USDC = 10n ** 6n;

describe("Tasks: grant, sign-grant, submit-grant, revoke, grant-info", function () {
  const registry = useTempRegistry();

  /** A deployment through the deploy task; accounts: 1 payer, 2 provider, 3 delegate. */
  async function deployedFixture() {
    const { result: record } = await runTask<DeploymentRecord>("deploy", { salt: "test.tasks.grants" });
    const [, payer, provider, delegate] = await ethers.getSigners();
    const preflight = (await ethers.getContractAt("Preflight", record.contracts.Preflight.address)) as unknown as Preflight;
    const usdc = (await ethers.getContractAt("TestToken", record.contracts.TestToken!.address)) as unknown as TestToken;
    return { preflight, usdc, payer, provider, delegate };
  }

  it("grants a scope in human units and shows it", async function () {
    const { preflight, usdc, payer, provider, delegate } = await loadFixture(deployedFixture);
    await runTask("grant", {
      from: "1",
      delegate: delegate.address,
      token: "test",
      provider: provider.address,
      models: "llama-3.1-70b, mistral-large",
      maxPrice: "0.05",
      budget: "20",
      period: "1d",
      expiry: "7d",
    });
    const g = await preflight.grantOf(payer.address, await usdc.getAddress(), delegate.address);
    expect([g.provider, g.maxPrice, g.budget, g.period, g.anyModel]).to.deep.equal([provider.address, 50_000n, 20n * USDC, 86_400n, false]);
    expect(await preflight.isModelAllowed(payer.address, await usdc.getAddress(), delegate.address, ethers.id("mistral-large"))).to.equal(true);

    const { output, result } = await runTask<{ status: string; modelAllowed: boolean }>("grant-info", {
      from: "1",
      delegate: delegate.address,
      token: "test",
      model: "gpt-x",
    });
    expect(result.status).to.equal("active");
    expect(result.modelAllowed).to.equal(false);
    expect(output).to.match(/max price +0\.05 tUSDC per request/);
    expect(output).to.match(/budget +20 tUSDC per 1d/);
    expect(output).to.match(/expires .* \(in (7d|6d 23h 59m)/);
    expect(output).to.match(/model gpt-x: not allowed/);
  });

  it("revokes at once, and grant-info says revoked or expired", async function () {
    const { delegate, payer } = await loadFixture(deployedFixture);
    await runTask("grant", { from: "1", delegate: delegate.address, token: "ETH", maxPrice: "0.001", budget: "0.1", expiry: "1h" });
    await time.increase(3601);
    expect((await runTask<{ status: string }>("grant-info", { payer: payer.address, delegate: delegate.address, token: "ETH" })).result.status).to.equal("expired");
    await runTask("revoke", { from: "1", delegate: delegate.address, token: "ETH" });
    expect((await runTask<{ status: string }>("grant-info", { from: "1", delegate: delegate.address, token: "ETH" })).result.status).to.equal("revoked");
    expect((await runTask<{ status: string }>("grant-info", { from: "2", delegate: delegate.address, token: "ETH" })).result.status).to.equal("none");
  });

  it("signs a grant that anyone submits once (gasless onboarding)", async function () {
    const { preflight, usdc, payer, provider, delegate } = await loadFixture(deployedFixture);
    const out = path.join(registry.dir(), "grant.json");
    await runTask("sign-grant", { from: "1", delegate: delegate.address, token: "test", provider: provider.address, models: "llama", maxPrice: "0.5", budget: "5", out });
    const signed = JSON.parse(fs.readFileSync(out, "utf8")) as SignedGrantJson;
    expect([signed.kind, signed.payer, signed.epoch, signed.models]).to.deep.equal(["preflight.grant", payer.address, "0", [ethers.id("llama")]]);
    await runTask("submit-grant", { from: "4", file: out });
    const g = await preflight.grantOf(payer.address, await usdc.getAddress(), delegate.address);
    expect([g.provider, g.maxPrice, g.budget, g.epoch]).to.deep.equal([provider.address, 500_000n, 5n * USDC, 1n]);
    await expectTaskError("submit-grant", { from: "4", file: out }, /is for epoch 0, but the payer's grant to 0x[0-9a-fA-F]{40} is at epoch 1: it was already submitted/);

    await runTask("sign-grant", { from: "1", delegate: delegate.address, token: "test", maxPrice: "0.5", budget: "5", deadline: "1h", out });
    await time.increase(3601);
    await expectTaskError("submit-grant", { from: "4", file: out }, /The signed grant expired at .*: ask the payer to sign a new one/);
  });

  it("says what is wrong with the input", async function () {
    const { payer, delegate } = await loadFixture(deployedFixture);
    const base = { from: "1", delegate: delegate.address, token: "test", maxPrice: "1", budget: "10" };
    await expectTaskError("grant", { ...base, delegate: payer.address }, /--delegate is your own address/);
    await expectTaskError("grant", { ...base, maxPrice: "11" }, /--max-price \(11\) is above --budget \(10\)/);
    await expectTaskError("grant", { ...base, period: "1 day" }, /--period "1 day" is not a duration/);
    await expectTaskError("grant", { ...base, expiry: "0" }, /--expiry must be more than zero/);
    await expectTaskError("grant", { ...base, models: "0x1234" }, /--models "0x1234" starts with 0x but is not 32 bytes/);
    await expectTaskError("grant", { ...base, provider: "0xABCDEFabcdef0123456789012345678901234567" }, /wrong checksum/);
    await expectTaskError("grant", { ...base, budget: "1.5555555" }, /has 7 decimals/);
  });
});
