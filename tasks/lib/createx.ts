/**
 * CreateX (github.com/pcaversaccio/createx), the CREATE2 factory Hardhat Ignition's `create2`
 * strategy deploys through. It lives at the same address on 150+ chains; Ignition itself installs it
 * on local Hardhat-compatible chains (chain id 31337) from its presigned transaction.
 *
 * CreateX "guards" the salt before CREATE2 (so a salt can be bound to a deployer or a chain);
 * `guardedSalt` reproduces that rule so we know the address before sending anything.
 */
import { AbiCoder, concat, getCreate2Address, keccak256, toBeHex, zeroPadValue, dataSlice, getAddress, ZeroAddress } from "ethers";
import { PreflightError } from "./errors";

export const CREATEX_ADDRESS = "0xba5Ed099633D3B313e4D5F7bdc1305d3c28ba5Ed";
/** keccak256 of CreateX's runtime code (v0.1.0), as Ignition checks it. */
export const CREATEX_CODEHASH = "0xbd8a7ea8cfca7b4e5f5041d7d4b17bc317c5ce42cfbc42066a00cf26b43eb53f";
export const CREATEX_DEPLOY_CREATE2 = "function deployCreate2(bytes32 salt, bytes initCode) payable returns (address)";
export const CREATEX_CONTRACT_CREATION = "event ContractCreation(address indexed newContract, bytes32 indexed salt)";

/** How a salt's first 20 bytes and 21st byte make CreateX treat it. */
export type SaltMode = "any-deployer-any-chain" | "this-deployer-any-chain" | "this-deployer-this-chain" | "any-deployer-this-chain";

export function saltMode(salt: string, deployer: string): SaltMode {
  const prefix = getAddress(dataSlice(salt, 0, 20));
  const flag = dataSlice(salt, 20, 21);
  const ours = prefix === getAddress(deployer);
  const zero = prefix === ZeroAddress;
  if (!ours && !zero) return "any-deployer-any-chain";
  if (flag === "0x00") {
    if (ours) return "this-deployer-any-chain";
    throw new PreflightError(`salt ${salt}: CreateX rejects a salt starting with 20 zero bytes unless its 21st byte is 0x01.`);
  }
  if (flag === "0x01") return ours ? "this-deployer-this-chain" : "any-deployer-this-chain";
  throw new PreflightError(`salt ${salt}: CreateX rejects a salt starting with the deployer's address (or zeros) unless its 21st byte is 0x00 or 0x01.`);
}

/** The salt CreateX passes to CREATE2 for `salt` sent by `deployer` on `chainId`. */
export function guardedSalt(salt: string, deployer: string, chainId: bigint): string {
  const coder = AbiCoder.defaultAbiCoder();
  switch (saltMode(salt, deployer)) {
    case "this-deployer-this-chain":
      return keccak256(coder.encode(["address", "uint256", "bytes32"], [deployer, chainId, salt]));
    case "this-deployer-any-chain":
      return keccak256(concat([zeroPadValue(deployer, 32), salt]));
    case "any-deployer-this-chain":
      return keccak256(concat([toBeHex(chainId, 32), salt]));
    case "any-deployer-any-chain":
      return keccak256(coder.encode(["bytes32"], [salt]));
  }
}

/** The address CreateX's `deployCreate2(salt, initCode)` deploys to. */
export function createXAddress(salt: string, deployer: string, chainId: bigint, initCode: string): string {
  return getCreate2Address(CREATEX_ADDRESS, guardedSalt(salt, deployer, chainId), keccak256(initCode));
}
