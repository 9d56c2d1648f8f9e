// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ISignatureErrors} from "./ISignatureErrors.sol";

/// @title IEscrow
/// @notice Payer balances per (payer, token), notice-period withdrawals, provider earnings per
/// (provider, token) and the protocol fee. `address(0)` stands for native ETH throughout.
/// @dev Invariant for standard tokens: sum of payer balances + earnings = tokens held.
interface IEscrow is ISignatureErrors {
    /// @notice A deposit named no amount, or a withdrawal had nothing to pay.
    error ZeroAmount();
    /// @notice A balance would exceed the 128 bits it is stored in.
    error BalanceOverflow(uint256 balance, uint256 added);
    /// @notice `withdraw` was called with no pending withdrawal request.
    error NoWithdrawalRequested();
    /// @notice `withdraw` was called before the notice period elapsed.
    error NoticePeriodActive(uint256 readyAt);
    /// @notice Native ETH could not be delivered to `to`.
    error EthTransferFailed(address to);
    /// @notice The notice period given at deployment is zero or above `MAX_NOTICE_PERIOD`.
    error InvalidNoticePeriod(uint256 noticePeriod, uint256 maxNoticePeriod);
    /// @notice The owner tried to set a fee above `MAX_FEE_BPS`.
    error FeeTooHigh(uint256 feeBps, uint256 maxFeeBps);

    /// @notice `amount` was credited to `payer`'s balance of `token`, paid by `from`.
    event Deposited(address indexed payer, address indexed token, address from, uint256 amount);
    /// @notice `payer` asked to withdraw up to `amount` of `token` from `readyAt` on.
    event WithdrawalRequested(address indexed payer, address indexed token, uint256 amount, uint256 readyAt);
    /// @notice `payer` cancelled its pending withdrawal of `token`.
    event WithdrawalCancelled(address indexed payer, address indexed token);
    /// @notice `amount` of `payer`'s `token` balance was sent to `to`.
    event Withdrawn(address indexed payer, address indexed token, address to, uint256 amount);
    /// @notice `amount` of `provider`'s earnings in `token` were sent to `to`.
    event EarningsWithdrawn(address indexed provider, address indexed token, address to, uint256 amount);
    /// @notice The protocol fee became `feeBps` basis points, credited to `recipient`.
    event FeeChanged(uint16 feeBps, address recipient);

    /// @notice Deposits `amount` of ERC-20 `token` (pulled from the caller) into `payer`'s balance.
    /// Tokens that take a fee on transfer are credited by the amount actually received.
    function deposit(address payer, address token, uint256 amount) external;

    /// @notice Deposits `msg.value` native ETH into `payer`'s balance.
    function depositETH(address payer) external payable;

    /// @notice Approves through the token's EIP-2612 `permit` and deposits, in one transaction.
    /// A permit already used (e.g. front-run) is tolerated when the allowance is in place.
    function depositWithPermit(
        address payer,
        address token,
        uint256 amount,
        uint256 deadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external;

    /// @notice Starts the notice period for withdrawing up to `amount` of `token`. Replaces any
    /// earlier request. Providers may still settle against the balance until the withdrawal executes.
    function requestWithdrawal(address token, uint256 amount) external;

    /// @notice Cancels the caller's pending withdrawal request for `token`.
    function cancelWithdrawal(address token) external;

    /// @notice After the notice period, sends min(requested, balance) of `token` to `to`.
    /// @return amount what was sent
    function withdraw(address token, address to) external returns (uint256 amount);

    /// @notice Sends all of the caller's earnings in `token` to `to`. Never blocked.
    /// @return amount what was sent
    function withdrawEarnings(address token, address to) external returns (uint256 amount);

    /// @notice Sets the protocol fee (owner only), at most `MAX_FEE_BPS`. Applies to later settlements.
    function setFee(uint16 feeBps, address recipient) external;

    /// @notice The largest fee the owner may ever set, in basis points.
    function MAX_FEE_BPS() external view returns (uint16);

    /// @notice Seconds between a withdrawal request and its execution, fixed at deployment.
    function NOTICE_PERIOD() external view returns (uint256);

    /// @notice The longest notice period a deployment accepts (365 days): withdrawals can never be frozen.
    function MAX_NOTICE_PERIOD() external view returns (uint256);

    /// @notice `payer`'s balance of `token`.
    function balanceOf(address payer, address token) external view returns (uint256);

    /// @notice `provider`'s withdrawable earnings in `token`.
    function earningsOf(address provider, address token) external view returns (uint256);

    /// @notice `payer`'s pending withdrawal request for `token` (zeroes when none).
    function pendingWithdrawal(address payer, address token) external view returns (uint256 amount, uint256 readyAt);

    /// @notice The protocol fee in basis points and who receives it.
    function fee() external view returns (uint16 feeBps, address recipient);
}
