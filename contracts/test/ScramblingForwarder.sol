// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @notice Forwards a call whose calldata arrives XOR-masked, so that the call it makes appears
/// nowhere in its own transaction's input. For tests of indexers that cannot decode calldata.
contract ScramblingForwarder {
    /// @notice The forwarded call reverted; `reason` is its revert data.
    error CallFailed(bytes reason);

    /// @notice Unmasks `masked` with `key` and calls `target` with it.
    function forward(address target, bytes calldata masked, bytes1 key) external returns (bytes memory result) {
        bytes memory data = new bytes(masked.length);
        for (uint256 i; i < masked.length; ++i) {
            data[i] = masked[i] ^ key;
        }
        bool ok;
        // A forwarder's purpose is the low-level call.
        // solhint-disable-next-line avoid-low-level-calls
        (ok, result) = target.call(data);
        if (!ok) revert CallFailed(result);
    }
}
