import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { TypedDataEncoder } from "ethers";
import { deployPreflightFixture } from "../helpers/fixtures";
import { makeGrant } from "../helpers/grants";
import { MODEL_A, MODEL_B } from "../helpers/requests";
import {
  REQUEST_TYPES,
  VOUCHER_TYPES,
  GRANT_TYPES,
  encodeType,
  domainSeparator,
  hashRequest,
  hashVoucher,
  hashGrant,
  type Request,
  type Voucher,
  type GrantMessage,
} from "@preflight/sdk";
import { describeSignedData, formatSignedData } from "@preflight/provider";

async function deployHashHarnessFixture() {
  const base = await deployPreflightFixture();
  const harness = await ethers.deployContract("PreflightHashHarness");
  const { chainId } = await ethers.provider.getNetwork();
  const harnessDomain = { chainId, verifyingContract: await harness.getAddress() };
  const token = await base.usdc.getAddress();
  const request: Request = {
    payer: base.payer.address,
    provider: base.provider.address,
    token,
    model: MODEL_A,
    price: 2n ** 96n - 1n,
    nonce: 2n ** 255n + 77n,
    deadline: 1_900_000_000n,
    inputHash: ethers.id("the prompt"),
  };
  const voucher: Voucher = {
    payer: base.payer.address,
    provider: base.provider.address,
    token: ethers.ZeroAddress,
    model: MODEL_B,
    channel: ethers.id("channel"),
    cumulativeAmount: 2n ** 128n - 1n,
  };
  const terms = await makeGrant({ delegate: base.delegate.address, token, provider: base.provider.address, period: 3600n, models: [MODEL_A, MODEL_B] });
  const grant: GrantMessage = { ...terms, payer: base.payer.address, epoch: 513n, deadline: 2n ** 200n };
  return { ...base, harness, harnessDomain, request, voucher, grant };
}

describe("SDK EIP-712 tables vs the contracts", function () {
  describe("Typehashes", function () {
    it("REQUEST_TYPEHASH = keccak256 of the SDK's Request type", async function () {
      const { harness } = await loadFixture(deployHashHarnessFixture);
      expect(await harness.REQUEST_TYPEHASH()).to.equal(ethers.id(encodeType(REQUEST_TYPES, "Request")));
    });

    it("VOUCHER_TYPEHASH = keccak256 of the SDK's Voucher type", async function () {
      const { harness } = await loadFixture(deployHashHarnessFixture);
      expect(await harness.VOUCHER_TYPEHASH()).to.equal(ethers.id(encodeType(VOUCHER_TYPES, "Voucher")));
    });

    it("GRANT_TYPEHASH = keccak256 of the SDK's Grant type", async function () {
      const { harness } = await loadFixture(deployHashHarnessFixture);
      expect(await harness.GRANT_TYPEHASH()).to.equal(ethers.id(encodeType(GRANT_TYPES, "Grant")));
    });
  });

  describe("Struct hashes", function () {
    it("a Request hashes the same in Solidity and in the SDK", async function () {
      const { harness, request } = await loadFixture(deployHashHarnessFixture);
      const calldata = { ...request, signature: "0x" };
      expect(await harness.hashRequest(calldata, request.provider)).to.equal(
        TypedDataEncoder.hashStruct("Request", { Request: [...REQUEST_TYPES.Request] }, request),
      );
    });

    it("a Voucher hashes the same in Solidity and in the SDK", async function () {
      const { harness, voucher } = await loadFixture(deployHashHarnessFixture);
      expect(await harness.hashVoucher({ ...voucher, signature: "0x" }, voucher.provider)).to.equal(
        TypedDataEncoder.hashStruct("Voucher", { Voucher: [...VOUCHER_TYPES.Voucher] }, voucher),
      );
    });

    it("a Grant hashes the same in Solidity and in the SDK, for 0, 1 and many models", async function () {
      const { harness, grant } = await loadFixture(deployHashHarnessFixture);
      for (const models of [[], [MODEL_A], [MODEL_A, MODEL_B, ethers.ZeroHash]]) {
        const message = { ...grant, models };
        const { payer, epoch, deadline, ...terms } = message;
        expect(await harness.hashGrant(payer, terms, epoch, deadline)).to.equal(
          TypedDataEncoder.hashStruct("Grant", { Grant: [...GRANT_TYPES.Grant] }, message),
        );
      }
    });
  });

  describe("Domain and digests", function () {
    it("DOMAIN_SEPARATOR() equals the SDK's domainSeparator(), for the harness and for Preflight", async function () {
      const { harness, harnessDomain, preflight, domain } = await loadFixture(deployHashHarnessFixture);
      expect(await harness.DOMAIN_SEPARATOR()).to.equal(domainSeparator(harnessDomain));
      expect(await preflight.DOMAIN_SEPARATOR()).to.equal(domainSeparator(domain));
    });

    it("eip712Domain() describes the same domain (EIP-5267)", async function () {
      const { preflight, domain } = await loadFixture(deployHashHarnessFixture);
      const d = await preflight.eip712Domain();
      expect([d.fields, d.name, d.version, d.chainId, d.verifyingContract, d.salt, d.extensions]).to.deep.equal([
        "0x0f",
        "Preflight",
        "1",
        domain.chainId,
        domain.verifyingContract,
        ethers.ZeroHash,
        [],
      ]);
    });

    it("the contract's digests equal hashRequest / hashVoucher / hashGrant", async function () {
      const { harness, harnessDomain, request, voucher, grant } = await loadFixture(deployHashHarnessFixture);
      const requestStruct = await harness.hashRequest({ ...request, signature: "0x" }, request.provider);
      expect(await harness.hashTypedData(requestStruct)).to.equal(hashRequest(harnessDomain, request));
      const voucherStruct = await harness.hashVoucher({ ...voucher, signature: "0x" }, voucher.provider);
      expect(await harness.hashTypedData(voucherStruct)).to.equal(hashVoucher(harnessDomain, voucher));
      const { payer, epoch, deadline, ...terms } = grant;
      const grantStruct = await harness.hashGrant(payer, terms, epoch, deadline);
      expect(await harness.hashTypedData(grantStruct)).to.equal(hashGrant(harnessDomain, grant));
    });
  });

  describe("Signed-data helper (what a wallet author compares against)", function () {
    it("describeSignedData gives the contract's typehash, struct hash, domain separator and digest, for each kind", async function () {
      const { harness, harnessDomain, request, voucher, grant } = await loadFixture(deployHashHarnessFixture);
      const { payer, epoch, deadline, ...terms } = grant;
      const cases = [
        { d: describeSignedData("request", harnessDomain, request), typeHash: await harness.REQUEST_TYPEHASH(), struct: await harness.hashRequest({ ...request, signature: "0x" }, request.provider) },
        { d: describeSignedData("voucher", harnessDomain, voucher), typeHash: await harness.VOUCHER_TYPEHASH(), struct: await harness.hashVoucher({ ...voucher, signature: "0x" }, voucher.provider) },
        { d: describeSignedData("grant", harnessDomain, grant), typeHash: await harness.GRANT_TYPEHASH(), struct: await harness.hashGrant(payer, terms, epoch, deadline) },
      ];
      for (const { d, typeHash, struct } of cases) {
        expect(d.typeHash).to.equal(typeHash);
        expect(d.structHash).to.equal(struct);
        expect(d.domainSeparator).to.equal(await harness.DOMAIN_SEPARATOR());
        expect(d.digest).to.equal(await harness.hashTypedData(struct));
        // The eth_signTypedData_v4 payload hashes to the same digest.
        const v4 = JSON.parse(d.typedDataV4) as { domain: Record<string, string>; types: Record<string, { name: string; type: string }[]>; message: Record<string, unknown> };
        const { EIP712Domain: _domainType, ...types } = v4.types;
        expect(TypedDataEncoder.hash(v4.domain, types, v4.message)).to.equal(d.digest);
      }
    });

    it("recovers the signer of a signature and prints every value on its own line, explaining the grant epoch", async function () {
      const { harnessDomain, payer, request, grant } = await loadFixture(deployHashHarnessFixture);
      const signature = await payer.signTypedData(describeSignedData("request", harnessDomain, request).domain, { Request: [...REQUEST_TYPES.Request] }, request);
      const d = describeSignedData("request", harnessDomain, request, signature);
      expect(d.recoveredSigner).to.equal(payer.address);
      const text = formatSignedData(d);
      expect(text).to.contain(`digest             ${d.digest}`);
      expect(text).to.contain(`struct hash        ${d.structHash}`);
      expect(text).to.contain("type               Request(address payer,address provider,address token,bytes32 model,uint96 price,uint256 nonce,uint256 deadline,bytes32 inputHash)");
      expect(text).to.contain(`signature signer   ${payer.address}`);
      expect(formatSignedData(describeSignedData("grant", harnessDomain, grant))).to.match(/epoch +513 is the grant slot's epoch when signing .*GrantSet event reports the next epoch/s);
      expect(() => describeSignedData("request", harnessDomain, request, "0x1234")).to.throw(/INVALID_HEX: the signature does not parse/);
    });
  });
});
