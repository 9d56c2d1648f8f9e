/** A dApp page on ethers: the payer's Wallet signs a grant, an in-page session key signs a request. */
import { Wallet } from "ethers";
import { createSignedRequest, keccak256, modelId, signGrant, type GrantTerms } from "@preflight/sdk";
import { MODEL, PRICE, publish, readInput } from "./shared";

async function main(): Promise<void> {
  const input = readInput();
  const now = BigInt(input.now);
  const domain = { chainId: BigInt(input.chainId), verifyingContract: input.preflight };
  const payer = new Wallet(input.payerKey);
  const session = Wallet.createRandom();
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
  const signature = await signGrant(payer, domain, { ...terms, payer: payer.address, epoch: 0n, deadline });
  const request = await createSignedRequest(session, domain, {
    payer: payer.address,
    provider: input.provider,
    token: input.token,
    model: modelId(MODEL),
    price: PRICE,
    nonce: 0n,
    deadline,
    inputHash: keccak256("Hello from ethers"),
  });
  publish({ library: "ethers", payer: payer.address, delegate: session.address, grant: { terms: { ...terms }, deadline: deadline.toString(), signature }, request: { ...request } });
}

void main();
