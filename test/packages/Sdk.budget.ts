import { expect } from "chai";
import { build, type Metafile } from "esbuild";
import path from "node:path";
import vm from "node:vm";
import { webcrypto } from "node:crypto";
import { gzipSync } from "node:zlib";
import { ROOT, buildPackages } from "../helpers/packages";

/** The budget of the client's signing entry, bundled for the browser with ethers and viem external. */
const BUDGET_BYTES = 40 * 1024;

interface Bundle {
  code: Uint8Array;
  metafile: Metafile;
}

/** Bundles the built `@preflight/sdk` main entry, resolved by package name as a dApp's bundler does. */
async function bundleSigningEntry(format: "esm" | "iife"): Promise<Bundle> {
  const result = await build({
    stdin: { contents: 'export * from "@preflight/sdk";', resolveDir: ROOT, loader: "js" },
    bundle: true,
    minify: true,
    format,
    globalName: format === "iife" ? "preflightSdk" : undefined,
    platform: "browser",
    external: ["ethers", "viem"],
    write: false,
    metafile: true,
    tsconfigRaw: {}, // the package's dist, not the repository's source paths
    logLevel: "silent",
  });
  return { code: result.outputFiles[0]!.contents, metafile: result.metafile };
}

const kb = (bytes: number): string => (bytes / 1024).toFixed(1);

describe("@preflight/sdk browser budget", function () {
  this.timeout(300_000);

  before(async function () {
    await buildPackages();
  });

  it("bundles the signing entry in at most 40 KB minified (ethers and viem external), from the dist only", async function () {
    const { code, metafile } = await bundleSigningEntry("esm");
    const gzip = gzipSync(code, { level: 9 }).length;
    console.log(`      @preflight/sdk signing entry: ${kb(code.length)} KB minified, ${kb(gzip)} KB gzip (budget ${kb(BUDGET_BYTES)} KB minified)`);
    expect(code.length).to.be.at.most(BUDGET_BYTES);
    const inputs = Object.keys(metafile.inputs).filter((input) => input !== "<stdin>");
    const allowed = inputs.filter((input) => input.startsWith("packages/sdk/dist/") || input.startsWith("node_modules/@noble/hashes/"));
    expect(inputs, "only the package's dist and @noble/hashes are bundled").to.deep.equal(allowed);
    expect(inputs).to.include("packages/sdk/dist/index.mjs");
    const imports = Object.values(metafile.outputs).flatMap((output) => output.imports.map((i) => i.path));
    expect(imports, "the bundle imports nothing at run time (neither ethers nor viem)").to.deep.equal([]);
  });

  it("loads and signs in a realm without Node: no require, process, Buffer or built-in modules", async function () {
    const { code } = await bundleSigningEntry("iife");
    const text = new TextDecoder().decode(code);
    expect(text).not.to.match(/\brequire\(|\bprocess\.|\bBuffer\b|node:/);
    // A bare realm with only what every browser page has: no Node globals at all.
    const realm = vm.createContext({ TextEncoder, TextDecoder, crypto: webcrypto, console });
    vm.runInContext(text, realm, { filename: path.join("bundle", "sdk.js") });
    const check = vm.runInContext(
      `(() => {
        const sdk = preflightSdk;
        const domain = { chainId: 8453n, verifyingContract: "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed" };
        const request = { payer: domain.verifyingContract, provider: domain.verifyingContract, token: domain.verifyingContract,
          model: sdk.modelId("llama-3.1-70b"), price: 20000n, nonce: 0n, deadline: 1700000000n, inputHash: sdk.keccak256("Hello") };
        const signature = "0x" + "11".repeat(32) + "22".repeat(32) + "1b";
        return { digest: sdk.hashRequest(domain, request), packed: sdk.encodePacked([{ request, signature }], { isContract: () => false }).length, reason: sdk.reasonName(11) };
      })()`,
      realm,
    ) as { digest: string; packed: number; reason: string };
    const sdk = await import("@preflight/sdk");
    const domain = { chainId: 8453n, verifyingContract: "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed" };
    const request = { payer: domain.verifyingContract, provider: domain.verifyingContract, token: domain.verifyingContract, model: sdk.modelId("llama-3.1-70b"), price: 20000n, nonce: 0n, deadline: 1700000000n, inputHash: sdk.keccak256("Hello") };
    const signature = "0x" + "11".repeat(32) + "22".repeat(32) + "1b";
    // The same encoding as in Node, whatever the packed layout is (a hex string of that many chars).
    const packed = sdk.encodePacked([{ request, signature }], { isContract: () => false }).length;
    expect(check).to.deep.equal({ digest: sdk.hashRequest(domain, request), packed, reason: "NonceUsed" });
  });
});
