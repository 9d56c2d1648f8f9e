// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title PackedRequests
/// @notice Reads the compact request groups of `IPackedSettlement.settlePacked` straight from calldata.
/// @dev Layout (big-endian): group := payer 20 . model 32 . price 12 . deadline 8 . firstNonce 8 .
/// count 2 . count * (inputHash 32 . r 32 . vs 32). Readers never look past a bound the caller checked
/// with `groupEnd`, so a short `packed` reverts instead of reading zeros.
library PackedRequests {
    uint256 internal constant HEADER = 82;
    uint256 internal constant ITEM = 96;

    /// @notice Where the group starting at `offset` ends, and its item count; `ok` false if it overruns.
    function groupEnd(bytes calldata packed, uint256 offset) internal pure returns (uint256 end, uint256 count, bool ok) {
        if (offset + HEADER > packed.length) return (0, 0, false);
        assembly ("memory-safe") {
            count := shr(240, calldataload(add(add(packed.offset, offset), 80))) // 2 bytes after 80 of header
        }
        end = offset + HEADER + count * ITEM;
        ok = count != 0 && end <= packed.length;
    }

    /// @notice The shared fields of the group at `offset` (bounds checked by `groupEnd`).
    function header(bytes calldata packed, uint256 offset)
        internal
        pure
        returns (address payer, bytes32 model, uint256 price, uint256 deadline, uint256 firstNonce)
    {
        assembly ("memory-safe") {
            let p := add(packed.offset, offset)
            payer := shr(96, calldataload(p)) // bytes 0..19
            model := calldataload(add(p, 20)) // bytes 20..51
            price := shr(160, calldataload(add(p, 52))) // bytes 52..63: uint96
            deadline := shr(192, calldataload(add(p, 64))) // bytes 64..71: uint64
            firstNonce := shr(192, calldataload(add(p, 72))) // bytes 72..79: uint64
        }
    }

    /// @notice The input hash of the item at `offset`, and its 64-byte signature as a calldata slice.
    function item(bytes calldata packed, uint256 offset) internal pure returns (bytes32 inputHash, bytes calldata signature) {
        assembly ("memory-safe") {
            inputHash := calldataload(add(packed.offset, offset))
            signature.offset := add(add(packed.offset, offset), 32)
            signature.length := 64
        }
    }
}
