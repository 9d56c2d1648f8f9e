// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title IEIP712Domain
/// @notice The EIP-712 domain every Preflight signature is made under: name "Preflight", version "1",
/// the chain id and the contract's address.
interface IEIP712Domain {
    /// @notice The EIP-712 domain separator for the current chain (rebuilt if the chain id changed).
    function DOMAIN_SEPARATOR() external view returns (bytes32);

    /// @notice EIP-5267: the fields of the domain, so wallets can show what they sign.
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
        );
}
