// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @notice A hostile ERC-20 for tests: once armed, every transfer first calls `target` with `data`
/// (unlike `hostile/ReentrantToken`, which records the re-entry and lets the outer call finish)
/// (re-entering it) and bubbles up any revert, so a reentrancy guard's error reaches the caller.
contract BubblingReentrantToken is ERC20 {
    address private _target;
    bytes private _data;

    constructor() ERC20("Reentrant", "REE") {}

    /// @notice Anyone may mint: this token is for tests only.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Re-enter `target` with `data` on every later transfer (an empty `data` disarms).
    function arm(address target, bytes calldata data) external {
        _target = target;
        _data = data;
    }

    function _update(address from, address to, uint256 value) internal override {
        if (_data.length != 0 && from != address(0)) {
            // solhint-disable-next-line avoid-low-level-calls
            (bool ok, bytes memory returnData) = _target.call(_data);
            if (!ok) {
                assembly ("memory-safe") {
                    revert(add(returnData, 0x20), mload(returnData)) // bubble the callee's error
                }
            }
        }
        super._update(from, to, value);
    }
}
