/**
 * The paying fetch: a drop-in `fetch` that answers a Preflight gateway's `402 Payment Required`
 * by signing with a session key (ethers or viem), for the browser and Node.
 *
 * @example
 * import { createPayingFetch, fromViem } from "@preflight/sdk/fetch";
 * const pay = createPayingFetch({ signer: fromViem(privateKeyToAccount(sessionKey)), payer, maxPricePerRequest: 10_000n, maxLaneTotal: 1_000_000n });
 * const openai = new OpenAI({ baseURL: `${gatewayUrl}/v1`, apiKey: "unused", fetch: pay });
 */
export { createPayingFetch, readPaymentRefusal, PayingFetchError, type PaymentRefusal, type PayingFetch, type PayingFetchOptions, type LaneView, type FetchLike } from "./payingFetch";
export { fromEthers, fromViem, type PaymentSigner, type PaymentTypedData, type EthersLikeSigner, type ViemLikeAccount, type ViemLikeWalletClient, type Hex } from "./signer";
export * from "./protocol";
export { reasonSentence } from "../reasons";
