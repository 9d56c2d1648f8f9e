import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { expect } from "chai";
import { freePort, runHardhat, startAnvil, type RunningNode } from "../helpers/nodes";

/**
 * `npm run demo -- --network localhost` against anvil: the per-step gas table comes from opcode
 * traces, which anvil records only with --steps-tracing; without it the demo says so precisely.
 * (The Hardhat node always traces; test/integration/Nodes.deploy.ts covers deploying to it.)
 */
describe("Demo against anvil: the per-step gas table", function () {
  this.timeout(300_000);
  let tracing: RunningNode | undefined;
  let plain: RunningNode | undefined;
  const dirs: string[] = [];

  before(async function () {
    [tracing, plain] = await Promise.all([freePort().then((p) => startAnvil(p, 31337, ["--steps-tracing"])), freePort().then((p) => startAnvil(p))]);
  });

  after(async function () {
    await Promise.all([tracing?.stop(), plain?.stop()]);
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  it("prints the table on anvil --steps-tracing, and says why not on a plain anvil", async function () {
    const env = (node: RunningNode) => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "preflight-demo-"));
      dirs.push(dir);
      return { LOCALHOST_RPC_URL: node.url, PREFLIGHT_DEPLOYMENTS_DIR: dir };
    };
    const args = ["run", "--no-compile", "--network", "localhost", "scripts/demo.ts"];
    const [withSteps, without] = await Promise.all([runHardhat(args, env(tracing!)), runHardhat(args, env(plain!))]);
    expect(withSteps.code, withSteps.stderr).to.equal(0);
    expect(withSteps.stdout).to.match(/operation +requests +intrinsic +hashing +recovery +permission +nonce +balances +events +rest +gasUsed +gas\/request/);
    expect(withSteps.stdout).to.match(/^settle \(provider\) payer-signed request +1 +\d+/m);
    expect(withSteps.stdout).to.not.contain("Not available");
    expect(without.code, without.stderr).to.equal(0);
    expect(without.stdout).to.contain(
      "Not available on this node: the node returned an empty opcode trace (anvil records one only when started with --steps-tracing: restart it as anvil --steps-tracing). The receipts above still hold.",
    );
  });
});
