/**
 * `signed-data`: prints the EIP-712 encoding of a signed request, voucher, lane voucher or grant file (domain,
 * type string, typehash, struct hash, digest, recovered signer), so a wallet author compares their
 * encoding with Preflight's without deploying anything. Reads only the file: no chain is needed.
 */
import { task } from "hardhat/config";
import { getAddress, isAddress } from "ethers";
// The module itself, not the package index: hardhat.config.ts loads the tasks before the first compile,
// and the index pulls in the generated typechain types, which do not exist yet on a fresh clone.
import { describeSignedData, formatSignedData, type SignedDataDescription } from "../packages/provider/src/signedData";
import type { PreflightDomain } from "@preflight/sdk";
import { PreflightError } from "./lib/errors";
import { readJsonFile } from "./lib/input";
import { parseGrant, parseLaneVouchers, parseRequests, parseVouchers } from "./lib/signed";

/** The domain a signed file names (each item carries its chain id and contract). */
function domainOf(file: string, item: unknown): PreflightDomain {
  const { chainId, verifyingContract } = (item ?? {}) as { chainId?: unknown; verifyingContract?: unknown };
  if (typeof chainId !== "string" || !/^[0-9]+$/.test(chainId)) throw new PreflightError(`${file}: "chainId" must be a decimal string; is it a file written by sign-request, sign-voucher, sign-lane-voucher or sign-grant?`);
  if (typeof verifyingContract !== "string" || !isAddress(verifyingContract)) throw new PreflightError(`${file}: "verifyingContract" must be an address.`);
  return { chainId: BigInt(chainId), verifyingContract: getAddress(verifyingContract) };
}

/** Describes every item of a signed file. */
export function describeFile(file: string, data: unknown): SignedDataDescription[] {
  const list = Array.isArray(data) ? data : [data];
  if (list.length === 0) throw new PreflightError(`${file} holds an empty list: nothing to describe.`);
  return list.map((item, i) => {
    const where = Array.isArray(data) ? `${file} item ${i}` : file;
    const domain = domainOf(where, item);
    const kind = (item as { kind?: unknown }).kind;
    if (kind === "preflight.request") {
      const [p] = parseRequests(where, item, domain);
      return describeSignedData("request", domain, p.request, p.signature);
    }
    if (kind === "preflight.voucher") {
      const [p] = parseVouchers(where, item, domain);
      return describeSignedData("voucher", domain, p.voucher, p.signature);
    }
    if (kind === "preflight.lane-voucher") {
      const [p] = parseLaneVouchers(where, item, domain);
      return describeSignedData("laneVoucher", domain, p.voucher, p.signature);
    }
    if (kind === "preflight.grant") {
      const p = parseGrant(where, item, domain);
      return describeSignedData("grant", domain, p.message, p.signature);
    }
    throw new PreflightError(`${where}: "kind" is ${JSON.stringify(kind)}, not preflight.request, preflight.voucher, preflight.lane-voucher or preflight.grant (the files sign-request, sign-voucher, sign-lane-voucher and sign-grant write).`);
  });
}

task("signed-data", "Prints the EIP-712 domain, type, struct hash and digest of a signed request, voucher, lane voucher or grant file")
  .addParam("file", "JSON file written by sign-request, sign-voucher, sign-lane-voucher or sign-grant (one item or a list)")
  .addFlag("json", "print each item's eth_signTypedData_v4 payload instead, to feed a wallet")
  .setAction(async (args: { file: string; json: boolean }) => {
    const described = describeFile(args.file, readJsonFile("--file", args.file));
    for (const d of described) console.log(args.json ? d.typedDataV4 : formatSignedData(d));
    return described;
  });
