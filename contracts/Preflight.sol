// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IPreflight} from "./interfaces/IPreflight.sol";
import {Escrow} from "./Escrow.sol";
import {Settlement} from "./Settlement.sol";

/// @title Preflight
/// @notice Payment escrow, inference permissions and settlement of signed inference requests.
contract Preflight is IPreflight, Settlement {
    /// @param initialOwner may set the protocol fee (capped) and hand ownership over in two steps
    /// @param noticePeriod seconds between a payer's withdrawal request and its execution
    /// @param feeBps initial protocol fee in basis points (at most `MAX_FEE_BPS`)
    /// @param feeRecipient credited with the fee as earnings (may be zero while the fee is zero)
    constructor(address initialOwner, uint256 noticePeriod, uint16 feeBps, address feeRecipient)
        Escrow(initialOwner, noticePeriod, feeBps, feeRecipient)
    {}
}
