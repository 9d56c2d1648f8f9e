/**
 * Who can sign for Preflight: an ethers v6 `Signer`, a viem local `Account` (e.g.
 * `privateKeyToAccount`), or a viem `WalletClient` (a browser wallet, or any account it holds).
 * The shapes below are structural, so this package imports neither library: a dApp brings the one
 * it uses, and the other is never bundled.
 */
import { PreflightSdkError } from "./errors";
import { checksumAddress, hexToBytes, bytesToHex, type Hex } from "./hex";
import type { Eip712Domain, TypedDataField, TypedDataTypes } from "./typedData";

/** What this package needs of an ethers v6 `Signer` (`Wallet`, `JsonRpcSigner`, `HDNodeWallet`, ...). */
export interface EthersSignerLike {
  getAddress(): Promise<string>;
  signTypedData(domain: Eip712Domain, types: Record<string, TypedDataField[]>, value: Record<string, unknown>): Promise<string>;
}

/** The typed-data request a viem account or wallet client signs (viem's `signTypedData` parameters). */
export interface ViemTypedDataParameters {
  domain: { name: string; version: string; chainId: bigint; verifyingContract: Hex };
  types: TypedDataTypes;
  primaryType: string;
  message: Record<string, unknown>;
}

/** A viem local account (`privateKeyToAccount`, `mnemonicToAccount`, `toAccount`): signs in-process. */
export interface ViemLocalAccountLike {
  address: Hex;
  type: "local";
  signTypedData: (parameters: never) => Promise<Hex>;
}

/** A viem JSON-RPC account (an address a wallet holds): it signs only through its `WalletClient`. */
export interface ViemJsonRpcAccountLike {
  address: Hex;
  type: "json-rpc";
}

/** A viem `WalletClient` (`createWalletClient`), with an `account` hoisted or none. */
export interface ViemWalletClientLike {
  /** `"walletClient"` (viem types it as a string) */
  type: string;
  account?: ViemLocalAccountLike | ViemJsonRpcAccountLike | undefined;
  signTypedData: (parameters: never) => Promise<Hex>;
  requestAddresses?: () => Promise<readonly Hex[]>;
}

/**
 * Anything that can sign Preflight's typed data.
 * @example
 * const fromEthers: PreflightSigner = new Wallet(key);
 * const fromViem: PreflightSigner = privateKeyToAccount(key);
 * const fromWallet: PreflightSigner = createWalletClient({ account, chain, transport: custom(window.ethereum) });
 */
export type PreflightSigner = EthersSignerLike | ViemLocalAccountLike | ViemWalletClientLike;

type ViemSign = (parameters: ViemTypedDataParameters & { account?: ViemLocalAccountLike | ViemJsonRpcAccountLike | Hex }) => Promise<Hex>;

function isViemWalletClient(signer: PreflightSigner): signer is ViemWalletClientLike {
  return (signer as { type?: unknown }).type === "walletClient";
}

function isViemAccount(signer: PreflightSigner): signer is ViemLocalAccountLike {
  const type = (signer as { type?: unknown }).type;
  return type === "local" || type === "json-rpc";
}

async function walletAccount(client: ViemWalletClientLike): Promise<ViemLocalAccountLike | ViemJsonRpcAccountLike | Hex> {
  if (client.account !== undefined) return client.account;
  const [address] = (await client.requestAddresses?.()) ?? [];
  if (address === undefined) {
    throw new PreflightSdkError("INVALID_OPTION", "the WalletClient has no account: pass `account` to createWalletClient or connect a wallet");
  }
  return address;
}

/**
 * The address of a signer, checksummed.
 * @example
 * const payer = await signerAddress(privateKeyToAccount(key));
 */
export async function signerAddress(signer: PreflightSigner): Promise<Hex> {
  if (isViemWalletClient(signer)) {
    const account = await walletAccount(signer);
    return checksumAddress(typeof account === "string" ? account : account.address);
  }
  if (isViemAccount(signer)) return checksumAddress(signer.address);
  if (typeof (signer as EthersSignerLike).getAddress === "function") return checksumAddress(await (signer as EthersSignerLike).getAddress());
  throw new PreflightSdkError("INVALID_OPTION", "not a signer: pass an ethers Signer, a viem Account or a viem WalletClient");
}

/**
 * Signs EIP-712 typed data with any supported signer and returns the 65-byte signature.
 * @example
 * const signature = await signTypedDataWith(account, buildDomain(domain), REQUEST_TYPES, "Request", request);
 */
export async function signTypedDataWith(
  signer: PreflightSigner,
  domain: Eip712Domain,
  types: TypedDataTypes,
  primaryType: string,
  message: object,
): Promise<Hex> {
  const viemParameters: ViemTypedDataParameters = {
    domain: { name: domain.name, version: domain.version, chainId: domain.chainId, verifyingContract: checksumAddress(domain.verifyingContract, "verifyingContract") },
    types,
    primaryType,
    message: message as Record<string, unknown>,
  };
  if (isViemWalletClient(signer)) {
    return (signer.signTypedData as unknown as ViemSign)({ ...viemParameters, account: await walletAccount(signer) });
  }
  if (isViemAccount(signer)) {
    if (signer.type !== "local") throw new PreflightSdkError("INVALID_OPTION", "a JSON-RPC account signs through its WalletClient: pass the WalletClient");
    return (signer.signTypedData as unknown as ViemSign)(viemParameters);
  }
  if (typeof (signer as EthersSignerLike).signTypedData !== "function") {
    throw new PreflightSdkError("INVALID_OPTION", "not a signer: pass an ethers Signer, a viem Account or a viem WalletClient");
  }
  const mutableTypes = Object.fromEntries(Object.entries(types).map(([name, fields]) => [name, fields.map((f) => ({ name: f.name, type: f.type }))]));
  return (await (signer as EthersSignerLike).signTypedData(domain, mutableTypes, message as Record<string, unknown>)) as Hex;
}

/**
 * The 64-byte EIP-2098 form (r ‖ yParity·2^255 + s) of a 65-byte signature whose v is 27 or 28
 * (a 64-byte signature is returned as is). Refuses any other v, as the contract does.
 * @example
 * const compact = toCompactSignature(await signRequest(sessionKey, domain, request));
 */
export function toCompactSignature(signature: string): Hex {
  return bytesToHex(compactSignatureBytes(signature));
}

/**
 * `toCompactSignature` as bytes (what the packed encoders write), with the same checks.
 * @example
 * const rvs = compactSignatureBytes(signature); // 64 bytes: r, then s with v's parity in its top bit
 */
export function compactSignatureBytes(signature: string): Uint8Array {
  const bytes = hexToBytes(signature, "signature");
  if (bytes.length === 64) return bytes;
  if (bytes.length !== 65) throw new PreflightSdkError("INVALID_HEX", `signature must be 64 or 65 bytes, not ${bytes.length}`);
  const v = bytes[64]!;
  if (v !== 27 && v !== 28) throw new PreflightSdkError("INVALID_HEX", `a 65-byte signature needs v = 27 or 28, not ${v}`);
  if (bytes[32]! & 0x80) throw new PreflightSdkError("INVALID_HEX", "non-canonical signature: the top bit of s is set");
  const out = bytes.subarray(0, 64);
  if (v === 28) out[32]! |= 0x80;
  return out;
}
