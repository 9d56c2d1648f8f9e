// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IPreflight} from "./interfaces/IPreflight.sol";
import {Escrow} from "./Escrow.sol";
import {Lanes} from "./Lanes.sol";

/// @title Preflight
/// @notice Payment escrow, lanes, inference permissions and settlement of signed inference requests.
/// There is no owner: every parameter is fixed here, and a new fee is a new deployment.
contract Preflight is IPreflight, Lanes {
    /// @param noticePeriod seconds between a payer's withdrawal (or lane close) request and its execution
    /// @param feeBps protocol fee in basis points (at most `MAX_FEE_BPS`), taken on provider withdrawals
    /// @param feeRecipient receives the fee (may be zero when the fee is zero)
    constructor(uint256 noticePeriod, uint16 feeBps, address feeRecipient) Escrow(noticePeriod, feeBps, feeRecipient) {}
}
