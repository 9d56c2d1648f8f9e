// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {MinimalLedger} from "./MinimalLedger.sol";

/// @notice HOSTILE TEST TOKEN: returns nothing from `transfer`/`transferFrom`/`approve` (like USDT on
/// mainnet), reverting on failure with a custom error.
contract NoReturnToken is MinimalLedger {
    error TransferFailed();

    function approve(address spender, uint256 amount) external {
        allowance[msg.sender][spender] = amount;
        emit Approval(msg.sender, spender, amount);
    }

    function transfer(address to, uint256 amount) external {
        if (!_tryMove(msg.sender, to, amount)) revert TransferFailed();
    }

    function transferFrom(address from, address to, uint256 amount) external {
        if (!_tryMove(from, to, amount)) revert TransferFailed();
    }
}
