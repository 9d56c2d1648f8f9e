import type { Log } from "ethers";
import { decodeRequestsSettled, REQUESTS_SETTLED_TOPIC, reasonName } from "@preflight/sdk";

/** Indexer side: what a settlement did, from its logs alone (never its calldata). */
export function settledRequests(logs: readonly Log[], preflight: string): string[] {
  const lines: string[] = [];
  for (const log of logs) {
    if (log.address.toLowerCase() !== preflight.toLowerCase() || log.topics[0] !== REQUESTS_SETTLED_TOPIC) continue;
    const { provider, token, records } = decodeRequestsSettled(log);
    for (const { payer, nonce, price, reason, delegate } of records) {
      const what = reason === 0 ? `paid ${price}${delegate ? ` (signed by ${delegate})` : ""}` : `skipped: ${reasonName(reason)}`;
      lines.push(`${payer} #${nonce} -> ${provider} in ${token}: ${what}`);
    }
  }
  return lines;
}
