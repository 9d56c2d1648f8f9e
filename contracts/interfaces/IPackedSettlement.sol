// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Reason} from "./IPreflightTypes.sol";

/// @title IPackedSettlement
/// @notice A compact batch entry point: the same signed `Request`s as `settleBatch`, the same checks,
/// skip reasons and events, in about a quarter of the calldata. Items are grouped: each group shares
/// payer, model, price and deadline, and takes consecutive nonces; each item carries only its input
/// hash and a 64-byte EIP-2098 signature of the payer or of a delegate within its grant (a contract
/// payer is asked through ERC-1271 with those 64 bytes; wallets that need longer signatures use
/// `settleBatch`). A malformed `packed` is the provider's own encoding error and reverts; invalid items
/// are skipped, never reverted, as in `settleBatch`.
///
/// Layout of `packed` (big-endian, no padding), one or more groups:
///
///   group := payer (20) . model (32) . price (12) . deadline (8) . firstNonce (8) . count (2) . item*count
///   item  := inputHash (32) . r (32) . vs (32)
///
/// Item k of a group is the request (payer, msg.sender, token, model, price, firstNonce + k, deadline,
/// inputHash). Indices in `RequestSkipped` and in the returned reasons count items across groups.
interface IPackedSettlement {
    /// @notice `packed` does not parse into whole groups (a provider-side encoding error).
    error MalformedPackedBatch(uint256 offset);

    /// @notice Settles the packed requests in `token` to the caller, skipping invalid items exactly as
    /// `settleBatch` does (same reasons, `RequestSkipped` and one `BatchSettled`).
    /// @return reasons one per item; `Reason.Settled` (0) for those that settled
    function settlePacked(address token, bytes calldata packed) external returns (Reason[] memory reasons);
}
