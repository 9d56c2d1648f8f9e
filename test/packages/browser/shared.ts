/**
 * What the browser pages and the test exchange: the page gets the deployment and the payer's key in
 * its URL fragment, signs in the page, and leaves JSON (bigints as decimal strings) on `window`.
 */
export interface PageInput {
  chainId: string;
  preflight: string;
  token: string;
  provider: string;
  payerKey: `0x${string}`;
  now: string;
}

export interface PageOutput {
  library: "viem" | "ethers";
  payer: string;
  delegate: string;
  grant: { terms: Record<string, unknown>; deadline: string; signature: string };
  request: Record<string, unknown>;
}

export const MODEL = "llama-3.1-70b";
export const PRICE = 20_000n;

export function readInput(): PageInput {
  return JSON.parse(decodeURIComponent(location.hash.slice(1))) as PageInput;
}

export function publish(output: PageOutput): void {
  const json = JSON.stringify(output, (_key, value: unknown) => (typeof value === "bigint" ? value.toString() : value));
  (window as unknown as { preflightResult: string }).preflightResult = json;
  document.title = "signed";
}
