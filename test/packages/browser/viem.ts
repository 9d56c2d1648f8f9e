/** A dApp page on viem: the payer's WalletClient signs a grant, an in-page session key signs a request. */
import { createWalletClient, custom } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { createSignedRequest, keccak256, modelId, signGrant, type GrantTerms } from "@preflight/sdk";
import { MODEL, PRICE, publish, readInput } from "./shared";

async function main(): Promise<void> {
  const input = readInput();
  const now = BigInt(input.now);
  const domain = { chainId: BigInt(input.chainId), verifyingContract: input.preflight };
  // The payer's wallet (here a local key; a browser wallet would be `custom(window.ethereum)`): no RPC needed to sign.
  const payer = createWalletClient({
    account: privateKeyToAccount(input.payerKey),
    transport: custom({ request: async () => Promise.reject(new Error("this page signs without RPC")) }),
  });
  const session = privateKeyToAccount(generatePrivateKey());
  const terms: GrantTerms = {
    delegate: session.address,
    token: input.token,
    provider: input.provider,
    maxPrice: 50_000n,
    budget: 1_000_000n,
    period: 3_600n,
    expiry: now + 86_400n,
    models: [modelId(MODEL)],
  };
  const deadline = now + 600n;
  const signature = await signGrant(payer, domain, { ...terms, payer: payer.account.address, epoch: 0n, deadline });
  const request = await createSignedRequest(session, domain, {
    payer: payer.account.address,
    provider: input.provider,
    token: input.token,
    model: modelId(MODEL),
    price: PRICE,
    nonce: 0n,
    deadline,
    inputHash: keccak256("Hello from viem"),
  });
  publish({ library: "viem", payer: payer.account.address, delegate: session.address, grant: { terms: { ...terms }, deadline: deadline.toString(), signature }, request: { ...request } });
}

void main();
