import { expect } from "chai";
import { copyFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { PACKAGE_DIRS, ROOT, buildPackages, installedVersion, packPackage, run, tempDir, type PackedPackage } from "../helpers/packages";

/** What a consumer runs from Node as an ES module: every subpath, both signers, the provider. */
const ESM_CONSUMER = `
import { Wallet, verifyTypedData } from "ethers";
import { privateKeyToAccount } from "viem/accounts";
import { PreflightSdkError, REQUEST_TYPES, buildDomain, hashRequest, modelId, signRequest } from "@preflight/sdk";
import { preflightAbi } from "@preflight/sdk/abi";
import { Preflight__factory } from "@preflight/sdk/typechain";
import { deployments, getDeployment } from "@preflight/sdk/deployments";
import { PreflightVerifier, BatchSettler, cryptoBackend, PreflightSdkError as ProviderError } from "@preflight/provider";

const wallet = Wallet.createRandom();
const domain = { chainId: 31337n, verifyingContract: "0x5FbDB2315678afecb367f032d93F642f64180aa3" };
const request = { payer: wallet.address, provider: wallet.address, token: wallet.address, model: modelId("m"), price: 1n, nonce: 0n, deadline: 9n, inputHash: modelId("in") };
const byEthers = await signRequest(wallet, domain, request);
const byViem = await signRequest(privateKeyToAccount(wallet.privateKey), domain, request);
let unknownChain = "";
try { getDeployment(424242); } catch (e) { unknownChain = e instanceof PreflightSdkError && e instanceof ProviderError ? e.code : String(e); }
console.log(JSON.stringify({
  sameSignature: byEthers === byViem,
  recovered: verifyTypedData(buildDomain(domain), { Request: [...REQUEST_TYPES.Request] }, request, byEthers) === wallet.address,
  digest: hashRequest(domain, request).length,
  abiHasSettleBatch: preflightAbi.some((item) => item.type === "function" && item.name === "settleBatch"),
  iface: typeof Preflight__factory.createInterface().getFunction("settleBatch").selector,
  deployments: typeof deployments,
  unknownChain,
  provider: typeof PreflightVerifier.create + typeof BatchSettler,
  crypto: cryptoBackend(),
}));
`;

/** The same from CommonJS (require). */
const CJS_CONSUMER = `
const { hashRequest, modelId, PreflightSdkError } = require("@preflight/sdk");
const { getDeployment } = require("@preflight/sdk/deployments");
const provider = require("@preflight/provider");
let code = "";
try { getDeployment(424242); } catch (e) { code = e instanceof PreflightSdkError && e instanceof provider.PreflightSdkError ? e.code : String(e); }
const a = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
const digest = hashRequest({ chainId: 1n, verifyingContract: a }, { payer: a, provider: a, token: a, model: modelId("m"), price: 1n, nonce: 0n, deadline: 9n, inputHash: modelId("in") });
console.log(JSON.stringify({ code, digest: digest.length, verifier: typeof provider.PreflightVerifier }));
`;

/** A TypeScript consumer: the types resolve through \`exports\`, viem infers messages from the \`as const\` tables. */
const TS_CONSUMER = `
import { Wallet } from "ethers";
import { createPublicClient, createWalletClient, getContract, http, type Address } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { hardhat } from "viem/chains";
import { REQUEST_TYPES, buildDomain, createSignedRequest, signGrant, type PreflightSigner, type SignedRequest } from "@preflight/sdk";
import { preflightAbi } from "@preflight/sdk/abi";
import { Preflight__factory, type Preflight, type SignedRequestStruct } from "@preflight/sdk/typechain";
import { getDeploymentDomain, type PreflightDeployment } from "@preflight/sdk/deployments";
import { PreflightVerifier, type Decision } from "@preflight/provider";

export async function consumer(address: Address): Promise<void> {
  const account = privateKeyToAccount("0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d");
  const walletClient = createWalletClient({ account, chain: hardhat, transport: http("http://127.0.0.1:1") });
  const signers: PreflightSigner[] = [Wallet.createRandom(), account, walletClient];
  const domain = getDeploymentDomain(31337);
  const signed: SignedRequest = await createSignedRequest(signers[0]!, domain, {
    payer: account.address, provider: address, token: address, model: "0x00", price: 1n, nonce: 0n, deadline: 1n, inputHash: "0x00",
  });
  const struct: SignedRequestStruct = signed; // assignable to typechain's struct
  void struct;
  await signGrant(walletClient, domain, {
    payer: account.address, delegate: address, token: address, provider: address, maxPrice: 1n, budget: 1n, period: 1n, expiry: 1n, models: [], epoch: 0n, deadline: 1n,
  });
  // viem infers the message type from the as-const table:
  const message = { payer: address, provider: address, token: address, model: "0x00", price: 1n, nonce: 0n, deadline: 1n, inputHash: "0x00" } as const;
  const d = { ...buildDomain(domain), verifyingContract: address };
  await walletClient.signTypedData({ domain: d, types: REQUEST_TYPES, primaryType: "Request", message });
  // @ts-expect-error price is a uint96: a string is refused at compile time
  await walletClient.signTypedData({ domain: d, types: REQUEST_TYPES, primaryType: "Request", message: { ...message, price: "1" } });
  const preflight = getContract({ address, abi: preflightAbi, client: createPublicClient({ chain: hardhat, transport: http() }) });
  const earned: bigint = await preflight.read.earningsOf([address, address]);
  void earned;
  const typed: Preflight = Preflight__factory.connect(address);
  const verifier: Promise<PreflightVerifier> = PreflightVerifier.create({ contract: typed, provider: address, fromBlock: 0 });
  void verifier;
  const decision: Decision | undefined = undefined;
  const deployment: PreflightDeployment | undefined = undefined;
  void decision, deployment;
}
`;

describe("Packages: npm pack, install into a fresh project, use from Node and TypeScript", function () {
  this.timeout(600_000);
  const temp = tempDir("preflight-pack-");
  const project = path.join(temp.dir, "consumer");
  let sdk: PackedPackage;
  let provider: PackedPackage;

  before(async function () {
    await buildPackages();
    sdk = await packPackage(PACKAGE_DIRS.sdk, temp.dir);
    provider = await packPackage(PACKAGE_DIRS.provider, temp.dir);
    await run("mkdir", ["-p", project], { cwd: temp.dir });
    writeFileSync(path.join(project, "package.json"), JSON.stringify({ name: "preflight-consumer", private: true, type: "module" }));
    const exact = (name: string): string => `${name}@${installedVersion(name)}`;
    await run(
      "npm",
      ["install", "--no-audit", "--no-fund", "--prefer-offline", sdk.tarball, provider.tarball, exact("ethers"), exact("viem"), exact("typescript"), exact("@types/node")],
      { cwd: project, timeoutMs: 300_000 },
    );
  });

  after(() => temp.dispose());

  it("ships only dist/, README.md and package.json in each tarball", function () {
    for (const pkg of [sdk, provider]) {
      const stray = pkg.files.filter((f) => !(f.startsWith("dist/") || f === "README.md" || f === "package.json"));
      expect(stray, `${pkg.name}: files outside dist/`).to.deep.equal([]);
      expect(pkg.files.filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts") && !f.endsWith(".d.mts")), `${pkg.name}: TypeScript sources`).to.deep.equal([]);
      for (const f of ["README.md", "dist/index.mjs", "dist/index.js", "dist/index.d.ts", "dist/index.d.mts"]) expect(pkg.files, pkg.name).to.include(f);
    }
    for (const sub of ["abi", "typechain", "deployments"]) expect(sdk.files).to.include(`dist/${sub}.mjs`);
    expect(sdk.files.join(" ")).not.to.match(/bytecode|test|bench/i);
  });

  it("imports every entry from an ES module: ethers and viem sign alike, one error class, libsecp256k1 loads", async function () {
    writeFileSync(path.join(project, "esm.mjs"), ESM_CONSUMER);
    const out = JSON.parse(await run(process.execPath, ["esm.mjs"], { cwd: project })) as Record<string, unknown>;
    expect(out).to.deep.equal({
      sameSignature: true,
      recovered: true,
      digest: 66,
      abiHasSettleBatch: true,
      iface: "string",
      deployments: "object",
      unknownChain: "UNKNOWN_DEPLOYMENT",
      provider: "functionfunction",
      crypto: { recover: "libsecp256k1", keccak: "native" },
    });
    const pure = JSON.parse(await run(process.execPath, ["esm.mjs"], { cwd: project, env: { ...process.env, PREFLIGHT_PURE_JS: "1" } })) as { crypto: unknown };
    expect(pure.crypto).to.deep.equal({ recover: "noble", keccak: "noble" });
  });

  it("requires them from CommonJS", async function () {
    writeFileSync(path.join(project, "cjs.cjs"), CJS_CONSUMER);
    expect(JSON.parse(await run(process.execPath, ["cjs.cjs"], { cwd: project }))).to.deep.equal({ code: "UNKNOWN_DEPLOYMENT", digest: 66, verifier: "function" });
  });

  it("type-checks a TypeScript consumer and the examples/ projects (NodeNext and bundler resolution, strict, no skipLibCheck)", async function () {
    writeFileSync(path.join(project, "consumer.ts"), TS_CONSUMER);
    // examples/<name>/src/index.ts import the packages by name, as the copied-out projects do.
    const examples = ["dapp", "dapp-viem", "provider", "indexer"].map((name) => {
      const file = `example-${name}.ts`;
      copyFileSync(path.join(ROOT, "examples", name, "src", "index.ts"), path.join(project, file));
      return file;
    });
    const tsc = path.join(project, "node_modules", "typescript", "bin", "tsc");
    // Node services resolve with nodenext, Vite and Next.js with bundler: check both, side by side.
    const settings = [["nodenext", "nodenext"], ["esnext", "bundler"]] as const;
    await Promise.all(
      settings.map(([module, resolution]) =>
        run(process.execPath, [tsc, "--noEmit", "--strict", "--target", "es2022", "--module", module, "--moduleResolution", resolution, "--types", "node", "consumer.ts", ...examples], {
          cwd: project,
        }),
      ),
    );
  });
});
