// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @notice HOSTILE TEST TOKEN: an ERC-20 that, once armed, calls back into `hookTarget` with `data` in the
/// middle of every transfer (after balances moved, before returning), like an ERC-777 hook or a
/// malicious token would. The outcome of the re-entrant call is recorded, never bubbled, so tests can
/// check both that the re-entry was refused and that the outer call completed with sound accounting.
contract ReentrantToken is ERC20 {
    address public hookTarget;
    bytes public data;
    bool public armed;
    /// @notice Whether the last re-entrant call succeeded, and what it returned (or its revert data).
    bool public lastOk;
    bytes public lastReturn;
    uint256 public reentries;

    constructor() ERC20("Reentrant", "REENT") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Arms the hook: the next transfer calls `hookTarget_` with `data_` (once, then disarms).
    function arm(address hookTarget_, bytes calldata data_) external {
        hookTarget = hookTarget_;
        data = data_;
        armed = true;
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        if (armed && from != address(0)) {
            armed = false;
            ++reentries;
            // solhint-disable-next-line avoid-low-level-calls
            (bool ok, bytes memory ret) = hookTarget.call(data);
            lastOk = ok;
            lastReturn = ret;
        }
    }
}
