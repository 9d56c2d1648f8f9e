// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title SettlementLog
/// @notice Builds the packed data of a settlement event in memory and emits it with its two indexed
/// topics (see `ISettlement` and `ILanes` for the formats). A log is a memory pointer `log` whose
/// first word is its length in bytes, followed by the bytes; writers append big-endian fields.
/// @dev Each append writes whole words (mstore) at the current end: bytes past the end are scratch
/// that the next append overwrites, which is why the buffer reserves 32 spare bytes.
library SettlementLog {
    /// @notice Tag of an item settled by a delegate; the delegate's address follows it.
    uint256 internal constant DELEGATE_TAG = 0x80;

    /// @notice Allocates a log that can hold `capacity` bytes.
    function allocate(uint256 capacity) internal pure returns (uint256 log) {
        assembly ("memory-safe") {
            log := mload(0x40)
            mstore(log, 0) // length 0
            mstore(0x40, add(add(log, 0x40), capacity)) // length word + capacity + one spare word
        }
    }

    /// @notice Appends a request group header: payer (20) . firstNonce (8) . price (12) . count (2).
    function appendGroup(uint256 log, address payer, uint256 firstNonce, uint256 price, uint256 count) internal pure {
        assembly ("memory-safe") {
            let length := mload(log)
            let p := add(add(log, 0x20), length) // end of the data
            mstore(p, shl(96, payer)) // bytes 0..19
            mstore(add(p, 20), shl(192, firstNonce)) // bytes 20..27 (uint64)
            mstore(add(p, 28), shl(160, price)) // bytes 28..39 (uint96)
            mstore(add(p, 40), shl(240, count)) // bytes 40..41 (uint16)
            mstore(log, add(length, 42))
        }
    }

    /// @notice Appends an item's tag: the `Reason` code, or `DELEGATE_TAG` and the delegate when
    /// `delegate` is not zero (a settled delegated item).
    function appendTag(uint256 log, uint256 reason, address delegate) internal pure {
        assembly ("memory-safe") {
            let length := mload(log)
            let p := add(add(log, 0x20), length)
            switch delegate
            case 0 {
                mstore8(p, reason) // 1 byte: the reason (0 = settled by the payer)
                mstore(log, add(length, 1))
            }
            default {
                mstore(p, or(shl(248, 0x80), shl(88, delegate))) // tag 0x80, then the 20-byte delegate
                mstore(log, add(length, 21))
            }
        }
    }

    /// @notice Appends a claim record: payer (20) [. channel (32) when `withChannel`] .
    /// cumulativeAmount (16) . amount (16), then its tag (see `appendTag`).
    function appendClaim(
        uint256 log,
        address payer,
        bool withChannel,
        bytes32 channel,
        uint256 cumulativeAmount,
        uint256 amount,
        uint256 reason,
        address delegate
    ) internal pure {
        assembly ("memory-safe") {
            let length := mload(log)
            let p := add(add(log, 0x20), length)
            mstore(p, shl(96, payer)) // bytes 0..19
            p := add(p, 20)
            if withChannel {
                mstore(p, channel) // 32 bytes
                p := add(p, 32)
            }
            mstore(p, shl(128, cumulativeAmount)) // uint128
            mstore(add(p, 16), shl(128, amount)) // uint128
            mstore(log, sub(add(p, 32), add(log, 0x20))) // new length: up to the end of amount
        }
        appendTag(log, reason, delegate);
    }

    /// @notice Appends a collected lane: payer (20) . amount (16).
    function appendCollected(uint256 log, address payer, uint256 amount) internal pure {
        assembly ("memory-safe") {
            let length := mload(log)
            let p := add(add(log, 0x20), length)
            mstore(p, shl(96, payer)) // bytes 0..19
            mstore(add(p, 20), shl(128, amount)) // bytes 20..35 (uint128)
            mstore(log, add(length, 36))
        }
    }

    /// @notice Emits the log as event `signature` with topics `provider` and `token`.
    function emitLog(uint256 log, bytes32 signature, address provider, address token) internal {
        assembly ("memory-safe") {
            log3(add(log, 0x20), mload(log), signature, provider, token)
        }
    }
}
