import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { deployPreflightFixture } from "../helpers/fixtures";
import { makeRequest, signedRequest } from "../helpers/requests";
import { SlotRegistry, STEPS } from "../../bench/slots";
import { attribute, calldataCost } from "../../bench/trace";

/** Preflight with its storage registered for step attribution. */
async function deployAttributionFixture() {
  const f = await deployPreflightFixture();
  const token = await f.usdc.getAddress();
  const pf = await f.preflight.getAddress();
  const registry = new SlotRegistry();
  await registry.addContract(pf, "contracts/Preflight.sol:Preflight", { _accounts: "balances", _earnings: "balances", _fee: "balances" });
  await registry.addContract(token, "contracts/test/TestToken.sol:TestToken", { _balances: "balances" });
  registry.addToken(token);
  registry.mapping(pf, "_accounts", [f.payer.address, token]);
  registry.mapping(pf, "_earnings", [f.provider.address, token]);
  return { ...f, token, registry };
}

/** The benchmark's gas attribution, checked on transactions whose costs follow from the EVM rules. */
describe("Gas attribution", function () {
  it("splits a settlement into steps that add up to the receipt", async function () {
    const f = await loadFixture(deployAttributionFixture);
    const request = await signedRequest(f.payer, f.domain, await makeRequest({ payer: f.payer.address, provider: f.provider.address, token: f.token }));
    const receipt = (await (await f.preflight.connect(f.provider).settle(request)).wait())!;
    const a = await attribute(receipt, f.registry);
    const tx = (await ethers.provider.getTransaction(receipt.hash))!;
    expect(a.gasUsed).to.equal(Number(receipt.gasUsed));
    expect(STEPS.reduce((sum, s) => sum + a.steps[s], 0)).to.equal(a.gasUsed);
    expect(a.steps.intrinsic).to.equal(calldataCost(tx.data).intrinsic);
    expect(a.steps.events).to.equal(375 + 3 * 375 + 8 * 32 * 3); // RequestSettled: LOG3, three data words
    expect(a.steps.recovery).to.be.within(3_000, 3_200); // ecrecover plus the call around it
    // Two cold slots rewritten (payer, provider earnings: new) and the cold fee slot read.
    expect(a.steps.balances).to.be.greaterThan(2_100 + 2_900 + 2_100 + 20_000);
  });

  it("charges the EIP-7623 calldata floor to intrinsic when it is higher", async function () {
    const f = await loadFixture(deployAttributionFixture);
    // A cheap view called with 4,000 trailing zero bytes: the floor (10 per zero byte) beats 4 per byte + execution.
    const data = ethers.concat([f.preflight.interface.encodeFunctionData("balanceOf", [f.payer.address, f.token]), new Uint8Array(4_000)]);
    const receipt = (await (await f.other.sendTransaction({ to: await f.preflight.getAddress(), data })).wait())!;
    const a = await attribute(receipt, f.registry);
    const cost = calldataCost(data);
    expect(a.gasUsed).to.equal(cost.floor);
    expect(a.steps.intrinsic).to.be.greaterThan(cost.intrinsic);
    expect(STEPS.reduce((sum, s) => sum + a.steps[s], 0)).to.equal(Number(receipt.gasUsed));
  });
});
