// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IEIP712Domain} from "./interfaces/IEIP712Domain.sol";

/// @title EIP712Domain
/// @notice The "Preflight" v1 EIP-712 domain. The separator is cached in an immutable and rebuilt only
/// when the chain id differs from the deployment's (a fork), so signatures never replay across chains.
abstract contract EIP712Domain is IEIP712Domain {
    /// @dev keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
    bytes32 private constant DOMAIN_TYPEHASH = 0x8b73c3c69bb8fe3d512ecc4cf759cc79239f7b179b0ffacaa9a75d522b39400f;
    /// @dev keccak256("Preflight")
    bytes32 private constant NAME_HASH = keccak256("Preflight");
    /// @dev keccak256("1")
    bytes32 private constant VERSION_HASH = keccak256("1");

    uint256 private immutable _cachedChainId;
    bytes32 private immutable _cachedDomainSeparator;

    constructor() {
        _cachedChainId = block.chainid;
        _cachedDomainSeparator = _buildDomainSeparator();
    }

    /// @inheritdoc IEIP712Domain
    function DOMAIN_SEPARATOR() public view returns (bytes32) {
        return block.chainid == _cachedChainId ? _cachedDomainSeparator : _buildDomainSeparator();
    }

    /// @inheritdoc IEIP712Domain
    function eip712Domain()
        external
        view
        returns (
            bytes1 fields,
            string memory name,
            string memory version,
            uint256 chainId,
            address verifyingContract,
            bytes32 salt,
            uint256[] memory extensions
        )
    {
        return (hex"0f", "Preflight", "1", block.chainid, address(this), bytes32(0), new uint256[](0));
    }

    /// @dev The EIP-712 digest of `structHash` under this domain, built in scratch space.
    function _hashTypedData(bytes32 structHash) internal view returns (bytes32 digest) {
        return _hashTypedData(DOMAIN_SEPARATOR(), structHash);
    }

    /// @dev The EIP-712 digest of `structHash` under `separator` (a batch reads `DOMAIN_SEPARATOR()` once).
    function _hashTypedData(bytes32 separator, bytes32 structHash) internal pure returns (bytes32 digest) {
        assembly ("memory-safe") {
            let m := mload(0x40) // word 0x40 is overwritten below: keep the free memory pointer
            mstore(0x00, 0x1901) // lands in bytes 30..31 of word 0
            mstore(0x20, separator)
            mstore(0x40, structHash)
            digest := keccak256(0x1e, 0x42) // "\x19\x01" ++ separator ++ structHash
            mstore(0x40, m)
        }
    }

    function _buildDomainSeparator() private view returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, block.chainid, address(this)));
    }
}
