// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IEscrow} from "./interfaces/IEscrow.sol";
import {PayerAccount} from "./libraries/PayerAccount.sol";
import {MappingSlots} from "./libraries/MappingSlots.sol";

/// @title Escrow
/// @notice Holds payer deposits, provider earnings and accrued fees. There is no owner: the notice
/// period and the fee are fixed at deployment, nobody but a payer moves its balance, nobody but a
/// provider moves its earnings, and nothing can pause them.
abstract contract Escrow is IEscrow {
    using SafeERC20 for IERC20;
    using PayerAccount for uint256;

    /// @dev `address(0)` stands for native ETH.
    address internal constant ETH = address(0);
    uint256 private constant BPS = 10_000;
    /// @dev Set in a provider's earnings slot from its first credit on: a withdrawal leaves the slot
    /// non-zero, so the next settlement rewrites it (2,900 gas) instead of creating it (20,000).
    uint256 private constant EARNED = 1 << 255;

    /// @inheritdoc IEscrow
    uint16 public constant MAX_FEE_BPS = 1_000;
    /// @inheritdoc IEscrow
    uint256 public constant MAX_NOTICE_PERIOD = 365 days;
    /// @inheritdoc IEscrow
    uint256 public constant WITHDRAWAL_WINDOW = 7 days;
    /// @inheritdoc IEscrow
    uint256 public immutable NOTICE_PERIOD;
    /// @inheritdoc IEscrow
    uint16 public immutable FEE_BPS;
    /// @inheritdoc IEscrow
    address public immutable FEE_RECIPIENT;

    /// @dev A pending withdrawal in one slot (0 = none):
    ///   bits   0..127  amount, capped at the balance when requested
    ///   bits 128..167  readyAt: executable in [readyAt, readyAt + WITHDRAWAL_WINDOW)
    ///   bits 168..255  depositedSince: deposited since the request, never under notice, so never
    ///                  withdrawn by it
    uint256 private constant READY_AT_SHIFT = 128;
    uint256 private constant DEPOSITED_SHIFT = 168;

    /// @dev Packed balance + nonce window, see `PayerAccount`.
    mapping(address payer => mapping(address token => uint256 account)) internal _accounts;
    /// @dev Nonce bitmap words above each account's window.
    mapping(address payer => mapping(address token => mapping(uint256 word => uint256 bits))) internal _spilledNonces;
    mapping(address payer => mapping(address token => uint256 request)) private _withdrawals;
    /// @dev Gross earnings (the fee is taken from them on withdrawal), with the `EARNED` bit.
    mapping(address provider => mapping(address token => uint256 amount)) private _earnings;
    mapping(address token => uint256 amount) private _fees;

    /// @dev Reentrancy lock in transient storage: 100 gas to take, nothing left behind.
    bool private transient _locked;

    error Reentrancy();

    modifier nonReentrant() {
        if (_locked) revert Reentrancy();
        _locked = true;
        _;
        _locked = false;
    }

    constructor(uint256 noticePeriod, uint16 feeBps, address feeRecipient) {
        // Zero would let a payer withdraw under a provider's feet; a huge value would freeze withdrawals
        // (and overflow the 40-bit readyAt). Both are refused at deployment.
        if (noticePeriod == 0 || noticePeriod > MAX_NOTICE_PERIOD) revert InvalidNoticePeriod(noticePeriod, MAX_NOTICE_PERIOD);
        if (feeBps > MAX_FEE_BPS) revert FeeTooHigh(feeBps, MAX_FEE_BPS);
        if (feeBps != 0 && feeRecipient == address(0)) revert ZeroAddress();
        NOTICE_PERIOD = noticePeriod;
        FEE_BPS = feeBps;
        FEE_RECIPIENT = feeRecipient;
    }

    // ------------------------------------------------------------------ deposits

    /// @inheritdoc IEscrow
    function deposit(address payer, address token, uint256 amount) external nonReentrant {
        _credit(payer, token, _pull(token, amount));
    }

    /// @inheritdoc IEscrow
    function depositETH(address payer) external payable nonReentrant {
        _credit(payer, ETH, msg.value);
    }

    /// @inheritdoc IEscrow
    function depositWithPermit(
        address payer,
        address token,
        uint256 amount,
        uint256 deadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external nonReentrant {
        // A permit front-run by someone else reverts here, yet its allowance is in place: carry on,
        // and let the transfer itself fail if the allowance is really missing.
        try IERC20Permit(token).permit(msg.sender, address(this), amount, deadline, v, r, s) {} catch {}
        _credit(payer, token, _pull(token, amount));
    }

    // ------------------------------------------------------------------ withdrawals

    /// @inheritdoc IEscrow
    function requestWithdrawal(address token, uint256 amount) external {
        uint256 balance = _accounts[msg.sender][token].balance();
        // Capped at the balance now: a request made before a deposit cannot take that deposit later.
        if (amount > balance) amount = balance;
        if (amount == 0) revert ZeroAmount();
        uint256 readyAt = block.timestamp + NOTICE_PERIOD;
        // Fits: amount <= balance < 2^128, readyAt < 2^40 (the notice is at most a year).
        _withdrawals[msg.sender][token] = amount | (readyAt << READY_AT_SHIFT);
        emit WithdrawalRequested(msg.sender, token, amount, readyAt, readyAt + WITHDRAWAL_WINDOW);
    }

    /// @inheritdoc IEscrow
    function cancelWithdrawal(address token) external {
        if (_withdrawals[msg.sender][token] == 0) revert NoWithdrawalRequested();
        delete _withdrawals[msg.sender][token];
        emit WithdrawalCancelled(msg.sender, token);
    }

    /// @inheritdoc IEscrow
    function withdraw(address token, address to) external nonReentrant returns (uint256 amount) {
        if (to == address(0)) revert ZeroAddress();
        (uint256 requested, uint256 readyAt, uint256 depositedSince) = _unpackWithdrawal(_withdrawals[msg.sender][token]);
        Window window = _window(readyAt);
        if (window == Window.NotRequested) revert NoWithdrawalRequested();
        if (window == Window.NotReady) revert NoticePeriodActive(readyAt);
        if (window == Window.Lapsed) revert WithdrawalLapsed(readyAt + WITHDRAWAL_WINDOW);
        uint256 account = _accounts[msg.sender][token];
        uint256 balance = account.balance();
        // Pay what is left of the balance that was under notice: deposits since the request were not
        // (a provider may have served against them), and settlements draw on the oldest funds first.
        uint256 noticed = balance > depositedSince ? balance - depositedSince : 0;
        amount = requested < noticed ? requested : noticed;
        if (amount == 0) revert ZeroAmount();
        delete _withdrawals[msg.sender][token];
        _accounts[msg.sender][token] = account.withBalance(balance - amount);
        emit Withdrawn(msg.sender, token, to, amount);
        _send(token, to, amount);
    }

    /// @inheritdoc IEscrow
    function withdrawEarnings(address token, address to) external nonReentrant returns (uint256 amount) {
        if (to == address(0)) revert ZeroAddress();
        uint256 gross = _earnings[msg.sender][token] & ~EARNED;
        if (gross == 0) revert ZeroAmount();
        _earnings[msg.sender][token] = EARNED;
        uint256 feeAmount = _feeOn(gross);
        // Cannot underflow: the fee is at most MAX_FEE_BPS (10%) of gross, rounded up, so <= gross.
        unchecked {
            amount = gross - feeAmount;
        }
        if (feeAmount != 0) _fees[token] += feeAmount;
        emit EarningsWithdrawn(msg.sender, token, to, amount, feeAmount);
        if (amount != 0) _send(token, to, amount);
    }

    /// @inheritdoc IEscrow
    function withdrawFees(address token) external nonReentrant returns (uint256 amount) {
        amount = _fees[token];
        if (amount == 0) revert ZeroAmount();
        _fees[token] = 0;
        emit FeesWithdrawn(token, FEE_RECIPIENT, amount);
        _send(token, FEE_RECIPIENT, amount);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IEscrow
    function balanceOf(address payer, address token) external view returns (uint256) {
        return _accounts[payer][token].balance();
    }

    /// @inheritdoc IEscrow
    function earningsOf(address provider, address token) external view returns (uint256) {
        return _earnings[provider][token] & ~EARNED;
    }

    /// @inheritdoc IEscrow
    function feesOf(address token) external view returns (uint256) {
        return _fees[token];
    }

    /// @inheritdoc IEscrow
    function pendingWithdrawal(address payer, address token)
        external
        view
        returns (uint256 amount, uint256 readyAt, uint256 depositedSince)
    {
        return _unpackWithdrawal(_withdrawals[payer][token]);
    }

    // ------------------------------------------------------------------ internal

    /// @dev Credits `amount` (gross: the fee is taken on withdrawal) of `token` to `provider`: the one
    /// write a settlement transaction makes for the provider.
    function _creditEarnings(address provider, address token, uint256 amount) internal {
        // The slot's key is hashed once, for the read and the write.
        uint256 slot = MappingSlots.slotOf(_earnings, provider, token);
        // Cannot reach bit 255: earnings are sums of 128-bit debits of the tokens this contract holds.
        unchecked {
            MappingSlots.store(slot, (MappingSlots.load(slot) | EARNED) + amount);
        }
    }

    /// @dev The fee on `gross`, rounded up: ceil(gross * FEE_BPS / 10,000).
    function _feeOn(uint256 gross) internal view returns (uint256) {
        uint256 bps = FEE_BPS;
        if (bps == 0) return 0;
        // Cannot overflow: gross is a sum of 128-bit debits (far below 2^256 / 1,000).
        unchecked {
            return (gross * bps + BPS - 1) / BPS;
        }
    }

    /// @dev Where now stands against a notice that matures at `readyAt` (0 = none requested) and lapses
    /// `WITHDRAWAL_WINDOW` later: the one rule for withdrawals and lane closes.
    enum Window {
        Open,
        NotRequested,
        NotReady,
        Lapsed
    }

    function _window(uint256 readyAt) internal view returns (Window) {
        if (readyAt == 0) return Window.NotRequested;
        if (block.timestamp < readyAt) return Window.NotReady;
        if (block.timestamp >= readyAt + WITHDRAWAL_WINDOW) return Window.Lapsed;
        return Window.Open;
    }

    /// @dev Adds `amount` of `token` to `payer`'s balance.
    function _credit(address payer, address token, uint256 amount) internal {
        if (payer == address(0)) revert ZeroAddress();
        if (amount == 0) revert ZeroAmount();
        uint256 account = _accounts[payer][token];
        uint256 balance = account.balance();
        if (balance + amount > type(uint128).max) revert BalanceOverflow(balance, amount);
        _accounts[payer][token] = account.withBalance(balance + amount);
        _countDepositInWithdrawal(payer, token, amount);
        emit Deposited(payer, token, msg.sender, amount);
    }

    /// @dev A withdrawal requested before a deposit must not take it (see `withdraw`): counts the
    /// deposit of `amount` in `payer`'s pending request, if any, in its top 88 bits (`depositedSince`),
    /// which the add must not carry out of. Its own function so that the three deposit entry points
    /// share one copy.
    function _countDepositInWithdrawal(address payer, address token, uint256 amount) private {
        uint256 request = _withdrawals[payer][token];
        if (request == 0) return;
        uint256 since = (request >> DEPOSITED_SHIFT) + amount;
        if (since >> (256 - DEPOSITED_SHIFT) != 0) revert PendingWithdrawalDepositsOverflow();
        // Cannot overflow: since fits the top 88 bits (checked above).
        unchecked {
            _withdrawals[payer][token] = request + (amount << DEPOSITED_SHIFT);
        }
    }

    /// @dev The fields of a pending withdrawal slot (zeroes when none).
    function _unpackWithdrawal(uint256 request)
        private
        pure
        returns (uint256 amount, uint256 readyAt, uint256 depositedSince)
    {
        return (uint128(request), uint40(request >> READY_AT_SHIFT), request >> DEPOSITED_SHIFT);
    }

    /// @dev Pulls `amount` of ERC-20 `token` from the caller; returns what actually arrived, so a token
    /// that takes a fee on transfer is credited by the amount received.
    function _pull(address token, uint256 amount) internal returns (uint256 received) {
        if (token == ETH) revert ZeroAddress();
        if (amount == 0) revert ZeroAmount();
        uint256 before = IERC20(token).balanceOf(address(this));
        IERC20(token).safeTransferFrom(msg.sender, address(this), amount);
        received = IERC20(token).balanceOf(address(this)) - before;
    }

    function _send(address token, address to, uint256 amount) internal {
        if (token == ETH) {
            (bool ok,) = to.call{value: amount}("");
            if (!ok) revert EthTransferFailed(to);
        } else {
            IERC20(token).safeTransfer(to, amount);
        }
    }
}
