import { expect } from "chai";
import { Signature, TypedDataEncoder, Wallet, getAddress, hexlify, randomBytes } from "ethers";
import { createWalletClient, custom, hashTypedData as viemHashTypedData, type Hex as ViemHex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { hardhat } from "viem/chains";
import {
  GRANT_TYPES,
  REQUEST_TYPES,
  VOUCHER_TYPES,
  buildDomain,
  checksumAddress,
  domainSeparator,
  encodeType,
  hashGrant,
  hashRequest,
  hashVoucher,
  signGrant,
  signRequest,
  signVoucher,
  signerAddress,
  toCompactSignature,
  type GrantMessage,
  type PreflightDomain,
  type Request,
  type Voucher,
} from "@preflight/sdk";
import { expectSdkError } from "../helpers/sdk";

const address = (): string => getAddress(hexlify(randomBytes(20)));
const word = (): string => hexlify(randomBytes(32));
const uint = (bits: number): bigint => BigInt(hexlify(randomBytes(bits / 8)));
const domain: PreflightDomain = { chainId: 31337n, verifyingContract: address() };
const mutable = (types: Record<string, readonly { name: string; type: string }[]>) =>
  Object.fromEntries(Object.entries(types).map(([k, v]) => [k, v.map((f) => ({ ...f }))]));

function randomRequest(): Request {
  return { payer: address(), provider: address(), token: address(), model: word(), price: uint(96), nonce: uint(256), deadline: uint(64), inputHash: word() };
}
function randomVoucher(): Voucher {
  return { payer: address(), provider: address(), token: address(), model: word(), channel: word(), cumulativeAmount: uint(128) };
}
function randomGrant(): GrantMessage {
  return {
    payer: address(),
    delegate: address(),
    token: address(),
    provider: address(),
    maxPrice: uint(88) >> 1n,
    budget: uint(88) >> 1n,
    period: uint(32) >> 1n,
    expiry: uint(32) >> 1n,
    models: Array.from({ length: Number(uint(8) % 4n) }, word),
    epoch: uint(16),
    deadline: uint(256),
  };
}

/** The client package hashes and signs without ethers; ethers and viem must agree with it on everything. */
describe("@preflight/sdk typed data and signers", function () {
  describe("hashing (own EIP-712 encoder) equals ethers and viem", function () {
    it("for random requests, vouchers and grants, and the domain separator", function () {
      const ethersDomain = buildDomain(domain);
      const viemDomain = { ...ethersDomain, verifyingContract: checksumAddress(ethersDomain.verifyingContract) };
      expect(domainSeparator(domain)).to.equal(TypedDataEncoder.hashDomain(ethersDomain));
      for (let i = 0; i < 40; i++) {
        const [request, voucher, grant] = [randomRequest(), randomVoucher(), randomGrant()];
        expect(hashRequest(domain, request)).to.equal(TypedDataEncoder.hash(ethersDomain, mutable(REQUEST_TYPES), request));
        expect(hashVoucher(domain, voucher)).to.equal(TypedDataEncoder.hash(ethersDomain, mutable(VOUCHER_TYPES), voucher));
        expect(hashGrant(domain, grant)).to.equal(TypedDataEncoder.hash(ethersDomain, mutable(GRANT_TYPES), grant));
        expect(hashRequest(domain, request)).to.equal(
          viemHashTypedData({ domain: viemDomain, types: REQUEST_TYPES, primaryType: "Request", message: request as never }),
        );
        expect(hashGrant(domain, grant)).to.equal(viemHashTypedData({ domain: viemDomain, types: GRANT_TYPES, primaryType: "Grant", message: grant as never }));
      }
      expect(encodeType(REQUEST_TYPES, "Request")).to.equal(TypedDataEncoder.from(mutable(REQUEST_TYPES)).encodeType("Request"));
    });

    it("refuses values the contract's ABI could not carry, naming the field", async function () {
      await expectSdkError(() => hashRequest(domain, { ...randomRequest(), price: 1n << 96n }), "INVALID_AMOUNT");
      await expectSdkError(() => hashRequest(domain, { ...randomRequest(), nonce: -1n }), "INVALID_AMOUNT");
      await expectSdkError(() => hashRequest(domain, { ...randomRequest(), model: "0x1234" }), "INVALID_HEX");
      await expectSdkError(() => hashRequest(domain, { ...randomRequest(), payer: "0x1234" }), "INVALID_ADDRESS");
      const payer = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"; // EIP-55's own example
      const typo = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"; // one letter's case flipped
      await expectSdkError(() => hashRequest(domain, { ...randomRequest(), payer: typo }), "INVALID_ADDRESS");
      expect(checksumAddress(payer.toLowerCase())).to.equal(payer);
      expect(hashRequest(domain, { ...randomRequest(), payer: payer.toLowerCase() })).to.match(/^0x[0-9a-f]{64}$/);
      const { inputHash: _omitted, ...partial } = randomRequest();
      await expectSdkError(() => hashRequest(domain, partial as Request), "INVALID_OPTION");
    });
  });

  describe("signing", function () {
    const key = Wallet.createRandom().privateKey as ViemHex;
    const ethersWallet = new Wallet(key);
    const viemAccount = privateKeyToAccount(key);
    // A WalletClient holding a local account signs in-process; the transport is never called.
    const refuse = custom({ request: async () => Promise.reject(new Error("no RPC expected")) });
    const viemWallet = createWalletClient({ account: viemAccount, chain: hardhat, transport: refuse });

    it("gives the same signatures with an ethers Signer, a viem Account and a viem WalletClient", async function () {
      const request = { ...randomRequest(), payer: ethersWallet.address };
      const grant = { ...randomGrant(), payer: ethersWallet.address };
      const voucher = randomVoucher();
      const fromEthers = [await signRequest(ethersWallet, domain, request), await signGrant(ethersWallet, domain, grant), await signVoucher(ethersWallet, domain, voucher, true)];
      for (const signer of [viemAccount, viemWallet]) {
        expect([await signRequest(signer, domain, request), await signGrant(signer, domain, grant), await signVoucher(signer, domain, voucher, true)]).to.deep.equal(fromEthers);
        expect(await signerAddress(signer)).to.equal(ethersWallet.address);
      }
      expect(Signature.from(fromEthers[0]!).compactSerialized).to.equal(toCompactSignature(fromEthers[0]!));
      expect(await signRequest(viemAccount, domain, request, true)).to.equal(Signature.from(fromEthers[0]!).compactSerialized);
    });

    it("refuses what cannot sign, and signatures the contract would refuse", async function () {
      const jsonRpc = { address: ethersWallet.address as ViemHex, type: "json-rpc" as const };
      await expectSdkError(() => signRequest(jsonRpc as never, domain, randomRequest()), "INVALID_OPTION");
      const noAccount = createWalletClient({ chain: hardhat, transport: custom({ request: async () => [] }) });
      await expectSdkError(() => signRequest(noAccount, domain, randomRequest()), "INVALID_OPTION");
      await expectSdkError(() => signRequest({} as never, domain, randomRequest()), "INVALID_OPTION");
      const signature = await signRequest(viemAccount, domain, randomRequest());
      await expectSdkError(() => toCompactSignature(signature.slice(0, -2) + "01"), "INVALID_HEX");
      await expectSdkError(() => toCompactSignature(signature.slice(0, 128)), "INVALID_HEX");
    });
  });
});
