import { expect } from "chai";
import path from "node:path";
import { Wallet, ZeroAddress } from "ethers";
import { chromium, type Browser } from "playwright-core";
import { Preflight__factory, TestToken__factory, type Preflight, type TestToken } from "../../typechain-types";
import { bundlePage, launchChromium, pageResult, servePages, type RunningBrowser } from "../helpers/browser";
import { devAccount, freePort, providerFor, startHardhatNode, type RunningNode } from "../helpers/nodes";
import { buildPackages, tempDir } from "../helpers/packages";
import { PRICE, type PageInput, type PageOutput } from "./browser/shared";

const CHAIN_ID = 31337;
const DEPOSIT = 1_000_000n;
const PAGES = ["viem", "ethers"] as const;

describe("Packages: a dApp page in headless Chromium signs, a Hardhat node settles", function () {
  this.timeout(300_000);
  const temp = tempDir("preflight-browser-");
  let node: RunningNode;
  let chrome: RunningBrowser;
  let browser: Browser;
  let site: { url: string; close: () => Promise<void> };
  let preflight: Preflight;
  let token: TestToken;
  let providerAddress: string;
  const bundleSizes: Record<string, number> = {};

  before(async function () {
    await buildPackages();
    for (const page of PAGES) bundleSizes[page] = await bundlePage(path.join(__dirname, "browser", `${page}.ts`), page, temp.dir, "packages/sdk/dist/index.mjs");
    site = await servePages(temp.dir);
    node = await startHardhatNode(await freePort());
    chrome = await launchChromium();
    browser = await chromium.connectOverCDP(chrome.wsEndpoint);
    const rpc = providerFor(node.url, CHAIN_ID);
    const deployer = devAccount(0, rpc);
    providerAddress = devAccount(1, rpc).address;
    preflight = await (await new Preflight__factory(deployer).deploy(24n * 3600n, 0, ZeroAddress)).waitForDeployment();
    token = await (await new TestToken__factory(deployer).deploy("USD Coin", "USDC", 6)).waitForDeployment();
  });

  after(async function () {
    await browser?.close().catch(() => undefined);
    await chrome?.stop();
    await site?.close();
    await node?.stop();
    temp.dispose();
  });

  for (const library of PAGES) {
    it(`with ${library}: the page signs a grant and a request with in-page keys; grantBySig + settle move the funds`, async function () {
      const rpc = providerFor(node.url, CHAIN_ID);
      const deployer = devAccount(0, rpc);
      // A payer with funds in escrow (its key is handed to the page, which signs the grant with it).
      const payer = Wallet.createRandom().connect(rpc);
      await (await deployer.sendTransaction({ to: payer.address, value: 10n ** 18n })).wait();
      await (await token.connect(deployer).mint(payer.address, DEPOSIT)).wait();
      await (await token.connect(payer).approve(await preflight.getAddress(), DEPOSIT)).wait();
      await (await preflight.connect(payer).deposit(payer.address, await token.getAddress(), DEPOSIT)).wait();

      const latest = await rpc.getBlock("latest");
      const input: PageInput = {
        chainId: String(CHAIN_ID),
        preflight: await preflight.getAddress(),
        token: await token.getAddress(),
        provider: providerAddress,
        payerKey: payer.privateKey as `0x${string}`,
        now: String(latest!.timestamp),
      };
      const { result, errors } = await pageResult(browser, `${site.url}/${library}.html#${encodeURIComponent(JSON.stringify(input))}`, 30_000);
      const output = JSON.parse(result) as PageOutput;
      expect(errors).to.deep.equal([]);
      expect(output.library).to.equal(library);
      expect(output.payer).to.equal(payer.address);

      const terms = output.grant.terms as unknown as Parameters<Preflight["grantBySig"]>[1];
      const relayer = devAccount(1, rpc); // anyone may submit the payer's signed grant; here the provider does
      await (await preflight.connect(relayer).grantBySig(payer.address, terms, BigInt(output.grant.deadline), output.grant.signature)).wait();
      const request = output.request as unknown as Parameters<Preflight["settle"]>[0];
      await (await preflight.connect(relayer).settle(request)).wait();

      expect(await preflight.balanceOf(payer.address, input.token)).to.equal(DEPOSIT - PRICE);
      const grant = await preflight.grantOf(payer.address, input.token, output.delegate);
      expect(grant.epoch).to.equal(1n);
      console.log(`      ${library} page: ${(bundleSizes[library]! / 1024).toFixed(1)} KB minified (with ${library} bundled)`);
    });
  }

  it("leaves the provider its earnings from both pages", async function () {
    expect(await preflight.earningsOf(providerAddress, await token.getAddress())).to.equal(2n * PRICE);
  });
});
