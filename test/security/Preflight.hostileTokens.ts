import { expect } from "chai";
import { ethers } from "hardhat";
import { loadFixture, time } from "@nomicfoundation/hardhat-network-helpers";
import { deployPreflightFixture, NOTICE_PERIOD } from "../helpers/fixtures";
import { makeRequest, signedRequest } from "../helpers/requests";
import type { Preflight } from "../../typechain-types";

/** Preflight, a payer and a provider, each hostile token and a hostile contract account. */
async function deployHostileTokensFixture() {
  const base = await deployPreflightFixture();
  const { preflight, payer } = base;
  const address = await preflight.getAddress();
  const reentrant = await ethers.deployContract("ReentrantToken");
  const feeOnTransfer = await ethers.deployContract("FeeOnTransferToken");
  const rebasing = await ethers.deployContract("RebasingToken");
  const returnsFalse = await ethers.deployContract("ReturnsFalseToken");
  const noReturn = await ethers.deployContract("NoReturnToken");
  for (const token of [reentrant, feeOnTransfer, rebasing, returnsFalse, noReturn]) {
    await token.mint(payer.address, 10n ** 24n);
    await token.connect(payer).approve(address, ethers.MaxUint256);
  }
  const receiver = await ethers.deployContract("HostileReceiver");
  return { ...base, address, reentrant, feeOnTransfer, rebasing, returnsFalse, noReturn, receiver };
}

/** Sum of every balance and earning the test touched, which must equal what the escrow holds. */
async function accounted(preflight: Preflight, token: string, payers: string[], providers: string[]): Promise<bigint> {
  let sum = 0n;
  for (const p of payers) sum += await preflight.balanceOf(p, token);
  for (const p of providers) sum += await preflight.earningsOf(p, token);
  return sum;
}

const REENTRANCY = ethers.id("Reentrancy()").slice(0, 10);

describe("Security: hostile tokens and receivers", function () {
  describe("an ERC-20 that re-enters on transfer", function () {
    it("cannot re-enter deposit: the nested deposit is refused and the outer one credits exactly once", async function () {
      const { preflight, address, reentrant, payer } = await loadFixture(deployHostileTokensFixture);
      const token = await reentrant.getAddress();
      await reentrant.mint(token, 10n ** 18n); // the token itself will try to deposit during the transfer
      await reentrant.arm(address, preflight.interface.encodeFunctionData("deposit", [payer.address, token, 1n]));
      await preflight.connect(payer).deposit(payer.address, token, 1_000n);
      expect(await reentrant.reentries()).to.equal(1n);
      expect(await reentrant.lastOk()).to.equal(false);
      expect(await reentrant.lastReturn()).to.equal(REENTRANCY);
      expect(await preflight.balanceOf(payer.address, token)).to.equal(1_000n);
      expect(await reentrant.balanceOf(address)).to.equal(1_000n);
      // Nor depositWithPermit, nor depositETH.
      const viaPermit = preflight.interface.encodeFunctionData("depositWithPermit", [payer.address, token, 1n, 0n, 0, ethers.ZeroHash, ethers.ZeroHash]);
      for (const data of [viaPermit, preflight.interface.encodeFunctionData("depositETH", [payer.address])]) {
        await reentrant.arm(address, data);
        await preflight.connect(payer).deposit(payer.address, token, 1_000n);
        expect(await reentrant.lastReturn()).to.equal(REENTRANCY);
      }
      expect(await preflight.balanceOf(payer.address, token)).to.equal(3_000n);
    });

    it("cannot re-enter withdraw or withdrawEarnings, and a nested settle leaves accounting sound", async function () {
      const { preflight, address, reentrant, receiver, payer, provider, domain } = await loadFixture(deployHostileTokensFixture);
      const token = await reentrant.getAddress();
      const receiverAddress = await receiver.getAddress();
      // The contract account is a payer (deposits 1,000) and also a provider.
      await reentrant.mint(receiverAddress, 1_000n);
      await receiver.execute(token, 0, reentrant.interface.encodeFunctionData("approve", [address, ethers.MaxUint256]));
      await receiver.execute(address, 0, preflight.interface.encodeFunctionData("deposit", [receiverAddress, token, 1_000n]));
      await receiver.execute(address, 0, preflight.interface.encodeFunctionData("requestWithdrawal", [token, 400n]));
      await time.increase(NOTICE_PERIOD);
      // During its withdrawal, the token calls the account, which tries to withdraw again.
      const again = preflight.interface.encodeFunctionData("withdraw", [token, receiverAddress]);
      await reentrant.arm(receiverAddress, receiver.interface.encodeFunctionData("execute", [address, 0, again]));
      await receiver.execute(address, 0, again);
      expect(await reentrant.lastOk()).to.equal(false);
      expect(await reentrant.balanceOf(receiverAddress)).to.equal(400n);
      expect(await preflight.balanceOf(receiverAddress, token)).to.equal(600n);

      // The payer pays the account (as provider); during its earnings withdrawal it re-enters
      // withdrawEarnings (refused) — and separately settle, which is not locked but sees final state.
      await preflight.connect(payer).deposit(payer.address, token, 1_000n);
      const request = await makeRequest({ payer: payer.address, provider: receiverAddress, token, price: 300n, nonce: 1n });
      const second = await makeRequest({ payer: payer.address, provider: receiverAddress, token, price: 200n, nonce: 2n, deadline: 2n ** 40n });
      await receiver.execute(address, 0, preflight.interface.encodeFunctionData("settle", [await signedRequest(payer, domain, request)]));
      const earningsAgain = preflight.interface.encodeFunctionData("withdrawEarnings", [token, receiverAddress]);
      await reentrant.arm(receiverAddress, receiver.interface.encodeFunctionData("execute", [address, 0, earningsAgain]));
      await receiver.execute(address, 0, earningsAgain);
      expect(await reentrant.lastOk()).to.equal(false);
      expect(await reentrant.balanceOf(receiverAddress)).to.equal(700n);
      const nestedSettle = preflight.interface.encodeFunctionData("settle", [await signedRequest(payer, domain, second)]);
      await reentrant.arm(receiverAddress, receiver.interface.encodeFunctionData("execute", [address, 0, nestedSettle]));
      await preflight.connect(provider).settle(await signedRequest(payer, domain, await makeRequest({ payer: payer.address, provider: provider.address, token, nonce: 3n, price: 1n })));
      await receiver.execute(address, 0, preflight.interface.encodeFunctionData("requestWithdrawal", [token, 1n]));
      await time.increase(NOTICE_PERIOD);
      await receiver.execute(address, 0, preflight.interface.encodeFunctionData("withdraw", [token, receiverAddress]));
      expect(await reentrant.lastOk()).to.equal(true);
      expect(await preflight.earningsOf(receiverAddress, token)).to.equal(200n);
      const total = await accounted(preflight, token, [payer.address, receiverAddress], [receiverAddress, provider.address]);
      expect(total).to.equal(await reentrant.balanceOf(address));
    });
  });

  describe("an ETH receiver that re-enters or reverts", function () {
    async function ethPayer() {
      const f = await loadFixture(deployHostileTokensFixture);
      const who = await f.receiver.getAddress();
      const call = (data: string, value = 0n) => f.receiver.execute(f.address, value, data, { value });
      await call(f.preflight.interface.encodeFunctionData("depositETH", [who]), 10n ** 18n);
      await call(f.preflight.interface.encodeFunctionData("requestWithdrawal", [ethers.ZeroAddress, ethers.MaxUint256]));
      await time.increase(NOTICE_PERIOD);
      return { ...f, who, call, withdraw: f.preflight.interface.encodeFunctionData("withdraw", [ethers.ZeroAddress, who]) };
    }

    it("a re-entrant withdraw is refused and the payer is paid once", async function () {
      const { preflight, receiver, who, call, withdraw } = await ethPayer();
      await receiver.setMode(2, await preflight.getAddress(), withdraw); // Reenter
      await call(withdraw);
      expect(await receiver.lastOk()).to.equal(false);
      expect(await receiver.lastReturn()).to.equal(REENTRANCY);
      expect(await receiver.received()).to.equal(10n ** 18n);
      expect(await preflight.balanceOf(who, ethers.ZeroAddress)).to.equal(0n);
      expect(await ethers.provider.getBalance(await preflight.getAddress())).to.equal(0n);
    });

    it("a receiver that reverts (or burns gas) only fails its own withdrawal; it can withdraw elsewhere", async function () {
      const { preflight, receiver, other, who, call, withdraw } = await ethPayer();
      for (const mode of [1, 3, 4]) {
        // Revert, ReenterOrRevert, BurnGas
        await receiver.setMode(mode, await preflight.getAddress(), withdraw);
        await expect(call(withdraw, 0n)).to.be.revertedWithCustomError(receiver, "CallFailed");
        expect(await preflight.balanceOf(who, ethers.ZeroAddress)).to.equal(10n ** 18n);
      }
      const elsewhere = preflight.interface.encodeFunctionData("withdraw", [ethers.ZeroAddress, other.address]);
      await expect(call(elsewhere)).to.changeEtherBalance(other, 10n ** 18n);
    });

    it("a provider whose receiver reverts keeps its earnings and can send them elsewhere", async function () {
      const { preflight, receiver, payer, other, domain } = await loadFixture(deployHostileTokensFixture);
      const who = await receiver.getAddress();
      await preflight.connect(payer).depositETH(payer.address, { value: 10n ** 18n });
      const request = await makeRequest({ payer: payer.address, provider: who, token: ethers.ZeroAddress, price: 5n * 10n ** 17n });
      const settle = preflight.interface.encodeFunctionData("settle", [await signedRequest(payer, domain, request)]);
      await receiver.execute(await preflight.getAddress(), 0, settle);
      await receiver.setMode(1, ethers.ZeroAddress, "0x"); // Revert
      const toSelf = preflight.interface.encodeFunctionData("withdrawEarnings", [ethers.ZeroAddress, who]);
      await expect(receiver.execute(await preflight.getAddress(), 0, toSelf)).to.be.revertedWithCustomError(receiver, "CallFailed");
      expect(await preflight.earningsOf(who, ethers.ZeroAddress)).to.equal(5n * 10n ** 17n);
      const toOther = preflight.interface.encodeFunctionData("withdrawEarnings", [ethers.ZeroAddress, other.address]);
      await expect(receiver.execute(await preflight.getAddress(), 0, toOther)).to.changeEtherBalance(other, 5n * 10n ** 17n);
    });
  });

  describe("fee-on-transfer and rebasing tokens", function () {
    it("a fee-on-transfer token is credited by the amount received, keeping the books equal to the holdings", async function () {
      const { preflight, address, feeOnTransfer, payer, provider, other, domain } = await loadFixture(deployHostileTokensFixture);
      const token = await feeOnTransfer.getAddress();
      await expect(preflight.connect(payer).deposit(payer.address, token, 10_000n))
        .to.emit(preflight, "Deposited")
        .withArgs(payer.address, token, payer.address, 9_900n);
      expect(await preflight.balanceOf(payer.address, token)).to.equal(await feeOnTransfer.balanceOf(address));
      const request = await makeRequest({ payer: payer.address, provider: provider.address, token, price: 900n });
      await preflight.connect(provider).settle(await signedRequest(payer, domain, request));
      await preflight.connect(provider).withdrawEarnings(token, provider.address);
      await preflight.connect(payer).requestWithdrawal(token, ethers.MaxUint256);
      await time.increase(NOTICE_PERIOD);
      await expect(preflight.connect(payer).withdraw(token, other.address))
        .to.emit(preflight, "Withdrawn")
        .withArgs(payer.address, token, other.address, 9_000n);
      expect(await feeOnTransfer.balanceOf(address)).to.equal(0n);
      expect(await feeOnTransfer.balanceOf(provider.address)).to.equal(891n); // the token's own fee, not ours
    });

    it("a rebasing token is not supported: a positive rebase strands the surplus, a negative one leaves the escrow short", async function () {
      const { preflight, address, rebasing, payer } = await loadFixture(deployHostileTokensFixture);
      const token = await rebasing.getAddress();
      await preflight.connect(payer).deposit(payer.address, token, 1_000n);
      await rebasing.rebase(2n * 10n ** 18n);
      expect(await rebasing.balanceOf(address)).to.equal(2_000n);
      expect(await preflight.balanceOf(payer.address, token)).to.equal(1_000n); // balances are units, not shares
      await rebasing.rebase(5n * 10n ** 17n);
      expect(await rebasing.balanceOf(address)).to.equal(500n);
      await preflight.connect(payer).requestWithdrawal(token, ethers.MaxUint256);
      await time.increase(NOTICE_PERIOD);
      await expect(preflight.connect(payer).withdraw(token, payer.address)).to.be.revertedWithCustomError(rebasing, "InsufficientBalance");
      expect(await preflight.balanceOf(payer.address, token)).to.equal(1_000n);
    });
  });

  describe("tokens that return false or nothing", function () {
    it("a token returning false never credits a deposit, and a failed payout keeps the balance", async function () {
      const { preflight, address, returnsFalse, payer } = await loadFixture(deployHostileTokensFixture);
      const token = await returnsFalse.getAddress();
      await returnsFalse.setFailing(true);
      await expect(preflight.connect(payer).deposit(payer.address, token, 1_000n))
        .to.be.revertedWithCustomError(preflight, "SafeERC20FailedOperation")
        .withArgs(token);
      expect(await preflight.balanceOf(payer.address, token)).to.equal(0n);
      await returnsFalse.setFailing(false);
      // More than the allowance or balance: false, not a revert, and still no credit.
      await expect(preflight.connect(payer).deposit(payer.address, token, 10n ** 25n)).to.be.revertedWithCustomError(
        preflight,
        "SafeERC20FailedOperation",
      );
      await preflight.connect(payer).deposit(payer.address, token, 1_000n);
      await preflight.connect(payer).requestWithdrawal(token, 1_000n);
      await time.increase(NOTICE_PERIOD);
      await returnsFalse.setFailing(true);
      await expect(preflight.connect(payer).withdraw(token, payer.address)).to.be.revertedWithCustomError(
        preflight,
        "SafeERC20FailedOperation",
      );
      expect(await preflight.balanceOf(payer.address, token)).to.equal(1_000n);
      expect((await preflight.pendingWithdrawal(payer.address, token)).amount).to.equal(1_000n);
      await returnsFalse.setFailing(false);
      await preflight.connect(payer).withdraw(token, payer.address);
      expect(await returnsFalse.balanceOf(address)).to.equal(0n);
    });

    it("a token returning nothing (USDT-style) deposits, settles and pays out", async function () {
      const { preflight, address, noReturn, payer, provider, domain } = await loadFixture(deployHostileTokensFixture);
      const token = await noReturn.getAddress();
      await preflight.connect(payer).deposit(payer.address, token, 1_000n);
      const request = await makeRequest({ payer: payer.address, provider: provider.address, token, price: 250n });
      await preflight.connect(provider).settle(await signedRequest(payer, domain, request));
      await preflight.connect(provider).withdrawEarnings(token, provider.address);
      expect(await noReturn.balanceOf(provider.address)).to.equal(250n);
      expect(await noReturn.balanceOf(address)).to.equal(await preflight.balanceOf(payer.address, token));
    });

    it("an address without code is not a token: depositing it reverts instead of crediting", async function () {
      const { preflight, payer, other } = await loadFixture(deployHostileTokensFixture);
      await expect(preflight.connect(payer).deposit(payer.address, other.address, 1_000n)).to.be.reverted;
      expect(await preflight.balanceOf(payer.address, other.address)).to.equal(0n);
    });
  });
});
