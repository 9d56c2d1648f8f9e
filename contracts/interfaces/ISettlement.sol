// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {SignedRequest, SignedVoucher, Reason} from "./IPreflightTypes.sol";
import {ISignatureErrors} from "./ISignatureErrors.sol";

/// @title ISettlement
/// @notice Providers settle signed inference requests (one, a batch, or a packed batch) and cumulative
/// vouchers on channels of the payer's shared balance. Each settled item debits the payer and credits
/// the provider, `msg.sender`, the gross amount (the fee is taken on withdrawal, see `IEscrow`).
///
/// LOGS. Every settlement call emits exactly one event whose data says everything it did; no
/// follower decodes calldata. The data is NOT ABI-encoded: it is the packed bytes below, back to back,
/// big-endian, no padding (read it from the log's `data` field). The provider credited is always
/// `msg.sender` of the settlement call (a Safe, multisig or other contract settling for itself is the
/// provider), and is topic 1; the token is topic 2; topic 0 is the event signature as usual.
///
///   RequestsSettled data := group*
///     group  := payer (20) . firstNonce (8) . price (12) . count (2) . entry*count
///     entry  := tag (1) [. delegate (20) when tag = 0x80]
///   Item k of a group is the payer's request with nonce firstNonce + k, at `price`.
///     tag 0x00  settled, signed by the payer (ECDSA, or accepted by its ERC-1271 wallet)
///     tag 0x80  settled, signed by `delegate` within its grant (the grant's remaining budget fell by price)
///     tag 0x01..0x0f  skipped, tag = `Reason` code; nothing changed for that item
///   A settled item used its nonce, debited price from the payer's balance and credited it to the
///   provider; the provider's earnings rose by the sum of the settled prices.
///
///   VouchersClaimed data := claim*
///     claim  := payer (20) . channel (32) . cumulativeAmount (16) . amount (16) . tag (1) [. delegate (20)]
///   A paid claim (tag 0x00 or 0x80) moved the channel's claimed total to cumulativeAmount, debited
///   amount from the payer's balance and credited it to the provider. A skipped claim (tag = `Reason`)
///   carries the voucher's cumulativeAmount and amount 0, and changed nothing.
///
/// CONTRACT PAYERS (ERC-1271). A contract payer's wallet is asked (`isValidSignature`, at most 200,000
/// gas) only when ECDSA recovery matched neither the payer nor a delegate, and only with its whole
/// allowance: with less gas left the call is not made and the transaction reverts
/// `SignatureCheckOutOfGas` (retry with more gas). Once a payer's wallet refused (or ran out of its
/// allowance) in a transaction, its later items in that transaction (requests, channel and lane
/// claims) are skipped with `InvalidSigner` (4) without asking the wallet again, so one hostile
/// wallet costs a batch one capped check. Such an item keeps its nonce free: settle it again in a
/// later transaction.
interface ISettlement is ISignatureErrors {
    /// @notice The request's deadline has passed.
    error RequestExpired(uint256 deadline);
    /// @notice The payer's nonce was already used (or invalidated).
    error NonceAlreadyUsed(address payer, uint256 nonce);
    /// @notice A readable request's nonce is 2^64 or more (nonces are 64-bit in logs and packed calldata).
    error NonceOutOfRange(uint256 nonce);
    /// @notice The payer's balance (or the lane's funds) does not cover the amount.
    error InsufficientBalance(uint256 balance, uint256 needed);
    /// @notice The voucher's cumulative amount does not exceed what the channel or lane already paid.
    error NothingToClaim(uint256 cumulativeAmount, uint256 alreadyClaimed);
    /// @notice `packed` does not parse (a provider-side encoding error); `offset` is where it broke.
    error MalformedPackedBatch(uint256 offset);

    /// @notice A settlement call settled and skipped the requests described by the packed log data
    /// (see the contract-level NatSpec: groups of payer, firstNonce, price, count, tags).
    event RequestsSettled(address indexed provider, address indexed token);
    /// @notice A channel claim call paid and skipped the vouchers described by the packed log data.
    event VouchersClaimed(address indexed provider, address indexed token);
    /// @notice `payer` invalidated the nonces of `word` set in `mask` (and caught its window up).
    event NoncesInvalidated(address indexed payer, address indexed token, uint256 word, uint256 mask);

    /// @notice Settles one request to the caller (the provider). Reverts with a specific error on any
    /// failure; emits `RequestsSettled` with one group of one entry.
    function settle(SignedRequest calldata request) external;

    /// @notice Settles requests in `token` to the caller. Invalid items are skipped, never reverted:
    /// their reasons are returned and logged (one group per item in `RequestsSettled`).
    /// @return reasons one per item; `Reason.Settled` (0) for those that settled
    function settleBatch(address token, SignedRequest[] calldata requests) external returns (Reason[] memory reasons);

    /// @notice The compact entry point for one request or many: the same signed `Request`s and the
    /// same checks as `settleBatch`, in about a quarter of the calldata. Invalid items are skipped and
    /// logged; a malformed `packed` reverts with `MalformedPackedBatch`.
    ///
    ///   packed  := section+
    ///   section := model (32) . price (12) . deadline (8) . groups (2) . group*groups
    ///   group   := payer (20) . firstNonce (8) . count (2) . item*count
    ///   item    := inputHash (32) . r (32) . vs (32)            (64-byte EIP-2098 signature)
    ///
    /// Item k of a group is the request (payer, msg.sender, token, model, price, firstNonce + k,
    /// deadline, inputHash). A contract payer is asked through ERC-1271 with the 64 bytes; wallets
    /// that need longer signatures use `settleBatch`. `groups` and `count` are at least 1.
    function settlePacked(address token, bytes calldata packed) external;

    /// @notice Claims one voucher to the caller: pays `cumulativeAmount` minus what its channel already
    /// paid, from the payer's shared balance. Reverts on any failure; emits `VouchersClaimed`.
    /// @return amount what was paid
    function claimVoucher(SignedVoucher calldata voucher) external returns (uint256 amount);

    /// @notice Claims several channel vouchers in `token` to the caller, skipping invalid ones.
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
