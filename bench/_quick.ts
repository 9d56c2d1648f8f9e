import { runScenarios } from "./scenarios";
async function main() {
  const rows = await runScenarios({ peers: false, trace: process.env.TRACE !== undefined });
  for (const r of rows) console.log(r.scenario.padEnd(48), String(r.requests).padStart(4), r.state.padEnd(5), String(r.gasUsed).padStart(9), String(r.gasPerRequest).padStart(7), String(r.calldataBytesPerRequest).padStart(5), String(r.l1DataBytesPerRequest).padStart(7), String(r.brotliBytesPerRequest).padStart(7), r.steps ? JSON.stringify(r.steps) : "");
}
main().catch((e) => { console.error(e); process.exitCode = 1; });
