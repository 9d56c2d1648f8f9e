/**
 * The JSON files `sign-request` / `sign-voucher` / `sign-lane-voucher` write and `settle` /
 * `claim-vouchers` / `lane-claim` read: the
 * signed EIP-712 message with its domain and signature, numbers as decimal strings. A file holds one
 * object or an array of them. Signatures are not judged here: the contract decides (ECDSA of the payer
 * or a delegate, or whatever an ERC-1271 smart-account payer accepts).
 */
import { getAddress, isHexString } from "ethers";
import type { GrantMessage, LaneVoucher, PreflightDomain, Request, Voucher } from "@preflight/sdk";
import type { LaneVoucherStruct, SignedRequestStruct, SignedVoucherStruct } from "../../typechain-types/contracts/Preflight";
import { PreflightError } from "./errors";

export interface SignedRequestJson {
  kind: "preflight.request";
  chainId: string;
  verifyingContract: string;
  /** who signed: the payer, or a delegate within the payer's grant */
  signer: string;
  payer: string;
  provider: string;
  token: string;
  model: string;
  price: string;
  nonce: string;
  deadline: string;
  inputHash: string;
  signature: string;
}

export interface SignedVoucherJson {
  kind: "preflight.voucher";
  chainId: string;
  verifyingContract: string;
  signer: string;
  payer: string;
  provider: string;
  token: string;
  model: string;
  channel: string;
  cumulativeAmount: string;
  signature: string;
}

export interface SignedLaneVoucherJson {
  kind: "preflight.lane-voucher";
  chainId: string;
  verifyingContract: string;
  signer: string;
  payer: string;
  provider: string;
  token: string;
  model: string;
  cumulativeAmount: string;
  signature: string;
}

export interface ParsedRequest {
  request: Request;
  signature: string;
  signer: string;
}

export interface ParsedVoucher {
  voucher: Voucher;
  signature: string;
  signer: string;
}

/** The fields every signed file item starts with: what it is and the deployment it was signed for. */
function envelope<K extends string>(kind: K, domain: PreflightDomain) {
  return { kind, chainId: domain.chainId.toString(), verifyingContract: domain.verifyingContract };
}

/** The message fields requests, vouchers and lane vouchers share. */
function parties(message: { payer: string; provider: string; token: string; model: string }) {
  return { payer: message.payer, provider: message.provider, token: message.token, model: message.model };
}

export function requestToJson(domain: PreflightDomain, request: Request, signature: string, signer: string): SignedRequestJson {
  return {
    ...envelope("preflight.request", domain),
    signer,
    ...parties(request),
    price: request.price.toString(),
    nonce: request.nonce.toString(),
    deadline: request.deadline.toString(),
    inputHash: request.inputHash,
    signature,
  };
}

export function voucherToJson(domain: PreflightDomain, voucher: Voucher, signature: string, signer: string): SignedVoucherJson {
  return {
    ...envelope("preflight.voucher", domain),
    signer,
    ...parties(voucher),
    channel: voucher.channel,
    cumulativeAmount: voucher.cumulativeAmount.toString(),
    signature,
  };
}

export interface ParsedLaneVoucher {
  voucher: LaneVoucher;
  signature: string;
  signer: string;
}

export function laneVoucherToJson(domain: PreflightDomain, voucher: LaneVoucher, signature: string, signer: string): SignedLaneVoucherJson {
  return {
    ...envelope("preflight.lane-voucher", domain),
    signer,
    ...parties(voucher),
    cumulativeAmount: voucher.cumulativeAmount.toString(),
    signature,
  };
}

type Fields = Record<string, unknown>;

function field(where: string, item: Fields, name: string): string {
  const value = item[name];
  if (typeof value !== "string" && typeof value !== "number") throw new PreflightError(`${where}: field "${name}" is missing.`);
  return String(value);
}

function addressField(where: string, item: Fields, name: string): string {
  const value = field(where, item, name);
  try {
    return getAddress(value);
  } catch {
    throw new PreflightError(`${where}: "${name}" is not an address (${value}).`);
  }
}

function uintField(where: string, item: Fields, name: string): bigint {
  const value = field(where, item, name);
  if (!/^[0-9]+$/.test(value)) throw new PreflightError(`${where}: "${name}" must be a non-negative integer in base units, as a string (${value}).`);
  return BigInt(value);
}

function bytes32Field(where: string, item: Fields, name: string): string {
  const value = field(where, item, name);
  if (!isHexString(value, 32)) throw new PreflightError(`${where}: "${name}" must be 32 bytes of hex (${value}).`);
  return value;
}

function signatureField(where: string, item: Fields): string {
  const value = field(where, item, "signature");
  if (!isHexString(value)) throw new PreflightError(`${where}: "signature" is not hex.`);
  return value;
}

/** Checks the item was signed for this chain and this deployment. */
function checkDomain(where: string, item: Fields, domain: PreflightDomain): void {
  const chainId = uintField(where, item, "chainId");
  if (chainId !== domain.chainId) {
    throw new PreflightError(`${where}: signed for chain ${chainId}, but this network is chain ${domain.chainId}; run the task with the --network it was signed for.`);
  }
  const contract = addressField(where, item, "verifyingContract");
  if (contract !== getAddress(domain.verifyingContract)) {
    throw new PreflightError(`${where}: signed for the Preflight deployment ${contract}, not ${domain.verifyingContract}; it cannot settle here.`);
  }
}

/** The file's items of `kind`, each with where it is in the file (for error messages). */
function items(file: string, data: unknown, kind: string): { item: Fields; where: string }[] {
  const list = Array.isArray(data) ? data : [data];
  if (list.length === 0) throw new PreflightError(`${file} holds an empty list: nothing to submit.`);
  return list.map((item, i) => {
    const where = Array.isArray(data) ? `${file} item ${i}` : file;
    if (typeof item !== "object" || item === null) throw new PreflightError(`${where} is not an object.`);
    const k = (item as Fields).kind;
    if (k !== kind) throw new PreflightError(`${where} is not a ${kind} (its "kind" is ${JSON.stringify(k)}); use the file written by sign-${kind.split(".")[1]}.`);
    return { item: item as Fields, where };
  });
}

/**
 * Every signed item of a requests, vouchers or lane vouchers file: checked against `domain`, its
 * message read by `read`, with its signature and the signer the file names.
 */
function signedItems<T>(file: string, data: unknown, kind: string, domain: PreflightDomain, read: (where: string, item: Fields) => T) {
  return items(file, data, kind).map(({ item, where }) => {
    checkDomain(where, item, domain);
    return { message: read(where, item), signature: signatureField(where, item), signer: String(item.signer ?? "") };
  });
}

/** The message fields requests, vouchers and lane vouchers share, read and checked. */
function readParties(where: string, item: Fields) {
  return {
    payer: addressField(where, item, "payer"),
    provider: addressField(where, item, "provider"),
    token: addressField(where, item, "token"),
    model: bytes32Field(where, item, "model"),
  };
}

/** Parses and checks a file of signed requests for `domain`. */
export function parseRequests(file: string, data: unknown, domain: PreflightDomain): ParsedRequest[] {
  const read = (where: string, item: Fields): Request => ({
    ...readParties(where, item),
    price: uintField(where, item, "price"),
    nonce: uintField(where, item, "nonce"),
    deadline: uintField(where, item, "deadline"),
    inputHash: bytes32Field(where, item, "inputHash"),
  });
  return signedItems(file, data, "preflight.request", domain, read).map(({ message, signature, signer }) => ({ request: message, signature, signer }));
}

/** Parses and checks a file of signed vouchers for `domain`. */
export function parseVouchers(file: string, data: unknown, domain: PreflightDomain): ParsedVoucher[] {
  const read = (where: string, item: Fields): Voucher => ({
    ...readParties(where, item),
    channel: bytes32Field(where, item, "channel"),
    cumulativeAmount: uintField(where, item, "cumulativeAmount"),
  });
  return signedItems(file, data, "preflight.voucher", domain, read).map(({ message, signature, signer }) => ({ voucher: message, signature, signer }));
}

/** Parses and checks a file of signed lane vouchers for `domain`. */
export function parseLaneVouchers(file: string, data: unknown, domain: PreflightDomain): ParsedLaneVoucher[] {
  const read = (where: string, item: Fields): LaneVoucher => ({ ...readParties(where, item), cumulativeAmount: uintField(where, item, "cumulativeAmount") });
  return signedItems(file, data, "preflight.lane-voucher", domain, read).map(({ message, signature, signer }) => ({ voucher: message, signature, signer }));
}

export function toRequestStruct(parsed: ParsedRequest): SignedRequestStruct {
  const { payer, token, model, price, nonce, deadline, inputHash } = parsed.request;
  return { payer, token, model, price, nonce, deadline, inputHash, signature: parsed.signature };
}

export function toVoucherStruct(parsed: ParsedVoucher): SignedVoucherStruct {
  const { payer, token, model, channel, cumulativeAmount } = parsed.voucher;
  return { payer, token, model, channel, cumulativeAmount, signature: parsed.signature };
}

export function toLaneVoucherStruct(parsed: ParsedLaneVoucher): LaneVoucherStruct {
  const { payer, token, model, cumulativeAmount } = parsed.voucher;
  return { payer, token, model, cumulativeAmount, signature: parsed.signature };
}

export interface SignedGrantJson {
  kind: "preflight.grant";
  chainId: string;
  verifyingContract: string;
  payer: string;
  delegate: string;
  token: string;
  provider: string;
  maxPrice: string;
  budget: string;
  period: string;
  expiry: string;
  models: string[];
  epoch: string;
  deadline: string;
  signature: string;
}

export function grantToJson(domain: PreflightDomain, grant: GrantMessage, signature: string): SignedGrantJson {
  return {
    ...envelope("preflight.grant", domain),
    payer: grant.payer,
    delegate: grant.delegate,
    token: grant.token,
    provider: grant.provider,
    maxPrice: grant.maxPrice.toString(),
    budget: grant.budget.toString(),
    period: grant.period.toString(),
    expiry: grant.expiry.toString(),
    models: grant.models,
    epoch: grant.epoch.toString(),
    deadline: grant.deadline.toString(),
    signature,
  };
}

/** Parses and checks a signed grant for `domain`. */
export function parseGrant(file: string, data: unknown, domain: PreflightDomain): { message: GrantMessage; signature: string } {
  if (Array.isArray(data)) throw new PreflightError(`${file} holds a list: submit-grant takes the single grant sign-grant wrote.`);
  const [{ item }] = items(file, data, "preflight.grant");
  checkDomain(file, item, domain);
  const models = item.models;
  if (!Array.isArray(models) || models.some((m) => typeof m !== "string" || !isHexString(m, 32))) {
    throw new PreflightError(`${file}: "models" must be a list of 32-byte hex ids.`);
  }
  const message: GrantMessage = {
    payer: addressField(file, item, "payer"),
    delegate: addressField(file, item, "delegate"),
    token: addressField(file, item, "token"),
    provider: addressField(file, item, "provider"),
    maxPrice: uintField(file, item, "maxPrice"),
    budget: uintField(file, item, "budget"),
    period: uintField(file, item, "period"),
    expiry: uintField(file, item, "expiry"),
    models: models as string[],
    epoch: uintField(file, item, "epoch"),
    deadline: uintField(file, item, "deadline"),
  };
  return { message, signature: signatureField(file, item) };
}
