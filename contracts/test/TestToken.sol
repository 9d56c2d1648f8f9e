// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ERC20, ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/// @notice A mintable EIP-2612 token with configurable decimals (6 like USDC, or 18), for tests and demos.
contract TestToken is ERC20Permit {
    uint8 private immutable _decimals;

    constructor(string memory name_, string memory symbol_, uint8 decimals_) ERC20(name_, symbol_) ERC20Permit(name_) {
        _decimals = decimals_;
    }

    function decimals() public view override returns (uint8) {
        return _decimals;
    }

    /// @notice Anyone may mint: this token is for tests and demos only.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}
