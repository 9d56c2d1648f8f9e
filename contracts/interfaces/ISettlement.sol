// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {SignedRequest, SignedVoucher, Reason} from "./IPreflightTypes.sol";
import {ISignatureErrors} from "./ISignatureErrors.sol";

/// @title ISettlement
/// @notice Providers settle signed inference requests (one, or a batch) and cumulative vouchers.
/// Each settled item debits the payer and credits the provider, less the protocol fee.
interface ISettlement is ISignatureErrors {
    /// @notice The request's deadline has passed.
    error RequestExpired(uint256 deadline);
    /// @notice The payer's nonce was already used (or invalidated).
    error NonceAlreadyUsed(address payer, uint256 nonce);
    /// @notice The payer's balance does not cover the amount.
    error InsufficientBalance(uint256 balance, uint256 needed);
    /// @notice The voucher's cumulative amount does not exceed what the channel already paid.
    error NothingToClaim(uint256 cumulativeAmount, uint256 alreadyClaimed);

    /// @notice One request settled on its own.
    event RequestSettled(address indexed payer, address indexed provider, address token, uint256 nonce, uint256 price);
    /// @notice A batch settled. The items are in the transaction's calldata; those listed by
    /// `RequestSkipped` in the same transaction did not settle. `total` is debited from payers,
    /// `total - fee` credited to the provider.
    event BatchSettled(address indexed provider, address indexed token, uint256 settled, uint256 total, uint256 fee);
    /// @notice Item `index` of a batch did not settle, for `reason`.
    event RequestSkipped(address indexed provider, uint256 index, address payer, uint256 nonce, Reason reason);
    /// @notice A voucher paid `amount`, bringing its channel to `cumulativeAmount`.
    event VoucherClaimed(
        address indexed payer,
        address indexed provider,
        address token,
        bytes32 channel,
        uint256 cumulativeAmount,
        uint256 amount
    );
    /// @notice Voucher `index` of a multi-claim did not pay, for `reason`.
    event VoucherSkipped(address indexed provider, uint256 index, address payer, bytes32 channel, Reason reason);
    /// @notice `payer` invalidated the nonces of `word` set in `mask`.
    event NoncesInvalidated(address indexed payer, address indexed token, uint256 word, uint256 mask);

    /// @notice Settles one request to the caller (the provider). Reverts with a specific error on any failure.
    function settle(SignedRequest calldata request) external;

    /// @notice Settles requests in `token` to the caller. Invalid items are skipped, never reverted:
    /// their reasons are returned and emitted, and the provider is credited once.
    /// @return reasons one per item; `Reason.Settled` (0) for those that settled
    function settleBatch(address token, SignedRequest[] calldata requests) external returns (Reason[] memory reasons);

    /// @notice Claims one voucher to the caller: pays `cumulativeAmount` minus what its channel already paid.
    /// @return amount what was paid
    function claimVoucher(SignedVoucher calldata voucher) external returns (uint256 amount);

    /// @notice Claims several vouchers in `token` to the caller, skipping invalid ones.
    /// @return reasons one per voucher; `Reason.Settled` (0) for those that paid
    function claimVouchers(address token, SignedVoucher[] calldata vouchers) external returns (Reason[] memory reasons);

    /// @notice Marks the nonces set in `mask` of bitmap `word` as used, so they can never settle. Also
    /// slides the caller's nonce window up over up to 8 full words that settlements left behind
    /// (a `mask` of 0 does only that).
    function invalidateNonces(address token, uint256 word, uint64 mask) external;

    /// @notice Bitmap of used nonces of (payer, token) in `word` (bit i = nonce word*64+i).
    function nonceBitmap(address payer, address token, uint256 word) external view returns (uint64);

    /// @notice What a voucher channel has paid so far.
    function claimedOf(address payer, address provider, address token, bytes32 channel) external view returns (uint256);
}
