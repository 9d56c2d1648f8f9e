import { expect } from "chai";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { generateSdkSources } from "../../packages/sdk/scripts/generate";
import { tempDir } from "../helpers/packages";

/** A repository-shaped folder with what the generator reads. */
function fakeRepository(root: string, registry: Record<string, unknown>): void {
  const write = (file: string, content: string): void => {
    mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    writeFileSync(path.join(root, file), content);
  };
  write("artifacts/contracts/Preflight.sol/Preflight.json", JSON.stringify({ abi: [{ type: "function", name: "settle", inputs: [], outputs: [], stateMutability: "nonpayable" }] }));
  write("typechain-types/common.ts", "export type X = 1;\n");
  write("typechain-types/contracts/Preflight.ts", 'import type { X } from "../common";\nexport type Preflight = X;\n');
  for (const [file, record] of Object.entries(registry)) write(`deployments/${file}`, JSON.stringify(record));
}

const record = (chainId: number) => ({
  chainId,
  network: `net${chainId}`,
  contracts: { Preflight: { address: "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", block: 12, transactionHash: `0x${"ab".repeat(32)}` } },
});

describe("@preflight/sdk generated sources", function () {
  it("take the ABI and typechain types from the build, and only public chains from deployments/", function () {
    const temp = tempDir("preflight-generate-");
    try {
      fakeRepository(temp.dir, { "8453.json": record(8453), "31337.json": record(31337), "1337.json": record(1337), "README.md": "" });
      generateSdkSources(temp.dir);
      const out = (file: string): string => readFileSync(path.join(temp.dir, "packages/sdk/src/generated", file), "utf8");
      expect(out("abi.ts")).to.contain('"name": "settle"').and.to.contain("as const");
      expect(out("typechain/Preflight.ts")).to.contain('from "./common"');
      const deployments = out("deployments.ts");
      expect(deployments).to.contain('"8453"').and.to.contain("net8453");
      expect(deployments).not.to.contain("31337");
      expect(deployments).not.to.contain('"1337"');
    } finally {
      temp.dispose();
    }
  });

  it("say what to run when the contracts are not compiled, and refuse a registry file of another chain", function () {
    const temp = tempDir("preflight-generate-");
    try {
      expect(() => generateSdkSources(temp.dir)).to.throw(/run `npx hardhat compile` first/);
      fakeRepository(temp.dir, { "10.json": record(8453) });
      expect(() => generateSdkSources(temp.dir)).to.throw(/deployments\/10\.json is for chain 8453/);
    } finally {
      temp.dispose();
    }
  });
});
