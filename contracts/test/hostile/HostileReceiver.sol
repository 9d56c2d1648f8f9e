// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @notice HOSTILE TEST ACCOUNT: a contract that can act as a payer or provider (through `execute`) and
/// whose `receive` misbehaves when native ETH arrives: it reverts, re-enters `hookTarget` with `data`
/// (recording the outcome), re-enters and reverts if that failed, or burns all the gas it is given.
contract HostileReceiver {
    enum Mode {
        Accept,
        Revert,
        Reenter,
        ReenterOrRevert,
        BurnGas
    }

    Mode public mode;
    address public hookTarget;
    bytes public data;
    bool public lastOk;
    bytes public lastReturn;
    uint256 public received;

    error Refused();
    error ReentryFailed(bytes reason);
    error CallFailed(bytes reason);

    function setMode(Mode mode_, address hookTarget_, bytes calldata data_) external {
        mode = mode_;
        hookTarget = hookTarget_;
        data = data_;
    }

    /// @notice Makes any call as this contract (to deposit, settle, withdraw, ...). Bubbles failures.
    function execute(address to, uint256 value, bytes calldata callData) external payable returns (bytes memory) {
        // solhint-disable-next-line avoid-low-level-calls
        (bool ok, bytes memory ret) = to.call{value: value}(callData);
        if (!ok) revert CallFailed(ret);
        return ret;
    }

    // A hostile receiver is complex on purpose: that is what the escrow must survive.
    // solhint-disable-next-line no-complex-fallback
    receive() external payable {
        Mode m = mode;
        if (m == Mode.Revert) revert Refused();
        if (m == Mode.BurnGas) {
            assembly ("memory-safe") {
                invalid() // consumes all gas forwarded to this frame
            }
        }
        if (m == Mode.Reenter || m == Mode.ReenterOrRevert) {
            // solhint-disable-next-line avoid-low-level-calls
            (bool ok, bytes memory ret) = hookTarget.call(data);
            lastOk = ok;
            lastReturn = ret;
            if (!ok && m == Mode.ReenterOrRevert) revert ReentryFailed(ret);
        }
        received += msg.value;
    }
}
