/**
 * EIP-712 domain, type tables, hashers and signers for every message Preflight verifies.
 * The type tables are the single source of truth on the TypeScript side; a test checks each one
 * against the contract's typehash so the two can never drift.
 */
import { signTypedDataWith, toCompactSignature, type PreflightSigner } from "./signers";
import { encodeType as encodeTypeString, hashDomain, hashTypedData, type Eip712Domain, type TypedDataField } from "./typedData";
import type { Hex } from "./hex";

/** The EIP-712 domain of a Preflight deployment. */
export interface PreflightDomain {
  chainId: bigint;
  verifyingContract: string;
}

export const DOMAIN_NAME = "Preflight";
export const DOMAIN_VERSION = "1";

/** Type table of a signed inference request. */
export const REQUEST_TYPES = {
  Request: [
    { name: "payer", type: "address" },
    { name: "provider", type: "address" },
    { name: "token", type: "address" },
    { name: "model", type: "bytes32" },
    { name: "price", type: "uint96" },
    { name: "nonce", type: "uint256" },
    { name: "deadline", type: "uint256" },
    { name: "inputHash", type: "bytes32" },
  ],
} as const satisfies Record<string, readonly TypedDataField[]>;

/** Type table of a cumulative voucher. */
export const VOUCHER_TYPES = {
  Voucher: [
    { name: "payer", type: "address" },
    { name: "provider", type: "address" },
    { name: "token", type: "address" },
    { name: "model", type: "bytes32" },
    { name: "channel", type: "bytes32" },
    { name: "cumulativeAmount", type: "uint128" },
  ],
} as const satisfies Record<string, readonly TypedDataField[]>;

/** Type table of a grant signed by a payer (gasless onboarding). */
export const GRANT_TYPES = {
  Grant: [
    { name: "payer", type: "address" },
    { name: "delegate", type: "address" },
    { name: "token", type: "address" },
    { name: "provider", type: "address" },
    { name: "maxPrice", type: "uint88" },
    { name: "budget", type: "uint88" },
    { name: "period", type: "uint32" },
    { name: "expiry", type: "uint32" },
    { name: "models", type: "bytes32[]" },
    { name: "epoch", type: "uint16" },
    { name: "deadline", type: "uint256" },
  ],
} as const satisfies Record<string, readonly TypedDataField[]>;

/** The fields of a request, as signed. */
export interface Request {
  payer: string;
  provider: string;
  token: string;
  model: string;
  price: bigint;
  nonce: bigint;
  deadline: bigint;
  inputHash: string;
}

/** The fields of a voucher, as signed. */
export interface Voucher {
  payer: string;
  provider: string;
  token: string;
  model: string;
  channel: string;
  cumulativeAmount: bigint;
}

/** The scope of a grant, as passed to `grant` / `grantBySig` (the contract's `GrantTerms`). */
export interface GrantTerms {
  delegate: string;
  token: string;
  provider: string;
  maxPrice: bigint;
  budget: bigint;
  period: bigint;
  expiry: bigint;
  models: string[];
}

/** The fields of a grant, as signed by the payer. */
export interface GrantMessage extends GrantTerms {
  payer: string;
  epoch: bigint;
  deadline: bigint;
}

/**
 * A fully described typed-data payload, ready for a wallet's `eth_signTypedData_v4`, viem's
 * `signTypedData` or ethers' `signer.signTypedData(domain, types, message)`. `types` is the `as const`
 * table, so viem infers the message type from it.
 */
export interface TypedData<T extends Record<string, readonly TypedDataField[]>, P extends keyof T & string, M> {
  domain: Eip712Domain;
  types: T;
  primaryType: P;
  message: M;
}

/**
 * Builds the full EIP-712 domain object of a deployment (name, version, chain id, contract).
 * @example
 * const domain = buildDomain({ chainId: 31337n, verifyingContract: await preflight.getAddress() });
 */
export function buildDomain(domain: PreflightDomain): Eip712Domain {
  return { name: DOMAIN_NAME, version: DOMAIN_VERSION, chainId: domain.chainId, verifyingContract: domain.verifyingContract };
}

/**
 * The domain separator of a deployment, equal to the contract's `DOMAIN_SEPARATOR()`.
 * @example
 * const separator = domainSeparator({ chainId: 1n, verifyingContract: "0x..." });
 */
export function domainSeparator(domain: PreflightDomain): Hex {
  return hashDomain(buildDomain(domain));
}

/**
 * The typed data of a request, for a wallet's `eth_signTypedData_v4`.
 * @example
 * const td = getRequestTypedData(domain, { payer, provider, token, model, price: 10n, nonce: 0n, deadline, inputHash });
 */
export function getRequestTypedData(domain: PreflightDomain, request: Request): TypedData<typeof REQUEST_TYPES, "Request", Request> {
  return { domain: buildDomain(domain), types: REQUEST_TYPES, primaryType: "Request", message: request };
}

/**
 * The typed data of a voucher.
 * @example
 * const td = getVoucherTypedData(domain, { payer, provider, token, model, channel, cumulativeAmount: 500n });
 */
export function getVoucherTypedData(domain: PreflightDomain, voucher: Voucher): TypedData<typeof VOUCHER_TYPES, "Voucher", Voucher> {
  return { domain: buildDomain(domain), types: VOUCHER_TYPES, primaryType: "Voucher", message: voucher };
}

/**
 * The typed data of a grant a payer signs for `grantBySig`.
 * @example
 * const td = getGrantTypedData(domain, { ...terms, payer, epoch: 0n, deadline });
 */
export function getGrantTypedData(domain: PreflightDomain, grant: GrantMessage): TypedData<typeof GRANT_TYPES, "Grant", GrantMessage> {
  return { domain: buildDomain(domain), types: GRANT_TYPES, primaryType: "Grant", message: grant };
}

/**
 * The EIP-712 digest of a request: what the payer or delegate signs.
 * @example
 * const digest = hashRequest(domain, request);
 */
export function hashRequest(domain: PreflightDomain, request: Request): Hex {
  return hashTypedData(buildDomain(domain), REQUEST_TYPES, "Request", request);
}

/**
 * The EIP-712 digest of a voucher.
 * @example
 * const digest = hashVoucher(domain, voucher);
 */
export function hashVoucher(domain: PreflightDomain, voucher: Voucher): Hex {
  return hashTypedData(buildDomain(domain), VOUCHER_TYPES, "Voucher", voucher);
}

/**
 * The EIP-712 digest of a signed grant.
 * @example
 * const digest = hashGrant(domain, { ...terms, payer, epoch: 0n, deadline });
 */
export function hashGrant(domain: PreflightDomain, grant: GrantMessage): Hex {
  return hashTypedData(buildDomain(domain), GRANT_TYPES, "Grant", grant);
}

/**
 * The encoded type string of a primary type, whose keccak-256 is the contract's typehash.
 * @example
 * encodeType(REQUEST_TYPES, "Request"); // "Request(address payer,address provider,...)"
 */
export function encodeType(types: Record<string, readonly TypedDataField[]>, primaryType: string): string {
  return encodeTypeString(types, primaryType);
}

/**
 * Signs a request (as the payer, or a delegate key within a grant) with an ethers v6 `Signer`, a viem
 * local `Account` or a viem `WalletClient`.
 * @param compact return the 64-byte EIP-2098 form (cheaper calldata) instead of 65 bytes
 * @example
 * const signature = await signRequest(sessionKey, domain, request);
 */
export async function signRequest(signer: PreflightSigner, domain: PreflightDomain, request: Request, compact = false): Promise<Hex> {
  const signature = await signTypedDataWith(signer, buildDomain(domain), REQUEST_TYPES, "Request", request);
  return compact ? toCompactSignature(signature) : signature;
}

/**
 * Signs a voucher with an ethers `Signer`, a viem `Account` or a viem `WalletClient`.
 * @example
 * const signature = await signVoucher(payer, domain, voucher);
 */
export async function signVoucher(signer: PreflightSigner, domain: PreflightDomain, voucher: Voucher, compact = false): Promise<Hex> {
  const signature = await signTypedDataWith(signer, buildDomain(domain), VOUCHER_TYPES, "Voucher", voucher);
  return compact ? toCompactSignature(signature) : signature;
}

/**
 * Signs a grant as the payer (ethers `Signer`, viem `Account` or `WalletClient`), for anyone to
 * submit with `grantBySig`.
 * @example
 * const signature = await signGrant(payer, domain, { ...terms, payer: payer.address, epoch: 0n, deadline });
 */
export async function signGrant(signer: PreflightSigner, domain: PreflightDomain, grant: GrantMessage): Promise<Hex> {
  return signTypedDataWith(signer, buildDomain(domain), GRANT_TYPES, "Grant", grant);
}
