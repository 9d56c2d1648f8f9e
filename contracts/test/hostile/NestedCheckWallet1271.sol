// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/// @notice TEST WALLET: an honest ERC-1271 account whose costly check runs in a nested call, the way a
/// Safe answers through its fallback handler or a modular account through a validator module. When
/// the nested call runs out of gas the wallet keeps the 1/64 EIP-150 left it and answers "invalid"
/// (instead of running out of gas itself), so the caller is left with more gas than a starved leaf call.
contract NestedCheckWallet1271 {
    bytes4 private constant MAGIC = 0x1626ba7e;
    /// @notice What the nested check burns before verifying (under Preflight's 200,000 cap).
    uint256 public constant CHECK_GAS = 150_000;

    address public immutable owner;

    constructor(address owner_) {
        owner = owner_;
    }

    function isValidSignature(bytes32 digest, bytes calldata signature) external view returns (bytes4) {
        try this.check(digest, signature) returns (bool ok) {
            return ok ? MAGIC : bytes4(0);
        } catch {
            return bytes4(0);
        }
    }

    /// @notice The wallet's real (costly) signature check.
    function check(bytes32 digest, bytes calldata signature) external view returns (bool) {
        uint256 stop = gasleft() > CHECK_GAS ? gasleft() - CHECK_GAS : 0;
        while (gasleft() > stop) {} // honest, just costly
        // 65-byte (r, s, v) or 64-byte EIP-2098 (r, vs), as Preflight's packed entry points carry.
        (address signer, ECDSA.RecoverError err,) = signature.length == 64
            ? ECDSA.tryRecover(digest, bytes32(signature[0:32]), bytes32(signature[32:64]))
            : ECDSA.tryRecover(digest, signature);
        return err == ECDSA.RecoverError.NoError && signer == owner;
    }
}
