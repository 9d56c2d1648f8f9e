import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { PreflightVerifier, Reason, decodePacked, encodePacked, type SignedRequest } from "@preflight/provider";
import { deployPreflightFixture } from "../helpers/fixtures";
import { makeRequest } from "../helpers/requests";
import { expectSdkError, fundedWallet, signRequestFast } from "../helpers/sdk";

/** The core fixture plus a payer holding 10,000 units, and five of its requests signed (64-byte signatures). */
async function deployPackedFixture() {
  const base = await deployPreflightFixture();
  const token = await base.usdc.getAddress();
  const payer = await fundedWallet(410);
  await base.usdc.mint(base.owner.address, 1_000_000n);
  await base.usdc.connect(base.owner).approve(await base.preflight.getAddress(), ethers.MaxUint256);
  await base.preflight.connect(base.owner).deposit(payer.address, token, 10_000n);
  const requests = [];
  for (let nonce = 0n; nonce < 5n; nonce++) {
    requests.push(await makeRequest({ payer: payer.address, provider: base.provider.address, token, nonce, price: 700n }));
  }
  const signed: SignedRequest[] = requests.map((r) => signRequestFast(payer, base.domain, r, true));
  const packed = encodePacked(requests.map((request, i) => ({ request, signature: signed[i]!.signature })));
  return { ...base, token, payer, signed, packed };
}

describe("settlePacked through the SDK", function () {
  it("decodePacked returns exactly the signed requests encodePacked packed, in item order", async function () {
    const { token, signed, packed } = await loadFixture(deployPackedFixture);
    expect(decodePacked(token, packed)).to.deep.equal(signed);
  });

  it("decodePacked refuses truncated or overrunning input with a typed error", async function () {
    const { token, packed } = await loadFixture(deployPackedFixture);
    await expectSdkError(() => decodePacked(token, packed.slice(0, 2 + 2 * 81)), "INVALID_HEX");
    await expectSdkError(() => decodePacked(token, packed.slice(0, -2)), "INVALID_HEX");
    await expectSdkError(() => encodePacked([]), "INVALID_OPTION");
  });

  it("encodePacked refuses signatures settle() would refuse, instead of repairing them (v = 0/1)", async function () {
    const { preflight, provider, token, payer, domain } = await loadFixture(deployPackedFixture);
    const request = await makeRequest({ payer: payer.address, provider: provider.address, token, nonce: 9n, price: 1n });
    const good = signRequestFast(payer, domain, request).signature;
    const lowV = good.slice(0, -2) + (parseInt(good.slice(-2), 16) - 27).toString(16).padStart(2, "0");
    await expect(preflight.connect(provider).settle({ ...request, signature: lowV })).to.be.revertedWithCustomError(preflight, "InvalidSigner");
    await expectSdkError(() => encodePacked([{ request, signature: lowV }], { isContract: () => false }), "SIGNATURE_NOT_PACKABLE");
    await expectSdkError(() => encodePacked([{ request, signature: "0x12" }]), "SIGNATURE_NOT_PACKABLE");
    expect(encodePacked([{ request, signature: good }], { isContract: () => false })).to.match(/^0x/);
  });

  it("the verifier follows a settlePacked batch from its logs: settled items debited and released, the skipped one too (its nonce was burned)", async function () {
    const { preflight, provider, token, payer, signed, packed } = await loadFixture(deployPackedFixture);
    const verifier = await PreflightVerifier.create({ contract: preflight, provider: provider.address });
    for (const request of signed) expect(verifier.verify(request).reason).to.equal(Reason.Settled);
    expect(verifier.accountOf(payer.address, token).reserved).to.equal(3_500n);
    // The payer burns nonce 2 before the batch lands: that item is skipped, the rest settle.
    await preflight.connect(await ethers.getImpersonatedSigner(payer.address)).invalidateNonces(token, 0n, 1n << 2n);
    await preflight.connect(provider).settlePacked(token, packed);
    // Followed from its log alone: syncing past the batch makes no view call to the contract.
    const preflightAddress = (await preflight.getAddress()).toLowerCase();
    let viewCalls = 0;
    const call = ethers.provider.call.bind(ethers.provider);
    ethers.provider.call = async (tx) => {
      if (String(tx.to).toLowerCase() === preflightAddress) viewCalls++;
      return call(tx);
    };
    try {
      await verifier.sync();
    } finally {
      ethers.provider.call = call;
    }
    expect(viewCalls).to.equal(0);
    expect(verifier.accountOf(payer.address, token)).to.deep.equal({ balance: 7_200n, reserved: 0n, available: 7_200n });
    expect(await preflight.balanceOf(payer.address, token)).to.equal(7_200n);
    for (let nonce = 0n; nonce < 5n; nonce++) expect(verifier.isNonceUsed(payer.address, token, nonce)).to.equal(true);
    expect(verifier.verify(signed[0]!).reason).to.equal(Reason.NonceUsed);
  });
});
