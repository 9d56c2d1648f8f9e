/**
 * The gateway's lane settlement with a contract payer (an ERC-1271 wallet) beside an ordinary one:
 * claimLanesPacked carries a 65-byte signature only as 64 bytes, which a wallet would check instead
 * of what its owner signed, so a contract payer's voucher must be claimed through claimLane, and a
 * voucher the contract refuses is reported with its reason, not retried for ever.
 */
import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture } from "@nomicfoundation/hardhat-network-helpers";
import { signLaneVoucher, Reason } from "@preflight/sdk";
import { ChainSettlementQueue, MemoryReservationStore } from "@preflight/provider/gateway";
import { deployPreflightFixture } from "../helpers/fixtures";

const MODEL = ethers.id("model-metered");

describe("Gateway lane settlement with contract payers", function () {
  it("claims a wallet's 65-byte voucher through claimLane and an ordinary payer's through claimLanesPacked, and reports a refused voucher's reason", async function () {
    const f = await loadFixture(deployPreflightFixture);
    const token = await f.usdc.getAddress();
    const owner = f.delegate;
    const wallet = await ethers.deployContract("ERC1271Wallet", [owner.address]);
    const walletAddress = await wallet.getAddress();
    const other = f.other;
    for (const payer of [walletAddress, other.address]) {
      await f.preflight.connect(f.payer).depositToLane(payer, f.provider.address, token, 1_000n);
    }
    const voucher = (payer: string, cumulativeAmount: bigint) => ({ payer, provider: f.provider.address, token, model: MODEL, cumulativeAmount });
    // The wallet's owner signs in the ordinary 65-byte form, as most wallets do.
    const walletSig = await signLaneVoucher(owner, f.domain, voucher(walletAddress, 300n));
    expect(ethers.dataLength(walletSig)).to.equal(65);
    const otherSig = await signLaneVoucher(other, f.domain, voucher(other.address, 200n));
    // A second wallet-payer voucher signed by a stranger: the wallet refuses it.
    const stranger = ethers.Wallet.createRandom();
    const wallet2 = await ethers.deployContract("ERC1271Wallet", [owner.address]);
    await f.preflight.connect(f.payer).depositToLane(await wallet2.getAddress(), f.provider.address, token, 1_000n);
    const forged = await signLaneVoucher(stranger, f.domain, voucher(await wallet2.getAddress(), 100n));

    const queue = new ChainSettlementQueue({ contract: f.preflight.connect(f.provider), token, store: new MemoryReservationStore(), maxAgeMs: 3_600_000, retry: { attempts: 2, baseDelayMs: 10, maxDelayMs: 20 } });
    queue.enqueueLaneVoucher({ payer: walletAddress, token, model: MODEL, cumulativeAmount: 300n, signature: walletSig }, 300n);
    queue.enqueueLaneVoucher({ payer: other.address, token, model: MODEL, cumulativeAmount: 200n, signature: otherSig }, 200n);
    queue.enqueueLaneVoucher({ payer: await wallet2.getAddress(), token, model: MODEL, cumulativeAmount: 100n, signature: forged }, 100n);
    const batches = await queue.close();

    const claims = batches.filter((b) => b.kind === "lane");
    expect(claims.every((b) => b.error === undefined)).to.equal(true);
    const byPayer = new Map(claims.flatMap((b) => b.items).map((i) => [i.payer.toLowerCase(), [i.reason, i.amount]]));
    expect(byPayer.get(walletAddress.toLowerCase())).to.deep.equal([Reason.Settled, 300n]);
    expect(byPayer.get(other.address.toLowerCase())).to.deep.equal([Reason.Settled, 200n]);
    expect(byPayer.get((await wallet2.getAddress()).toLowerCase())).to.deep.equal([Reason.InvalidSigner, 0n]);
    // On chain: both valid lanes paid, and the close collected them into the provider's earnings.
    expect((await f.preflight.laneOf(walletAddress, f.provider.address, token))[0]).to.equal(300n);
    expect((await f.preflight.laneOf(other.address, f.provider.address, token))[0]).to.equal(200n);
    expect(await f.preflight.earningsOf(f.provider.address, token)).to.equal(500n);
  });

  it("reports a wallet that refuses its claim when sent, though it passed the static call, as that voucher's refusal alone", async function () {
    const f = await loadFixture(deployPreflightFixture);
    const token = await f.usdc.getAddress();
    const hostile = await ethers.deployContract("HostileWallet1271", [f.delegate.address]);
    const hostileAddress = await hostile.getAddress();
    const honest = f.other;
    await f.preflight.connect(f.payer).depositToLane(hostileAddress, f.provider.address, token, 1_000n);
    await f.preflight.connect(f.payer).depositToLane(honest.address, f.provider.address, token, 300n);
    const voucher = (payer: string, cumulativeAmount: bigint) => ({ payer, provider: f.provider.address, token, model: MODEL, cumulativeAmount });
    // The wallet answers the provider's static call, then turns hostile before the claim is sent.
    const real = f.preflight.connect(f.provider);
    const claimLane = Object.assign((...args: unknown[]) => (real.claimLane as unknown as (...a: unknown[]) => unknown)(...args), {
      staticCall: async (...args: unknown[]) => {
        const result = await (real.claimLane.staticCall as unknown as (...a: unknown[]) => Promise<unknown>)(...args);
        await hostile.setMode(2); // reverts every check from now on
        return result;
      },
    });
    const contract = new Proxy(real, { get: (target, key) => (key === "claimLane" ? claimLane : Reflect.get(target, key)) });
    const queue = new ChainSettlementQueue({ contract: contract as typeof real, token, store: new MemoryReservationStore(), maxAgeMs: 3_600_000, retry: { attempts: 2, baseDelayMs: 10, maxDelayMs: 20 } });
    queue.enqueueLaneVoucher({ payer: honest.address, token, model: MODEL, cumulativeAmount: 200n, signature: await signLaneVoucher(honest, f.domain, voucher(honest.address, 200n)) }, 200n);
    queue.enqueueLaneVoucher({ payer: hostileAddress, token, model: MODEL, cumulativeAmount: 500n, signature: await signLaneVoucher(f.delegate, f.domain, voucher(hostileAddress, 500n)) }, 500n);
    const batches = await queue.close();

    // Before, the whole attempt failed: the honest claim that had landed was neither reported nor collected.
    const claims = batches.filter((b) => b.kind === "lane");
    expect(claims.map((b) => b.error)).to.deep.equal([undefined]);
    const byPayer = new Map(claims[0]!.items.map((i) => [i.payer.toLowerCase(), [i.reason, i.amount]]));
    expect(byPayer.get(honest.address.toLowerCase())).to.deep.equal([Reason.Settled, 200n]);
    expect(byPayer.get(hostileAddress.toLowerCase())).to.deep.equal([Reason.InvalidSigner, 0n]);
    expect(await f.preflight.earningsOf(f.provider.address, token)).to.equal(200n);
  });
});
