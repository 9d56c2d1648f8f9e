// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @notice A contract recipient of native ETH for tests: it either refuses ETH, or re-enters `target`
/// with `data` when paid, records how that call ended, and accepts the ETH.
contract EthReceiverMock {
    bool public refuse;
    address private _target;
    bytes private _data;
    /// @notice Whether the last re-entry succeeded, and what it returned or reverted with.
    bool public reentrySucceeded;
    bytes public reentryResult;

    error Refused();

    /// @notice Refuse every ETH payment.
    function setRefuse(bool refuse_) external {
        refuse = refuse_;
    }

    /// @notice On the next ETH payment, call `target` with `data` (an empty `data` disarms).
    function arm(address target, bytes calldata data) external {
        _target = target;
        _data = data;
    }

    /// @notice Calls `target` with `data` as this contract (e.g. to request a withdrawal).
    function call(address target, bytes calldata data) external payable returns (bytes memory) {
        (bool ok, bytes memory result) = target.call{value: msg.value}(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(result, 0x20), mload(result)) // bubble the callee's error
            }
        }
        return result;
    }

    // solhint-disable-next-line no-complex-fallback
    receive() external payable {
        if (refuse) revert Refused();
        if (_data.length != 0) {
            // solhint-disable-next-line avoid-low-level-calls
            (reentrySucceeded, reentryResult) = _target.call(_data);
        }
    }
}
