import fs from "node:fs";
import path from "node:path";
import { expect } from "chai";
import { GAS_REPORT, README, ROOT, gasSection, readGasReport, renderReadme } from "../../scripts/docs/readme";

const readme = (): string => fs.readFileSync(README, "utf8");

/** Relative link targets of a markdown file (links and images), without anchors. */
function relativeLinks(file: string): string[] {
  const text = fs.readFileSync(file, "utf8");
  return [...text.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!).filter((l) => !/^[a-z]+:/.test(l) && !l.startsWith("#")).map((l) => l.split("#")[0]!);
}

describe("README: the front door", function () {
  it("its gas section is exactly what npm run docs:readme generates from the committed reports/gas.json", function () {
    const text = readme();
    expect(renderReadme(text, readGasReport(GAS_REPORT)), "README.md is stale: run npm run docs:readme").to.equal(text);
    expect(text).to.contain(gasSection(readGasReport(GAS_REPORT)));
  });

  it("the headline table has at most ten rows, and the chart it shows is committed", function () {
    const rows = gasSection(readGasReport(GAS_REPORT)).split("\n").filter((l) => l.startsWith("| ") && !l.startsWith("| scenario"));
    expect(rows.length).to.be.within(1, 10);
    expect(fs.existsSync(path.join(ROOT, "reports", "gas-per-request.svg"))).to.equal(true);
  });

  it("stays short (at most 12 KB) and links only to files in the repository, which exist", function () {
    expect(Buffer.byteLength(readme())).to.be.at.most(12 * 1024);
    const docs = fs.existsSync(path.join(ROOT, "docs")) ? fs.readdirSync(path.join(ROOT, "docs")).filter((f) => f.endsWith(".md")).map((f) => path.join(ROOT, "docs", f)) : [];
    for (const file of [README, ...docs]) {
      for (const link of relativeLinks(file)) {
        const target = path.resolve(path.dirname(file), link);
        expect(target.startsWith(ROOT + path.sep), `${path.relative(ROOT, file)} links outside the repository: ${link}`).to.equal(true);
        expect(fs.existsSync(target), `${path.relative(ROOT, file)} links to a missing file: ${link}`).to.equal(true);
      }
      expect(fs.readFileSync(file, "utf8"), `${path.relative(ROOT, file)} cites a file that is not in the repository`).to.not.match(/DESIGN\.md|STYLE\.md/);
    }
  });

  it("links to the docs for the contracts, deploying and tasks, the SDK, the gas report and the tests", function () {
    const text = readme();
    for (const doc of ["docs/contracts.md", "docs/deploying.md", "docs/sdk.md", "docs/gas.md", "docs/testing.md"]) {
      expect(text, `README links ${doc}`).to.contain(`](${doc})`);
    }
  });
});
