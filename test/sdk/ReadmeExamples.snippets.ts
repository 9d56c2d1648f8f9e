import { expect } from "chai";
import { ethers } from "hardhat";
import { readFileSync } from "node:fs";
import path from "node:path";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { Wallet } from "ethers";
import { modelId, Reason } from "@preflight/provider";
import { signInferenceRequest } from "../../examples/dapp/src";
import { startProvider } from "../../examples/provider/src";
import { settledRequests } from "../../examples/indexer/src";
import { deployPreflightFixture } from "../helpers/fixtures";

const root = path.join(__dirname, "..", "..");

/** The core fixture plus a session key the payer granted (provider-scoped, one model). */
async function deployExampleFixture() {
  const base = await deployPreflightFixture();
  const token = await base.usdc.getAddress();
  const sessionKey = Wallet.createRandom();
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

describe("README SDK examples", function () {
  it("quotes examples/*/src/index.ts verbatim", function () {
    const readme = readFileSync(path.join(root, "README.md"), "utf8");
    for (const example of ["dapp", "provider", "indexer"]) {
      const file = path.join("examples", example, "src", "index.ts");
      const code = readFileSync(path.join(root, file), "utf8");
      expect(readme.includes("```ts\n" + code + "```"), `README quotes ${file}`).to.equal(true);
    }
  });

  it("a dApp's session key signs, the provider preflights, serves and settles", async function () {
    const { preflight, payer, provider, token, sessionKey } = await loadFixture(deployExampleFixture);
    const service = await startProvider(preflight, provider, token, 0);
    const request = await signInferenceRequest(preflight, sessionKey, payer.address, provider.address, token, "Hello");
    expect(await service.handle(request, "Hello")).to.equal("completion for 5 characters");
    let refused = "";
    await service.handle(request, "Hello again").catch((e: Error) => (refused = e.message));
    expect(refused).to.equal("refused: NonceUsed"); // the same nonce is reserved until it settles
    const [batch] = await service.stop();
    expect(batch.settled.map((s) => s.reason)).to.deep.equal([Reason.Settled]);
    expect(await preflight.earningsOf(provider.address, token)).to.equal(20_000n);
  });

  it("an indexer reads from the logs alone which request paid, who signed it, and which was skipped and why", async function () {
    const { preflight, payer, provider, token, sessionKey } = await loadFixture(deployExampleFixture);
    const request = await signInferenceRequest(preflight, sessionKey, payer.address, provider.address, token, "Hello");
    // The same request twice: the second is skipped (its nonce is used by then), and the log says so.
    const tx = await preflight.connect(provider).settleBatch(token, [request, request]);
    const receipt = await tx.wait();
    const at = `${payer.address} #${request.nonce} -> ${provider.address} in ${token}`;
    expect(settledRequests(receipt!.logs, await preflight.getAddress())).to.deep.equal([
      `${at}: paid 20000 (signed by ${sessionKey.address})`,
      `${at}: skipped: NonceUsed`,
    ]);
    expect(settledRequests(receipt!.logs, ethers.ZeroAddress), "another contract's logs are not this deployment's").to.deep.equal([]);
  });
});
