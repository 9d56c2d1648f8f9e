import { ethers } from "hardhat";
import { Signature, Wallet } from "ethers";
import { hashRequest, hashVoucher, signGrant, type GrantTerms, type PreflightDomain, type Request, type Voucher } from "@preflight/sdk";
import type { SignedRequest, SignedVoucher } from "@preflight/sdk";
import type { Preflight } from "../../typechain-types";
import { PreflightSdkError, type PreflightSdkErrorCode } from "@preflight/sdk";

/** secp256k1 group order. */
export const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

/** A funded wallet with a fixed key (fast local signing, deterministic across runs). */
export async function fundedWallet(index: number): Promise<Wallet> {
  const wallet = new Wallet(ethers.zeroPadValue(ethers.toBeHex(0xa11ce000 + index), 32), ethers.provider);
  await ethers.provider.send("hardhat_setBalance", [wallet.address, "0x56BC75E2D63100000"]);
  return wallet;
}

/** Signs `request` with the wallet's key directly (no provider round trip). */
export function signRequestFast(wallet: Wallet, domain: PreflightDomain, request: Request, compact = false): SignedRequest {
  const sig = wallet.signingKey.sign(hashRequest(domain, request));
  const { payer, token, model, price, nonce, deadline, inputHash } = request;
  return { payer, token, model, price, nonce, deadline, inputHash, signature: compact ? sig.compactSerialized : sig.serialized };
}

/** Signs `voucher` with the wallet's key directly. */
export function signVoucherFast(wallet: Wallet, domain: PreflightDomain, voucher: Voucher, compact = false): SignedVoucher {
  const sig = wallet.signingKey.sign(hashVoucher(domain, voucher));
  const { payer, token, model, channel, cumulativeAmount } = voucher;
  return { payer, token, model, channel, cumulativeAmount, signature: compact ? sig.compactSerialized : sig.serialized };
}

/** The high-s twin of a 65-byte signature (same signer for raw ECDSA, refused as malleable). */
export function malleate(signature: string): string {
  const sig = Signature.from(signature);
  const s = SECP256K1_N - BigInt(sig.s);
  return ethers.concat([sig.r, ethers.toBeHex(s, 32), sig.v === 27 ? "0x1c" : "0x1b"]);
}

/** Has `payer` sign a grant and `submitter` apply it with `grantBySig` (gasless onboarding). */
export async function grantBySignature(
  preflight: Preflight,
  domain: PreflightDomain,
  payer: Wallet,
  submitter: { address: string } & Parameters<Preflight["connect"]>[0],
  terms: GrantTerms,
): Promise<void> {
  const current = await preflight.grantOf(payer.address, terms.token, terms.delegate);
  const deadline = BigInt((await ethers.provider.getBlock("latest"))!.timestamp) + 3600n;
  const signature = await signGrant(payer, domain, { ...terms, payer: payer.address, epoch: current.epoch, deadline });
  await (await preflight.connect(submitter).grantBySig(payer.address, terms, deadline, signature)).wait();
}

/** Timestamp of the latest block. */
export async function latestTimestamp(): Promise<bigint> {
  return BigInt((await ethers.provider.getBlock("latest"))!.timestamp);
}

/** Asserts that `action` throws (or rejects with) a `PreflightSdkError` with `code`. */
export async function expectSdkError(action: () => unknown, code: PreflightSdkErrorCode): Promise<void> {
  let caught: unknown;
  try {
    await action();
  } catch (e) {
    caught = e;
  }
  if (!(caught instanceof PreflightSdkError)) throw new Error(`expected PreflightSdkError ${code}, got ${String(caught)}`);
  if (caught.code !== code) throw new Error(`expected code ${code}, got ${caught.code}`);
}
