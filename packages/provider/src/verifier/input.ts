/**
 * Input that could not even be ABI-encoded into a settlement is refused with a typed error before
 * any rule runs (a decision is for well-formed items only).
 */
import { PreflightSdkError } from "@preflight/sdk";
import type { SignedLaneVoucher, SignedRequest, SignedVoucher } from "@preflight/sdk";

const UINT96_MAX = (1n << 96n) - 1n;
const UINT128_MAX = (1n << 128n) - 1n;
const UINT256_MAX = (1n << 256n) - 1n;
const ADDRESS_RE = /^0x[0-9a-fA-F]{40}$/;
const BYTES32_RE = /^0x[0-9a-fA-F]{64}$/;
const HEX_RE = /^0x([0-9a-fA-F]{2})*$/;

export function isAddress(value: unknown): value is string {
  return typeof value === "string" && ADDRESS_RE.test(value);
}

function checkUint(name: string, value: bigint, max: bigint): void {
  if (typeof value !== "bigint" || value < 0n || value > max) throw new PreflightSdkError("INVALID_AMOUNT", `${name} ${String(value)}`);
}

function checkAddress(name: string, value: string): void {
  if (!isAddress(value)) throw new PreflightSdkError("INVALID_ADDRESS", `${name} ${String(value)}`);
}

function checkBytes32(name: string, value: string): void {
  if (typeof value !== "string" || !BYTES32_RE.test(value)) throw new PreflightSdkError("INVALID_HEX", `${name} ${String(value)}`);
}

function checkSignature(value: string): void {
  if (typeof value !== "string" || !HEX_RE.test(value)) throw new PreflightSdkError("INVALID_HEX", "signature");
}

export function validateRequest(r: SignedRequest): void {
  checkAddress("payer", r.payer);
  checkAddress("token", r.token);
  checkBytes32("model", r.model);
  checkBytes32("inputHash", r.inputHash);
  checkUint("price", r.price, UINT96_MAX);
  checkUint("nonce", r.nonce, UINT256_MAX);
  checkUint("deadline", r.deadline, UINT256_MAX);
  checkSignature(r.signature);
}

export function validateVoucher(v: SignedVoucher): void {
  checkAddress("payer", v.payer);
  checkAddress("token", v.token);
  checkBytes32("model", v.model);
  checkBytes32("channel", v.channel);
  checkUint("cumulativeAmount", v.cumulativeAmount, UINT128_MAX);
  checkSignature(v.signature);
}

export function validateLaneVoucher(v: SignedLaneVoucher): void {
  checkAddress("payer", v.payer);
  checkAddress("token", v.token);
  checkBytes32("model", v.model);
  checkUint("cumulativeAmount", v.cumulativeAmount, UINT128_MAX);
  checkSignature(v.signature);
}
