// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {SignedRequest, SignedVoucher, LaneVoucher, GrantTerms} from "../interfaces/IPreflightTypes.sol";

/// @title PreflightHash
/// @notice EIP-712 struct hashes of every message Preflight verifies. Each type string sits next to
/// its typehash; the SDK's type tables are checked against these typehashes in a test.
library PreflightHash {
    /// @dev keccak256("Request(address payer,address provider,address token,bytes32 model,uint96 price,uint256 nonce,uint256 deadline,bytes32 inputHash)")
    bytes32 internal constant REQUEST_TYPEHASH = 0xd0c8191d7369b96d6cc5f76cbc64c8e036737dc154a7ff16b3b758a1ec6b72d8;

    /// @dev keccak256("Voucher(address payer,address provider,address token,bytes32 model,bytes32 channel,uint128 cumulativeAmount)")
    bytes32 internal constant VOUCHER_TYPEHASH = 0x4e3e6946845a48942924c12320e7a2880d44ac3488ec313d89a62acc9e0ea292;

    /// @dev keccak256("LaneVoucher(address payer,address provider,address token,bytes32 model,uint128 cumulativeAmount)")
    bytes32 internal constant LANE_VOUCHER_TYPEHASH = 0x0e995a53c50404b8d2d3ab912e0f2125be1f44c75448f37fa3785f1a046f26b2;

    /// @dev keccak256("Grant(address payer,address delegate,address token,address provider,uint88 maxPrice,uint88 budget,uint32 period,uint32 expiry,bytes32[] models,uint16 epoch,uint256 deadline)")
    bytes32 internal constant GRANT_TYPEHASH = 0x029fd39cb4bc76b6ae6f3567f612bd72bc048550d19883bf570d07a0430788ec;

    /// @notice Struct hash of `request` as addressed to `provider`.
    /// @dev Hot path: the six calldata words token..inputHash are copied in one go. A field with dirty
    /// high bits only changes the hash (so the signature fails); the caller's typed reads revert on it.
    function hash(SignedRequest calldata request, address provider) internal pure returns (bytes32 result) {
        assembly ("memory-safe") {
            let m := mload(0x40) // free memory, used as scratch without being claimed
            mstore(m, REQUEST_TYPEHASH)
            mstore(add(m, 0x20), calldataload(request)) // payer
            mstore(add(m, 0x40), provider)
            calldatacopy(add(m, 0x60), add(request, 0x20), 0xc0) // token, model, price, nonce, deadline, inputHash
            result := keccak256(m, 0x120)
        }
    }

    /// @notice Allocates a request buffer for `PayerSignedRun.group`, so a packed batch writes the fields
    /// its requests share once: provider and token here, the rest per section and per group. The 9
    /// words of a Request struct encoding are followed by the digest input ("\x19\x01" in the last
    /// two bytes of a word, then `separator` and a word for the struct hash), 4 words for the
    /// ecrecover input (digest, v, r, s) and 10 words `PayerSignedRun` keeps beside them.
    function allocateRequestBuffer(address provider, address token, bytes32 separator)
        internal
        pure
        returns (uint256 buffer)
    {
        assembly ("memory-safe") {
            buffer := mload(0x40)
            mstore(0x40, add(buffer, 0x340)) // claim 9 + 3 + 4 + 10 words
            mstore(buffer, REQUEST_TYPEHASH)
            mstore(add(buffer, 0x40), provider)
            mstore(add(buffer, 0x60), token)
            mstore(add(buffer, 0x120), 0x1901) // lands in bytes 30..31 of the word
            mstore(add(buffer, 0x140), separator)
        }
    }

    /// @notice Writes the fields a section of a packed batch shares into `buffer`.
    function setRequestSection(uint256 buffer, bytes32 model, uint256 price, uint256 deadline) internal pure {
        assembly ("memory-safe") {
            mstore(add(buffer, 0x80), model)
            mstore(add(buffer, 0xa0), price)
            mstore(add(buffer, 0xe0), deadline)
        }
    }

    /// @notice The payer of the group of a packed batch `buffer` holds (`PayerSignedRun.group` writes it).
    function requestPayer(uint256 buffer) internal pure returns (address payer) {
        assembly ("memory-safe") {
            payer := mload(add(buffer, 0x20))
        }
    }

    /// @notice The token of a packed batch `buffer` holds.
    function requestToken(uint256 buffer) internal pure returns (address token) {
        assembly ("memory-safe") {
            token := mload(add(buffer, 0x60))
        }
    }

    /// @notice The model of the section of a packed batch `buffer` holds.
    function requestModel(uint256 buffer) internal pure returns (bytes32 model) {
        assembly ("memory-safe") {
            model := mload(add(buffer, 0x80))
        }
    }

    /// @notice The price of the section of a packed batch `buffer` holds.
    function requestPrice(uint256 buffer) internal pure returns (uint256 price) {
        assembly ("memory-safe") {
            price := mload(add(buffer, 0xa0))
        }
    }

    /// @notice Struct hash of `voucher` as addressed to `provider`.
    function hash(SignedVoucher calldata voucher, address provider) internal pure returns (bytes32 result) {
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, VOUCHER_TYPEHASH)
            mstore(add(m, 0x20), calldataload(voucher)) // payer
            mstore(add(m, 0x40), provider)
            calldatacopy(add(m, 0x60), add(voucher, 0x20), 0x80) // token, model, channel, cumulativeAmount
            result := keccak256(m, 0xe0)
        }
    }

    /// @notice Struct hash of lane voucher `voucher` as addressed to `provider`.
    function hash(LaneVoucher calldata voucher, address provider) internal pure returns (bytes32 result) {
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, LANE_VOUCHER_TYPEHASH)
            mstore(add(m, 0x20), calldataload(voucher)) // payer
            mstore(add(m, 0x40), provider)
            calldatacopy(add(m, 0x60), add(voucher, 0x20), 0x60) // token, model, cumulativeAmount
            result := keccak256(m, 0xc0)
        }
    }

    /// @notice Allocates a lane voucher buffer for `hashLaneInBuffer`: a packed claim batch writes
    /// the fields its claims share (provider, token, model) once.
    function allocateLaneBuffer(address provider, address token, bytes32 model) internal pure returns (uint256 buffer) {
        assembly ("memory-safe") {
            buffer := mload(0x40)
            mstore(0x40, add(buffer, 0xc0)) // claim the 6 words of a LaneVoucher struct encoding
            mstore(buffer, LANE_VOUCHER_TYPEHASH)
            mstore(add(buffer, 0x40), provider)
            mstore(add(buffer, 0x60), token)
            mstore(add(buffer, 0x80), model)
        }
    }

    /// @notice Struct hash of the lane voucher in `buffer` with `payer` and `cumulativeAmount` filled in.
    function hashLaneInBuffer(uint256 buffer, address payer, uint256 cumulativeAmount) internal pure returns (bytes32 result) {
        assembly ("memory-safe") {
            mstore(add(buffer, 0x20), payer)
            mstore(add(buffer, 0xa0), cumulativeAmount)
            result := keccak256(buffer, 0xc0)
        }
    }

    /// @notice Struct hash of a grant `payer` signs for `terms`, valid for grant `epoch` until `deadline`.
    function hash(address payer, GrantTerms calldata terms, uint16 epoch, uint256 deadline)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(
            abi.encode(
                GRANT_TYPEHASH,
                payer,
                terms.delegate,
                terms.token,
                terms.provider,
                terms.maxPrice,
                terms.budget,
                terms.period,
                terms.expiry,
                keccak256(abi.encodePacked(terms.models)),
                epoch,
                deadline
            )
        );
    }
}
