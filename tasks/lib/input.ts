/**
 * Parsing and formatting of what users type: addresses, amounts in human units, durations, models,
 * JSON files. Each parser names the option it reads and says how to write it correctly.
 */
import fs from "node:fs";
import { getAddress, id, isHexString, formatUnits, parseUnits } from "ethers";
import { PreflightError } from "./errors";

/** A checksummed address, or an error naming `option`. */
export function parseAddress(option: string, value: string | undefined): string {
  if (value === undefined || value.trim() === "") {
    throw new PreflightError(`${option} is required: an address (0x followed by 40 hex digits).`);
  }
  const text = value.trim();
  if (!/^0x[0-9a-fA-F]{40}$/.test(text)) {
    throw new PreflightError(`${option} "${text}" is not an address: expected 0x followed by 40 hex digits.`);
  }
  try {
    return getAddress(text);
  } catch {
    throw new PreflightError(`${option} "${text}" has a wrong checksum (mixed case): check for a typo, or write it all lowercase.`);
  }
}

/**
 * Parses a positive amount in human units ("12.5") into the token's smallest unit.
 * @param allowZero accept "0" (e.g. a grant's budget); otherwise the amount must be positive
 */
export function parseAmount(option: string, value: string | undefined, decimals: number, symbol: string, allowZero = false): bigint {
  if (value === undefined || value.trim() === "") throw new PreflightError(`${option} is required: an amount of ${symbol}, e.g. 12.5.`);
  const text = value.trim().replace(/_/g, "");
  if (!/^[0-9]+(\.[0-9]+)?$/.test(text)) {
    throw new PreflightError(`${option} "${value}" is not an amount: write a non-negative decimal number such as 12.5 (in ${symbol}, not in base units).`);
  }
  const fraction = text.split(".")[1] ?? "";
  if (fraction.length > decimals) {
    throw new PreflightError(`${option} "${value}" has ${fraction.length} decimals, but ${symbol} has only ${decimals}.`);
  }
  const amount = parseUnits(text, decimals);
  if (amount === 0n && !allowZero) throw new PreflightError(`${option} must be more than zero.`);
  return amount;
}

/** "1234.5 USDC" from base units. */
export function formatAmount(amount: bigint, decimals: number, symbol: string): string {
  const text = formatUnits(amount, decimals);
  return `${text.endsWith(".0") ? text.slice(0, -2) : text} ${symbol}`;
}

const UNIT_SECONDS: Record<string, bigint> = { s: 1n, m: 60n, h: 3600n, d: 86_400n, w: 604_800n };

/** A duration in seconds from "90", "90s", "15m", "1h", "7d" or "2w". */
export function parseDuration(option: string, value: string): bigint {
  const match = /^([0-9]+)([smhdw]?)$/.exec(value.trim());
  if (match === null) {
    throw new PreflightError(`${option} "${value}" is not a duration: write seconds (3600) or a number with s, m, h, d or w (1h, 7d).`);
  }
  return BigInt(match[1]) * UNIT_SECONDS[match[2] === "" ? "s" : match[2]];
}

/** "2d 3h 4m" for a number of seconds. */
export function formatDuration(seconds: bigint): string {
  if (seconds <= 0n) return "0s";
  const parts: string[] = [];
  let rest = seconds;
  for (const [unit, size] of [["d", 86_400n], ["h", 3600n], ["m", 60n], ["s", 1n]] as const) {
    if (rest >= size) {
      parts.push(`${rest / size}${unit}`);
      rest %= size;
    }
  }
  return parts.slice(0, 3).join(" ");
}

/** A UTC date-time for a unix time. */
export function formatTime(unix: bigint): string {
  return new Date(Number(unix) * 1000).toISOString().replace(".000Z", "Z");
}

/**
 * A model id: a 32-byte hex string as is, otherwise the keccak256 of the name (as the SDK and tests
 * do, e.g. "llama-3.1-70b").
 */
export function parseModel(option: string, value: string): string {
  const text = value.trim();
  if (text === "") throw new PreflightError(`${option} is empty: give a model name (e.g. llama-3.1-70b) or a 32-byte hex id.`);
  if (text.startsWith("0x")) {
    if (!isHexString(text, 32)) throw new PreflightError(`${option} "${text}" starts with 0x but is not 32 bytes (0x + 64 hex digits); to use a name, drop the 0x.`);
    return text.toLowerCase();
  }
  return id(text);
}

/** A 32-byte value: hex as is, otherwise the keccak256 of the text. */
export function parseBytes32(option: string, value: string): string {
  return parseModel(option, value);
}

/** A non-negative integer (nonces, counts). */
export function parseInteger(option: string, value: string, max?: bigint): bigint {
  if (!/^[0-9]+$/.test(value.trim())) throw new PreflightError(`${option} "${value}" is not a non-negative integer.`);
  const n = BigInt(value.trim());
  if (max !== undefined && n > max) throw new PreflightError(`${option} is ${n}, more than the largest allowed, ${max}.`);
  return n;
}

/** Reads and parses a JSON file, or says why it cannot. */
export function readJsonFile(option: string, file: string): unknown {
  if (!fs.existsSync(file)) throw new PreflightError(`${option}: file "${file}" does not exist.`);
  const text = fs.readFileSync(file, "utf8");
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new PreflightError(`${option}: "${file}" is not valid JSON (${(e as Error).message}).`);
  }
}

/** Writes `value` as indented JSON, bigints as decimal strings. */
export function writeJsonFile(file: string, value: unknown): void {
  fs.writeFileSync(file, `${stringify(value)}\n`);
}

/** JSON with bigints as decimal strings. */
export function stringify(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v), 2);
}
