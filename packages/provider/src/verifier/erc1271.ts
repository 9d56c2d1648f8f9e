/**
 * The ERC-1271 path: whether a payer has code (one `eth_getCode`, cached) and what its
 * `isValidSignature` answers (one `eth_call`), under exactly the gas the contract gives it.
 */
import { Interface, type Provider } from "ethers";

/** The contract's cap on an ERC-1271 check (InferencePermissions.ERC1271_GAS_LIMIT). */
export const ERC1271_GAS_LIMIT = 200_000n;
const ERC1271_MAGIC_WORD = "0x1626ba7e" + "0".repeat(56);
const ERC1271_IFACE = new Interface(["function isValidSignature(bytes32 hash, bytes signature) view returns (bytes4)"]);
const TX_BASE_GAS = 21_000n;

/**
 * Gas limit of an `eth_call` whose callee gets exactly `calleeGas` for its frame: the call's
 * intrinsic cost (21,000 and 16 gas per non-zero, 4 per zero calldata byte) comes out of the limit
 * before the callee runs. (Sending `calleeGas` itself as the limit would give the wallet about
 * 24,000 less than the contract's staticcall does, and refuse wallets the contract accepts.)
 */
export function callGasLimitFor(data: string, calleeGas: bigint): bigint {
  let calldataGas = 0n;
  for (let i = 2; i < data.length; i += 2) calldataGas += data[i] === "0" && data[i + 1] === "0" ? 4n : 16n;
  return TX_BASE_GAS + calldataGas + calleeGas;
}

export class Erc1271Checker {
  private readonly codes: Map<string, boolean>;

  constructor(
    private readonly rpc: Provider,
    codes: Map<string, boolean>,
  ) {
    this.codes = codes;
  }

  /** Whether `payer` (lowercase) has code; looked up once. */
  async isContract(payer: string): Promise<boolean> {
    let known = this.codes.get(payer);
    if (known === undefined) {
      known = (await this.rpc.getCode(payer)) !== "0x";
      this.codes.set(payer, known);
    }
    return known;
  }

  /**
   * The wallet's answer, as the contract reads it: valid only if the call succeeds within the cap,
   * returns at least a full word, and that word is the magic value with clean padding.
   */
  async isValidSignature(payer: string, digest: string, signature: string): Promise<boolean> {
    const data = ERC1271_IFACE.encodeFunctionData("isValidSignature", [digest, signature]);
    try {
      const result = await this.rpc.call({ to: payer, data, gasLimit: callGasLimitFor(data, ERC1271_GAS_LIMIT) });
      return result.length >= 66 && result.slice(0, 66).toLowerCase() === ERC1271_MAGIC_WORD;
    } catch {
      return false;
    }
  }
}
