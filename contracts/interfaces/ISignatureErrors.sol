// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title ISignatureErrors
/// @notice Errors shared by everything in Preflight that checks a signature or an address.
interface ISignatureErrors {
    /// @notice A required address was zero.
    error ZeroAddress();
    /// @notice A signature that is neither 64 nor 65 bytes, from a payer with no code (no ERC-1271).
    error InvalidSignatureLength(uint256 length);
    /// @notice An ECDSA signature with s in the upper half of the curve order.
    error MalleableSignature();
    /// @notice The signature recovers to nobody allowed: not the payer, not a delegate, not accepted by ERC-1271.
    error InvalidSigner(address recovered);
    /// @notice A contract payer's ERC-1271 check failed while it may not have had its full gas allowance
    /// (the transaction was short of gas): retry with more gas, rather than skip a valid item.
    error SignatureCheckOutOfGas(address account);
}
