/**
 * The one thing the paying fetch needs from a wallet: an address and EIP-712 signing. Adapters for
 * an ethers v6 `Signer` and for a viem `Account` / `WalletClient`, typed structurally so neither
 * library is imported (a dApp installs only the one it uses).
 */

/** A 0x-prefixed hex string. */
export type Hex = `0x${string}`;

/** EIP-712 typed data as both ethers and viem take it (the domain without `salt`). */
export interface PaymentTypedData {
  domain: { name: string; version: string; chainId: bigint; verifyingContract: Hex };
  types: Record<string, readonly { name: string; type: string }[]>;
  primaryType: string;
  message: Record<string, unknown>;
}

/** Signs payments for the paying fetch. */
export interface PaymentSigner {
  /** The signing key's address (the payer, or a delegate holding a grant from the payer). */
  getAddress(): Promise<string>;
  signTypedData(data: PaymentTypedData): Promise<string>;
}

/** The part of an ethers v6 `Signer` used here. */
export interface EthersLikeSigner {
  getAddress(): Promise<string>;
  signTypedData(
    domain: PaymentTypedData["domain"],
    types: Record<string, { name: string; type: string }[]>,
    value: Record<string, unknown>,
  ): Promise<string>;
}

/** The part of a viem `LocalAccount` (e.g. `privateKeyToAccount(key)`) used here. */
export interface ViemLikeAccount {
  address: Hex;
  signTypedData(parameters: PaymentTypedData): Promise<Hex>;
}

/** The part of a viem `WalletClient` with an account (e.g. a browser wallet) used here. */
export interface ViemLikeWalletClient {
  account: { address: Hex } | undefined;
  signTypedData(parameters: PaymentTypedData & { account: { address: Hex } }): Promise<Hex>;
}

/**
 * Wraps an ethers v6 signer (a `Wallet`, a `JsonRpcSigner` from a browser wallet, ...).
 * @example
 * const signer = fromEthers(new Wallet(sessionKey));
 */
export function fromEthers(signer: EthersLikeSigner): PaymentSigner {
  return {
    getAddress: () => signer.getAddress(),
    signTypedData: (data) =>
      signer.signTypedData(
        data.domain,
        Object.fromEntries(Object.entries(data.types).map(([k, v]) => [k, [...v]])),
        data.message,
      ),
  };
}

/**
 * Wraps a viem local account or a wallet client that has an account.
 * @example
 * const signer = fromViem(privateKeyToAccount(sessionKey));
 */
export function fromViem(source: ViemLikeAccount | ViemLikeWalletClient): PaymentSigner {
  if ("address" in source) {
    return { getAddress: async () => source.address, signTypedData: (data) => source.signTypedData(data) };
  }
  const account = source.account;
  if (!account) throw new TypeError("fromViem: the wallet client has no account; pass { account } when creating it");
  return { getAddress: async () => account.address, signTypedData: (data) => source.signTypedData({ ...data, account }) };
}
