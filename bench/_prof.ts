import { ethers, network } from "hardhat";
import { Wallet } from "ethers";
import { signRequest } from "@preflight/sdk";
import { encodePacked } from "@preflight/sdk";
async function main() {
  const [d] = await ethers.getSigners();
  const pf = await ethers.deployContract("Preflight", [86400n, 0, ethers.ZeroAddress]);
  const usdc = await ethers.deployContract("TestToken", ["U", "U", 6]);
  const payer = new Wallet(ethers.id("p"), ethers.provider);
  const provider = new Wallet(ethers.id("q"), ethers.provider);
  await network.provider.send("hardhat_setBalance", [provider.address, "0x56BC75E2D63100000"]);
  const token = await usdc.getAddress();
  await usdc.mint(d!.address, 10n ** 12n); await usdc.approve(await pf.getAddress(), ethers.MaxUint256);
  await pf.deposit(payer.address, token, 10n ** 10n);
  const domain = { chainId: (await ethers.provider.getNetwork()).chainId, verifyingContract: await pf.getAddress() };
  const N = Number(process.env.N ?? 10);
  const mk = async (start: number) => { const items = []; for (let i = 0; i < N; i++) { const r = { payer: payer.address, provider: provider.address, token, model: ethers.id("m"), price: 1000n, nonce: BigInt(start + i), deadline: 4_000_000_000n, inputHash: ethers.id("x" + (start + i)) }; items.push({ request: r, signature: await signRequest(payer, domain, r, true) }); } return encodePacked(items); };
  await (await pf.connect(provider).settlePacked(token, await mk(0))).wait();
  const rc = await (await pf.connect(provider).settlePacked(token, await mk(N))).wait();
  console.log("gasUsed", rc!.gasUsed);
  const t = await network.provider.send("debug_traceTransaction", [rc!.hash, { disableMemory: true, disableStorage: true, disableStack: true }]) as any;
  const by: Record<string, [number, number]> = {};
  for (const l of t.structLogs) { if (l.depth !== 1) continue; const e = by[l.op] ?? [0, 0]; e[0] += l.gasCost; e[1]++; by[l.op] = e; }
  const rows = Object.entries(by).sort((a, b) => b[1][0] - a[1][0]);
  for (const [op, [g, c]] of rows.slice(0, 30)) console.log(op.padEnd(14), String(g).padStart(8), String(c).padStart(6));
}
main().catch((e) => { console.error(e); process.exitCode = 1; });
