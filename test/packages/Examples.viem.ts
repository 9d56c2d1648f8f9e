import { expect } from "chai";
import { ethers, network } from "hardhat";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { createPublicClient, custom, type Address, type EIP1193Provider } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { hardhat } from "viem/chains";
import { modelId } from "@preflight/sdk";
import { signInferenceRequest } from "../../examples/dapp-viem/src";
import { deployPreflightFixture } from "../helpers/fixtures";

/** The core fixture plus a viem session key the payer granted (provider-scoped, one model). */
async function deployViemExampleFixture() {
  const base = await deployPreflightFixture();
  const token = (await base.usdc.getAddress()) as Address;
  const sessionKey = privateKeyToAccount(generatePrivateKey());
  const latest = await ethers.provider.getBlock("latest");
  await base.preflight.connect(base.payer).grant({
    delegate: sessionKey.address,
    token,
    provider: base.provider.address,
    maxPrice: 50_000n,
    budget: 10_000_000n,
    period: 3_600n,
    expiry: BigInt(latest!.timestamp) + 86_400n,
    models: [modelId("llama-3.1-70b")],
  });
  return { ...base, token, sessionKey };
}

describe("examples/dapp-viem", function () {
  it("a viem session key signs through the typed ABI, and the request settles", async function () {
    const { preflight, payer, provider, token, sessionKey } = await loadFixture(deployViemExampleFixture);
    // viem talks to the in-process Hardhat network through its EIP-1193 provider.
    const client = createPublicClient({ chain: hardhat, transport: custom(network.provider as unknown as EIP1193Provider) });
    const address = (await preflight.getAddress()) as Address;
    const request = await signInferenceRequest(client, address, sessionKey, payer.address as Address, provider.address as Address, token, "Hello");
    expect(request.nonce).to.equal(0n);
    await preflight.connect(provider).settle(request);
    expect(await preflight.earningsOf(provider.address, token)).to.equal(20_000n);
    const next = await signInferenceRequest(client, address, sessionKey, payer.address as Address, provider.address as Address, token, "Again");
    expect(next.nonce).to.equal(1n); // the allocator read the used bit through viem
  });
});
