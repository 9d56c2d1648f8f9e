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
  await registry.addContract(pf, "contracts/Preflight.sol:Preflight", { _accounts: "balances", _earnings: "balances", _fees: "balances" });
  await registry.addContract(token, "contracts/test/TestToken.sol:TestToken", { _balances: "balances" });
  registry.addToken(token);
  registry.mapping(pf, "_accounts", [f.payer.address, token]);
  registry.mapping(pf, "_earnings", [f.provider.address, token]);
  // The OpenZeppelin baseline: its ReentrancyGuard earns an SSTORE refund, and it calls the token.
  const baseline = await ethers.deployContract("OzBaselineEscrow", [f.owner.address]);
  await f.usdc.connect(f.payer).approve(await baseline.getAddress(), ethers.MaxUint256);
  await baseline.connect(f.payer).deposit(f.payer.address, token, 10_000n);
  const bl = await baseline.getAddress();
  await registry.addContract(bl, "contracts/bench/OzBaselineEscrow.sol:OzBaselineEscrow", { balances: "balances", usedNonces: "nonce" });
  registry.mapping(bl, "balances", [f.payer.address, token]);
  registry.mapping(bl, "usedNonces", [f.payer.address, 0n]);
  for (const holder of [bl, f.provider.address]) registry.mapping(token, "_balances", [holder]);
  return { ...f, token, registry, baseline };
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
    expect(a.steps.events).to.be.within(375 + 3 * 375 + 8 * 43, 375 + 3 * 375 + 8 * 43 + 30); // RequestsSettled: LOG3, 43 packed bytes (+ memory)
    expect(a.steps.recovery).to.be.within(3_000, 3_200); // ecrecover plus the call around it
    // Two cold slots written (payer rewritten, provider earnings new); no fee slot is read (v2).
    expect(a.steps.balances).to.be.within(2_100 + 2_900 + 2_100 + 20_000, 2_100 + 2_900 + 2_100 + 20_000 + 400); // plus the slot keys' hashes
  });

  it("credits SSTORE refunds back and charges token calls to balances", async function () {
    const f = await loadFixture(deployAttributionFixture);
    const domain = { chainId: f.domain.chainId, verifyingContract: await f.baseline.getAddress() };
    const request = await signedRequest(f.payer, domain, await makeRequest({ payer: f.payer.address, provider: f.provider.address, token: f.token }));
    const receipt = (await (await f.baseline.connect(f.provider).settle(request)).wait())!;
    const a = await attribute(receipt, f.registry); // throws unless the refund model matches the receipt
    expect(STEPS.reduce((sum, s) => sum + a.steps[s], 0)).to.equal(Number(receipt.gasUsed));
    expect(a.steps.nonce).to.be.greaterThan(20_000); // a new usedNonces slot
    // Payer balance, the token call (cold account), its two balance slots (the provider's is new).
    expect(a.steps.balances).to.be.greaterThan(2_100 + 2_900 + 2_600 + 2 * 2_100 + 2_900 + 20_000);
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
