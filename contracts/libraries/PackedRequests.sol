// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title PackedRequests
/// @notice Reads the compact calldata of `settlePacked` and `claimLanesPacked` straight from calldata
/// (layouts in `ISettlement` and `ILanes`, big-endian, no padding). Every reader is given a bound
/// its caller checked, so a short `packed` reverts (`MalformedPackedBatch`) instead of reading zeros.
library PackedRequests {
    /// @notice model (32) . price (12) . deadline (8) . groups (2)
    uint256 internal constant SECTION_HEADER = 54;
    /// @notice payer (20) . firstNonce (8) . count (2)
    uint256 internal constant GROUP_HEADER = 30;
    /// @notice inputHash (32) . r (32) . vs (32)
    uint256 internal constant ITEM = 96;
    /// @notice payer (20) . cumulativeAmount (16) . r (32) . vs (32)
    uint256 internal constant LANE_CLAIM = 100;

    /// @notice The section header at `offset` (the caller checked `offset + SECTION_HEADER <= length`).
    function section(bytes calldata packed, uint256 offset)
        internal
        pure
        returns (bytes32 model, uint256 price, uint256 deadline, uint256 groups)
    {
        assembly ("memory-safe") {
            let p := add(packed.offset, offset)
            model := calldataload(p) // bytes 0..31
            price := shr(160, calldataload(add(p, 32))) // bytes 32..43: uint96
            deadline := shr(192, calldataload(add(p, 44))) // bytes 44..51: uint64
            groups := shr(240, calldataload(add(p, 52))) // bytes 52..53: uint16
        }
    }

    /// @dev `ISettlement.MalformedPackedBatch(uint256)`'s selector in the top 4 bytes of a word
    /// (assembly takes only number literals; test/settlement/Preflight.settlePacked.ts checks the reverts).
    uint256 private constant MALFORMED = 0x0cf35b5a00000000000000000000000000000000000000000000000000000000;

    /// @notice The group header at `offset`, and where its items end. Reverts with
    /// `MalformedPackedBatch(offset)` when the header or its items are cut short, it has no items, or
    /// its nonces pass 64 bits (the last is `firstNonce + count - 1`).
    function group(bytes calldata packed, uint256 offset)
        internal
        pure
        returns (address payer, uint256 firstNonce, uint256 count, uint256 end)
    {
        assembly ("memory-safe") {
            let length := packed.length
            let p := add(packed.offset, offset)
            payer := shr(96, calldataload(p)) // bytes 0..19
            firstNonce := shr(192, calldataload(add(p, 20))) // bytes 20..27: uint64
            count := shr(240, calldataload(add(p, 28))) // bytes 28..29: uint16
            end := add(add(offset, GROUP_HEADER), mul(count, ITEM)) // offsets are far below 2^64: no overflow
            if or(or(gt(add(offset, GROUP_HEADER), length), iszero(count)), or(gt(end, length), gt(add(firstNonce, count), 0x10000000000000000))) {
                mstore(0x00, MALFORMED)
                mstore(0x04, offset)
                revert(0x00, 0x24)
            }
        }
    }

    /// @notice The input hash of the item at `offset`, and its 64-byte signature as a calldata slice.
    function item(bytes calldata packed, uint256 offset) internal pure returns (bytes32 inputHash, bytes calldata signature) {
        assembly ("memory-safe") {
            inputHash := calldataload(add(packed.offset, offset)) // bytes 0..31
            signature.offset := add(add(packed.offset, offset), 32) // r . vs
            signature.length := 64
        }
    }

    /// @notice The absolute calldata offset of the item at `offset` of `packed`.
    function itemOffset(bytes calldata packed, uint256 offset) internal pure returns (uint256 at) {
        assembly ("memory-safe") {
            at := add(packed.offset, offset)
        }
    }

    /// @notice The lane claim at `offset`: payer, cumulative amount and the 64-byte signature.
    function laneClaim(bytes calldata packed, uint256 offset)
        internal
        pure
        returns (address payer, uint256 cumulativeAmount, bytes calldata signature)
    {
        assembly ("memory-safe") {
            let p := add(packed.offset, offset)
            payer := shr(96, calldataload(p)) // bytes 0..19
            cumulativeAmount := shr(128, calldataload(add(p, 20))) // bytes 20..35: uint128
            signature.offset := add(p, 36) // r . vs
            signature.length := 64
        }
    }
}
