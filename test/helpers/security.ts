/**
 * Helpers for the adversarial suite (test/security) and the property tests (test/invariants):
 * signature surgery (malleable twins, compact/long forms, wrong v), signed grants, and a way to run a
 * deployment as if the chain id had changed under it (a fork).
 */
import { ethers, network } from "hardhat";
import { Signature, type Signer } from "ethers";
import secp256k1 from "secp256k1";
import {
  domainSeparator,
  encodeType,
  hashRequest,
  REQUEST_TYPES,
  signGrant,
  type GrantTerms,
  type PreflightDomain,
  type Request,
} from "@preflight/sdk";
import type { Preflight } from "../../typechain-types";
import type { SignedRequestStruct } from "../../typechain-types/contracts/Preflight";
import { toSignedRequest } from "./requests";

/** secp256k1 group order. */
export const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

const hex32 = (x: bigint): string => ethers.toBeHex(x, 32);

/** The malleable twin of a 65-byte signature: (r, n - s, v ^ 1). Recovers to the same key. */
export function highS(signature: string): string {
  const sig = Signature.from(signature);
  const s = SECP256K1_N - BigInt(sig.s);
  const v = sig.v === 27 ? 28 : 27;
  return ethers.concat([sig.r, hex32(s), ethers.toBeHex(v, 1)]);
}

/** The EIP-2098 64-byte form (r, vs) of a 65-byte signature. */
export function toCompact(signature: string): string {
  return Signature.from(signature).compactSerialized;
}

/** A 65-byte signature with its v byte replaced. */
export function withV(signature: string, v: number): string {
  return ethers.concat([ethers.dataSlice(signature, 0, 64), ethers.toBeHex(v, 1)]);
}

/** A 64-byte signature whose s (in vs) is the high-s twin: same key, malleable encoding. */
export function compactHighS(signature: string): string {
  const sig = Signature.from(signature);
  const s = SECP256K1_N - BigInt(sig.s);
  const parity = sig.v === 27 ? 1n : 0n; // the twin has the other parity
  return ethers.concat([sig.r, hex32((parity << 255n) | s)]);
}

/** Grant terms with permissive defaults; override any field. */
export function terms(fields: Pick<GrantTerms, "delegate" | "token"> & Partial<GrantTerms>): GrantTerms {
  return {
    provider: ethers.ZeroAddress,
    maxPrice: 10n ** 24n,
    budget: 10n ** 25n,
    period: 0n,
    expiry: 2n ** 32n - 1n,
    models: [],
    ...fields,
  };
}

/**
 * A signature of `t` for `grantBySig`, at the grant's current epoch unless `options.epoch` is given.
 * `options.payer` names the payer when `signer` signs for a smart account (ERC-1271).
 */
export async function signedGrant(
  preflight: Preflight,
  signer: Signer,
  domain: PreflightDomain,
  t: GrantTerms,
  deadline: bigint,
  options: { payer?: string; epoch?: bigint } = {},
): Promise<string> {
  const payer = options.payer ?? (await signer.getAddress());
  const current = (await preflight.grantOf(payer, t.token, t.delegate)).epoch;
  return signGrant(signer, domain, { ...t, payer, epoch: options.epoch ?? current, deadline });
}

/**
 * Makes the deployment at `address` behave as if it had been deployed on chain `originalChainId`
 * and the chain had since changed id to the current one (a chain split / fork): the immutable
 * cached chain id and domain separator baked into the runtime code are replaced by those of
 * `originalChainId`. Storage (balances, nonces, grants) is kept.
 * @returns the domain separator the contract had cached for `originalChainId`
 */
export async function pretendDeployedOnChain(address: string, originalChainId: bigint): Promise<string> {
  const { chainId } = await ethers.provider.getNetwork();
  const preflight = await ethers.getContractAt("Preflight", address);
  const current = await preflight.DOMAIN_SEPARATOR();
  const domain = { name: "Preflight", version: "1", verifyingContract: address };
  const original = ethers.TypedDataEncoder.hashDomain({ ...domain, chainId: originalChainId });
  let code = (await ethers.provider.getCode(address)).slice(2);
  // Immutables are materialised in the runtime code as PUSH32 (0x7f) of their value.
  const swap = (from: string, to: string): number => {
    const needle = `7f${from.slice(2)}`;
    const parts = code.split(needle);
    code = parts.join(`7f${to.slice(2)}`);
    return parts.length - 1;
  };
  const separators = swap(current, original);
  const chainIds = swap(hex32(chainId), hex32(originalChainId));
  if (separators === 0 || chainIds === 0) throw new Error("immutables not found in the runtime code");
  await network.provider.send("hardhat_setCode", [address, `0x${code}`]);
  return original;
}

/** The contract's `Reason` codes for items skipped in a batch (one mirror, in ./signatures). */
export { Reason } from "./signatures";
import { Reason } from "./signatures";
/** One of the `Reason` codes. */
export type ReasonCode = (typeof Reason)[keyof typeof Reason];

/** The EIP-7825 per-transaction gas cap (Osaka): no transaction, hence no batch, may use more. */
export const TX_GAS_CAP = 1n << 24n;

/** The most gas one transaction may use on the current chain: min(block gas limit, EIP-7825 cap). */
export async function maxTransactionGas(): Promise<bigint> {
  const block = await ethers.provider.getBlock("latest");
  const limit = block!.gasLimit;
  return limit < TX_GAS_CAP ? limit : TX_GAS_CAP;
}

/**
 * A fast signer of requests for tests that need thousands of them: the digest is built by hand and
 * signed with libsecp256k1 (~0.1 ms per request instead of ~2.5 ms through ethers' typed-data encoder).
 * The first digest is checked against the SDK's `hashRequest`, so the two cannot drift.
 * @returns a function turning a request into the contract's calldata struct, with a 64-byte signature
 */
export function fastRequestSigner(privateKey: string, domain: PreflightDomain): (request: Request) => SignedRequestStruct {
  const separator = domainSeparator(domain);
  const typehash = ethers.id(encodeType(REQUEST_TYPES, "Request"));
  const key = ethers.getBytes(privateKey);
  const word = (x: bigint | string) => ethers.toBeHex(typeof x === "string" ? BigInt(x) : x, 32);
  let checked = false;
  return (request) => {
    const structHash = ethers.keccak256(
      ethers.concat([
        typehash,
        word(request.payer),
        word(request.provider),
        word(request.token),
        request.model,
        word(request.price),
        word(request.nonce),
        word(request.deadline),
        request.inputHash,
      ]),
    );
    const digest = ethers.keccak256(ethers.concat(["0x1901", separator, structHash]));
    if (!checked) {
      if (digest !== hashRequest(domain, request)) throw new Error("fast digest differs from the SDK's hashRequest");
      checked = true;
    }
    const { signature, recid } = secp256k1.ecdsaSign(ethers.getBytes(digest), key);
    const vs = new Uint8Array(signature.slice(32));
    vs[0] |= recid << 7; // EIP-2098: the parity goes into the top bit of s
    return toSignedRequest(request, ethers.hexlify(ethers.concat([signature.slice(0, 32), vs])));
  };
}
