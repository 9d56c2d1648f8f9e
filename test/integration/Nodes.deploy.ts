import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { expect } from "chai";
import { ethers, Wallet, type JsonRpcProvider } from "ethers";
import { Preflight__factory, TestToken__factory } from "../../typechain-types";
import { signRequest, signVoucher, type PreflightDomain, type Request } from "@preflight/sdk";
import { CREATEX_ADDRESS } from "../../tasks/lib/createx";
import type { DeploymentRecord } from "../../tasks/lib/registry";
import { devAccount, freePort, providerFor, runHardhat, startAnvil, startHardhatNode, type CliRun, type RunningNode } from "../helpers/nodes";

const USDC = 10n ** 6n;
const MODEL = ethers.id("llama-3.1-70b");

/**
 * The flow a dApp and a provider run, over JSON-RPC with the SDK's signers: the payer deposits test
 * USDC, grants a session key (this provider, this model, capped), the session key signs five
 * requests, the provider settles them in one batch, the payer signs a voucher the provider claims.
 * Returns what the chain says afterwards.
 */
async function paidFlow(provider: JsonRpcProvider, record: DeploymentRecord) {
  const payer = devAccount(1, provider);
  const operator = devAccount(2, provider);
  const sessionKey = Wallet.createRandom();
  const preflight = Preflight__factory.connect(record.contracts.Preflight.address, payer);
  const token = TestToken__factory.connect(record.contracts.TestToken!.address, payer);
  const tokenAddress = await token.getAddress();
  const domain: PreflightDomain = { chainId: BigInt(record.chainId), verifyingContract: await preflight.getAddress() };

  await (await token.mint(payer.address, 1_000n * USDC)).wait();
  await (await token.approve(await preflight.getAddress(), 100n * USDC)).wait();
  await (await preflight.deposit(payer.address, tokenAddress, 100n * USDC)).wait();
  const now = BigInt((await provider.getBlock("latest"))!.timestamp);
  await (
    await preflight.grant({
      delegate: sessionKey.address,
      token: tokenAddress,
      provider: operator.address,
      maxPrice: USDC,
      budget: 10n * USDC,
      period: 0,
      expiry: now + 3600n,
      models: [MODEL],
    })
  ).wait();

  const requests = [];
  for (let nonce = 0n; nonce < 5n; nonce++) {
    const request: Request = {
      payer: payer.address,
      provider: operator.address,
      token: tokenAddress,
      model: MODEL,
      price: USDC / 2n,
      nonce,
      deadline: now + 600n,
      inputHash: ethers.id(`prompt ${nonce}`),
    };
    const signature = await signRequest(sessionKey, domain, request, nonce % 2n === 0n);
    requests.push({ ...request, signature });
  }
  const asProvider = preflight.connect(operator);
  const reasons = await asProvider.settleBatch.staticCall(tokenAddress, requests);
  await (await asProvider.settleBatch(tokenAddress, requests)).wait();

  const voucher = { payer: payer.address, provider: operator.address, token: tokenAddress, model: MODEL, channel: ethers.id("chat"), cumulativeAmount: (5n * USDC) / 4n };
  const voucherSignature = await signVoucher(payer, domain, voucher);
  await (await asProvider.claimVoucher({ ...voucher, signature: voucherSignature })).wait();

  return {
    reasons: reasons.map(Number),
    payerBalance: await preflight.balanceOf(payer.address, tokenAddress),
    earnings: await preflight.earningsOf(operator.address, tokenAddress),
    held: await token.balanceOf(await preflight.getAddress()),
    spent: (await preflight.grantOf(payer.address, tokenAddress, sessionKey.address)).spent,
  };
}

function registryOf(dir: string, chainId: number): DeploymentRecord {
  return JSON.parse(fs.readFileSync(path.join(dir, `${chainId}.json`), "utf8")) as DeploymentRecord;
}

function expectOk(run: CliRun): void {
  expect(run.code, `hardhat exited with ${run.code}\n${run.stdout}\n${run.stderr}`).to.equal(0);
}

/** Ignition journals this test makes (chains 31337 and the test-only 424242) under ignition/deployments. */
function removeTestJournals(): void {
  const journals = path.join(__dirname, "..", "..", "ignition", "deployments");
  if (!fs.existsSync(journals)) return;
  for (const entry of fs.readdirSync(journals)) {
    if (entry.includes("-424242-") || entry.includes("-31337-")) fs.rmSync(path.join(journals, entry), { recursive: true, force: true });
  }
}

/** Account 0 of the dev mnemonic, as a deployer key. */
const DEV_KEY_0 = devAccount(0, providerFor("http://127.0.0.1:1", 1)).privateKey;

describe("Integration: deploy over JSON-RPC to npx hardhat node and anvil, then a paid flow", function () {
  // Starting nodes and deploying over JSON-RPC takes tens of seconds on a busy machine.
  this.timeout(300_000);
  let dir = "";
  let hardhatNode: RunningNode | undefined;
  let anvil: RunningNode | undefined;
  let otherChain: RunningNode | undefined;
  const providers: JsonRpcProvider[] = [];

  before(async function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "preflight-nodes-"));
    removeTestJournals();
    [hardhatNode, anvil, otherChain] = await Promise.all([
      freePort().then(startHardhatNode),
      freePort().then((p) => startAnvil(p)),
      freePort().then((p) => startAnvil(p, 424242)),
    ]);
  });

  after(async function () {
    for (const p of providers) p.destroy();
    // Always stop the nodes, whatever happened above.
    await Promise.all([hardhatNode?.stop(), anvil?.stop(), otherChain?.stop()]);
    fs.rmSync(dir, { recursive: true, force: true });
    removeTestJournals();
  });

  it("deploys to npx hardhat node and to anvil with npm run deploy -- --network localhost, and the paid flow settles on both", async function () {
    const nodes = [hardhatNode!, anvil!];
    const dirs = nodes.map((n) => path.join(dir, n.name.replace(" ", "-")));
    const envs = nodes.map((n, i) => ({ LOCALHOST_RPC_URL: n.url, PREFLIGHT_DEPLOYMENTS_DIR: dirs[i] }));
    const deployed = await Promise.all(envs.map((env) => runHardhat(["deploy", "--no-compile", "--network", "localhost"], env)));
    for (const run of deployed) {
      expectOk(run);
      expect(run.stdout).to.match(/Preflight deployed at 0x/);
      expect(run.stdout).to.match(/Explorer verification skipped: local chain/);
    }
    const records = dirs.map((d) => registryOf(d, 31337));
    // Same deployer, same parameters, same salt: same addresses on both nodes.
    expect(records[0].contracts.Preflight.address).to.equal(records[1].contracts.Preflight.address);
    expect(records.map((r) => r.network)).to.deep.equal(["localhost", "localhost"]);

    const results = await Promise.all(
      nodes.map(async (node, i) => {
        const provider = providerFor(node.url, 31337);
        providers.push(provider);
        expect(await provider.getCode(records[i].contracts.Preflight.address)).to.not.equal("0x");
        return paidFlow(provider, records[i]);
      }),
    );
    for (const result of results) {
      expect(result.reasons).to.deep.equal([0, 0, 0, 0, 0]);
      expect(result.payerBalance).to.equal(100n * USDC - (5n * USDC) / 2n - (5n * USDC) / 4n);
      expect(result.earnings).to.equal((5n * USDC) / 2n + (5n * USDC) / 4n);
      expect(result.held).to.equal(100n * USDC);
      expect(result.spent).to.equal((5n * USDC) / 2n);
    }

    // A second deploy finds everything in place and sends nothing; the tasks read the same chain.
    const [again, balances] = await Promise.all([
      runHardhat(["deploy", "--no-compile", "--network", "localhost"], envs[1]),
      runHardhat(["balances", "--network", "localhost", "--from", "2", "--token", "test"], envs[0]),
    ]);
    expectOk(again);
    expect(again.stdout).to.match(/Preflight +0x[0-9a-fA-F]{40} +already deployed: reusing it/);
    expect(again.stdout).to.not.match(/Deploying/);
    expectOk(balances);
    expect(balances.stdout).to.match(/provider earnings +3\.75 tUSDC/);
  });

  it("refuses, sending nothing: missing variables, an RPC serving another chain, a chain without CreateX", async function () {
    const custom = { CUSTOM_RPC_URL: otherChain!.url, CUSTOM_CHAIN_ID: "424242", CUSTOM_PRIVATE_KEY: DEV_KEY_0, PREFLIGHT_DEPLOYMENTS_DIR: dir };
    const [missing, wrongChain, noFactory] = await Promise.all([
      runHardhat(["deploy", "--no-compile", "--network", "sepolia"], { PREFLIGHT_DEPLOYMENTS_DIR: dir }),
      runHardhat(["deploy", "--no-compile", "--network", "sepolia"], { SEPOLIA_RPC_URL: anvil!.url, SEPOLIA_PRIVATE_KEY: DEV_KEY_0, PREFLIGHT_DEPLOYMENTS_DIR: dir }),
      runHardhat(["deploy", "--no-compile", "--network", "custom"], custom),
    ]);
    expect(missing.code).to.equal(1);
    expect(missing.stderr).to.match(/Network "sepolia" is not configured: set SEPOLIA_RPC_URL and SEPOLIA_PRIVATE_KEY \(or DEPLOYER_PRIVATE_KEY\)/);
    expect(wrongChain.code).to.equal(1);
    expect(wrongChain.stderr).to.match(/Network "sepolia" is chain 11155111, but its RPC URL answers as chain 31337/);
    expect(noFactory.code).to.equal(1);
    expect(noFactory.stderr).to.match(/The CreateX factory \(0xba5Ed099633D3B313e4D5F7bdc1305d3c28ba5Ed\) is not deployed on chain 424242/);
    expect(fs.readdirSync(dir).filter((f) => f.endsWith(".json"))).to.deep.equal([]);
    const other = providerFor(otherChain!.url, 424242);
    providers.push(other);
    expect(await other.getTransactionCount(devAccount(0, other).address)).to.equal(0);
  });

  it("gives the same addresses on another chain id once CreateX is there, skips verification without a key, survives a chain reset", async function () {
    const env = { CUSTOM_RPC_URL: otherChain!.url, CUSTOM_CHAIN_ID: "424242", CUSTOM_PRIVATE_KEY: DEV_KEY_0, PREFLIGHT_DEPLOYMENTS_DIR: dir };
    // Put CreateX's code at its address, as its presigned deployment would.
    const source = providerFor(anvil!.url, 31337);
    const target = providerFor(otherChain!.url, 424242);
    providers.push(source, target);
    await target.send("anvil_setCode", [CREATEX_ADDRESS, await source.getCode(CREATEX_ADDRESS)]);

    const deployed = await runHardhat(["deploy", "--no-compile", "--network", "custom", "--test-token", "yes"], env);
    expectOk(deployed);
    expect(deployed.stdout).to.match(/Explorer verification skipped: ETHERSCAN_API_KEY is not set/);
    const here = registryOf(dir, 424242);
    const local = registryOf(path.join(dir, "anvil"), 31337);
    expect(here.contracts.Preflight.address).to.equal(local.contracts.Preflight.address);
    expect(here.contracts.TestToken!.address).to.equal(local.contracts.TestToken!.address);
    expect(here.contracts.Preflight.verification).to.equal("skipped: ETHERSCAN_API_KEY is not set");
    expect(here.contracts.Preflight.block).to.be.a("number");

    // The chain is reset but Ignition's journal of it survives: the deploy notices and deploys again.
    await target.send("anvil_reset", []);
    await target.send("anvil_setCode", [CREATEX_ADDRESS, await source.getCode(CREATEX_ADDRESS)]);
    expect(await target.getCode(here.contracts.Preflight.address)).to.equal("0x");
    const redeployed = await runHardhat(["deploy", "--no-compile", "--network", "custom", "--test-token", "yes"], env);
    expectOk(redeployed);
    expect(redeployed.stdout).to.match(/journal claims a deployment this chain does not have/);
    expect(await target.getCode(here.contracts.Preflight.address)).to.not.equal("0x");
  });
});
