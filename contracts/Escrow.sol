// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {IEscrow} from "./interfaces/IEscrow.sol";
import {PayerAccount} from "./libraries/PayerAccount.sol";

/// @title Escrow
/// @notice Holds payer deposits and provider earnings. The owner's only power is the protocol fee,
/// capped in code at `MAX_FEE_BPS` and applied to later settlements: no function lets anyone but a
/// payer move its balance, or anyone but a provider move its earnings, and nothing can pause them.
abstract contract Escrow is IEscrow, Ownable2Step {
    using SafeERC20 for IERC20;
    using PayerAccount for uint256;

    /// @dev `address(0)` stands for native ETH.
    address internal constant ETH = address(0);
    uint16 private constant BPS = 10_000;

    /// @inheritdoc IEscrow
    uint16 public constant MAX_FEE_BPS = 1_000;
    /// @inheritdoc IEscrow
    uint256 public immutable NOTICE_PERIOD;
    /// @inheritdoc IEscrow
    uint256 public constant MAX_NOTICE_PERIOD = 365 days;

    /// @dev A pending withdrawal. Packs into one slot (128 + 40 bits).
    struct Withdrawal {
        uint128 amount;
        uint40 readyAt;
    }

    /// @dev The protocol fee. Packs into one slot (160 + 16 bits), read once per settlement transaction.
    struct FeeConfig {
        address recipient;
        uint16 bps;
    }

    /// @dev Packed balance + nonce window, see `PayerAccount`.
    mapping(address payer => mapping(address token => uint256 account)) internal _accounts;
    /// @dev Nonce bitmap words above each account's window.
    mapping(address payer => mapping(address token => mapping(uint256 word => uint256 bits))) internal _spilledNonces;
    mapping(address payer => mapping(address token => Withdrawal)) private _withdrawals;
    mapping(address provider => mapping(address token => uint256 amount)) private _earnings;
    FeeConfig private _fee;

    /// @dev Reentrancy lock in transient storage: 100 gas to take, nothing left behind.
    bool private transient _locked;

    error Reentrancy();

    modifier nonReentrant() {
        if (_locked) revert Reentrancy();
        _locked = true;
        _;
        _locked = false;
    }

    constructor(address initialOwner, uint256 noticePeriod, uint16 feeBps, address feeRecipient)
        Ownable(initialOwner)
    {
        // Zero would let a payer withdraw under a provider's feet; a huge value would freeze withdrawals
        // (and overflow the 40-bit readyAt). Both are refused at deployment.
        if (noticePeriod == 0 || noticePeriod > MAX_NOTICE_PERIOD) revert InvalidNoticePeriod(noticePeriod, MAX_NOTICE_PERIOD);
        NOTICE_PERIOD = noticePeriod;
        _setFee(feeBps, feeRecipient);
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
        if (amount == 0) revert ZeroAmount();
        if (amount > type(uint128).max) amount = type(uint128).max; // "everything": no balance exceeds it
        uint256 readyAt = block.timestamp + NOTICE_PERIOD;
        _withdrawals[msg.sender][token] = Withdrawal(uint128(amount), uint40(readyAt));
        emit WithdrawalRequested(msg.sender, token, amount, readyAt);
    }

    /// @inheritdoc IEscrow
    function cancelWithdrawal(address token) external {
        if (_withdrawals[msg.sender][token].readyAt == 0) revert NoWithdrawalRequested();
        delete _withdrawals[msg.sender][token];
        emit WithdrawalCancelled(msg.sender, token);
    }

    /// @inheritdoc IEscrow
    function withdraw(address token, address to) external nonReentrant returns (uint256 amount) {
        if (to == address(0)) revert ZeroAddress();
        Withdrawal memory request = _withdrawals[msg.sender][token];
        if (request.readyAt == 0) revert NoWithdrawalRequested();
        if (block.timestamp < request.readyAt) revert NoticePeriodActive(request.readyAt);
        uint256 account = _accounts[msg.sender][token];
        uint256 balance = account.balance();
        // Settlements may have drawn on the balance during the notice: pay what is left.
        amount = request.amount < balance ? request.amount : balance;
        if (amount == 0) revert ZeroAmount();
        delete _withdrawals[msg.sender][token];
        _accounts[msg.sender][token] = account.withBalance(balance - amount);
        emit Withdrawn(msg.sender, token, to, amount);
        _send(token, to, amount);
    }

    /// @inheritdoc IEscrow
    function withdrawEarnings(address token, address to) external nonReentrant returns (uint256 amount) {
        if (to == address(0)) revert ZeroAddress();
        amount = _earnings[msg.sender][token];
        if (amount == 0) revert ZeroAmount();
        _earnings[msg.sender][token] = 0;
        emit EarningsWithdrawn(msg.sender, token, to, amount);
        _send(token, to, amount);
    }

    // ------------------------------------------------------------------ fee

    /// @inheritdoc IEscrow
    function setFee(uint16 feeBps, address recipient) external onlyOwner {
        _setFee(feeBps, recipient);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IEscrow
    function balanceOf(address payer, address token) external view returns (uint256) {
        return _accounts[payer][token].balance();
    }

    /// @inheritdoc IEscrow
    function earningsOf(address provider, address token) external view returns (uint256) {
        return _earnings[provider][token];
    }

    /// @inheritdoc IEscrow
    function pendingWithdrawal(address payer, address token) external view returns (uint256 amount, uint256 readyAt) {
        Withdrawal memory request = _withdrawals[payer][token];
        return (request.amount, request.readyAt);
    }

    /// @inheritdoc IEscrow
    function fee() external view returns (uint16 feeBps, address recipient) {
        return (_fee.bps, _fee.recipient);
    }

    // ------------------------------------------------------------------ internal

    /// @dev Credits `amount` (already net of the protocol fee) of `token` to `provider`, and `feeAmount`
    /// to the fee recipient. One write per party per settlement transaction.
    function _creditEarnings(address provider, address token, uint256 gross) internal returns (uint256 feeAmount) {
        FeeConfig memory config = _fee;
        // Cannot overflow or underflow: gross is a sum of 128-bit debits, bps <= 1,000, so fee <= gross.
        unchecked {
            feeAmount = gross * config.bps / BPS;
        }
        _earnings[provider][token] += gross - feeAmount;
        if (feeAmount != 0) _earnings[config.recipient][token] += feeAmount;
    }

    function _credit(address payer, address token, uint256 amount) private {
        if (payer == address(0)) revert ZeroAddress();
        if (amount == 0) revert ZeroAmount();
        uint256 account = _accounts[payer][token];
        uint256 balance = account.balance();
        if (balance + amount > type(uint128).max) revert BalanceOverflow(balance, amount);
        _accounts[payer][token] = account.withBalance(balance + amount);
        emit Deposited(payer, token, msg.sender, amount);
    }

    /// @dev Pulls `amount` of ERC-20 `token` from the caller; returns what actually arrived, so a token
    /// that takes a fee on transfer is credited by the amount received.
    function _pull(address token, uint256 amount) private returns (uint256 received) {
        if (token == ETH) revert ZeroAddress();
        if (amount == 0) revert ZeroAmount();
        uint256 before = IERC20(token).balanceOf(address(this));
        IERC20(token).safeTransferFrom(msg.sender, address(this), amount);
        received = IERC20(token).balanceOf(address(this)) - before;
    }

    function _send(address token, address to, uint256 amount) private {
        if (token == ETH) {
            (bool ok,) = to.call{value: amount}("");
            if (!ok) revert EthTransferFailed(to);
        } else {
            IERC20(token).safeTransfer(to, amount);
        }
    }

    function _setFee(uint16 feeBps, address recipient) private {
        if (feeBps > MAX_FEE_BPS) revert FeeTooHigh(feeBps, MAX_FEE_BPS);
        if (feeBps != 0 && recipient == address(0)) revert ZeroAddress();
        _fee = FeeConfig(recipient, feeBps);
        emit FeeChanged(feeBps, recipient);
    }
}
