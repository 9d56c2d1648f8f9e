// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title MappingSlots
/// @notice The storage slot of a mapping entry, hashed once, so that a settlement reads and writes an
/// entry without computing its key twice (Solidity hashes the key again for each access, and via-IR
/// does not merge the two), and the raw read and write of that slot. Slots are Solidity's own
/// (keccak256(key . mapping slot), nested once per level): the entries stay readable through the
/// mappings themselves.
library MappingSlots {
    /// @notice The slot of `map[a][b]`.
    function slotOf(mapping(address => mapping(address => uint256)) storage map, address a, address b)
        internal
        pure
        returns (uint256 slot)
    {
        assembly ("memory-safe") {
            mstore(0x00, a) // scratch space: key . mapping slot
            mstore(0x20, map.slot)
            mstore(0x20, keccak256(0x00, 0x40)) // slot of map[a]
            mstore(0x00, b)
            slot := keccak256(0x00, 0x40) // slot of map[a][b]
        }
    }

    /// @notice The slot of `map[key]`.
    function slotOf(mapping(address => uint256) storage map, address key) internal pure returns (uint256 slot) {
        assembly ("memory-safe") {
            mstore(0x00, key) // scratch space: key . mapping slot
            mstore(0x20, map.slot)
            slot := keccak256(0x00, 0x40)
        }
    }

    /// @notice The slot of `map[key]`.
    function slotOf(mapping(bytes32 => uint256) storage map, bytes32 key) internal pure returns (uint256 slot) {
        assembly ("memory-safe") {
            mstore(0x00, key) // scratch space: key . mapping slot
            mstore(0x20, map.slot)
            slot := keccak256(0x00, 0x40)
        }
    }

    /// @notice The word stored at `slot`.
    function load(uint256 slot) internal view returns (uint256 value) {
        assembly ("memory-safe") {
            value := sload(slot)
        }
    }

    /// @notice Stores `value` at `slot`.
    function store(uint256 slot, uint256 value) internal {
        assembly ("memory-safe") {
            sstore(slot, value)
        }
    }
}
