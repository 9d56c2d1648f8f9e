// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {MinimalLedger} from "./MinimalLedger.sol";

/// @notice HOSTILE TEST TOKEN: reports failure by returning `false` instead of reverting (like ZRX or
/// BAT). `failing` makes every transfer fail, even a covered one, to model a blocked account.
contract ReturnsFalseToken is MinimalLedger {
    bool public failing;

    function setFailing(bool failing_) external {
        failing = failing_;
    }

    function approve(address spender, uint256 amount) external returns (bool) {
        allowance[msg.sender][spender] = amount;
        emit Approval(msg.sender, spender, amount);
        return true;
    }

    function transfer(address to, uint256 amount) external returns (bool) {
        return !failing && _tryMove(msg.sender, to, amount);
    }

    function transferFrom(address from, address to, uint256 amount) external returns (bool) {
        return !failing && _tryMove(from, to, amount);
    }
}
