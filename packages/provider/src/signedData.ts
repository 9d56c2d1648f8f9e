/**
 * Everything a wallet or an integrator needs to compare its EIP-712 encoding with Preflight's,
 * without deploying a harness: the domain, the type table and type string, the typehash, the struct
 * hash, the domain separator and the digest of a request, a voucher, a lane voucher or a grant, plus the
 * `eth_signTypedData_v4` payload and, given a signature, the address it recovers to.
 *
 * The values are the ones the contract computes: test/sdk/eip712.typehash.ts checks each of them
 * against the contract's own hashing.
 */
import { TypedDataEncoder, concat, id, keccak256, recoverAddress, type TypedDataDomain, type TypedDataField } from "ethers";
import {
  GRANT_TYPES,
  LANE_VOUCHER_TYPES,
  REQUEST_TYPES,
  VOUCHER_TYPES,
  buildDomain,
  domainSeparator,
  encodeType,
  type GrantMessage,
  type LaneVoucher,
  type PreflightDomain,
  type Request,
  type Voucher,
  PreflightSdkError,
} from "@preflight/sdk";

/** The four messages Preflight verifies. */
export type SignedDataKind = "request" | "voucher" | "laneVoucher" | "grant";

/** The message type of each kind. */
export interface SignedDataMessages {
  request: Request;
  voucher: Voucher;
  laneVoucher: LaneVoucher;
  grant: GrantMessage;
}

const TABLES = {
  request: { primaryType: "Request", types: REQUEST_TYPES },
  voucher: { primaryType: "Voucher", types: VOUCHER_TYPES },
  laneVoucher: { primaryType: "LaneVoucher", types: LANE_VOUCHER_TYPES },
  grant: { primaryType: "Grant", types: GRANT_TYPES },
} as const;

/** The EIP-712 domain's own type table, as `eth_signTypedData_v4` expects it. */
export const EIP712_DOMAIN_TYPE = [
  { name: "name", type: "string" },
  { name: "version", type: "string" },
  { name: "chainId", type: "uint256" },
  { name: "verifyingContract", type: "address" },
] as const;

/** What `describeSignedData` returns: every intermediate value of the EIP-712 encoding. */
export interface SignedDataDescription<K extends SignedDataKind = SignedDataKind> {
  kind: K;
  primaryType: string;
  /** name "Preflight", version "1", chain id, contract address */
  domain: TypedDataDomain;
  /** keccak256 of the encoded domain: the contract's `DOMAIN_SEPARATOR()` */
  domainSeparator: string;
  /** the type table of the primary type */
  types: Record<string, TypedDataField[]>;
  /** e.g. "Request(address payer,address provider,...)" */
  encodedType: string;
  /** keccak256(encodedType): the contract's typehash */
  typeHash: string;
  message: SignedDataMessages[K];
  /** hashStruct(message) = keccak256(typeHash ‖ encoded fields) */
  structHash: string;
  /** keccak256(0x1901 ‖ domainSeparator ‖ structHash): what is signed */
  digest: string;
  /** the JSON a wallet's `eth_signTypedData_v4` takes (numbers as decimal strings) */
  typedDataV4: string;
  /** the signer the signature recovers to (ECDSA), when a signature was given */
  recoveredSigner?: string;
}

const jsonSafe = (value: unknown): unknown =>
  typeof value === "bigint" ? value.toString() : Array.isArray(value) ? value.map(jsonSafe) : value;

/**
 * Every intermediate value of the EIP-712 encoding of a request, voucher, lane voucher or grant.
 * @param signature optional: also recover the signer (ECDSA; a contract wallet's signature recovers to an unrelated address)
 * @example
 * const d = describeSignedData("request", { chainId: 31337n, verifyingContract }, request, signature);
 * console.log(d.digest, d.recoveredSigner);
 */
export function describeSignedData<K extends SignedDataKind>(
  kind: K,
  domain: PreflightDomain,
  message: SignedDataMessages[K],
  signature?: string,
): SignedDataDescription<K> {
  const table = TABLES[kind];
  if (table === undefined) throw new PreflightSdkError("INVALID_OPTION", `unknown signed-data kind "${String(kind)}": use request, voucher, laneVoucher or grant`);
  const types = Object.fromEntries(Object.entries(table.types).map(([k, v]) => [k, [...v]])) as Record<string, TypedDataField[]>;
  const encoder = TypedDataEncoder.from(types);
  const structHash = encoder.hashStruct(table.primaryType, message as unknown as Record<string, unknown>);
  const separator = domainSeparator(domain);
  const digest = keccak256(concat(["0x1901", separator, structHash]));
  const encodedType = encodeType(table.types, table.primaryType);
  const ethersDomain = buildDomain(domain);
  const typedDataV4 = JSON.stringify(
    {
      domain: { ...ethersDomain, chainId: domain.chainId.toString() },
      types: { EIP712Domain: EIP712_DOMAIN_TYPE, ...types },
      primaryType: table.primaryType,
      message: Object.fromEntries(Object.entries(message).map(([k, v]) => [k, jsonSafe(v)])),
    },
    null,
    2,
  );
  let recoveredSigner: string | undefined;
  if (signature !== undefined) {
    try {
      recoveredSigner = recoverAddress(digest, signature);
    } catch (e) {
      throw new PreflightSdkError("INVALID_HEX", `the signature does not parse as a 64- or 65-byte ECDSA signature (${(e as Error).message.split(" (")[0]})`);
    }
  }
  return {
    kind,
    primaryType: table.primaryType,
    domain: ethersDomain,
    domainSeparator: separator,
    types,
    encodedType,
    typeHash: id(encodedType),
    message,
    structHash,
    digest,
    typedDataV4,
    ...(recoveredSigner !== undefined ? { recoveredSigner } : {}),
  };
}

/**
 * The description as text, one value per line, for a terminal or a bug report.
 * @example
 * console.log(formatSignedData(describeSignedData("voucher", domain, voucher)));
 */
export function formatSignedData(d: SignedDataDescription): string {
  const lines = [
    `${d.primaryType} (EIP-712)`,
    `  domain             name "${String(d.domain.name)}", version "${String(d.domain.version)}", chainId ${String(d.domain.chainId)}, verifyingContract ${String(d.domain.verifyingContract)}`,
    `  domain separator   ${d.domainSeparator}`,
    `  type               ${d.encodedType}`,
    `  type hash          ${d.typeHash}`,
    "  message",
    ...Object.entries(d.message).map(([k, v]) => `    ${k.padEnd(17)}${Array.isArray(v) ? `[${v.join(", ")}]` : String(v)}`),
    `  struct hash        ${d.structHash}`,
    `  digest             ${d.digest}   = keccak256(0x1901 ‖ domain separator ‖ struct hash)`,
  ];
  if (d.recoveredSigner !== undefined) lines.push(`  signature signer   ${d.recoveredSigner}`);
  if (d.kind === "grant") {
    lines.push(
      `  epoch              ${String((d.message as GrantMessage).epoch)} is the grant slot's epoch when signing (grantOf(payer, token, delegate).epoch);`,
      "                     applying the grant bumps it, so its GrantSet event reports the next epoch and the signature cannot apply twice.",
    );
  }
  return lines.join("\n");
}
