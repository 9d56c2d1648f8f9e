// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ISignatureErrors} from "./ISignatureErrors.sol";

/// @title IEscrow
/// @notice Payer balances per (payer, token), withdrawals after a notice period, provider earnings per
/// (provider, token) and the protocol fee. `address(0)` stands for native ETH throughout.
///
/// There is no owner. The fee (`FEE_BPS`, credited to `FEE_RECIPIENT`) is fixed at deployment: a new
/// fee is a new deployment at its own address. Settlements credit the provider the gross amount; the
/// fee is taken when the provider withdraws, rounded up on the whole amount withdrawn
/// (`fee = ceil(gross * FEE_BPS / 10_000)`), so splitting payments into many small settlements never
/// avoids it, and the settlement hot path neither reads a fee nor writes a second slot.
/// @dev Invariant for standard tokens: sum of payer balances + lane funds + earnings + accrued fees =
/// tokens held.
interface IEscrow is ISignatureErrors {
    /// @notice A deposit named no amount, or a withdrawal had nothing to pay.
    error ZeroAmount();
    /// @notice A balance would exceed the 128 bits it is stored in.
    error BalanceOverflow(uint256 balance, uint256 added);
    /// @notice `withdraw` was called with no pending withdrawal request.
    error NoWithdrawalRequested();
    /// @notice `withdraw` was called before the notice period elapsed.
    error NoticePeriodActive(uint256 readyAt);
    /// @notice `withdraw` was called after the request's window closed; request again.
    error WithdrawalLapsed(uint256 expiredAt);
    /// @notice Deposits made while a withdrawal request is pending would exceed the 2^88 - 1 units
    /// tracked for it (`depositedSince`); cancel the request (or execute it) first.
    error PendingWithdrawalDepositsOverflow();
    /// @notice Native ETH could not be delivered to `to`.
    error EthTransferFailed(address to);
    /// @notice The notice period given at deployment is zero or above `MAX_NOTICE_PERIOD`.
    error InvalidNoticePeriod(uint256 noticePeriod, uint256 maxNoticePeriod);
    /// @notice The fee given at deployment is above `MAX_FEE_BPS`.
    error FeeTooHigh(uint256 feeBps, uint256 maxFeeBps);

    /// @notice `amount` was credited to `payer`'s balance of `token`, paid by `from`. While a
    /// withdrawal request is pending it also counts as deposited since the request (see `withdraw`).
    event Deposited(address indexed payer, address indexed token, address from, uint256 amount);
    /// @notice `payer` may withdraw `amount` of `token` (its whole balance or less, capped when asked)
    /// from `readyAt` until `expiresAt` (exclusive). Replaces any earlier request.
    event WithdrawalRequested(address indexed payer, address indexed token, uint256 amount, uint256 readyAt, uint256 expiresAt);
    /// @notice `payer` cancelled its pending withdrawal of `token`.
    event WithdrawalCancelled(address indexed payer, address indexed token);
    /// @notice `amount` of `payer`'s `token` balance was sent to `to`; the request is consumed.
    event Withdrawn(address indexed payer, address indexed token, address to, uint256 amount);
    /// @notice `provider`'s earnings in `token` were paid out: `amount` to `to`, `fee` to the fee
    /// accumulator (`amount + fee` is what the provider had earned).
    event EarningsWithdrawn(address indexed provider, address indexed token, address to, uint256 amount, uint256 fee);
    /// @notice `amount` of accrued fees in `token` were sent to `FEE_RECIPIENT`.
    event FeesWithdrawn(address indexed token, address recipient, uint256 amount);

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

    /// @notice Asks to withdraw up to `amount` of `token`, capped at the caller's balance now (so a
    /// request cannot be armed before a deposit). It can execute from `NOTICE_PERIOD` after now, for
    /// `WITHDRAWAL_WINDOW`; then it lapses. Replaces any earlier request. Providers may still settle
    /// against the balance until the withdrawal executes.
    function requestWithdrawal(address token, uint256 amount) external;

    /// @notice Cancels the caller's pending withdrawal request for `token`.
    function cancelWithdrawal(address token) external;

    /// @notice Inside the request's window, sends min(requested, balance - depositedSinceRequest) of
    /// `token` to `to`: only funds that were in escrow for the whole notice period (settlements draw
    /// on them first). Reverts `ZeroAmount` when nothing of them is left; the request then stays.
    /// @return amount what was sent
    function withdraw(address token, address to) external returns (uint256 amount);

    /// @notice Pays out all of the caller's earnings in `token`: the fee (rounded up) to the fee
    /// accumulator, the rest to `to`. Never blocked.
    /// @return amount what was sent to `to`
    function withdrawEarnings(address token, address to) external returns (uint256 amount);

    /// @notice Sends every fee accrued in `token` to `FEE_RECIPIENT`. Anyone may call it.
    /// @return amount what was sent
    function withdrawFees(address token) external returns (uint256 amount);

    /// @notice The protocol fee in basis points, fixed at deployment.
    function FEE_BPS() external view returns (uint16);

    /// @notice Who receives the protocol fee, fixed at deployment (zero when the fee is zero).
    function FEE_RECIPIENT() external view returns (address);

    /// @notice The largest fee a deployment accepts, in basis points (1,000 = 10%).
    function MAX_FEE_BPS() external view returns (uint16);

    /// @notice Seconds between a withdrawal request (or lane close request) and its execution.
    function NOTICE_PERIOD() external view returns (uint256);

    /// @notice The longest notice period a deployment accepts (365 days): withdrawals can never be frozen.
    function MAX_NOTICE_PERIOD() external view returns (uint256);

    /// @notice Seconds after maturing during which a withdrawal (or lane close) may execute (7 days).
    function WITHDRAWAL_WINDOW() external view returns (uint256);

    /// @notice `payer`'s balance of `token`.
    function balanceOf(address payer, address token) external view returns (uint256);

    /// @notice `provider`'s earnings in `token` before the fee (what settlements credited).
    function earningsOf(address provider, address token) external view returns (uint256);

    /// @notice Fees accrued in `token` and not yet sent to `FEE_RECIPIENT`.
    function feesOf(address token) external view returns (uint256);

    /// @notice `payer`'s pending withdrawal request for `token` (zeroes when none). It may execute in
    /// [readyAt, readyAt + WITHDRAWAL_WINDOW) and pays at most min(amount, balance - depositedSince),
    /// where `depositedSince` is what was deposited to the payer since the request.
    function pendingWithdrawal(address payer, address token)
        external
        view
        returns (uint256 amount, uint256 readyAt, uint256 depositedSince);
}
