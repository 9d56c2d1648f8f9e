// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @notice HOSTILE TEST TOKEN: balances are shares times a global index that anyone may change, so
/// every holder's balance grows or shrinks without a transfer (like stETH or AMPL).
contract RebasingToken {
    uint256 private constant ONE = 1e18;

    uint256 public index = ONE;
    mapping(address holder => uint256 shares) public sharesOf;
    mapping(address owner => mapping(address spender => uint256 amount)) public allowance;
    uint256 public totalShares;

    error InsufficientBalance();
    error InsufficientAllowance();

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    function decimals() external pure returns (uint8) {
        return 18;
    }

    function totalSupply() external view returns (uint256) {
        return totalShares * index / ONE;
    }

    function balanceOf(address holder) external view returns (uint256) {
        return sharesOf[holder] * index / ONE;
    }

    /// @notice Scales every balance by `newIndex / 1e18`.
    function rebase(uint256 newIndex) external {
        index = newIndex;
    }

    function mint(address to, uint256 amount) external {
        uint256 shares = amount * ONE / index;
        sharesOf[to] += shares;
        totalShares += shares;
        emit Transfer(address(0), to, amount);
    }

    function approve(address spender, uint256 amount) external returns (bool) {
        allowance[msg.sender][spender] = amount;
        emit Approval(msg.sender, spender, amount);
        return true;
    }

    function transfer(address to, uint256 amount) external returns (bool) {
        _move(msg.sender, to, amount);
        return true;
    }

    function transferFrom(address from, address to, uint256 amount) external returns (bool) {
        uint256 allowed = allowance[from][msg.sender];
        if (allowed < amount) revert InsufficientAllowance();
        if (allowed != type(uint256).max) allowance[from][msg.sender] = allowed - amount;
        _move(from, to, amount);
        return true;
    }

    function _move(address from, address to, uint256 amount) private {
        uint256 shares = amount * ONE / index;
        if (sharesOf[from] < shares) revert InsufficientBalance();
        sharesOf[from] -= shares;
        sharesOf[to] += shares;
        emit Transfer(from, to, amount);
    }
}
