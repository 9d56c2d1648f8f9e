// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";

/// @notice A minimal contract wallet (a stand-in for Safe), for tests only: it accepts, by ERC-1271,
/// what its owner signed over the digest, and it forwards calls its owner sends (so it can settle
/// as a provider, like a multisig would).
contract OwnerSignedWallet is IERC1271 {
    /// @notice Only the owner may make the wallet call out.
    error NotOwner(address caller);
    /// @notice The forwarded call reverted; `reason` is its revert data.
    error CallFailed(bytes reason);

    address public immutable OWNER;

    constructor(address owner_) {
        OWNER = owner_;
    }

    /// @notice Calls `target` with `data` from the wallet.
    function execute(address target, bytes calldata data) external returns (bytes memory result) {
        if (msg.sender != OWNER) revert NotOwner(msg.sender);
        bool ok;
        // A wallet forwards arbitrary calls: a low-level call is its purpose.
        // solhint-disable-next-line avoid-low-level-calls
        (ok, result) = target.call(data);
        if (!ok) revert CallFailed(result);
    }

    /// @inheritdoc IERC1271
    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4) {
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(hash, signature);
        return err == ECDSA.RecoverError.NoError && signer == OWNER ? IERC1271.isValidSignature.selector : bytes4(0xffffffff);
    }
}
