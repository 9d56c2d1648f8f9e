import fs from "node:fs";
import path from "node:path";
import { ethers } from "hardhat";
import { expect } from "chai";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import type { Preflight, TestToken } from "../../typechain-types";
import { expectTaskError, runTask, useTempRegistry } from "../helpers/tasks";
import type { DeploymentRecord } from "../../tasks/lib/registry";
import type { SignedRequestJson, SignedVoucherJson } from "../../tasks/lib/signed";
import type { ItemOutcome } from "../../tasks/requests";
import type { VoucherOutcome } from "../../tasks/vouchers";
import type { SignedDataDescription } from "@preflight/provider";
import { hashRequest } from "@preflight/sdk";

const USDC = 10n ** 6n;

describe("Tasks: sign-request, settle, sign-voucher, claim-voucher(s), withdraw-earnings", function () {
  const registry = useTempRegistry();
  const file = (name: string): string => path.join(registry.dir(), name);

  /**
   * Deployed through the deploy task; payer (1) has 100 test USDC in escrow and granted the delegate (3)
   * up to 1 USDC per request, 5 USDC in total, for provider (2) and model "llama".
   */
  async function escrowWithGrantFixture() {
    const { result: record } = await runTask<DeploymentRecord>("deploy", { salt: "test.tasks.settlement" });
    const [, payer, provider, delegate, other] = await ethers.getSigners();
    const preflight = (await ethers.getContractAt("Preflight", record.contracts.Preflight.address)) as unknown as Preflight;
    const usdc = (await ethers.getContractAt("TestToken", record.contracts.TestToken!.address)) as unknown as TestToken;
    await usdc.mint(payer.address, 100n * USDC);
    await runTask("deposit", { from: "1", token: "test", amount: "100" });
    await runTask("grant", { from: "1", delegate: delegate.address, token: "test", provider: provider.address, models: "llama", maxPrice: "1", budget: "5" });
    return { preflight, usdc, token: await usdc.getAddress(), payer, provider, delegate, other };
  }

  describe("requests", function () {
    it("signs one request as the payer and settles it with settle", async function () {
      const { preflight, token, payer, provider } = await loadFixture(escrowWithGrantFixture);
      await runTask("sign-request", { from: "1", provider: provider.address, token: "test", model: "llama", price: "0.25", input: "hello", out: file("one.json") });
      const signed = JSON.parse(fs.readFileSync(file("one.json"), "utf8")) as SignedRequestJson;
      expect([signed.kind, signed.price, signed.nonce, signed.inputHash]).to.deep.equal(["preflight.request", "250000", "0", ethers.id("hello")]);
      const { result } = await runTask<ItemOutcome[]>("settle", { from: "2", file: file("one.json") });
      expect(result[0].reason).to.equal("Settled");
      expect(await preflight.balanceOf(payer.address, token)).to.equal(100n * USDC - 250_000n);
      expect(await preflight.earningsOf(provider.address, token)).to.equal(250_000n);
    });

    it("signs a batch with free nonces (appending skips the file's nonces) and settles it, reporting each skipped item", async function () {
      const { preflight, token, payer, provider, delegate } = await loadFixture(escrowWithGrantFixture);
      await runTask("sign-request", { from: "1", provider: provider.address, token: "test", model: "llama", price: "0.5", count: "3", out: file("batch.json") });
      await runTask("sign-request", {
        from: "3",
        payer: payer.address,
        provider: provider.address,
        token: "test",
        model: "llama",
        price: "1",
        out: file("batch.json"),
        append: true,
        compact: true,
      });
      const items = JSON.parse(fs.readFileSync(file("batch.json"), "utf8")) as SignedRequestJson[];
      expect(items.map((i) => i.nonce)).to.deep.equal(["0", "1", "2", "3"]);
      expect(items[3].signer).to.equal(delegate.address);
      expect(ethers.dataLength(items[3].signature)).to.equal(64);
      // Item 1 is cancelled by the payer before the provider settles.
      await runTask("cancel-requests", { from: "1", token: "test", nonces: "1" });

      const { result, output } = await runTask<ItemOutcome[]>("settle", { from: "2", file: file("batch.json") });
      expect(result.map((r) => r.reason)).to.deep.equal(["Settled", "NonceUsed", "Settled", "Settled"]);
      expect(output).to.match(/item 1: payer 0x[0-9a-fA-F]{40} nonce 1 0\.5 tUSDC: skipped \(NonceUsed\)/);
      expect(output).to.match(/3 of 4 settled/);
      expect(await preflight.earningsOf(provider.address, token)).to.equal(2n * USDC);

      // Settling the same file again sends nothing: every item would be skipped.
      const again = await runTask<ItemOutcome[]>("settle", { from: "2", file: file("batch.json") });
      expect(again.result.every((r) => r.reason === "NonceUsed")).to.equal(true);
      expect(again.output).to.match(/would settle; nothing was sent/);
      expect(again.output).to.match(/0 of 4 settled; 4 already used \(settled before, or cancelled by the payer\): nothing to do for those\./);
      // One already-settled request: nothing to do either (exit 0), and nothing is sent.
      fs.writeFileSync(file("first.json"), JSON.stringify(items[0]));
      const blockBefore = await ethers.provider.getBlockNumber();
      const single = await runTask<ItemOutcome[]>("settle", { from: "2", file: file("first.json") });
      expect(single.result[0].reason).to.equal("NonceUsed");
      expect(single.output).to.match(/Nothing to do: nonce 0 of 0x[0-9a-fA-F]{40} is already used/);
      expect(await ethers.provider.getBlockNumber()).to.equal(blockBefore);
    });

    it("settles a file mixing tokens as one batch per token", async function () {
      const { preflight, token, provider } = await loadFixture(escrowWithGrantFixture);
      await runTask("deposit", { from: "1", token: "ETH", amount: "1" });
      await runTask("sign-request", { from: "1", provider: provider.address, token: "test", model: "llama", price: "0.1", count: "2", out: file("mixed.json") });
      await runTask("sign-request", { from: "1", provider: provider.address, token: "ETH", model: "llama", price: "0.001", out: file("mixed.json"), append: true });
      const { result, output } = await runTask<ItemOutcome[]>("settle", { from: "2", file: file("mixed.json") });
      expect(result.map((r) => [r.index, r.reason])).to.deep.equal([
        [0, "Settled"],
        [1, "Settled"],
        [2, "Settled"],
      ]);
      expect(output).to.match(/Batch of 2 tUSDC request\(s\)/);
      expect(output).to.match(/Batch of 1 ETH request\(s\)/);
      expect(await preflight.earningsOf(provider.address, token)).to.equal(200_000n);
      expect(await preflight.earningsOf(provider.address, ethers.ZeroAddress)).to.equal(ethers.parseEther("0.001"));
    });

    it("cancels nonces in any bitmap word, one transaction per word", async function () {
      const { preflight, token, payer } = await loadFixture(escrowWithGrantFixture);
      const { output } = await runTask("cancel-requests", { from: "1", token: "test", nonces: "2, 3, 70" });
      expect(output.match(/Cancellation of nonces/g)).to.have.length(2);
      expect(await preflight.nonceBitmap(payer.address, token, 0)).to.equal(0b1100n);
      expect(await preflight.nonceBitmap(payer.address, token, 1)).to.equal(1n << 6n);
    });

    it("leaves signatures to the contract: a tampered item is skipped as InvalidSigner, the rest settle", async function () {
      const { preflight, token, provider } = await loadFixture(escrowWithGrantFixture);
      await runTask("sign-request", { from: "1", provider: provider.address, token: "test", model: "llama", price: "0.1", count: "2", out: file("tampered.json") });
      const items = JSON.parse(fs.readFileSync(file("tampered.json"), "utf8")) as SignedRequestJson[];
      items[0].price = "100000000"; // the payer signed 0.1, not 100
      fs.writeFileSync(file("tampered.json"), JSON.stringify(items));
      // A refused item makes the command fail (non-zero exit) after the rest settled.
      await expectTaskError("settle", { from: "2", file: file("tampered.json") }, /^1 of 2 request\(s\) in .*tampered\.json were refused: item 0 \(InvalidSigner\); 1 settled\.$/);
      expect(await preflight.earningsOf(provider.address, token)).to.equal(100_000n);
    });

    it("explains a single settlement's revert with the contract's error", async function () {
      const { provider } = await loadFixture(escrowWithGrantFixture);
      await runTask("sign-request", { from: "1", provider: provider.address, token: "test", model: "llama", price: "0.1", deadline: "1m", out: file("late.json") });
      await time.increase(120);
      await expectTaskError("settle", { from: "2", file: file("late.json") }, /refused: RequestExpired\(\d+\)/);
    });

    it("says what is wrong with the input", async function () {
      const { payer, provider, other } = await loadFixture(escrowWithGrantFixture);
      const base = { from: "1", provider: provider.address, token: "test", model: "llama", price: "0.1" };
      await expectTaskError("sign-request", { ...base, price: "0.0000001" }, /has 7 decimals/);
      await expectTaskError("sign-request", { ...base, count: "0" }, /--count must be at least 1/);
      await expectTaskError("sign-request", { ...base, append: true }, /--append needs --out/);
      await expectTaskError("sign-request", { ...base, input: "a", inputHash: ethers.ZeroHash }, /Give --input or --input-hash, not both/);
      await expectTaskError("sign-request", { ...base, from: "4", payer: payer.address }, /has no tUSDC grant from/);
      await expectTaskError("sign-request", { ...base, from: "3", payer: payer.address, provider: other.address }, /The grant allows only provider/);
      await expectTaskError("sign-request", { ...base, from: "3", payer: payer.address, price: "2" }, /above the grant's cap of 1 tUSDC/);
      await expectTaskError("sign-request", { ...base, from: "3", payer: payer.address, model: "gpt-x" }, /The grant does not cover model "gpt-x"/);

      await runTask("sign-request", { ...base, out: file("x.json") });
      await runTask("settle", { from: "2", file: file("x.json") });
      await expectTaskError("sign-request", { ...base, nonce: "0" }, /nonce 0 of 0x[0-9a-fA-F]{40} is already used/);
      await expectTaskError("cancel-requests", { from: "1", token: "test", nonces: "1,x" }, /--nonces "x" is not a non-negative integer/);
      await expectTaskError("settle", { from: "4", file: file("x.json") }, /is for provider 0x[0-9a-fA-F]{40}, but you are 0x[0-9a-fA-F]{40}: only that provider can settle it/);
      await expectTaskError("settle", { from: "2", file: file("missing.json") }, /file ".*missing\.json" does not exist/);
      fs.writeFileSync(file("bad.json"), "{ not json");
      await expectTaskError("settle", { from: "2", file: file("bad.json") }, /is not valid JSON/);
      const signed = JSON.parse(fs.readFileSync(file("x.json"), "utf8")) as SignedRequestJson;
      fs.writeFileSync(file("chain.json"), JSON.stringify({ ...signed, chainId: "1" }));
      await expectTaskError("settle", { from: "2", file: file("chain.json") }, /signed for chain 1, but this network is chain 31337/);
      fs.writeFileSync(file("price.json"), JSON.stringify([{ ...signed, price: "1.5" }]));
      await expectTaskError("settle", { from: "2", file: file("price.json") }, /item 0: "price" must be a non-negative integer in base units/);
      fs.writeFileSync(file("kind.json"), JSON.stringify({ ...signed, kind: "preflight.voucher" }));
      await expectTaskError("settle", { from: "2", file: file("kind.json") }, /is not a preflight\.request/);
    });
  });

  describe("signed-data", function () {
    it("prints the EIP-712 encoding of a request file and a grant file, and the signer each recovers to", async function () {
      const { preflight, payer, provider, delegate } = await loadFixture(escrowWithGrantFixture);
      await runTask("sign-request", { from: "3", payer: payer.address, provider: provider.address, token: "test", model: "llama", price: "0.25", count: "2", out: file("sd.json") });
      const { result, output } = await runTask<SignedDataDescription[]>("signed-data", { file: file("sd.json") });
      const items = JSON.parse(fs.readFileSync(file("sd.json"), "utf8")) as SignedRequestJson[];
      const domain = { chainId: 31337n, verifyingContract: await preflight.getAddress() };
      expect(result).to.have.length(2);
      expect(result[1].digest).to.equal(
        hashRequest(domain, { ...items[1], price: BigInt(items[1].price), nonce: BigInt(items[1].nonce), deadline: BigInt(items[1].deadline) }),
      );
      expect(result.map((d) => d.recoveredSigner)).to.deep.equal([delegate.address, delegate.address]);
      expect(output).to.match(/domain separator   0x[0-9a-f]{64}/);
      expect(output).to.contain(`domain separator   ${await preflight.DOMAIN_SEPARATOR()}`);

      await runTask("sign-grant", { from: "1", delegate: provider.address, token: "test", maxPrice: "1", budget: "2", out: file("g.json") });
      const grant = await runTask<SignedDataDescription[]>("signed-data", { file: file("g.json"), json: true });
      expect(grant.result[0].recoveredSigner).to.equal(payer.address);
      expect(JSON.parse(grant.output).primaryType).to.equal("Grant");
      await expectTaskError("signed-data", { file: file("nope.json") }, /--file/);
      fs.writeFileSync(file("odd.json"), JSON.stringify({ kind: "other", chainId: "1", verifyingContract: payer.address }));
      await expectTaskError("signed-data", { file: file("odd.json") }, /"kind" is "other", not preflight\.request/);
    });
  });

  describe("vouchers", function () {
    it("signs cumulative vouchers and claims one, then several with a skipped one, then withdraws earnings", async function () {
      const { preflight, usdc, token, payer, provider, delegate } = await loadFixture(escrowWithGrantFixture);
      await runTask("sign-voucher", { from: "1", provider: provider.address, token: "test", model: "llama", amount: "2", out: file("v1.json") });
      const first = await runTask<VoucherOutcome[]>("claim-voucher", { from: "2", file: file("v1.json") });
      expect(first.result[0].paid).to.equal(2n * USDC);

      // Channel "default" moves to 3.5 in total; a delegate signs on channel "agent"; the stale voucher is replayed.
      const latest = (await runTask<SignedVoucherJson>("sign-voucher", { from: "1", provider: provider.address, token: "test", model: "llama", amount: "3.5" })).result;
      const agent = (
        await runTask<SignedVoucherJson>("sign-voucher", {
          from: "3",
          payer: payer.address,
          provider: provider.address,
          token: "test",
          model: "llama",
          channel: "agent",
          amount: "0.75",
        })
      ).result;
      const stale = JSON.parse(fs.readFileSync(file("v1.json"), "utf8")) as SignedVoucherJson;
      expect(agent.signer).to.equal(delegate.address);
      fs.writeFileSync(file("many.json"), JSON.stringify([latest, agent, stale]));
      const { result, output } = await runTask<VoucherOutcome[]>("claim-vouchers", { from: "2", file: file("many.json") });
      expect(result.map((r) => [r.reason, r.paid])).to.deep.equal([
        ["Settled", 1_500_000n],
        ["Settled", 750_000n],
        ["NothingToClaim", 0n],
      ]);
      expect(output).to.match(/voucher 2: payer 0x[0-9a-fA-F]{40}: skipped \(NothingToClaim\)/);
      expect(await preflight.balanceOf(payer.address, token)).to.equal(100n * USDC - 4_250_000n);

      const before = await usdc.balanceOf(provider.address);
      await runTask("withdraw-earnings", { from: "2", token: "test" });
      expect(await usdc.balanceOf(provider.address)).to.equal(before + 4_250_000n);
    });

    it("says what is wrong with the input", async function () {
      const { provider } = await loadFixture(escrowWithGrantFixture);
      const base = { from: "1", provider: provider.address, token: "test", model: "llama" };
      await runTask("sign-voucher", { ...base, amount: "1", out: file("v.json") });
      await runTask("claim-voucher", { from: "2", file: file("v.json") });
      await expectTaskError("sign-voucher", { ...base, amount: "1" }, /already paid 1 tUSDC: sign a total above that/);
      // Claiming an already-claimed voucher is "nothing to do" (exit 0), like settling a settled request.
      const again = await runTask<VoucherOutcome[]>("claim-voucher", { from: "2", file: file("v.json") });
      expect(again.result[0].reason).to.equal("NothingToClaim");
      expect(again.output).to.match(/Nothing to do: the voucher's total is 1 tUSDC and its channel already paid 1 tUSDC; nothing was sent/);
      await expectTaskError("claim-voucher", { from: "1", file: file("v.json") }, /only that provider can claim it/);
      fs.writeFileSync(file("list.json"), JSON.stringify([JSON.parse(fs.readFileSync(file("v.json"), "utf8"))]));
      await expectTaskError("claim-voucher", { from: "2", file: file("list.json") }, /use claim-vouchers for several/);
      await expectTaskError("sign-voucher", { ...base, from: "3", payer: (await ethers.getSigners())[1].address, model: "gpt-x", amount: "2" }, /The grant does not cover model "gpt-x"/);
      await expectTaskError("sign-voucher", { ...base, amount: "1", channel: "0xabc" }, /--channel "0xabc" starts with 0x but is not 32 bytes/);
      fs.writeFileSync(file("empty.json"), "[]");
      await expectTaskError("claim-vouchers", { from: "2", file: file("empty.json") }, /holds an empty list/);
    });
  });
});
