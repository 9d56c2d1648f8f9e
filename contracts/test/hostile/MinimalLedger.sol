// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @notice HOSTILE TEST TOKEN base: a minimal ledger shared by the two non-standard tokens below.
abstract contract MinimalLedger {
    mapping(address holder => uint256 amount) public balanceOf;
    mapping(address owner => mapping(address spender => uint256 amount)) public allowance;
    uint256 public totalSupply;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    function mint(address to, uint256 amount) external {
        balanceOf[to] += amount;
        totalSupply += amount;
        emit Transfer(address(0), to, amount);
    }

    /// @dev Moves `amount` if it can; returns whether it did (never reverts).
    function _tryMove(address from, address to, uint256 amount) internal returns (bool) {
        if (balanceOf[from] < amount) return false;
        if (msg.sender != from) {
            uint256 allowed = allowance[from][msg.sender];
            if (allowed < amount) return false;
            allowance[from][msg.sender] = allowed - amount;
        }
        balanceOf[from] -= amount;
        balanceOf[to] += amount;
        emit Transfer(from, to, amount);
        return true;
    }
}
