/**
 * A dApp page that pays a gateway on another origin with the paying fetch, inside the official
 * `openai` client, both as a dApp bundles them (the SDK's published browser build). It gets its
 * input in the URL fragment and leaves what it saw on `window` (see `Gateway.cors.ts`).
 */
import OpenAI from "openai";
import { privateKeyToAccount } from "viem/accounts";
import { createPayingFetch, decodeHeader, fromViem, PAYMENT_REQUIRED_HEADER, type PaymentRequired } from "@preflight/sdk/fetch";

export interface PayingPageInput {
  /** The gateway's origin. */
  gateway: string;
  /** Keys: a payer with escrow (per-request) and one with a lane (metered). */
  payerKey: `0x${string}`;
  laneKey: `0x${string}`;
  /** Seconds the chain's clock runs ahead of the page's. */
  clockOffset: number;
  perRequestModel: string;
  meteredModel: string;
  price: string;
  maxLaneTotal: string;
}

export interface PayingPageOutput {
  /** The unpaid call: its status and whether the page could read what to pay from the header. */
  unpaidStatus: number;
  requiredAmount?: string;
  /** Per request through the openai client: the completion, and the receipt's amount. */
  completion?: string | null;
  paidAmount?: string;
  /** Metered, streamed twice: the text of each and the lane's total owed after each. */
  streamed: string[];
  laneOwed: string[];
  error?: string;
}

async function main(): Promise<PayingPageOutput> {
  const input = JSON.parse(decodeURIComponent(location.hash.slice(1))) as PayingPageInput;
  const now = () => Math.floor(Date.now() / 1000) + input.clockOffset;
  const messages = [{ role: "user" as const, content: "say eight tokens" }];
  const output: PayingPageOutput = { unpaidStatus: 0, streamed: [], laneOwed: [] };
  try {
    const unpaid = await fetch(`${input.gateway}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: input.perRequestModel, messages }) });
    output.unpaidStatus = unpaid.status;
    const header = unpaid.headers.get(PAYMENT_REQUIRED_HEADER);
    if (header) output.requiredAmount = decodeHeader<PaymentRequired>(header).accepts[0]?.amount;

    const receipts: string[] = [];
    const pay = createPayingFetch({ now, signer: fromViem(privateKeyToAccount(input.payerKey)), maxPricePerRequest: BigInt(input.price), onPaymentResponse: (r) => receipts.push(r.amount) });
    const openai = new OpenAI({ baseURL: `${input.gateway}/v1`, apiKey: "unused", fetch: pay, maxRetries: 0, dangerouslyAllowBrowser: true });
    const completion = await openai.chat.completions.create({ model: input.perRequestModel, messages });
    output.completion = completion.choices[0]?.message.content;
    output.paidAmount = receipts[0];

    const payLane = createPayingFetch({ now, signer: fromViem(privateKeyToAccount(input.laneKey)), maxPricePerRequest: 0n, maxLaneTotal: BigInt(input.maxLaneTotal), prefer: "preflight-lane" });
    const metered = new OpenAI({ baseURL: `${input.gateway}/v1`, apiKey: "unused", fetch: payLane, maxRetries: 0, dangerouslyAllowBrowser: true });
    for (let i = 0; i < 2; i++) {
      const stream = await metered.chat.completions.create({ model: input.meteredModel, messages, stream: true });
      let text = "";
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
      output.streamed.push(text);
      output.laneOwed.push(String(payLane.lanes()[0]?.owed ?? "none"));
    }
  } catch (e) {
    output.error = `${(e as Error).name}: ${(e as Error).message}`;
  }
  return output;
}

// Only in a page (the test runner also loads every file under test/).
if (typeof window !== "undefined") {
  void main().then((output) => {
    (window as unknown as { preflightResult: string }).preflightResult = JSON.stringify(output);
    document.title = "done";
  });
}
