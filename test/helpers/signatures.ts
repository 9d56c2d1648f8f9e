import { ethers } from "hardhat";
import { Signature } from "ethers";
import type { HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/signers";

/** The contract's `Reason` enum (contracts/interfaces/IPreflightTypes.sol), in declaration order. */
export const Reason = {
  Settled: 0n,
  Expired: 1n,
  SignatureLength: 2n,
  SignatureMalleable: 3n,
  InvalidSigner: 4n,
  GrantRevoked: 5n,
  GrantExpired: 6n,
  ProviderNotAllowed: 7n,
  ModelNotAllowed: 8n,
  PriceAboveCap: 9n,
  BudgetExceeded: 10n,
  NonceUsed: 11n,
  InsufficientBalance: 12n,
  NothingToClaim: 13n,
  TokenMismatch: 14n,
  NonceOutOfRange: 15n,
} as const;

/** The secp256k1 group order. */
export const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

/** The malleable twin of a 65-byte signature: s -> n - s and v flipped. Recovers the same signer. */
export function highS(signature: string): string {
  const sig = Signature.from(signature);
  const s = SECP256K1_N - BigInt(sig.s);
  const v = sig.v === 27 ? 28 : 27;
  return ethers.concat([sig.r, ethers.toBeHex(s, 32), ethers.toBeHex(v, 1)]);
}

/** A 65-byte signature whose v is neither 27 nor 28: ecrecover finds nobody (address zero). */
export function unrecoverable(signature: string): string {
  return ethers.concat([ethers.dataSlice(signature, 0, 64), "0x1d"]);
}

/** The 64-byte EIP-2098 form of a 65-byte signature. */
export function compact(signature: string): string {
  return Signature.from(signature).compactSerialized;
}

/** An EIP-2612 permit of `owner` letting `spender` pull `value` of `token` until `deadline`. */
export async function signPermit(
  token: { getAddress(): Promise<string>; name(): Promise<string>; nonces(owner: string): Promise<bigint> },
  owner: HardhatEthersSigner,
  spender: string,
  value: bigint,
  deadline: bigint,
): Promise<Signature> {
  const { chainId } = await ethers.provider.getNetwork();
  const domain = { name: await token.name(), version: "1", chainId, verifyingContract: await token.getAddress() };
  const types = {
    Permit: [
      { name: "owner", type: "address" },
      { name: "spender", type: "address" },
      { name: "value", type: "uint256" },
      { name: "nonce", type: "uint256" },
      { name: "deadline", type: "uint256" },
    ],
  };
  const message = { owner: owner.address, spender, value, nonce: await token.nonces(owner.address), deadline };
  return Signature.from(await owner.signTypedData(domain, types, message));
}
