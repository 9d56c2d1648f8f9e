// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title LaneState
/// @notice A lane, the funds a payer reserved for one provider in one token, in one storage slot, so
/// that a claim reads and writes exactly one slot:
///
///   bits   0..84   claimed: the cumulative amount vouchers have paid, ever (never decreases)
///   bits  85..169  funds: what the provider may still claim
///   bits 170..254  uncollected: paid by claims, not yet moved to the provider's earnings
///
/// Funding keeps claimed + funds within 85 bits (`MAX_AMOUNT`, about 3.9e25 units: 38.6 million
/// tokens of 18 decimals over a lane's life), so a paid cumulative amount always fits, and so does
/// uncollected (a part of claimed).
library LaneState {
    uint256 private constant MASK_85 = (1 << 85) - 1;
    /// @notice The largest claimed + funds a lane holds.
    uint256 internal constant MAX_AMOUNT = MASK_85;

    function claimed(uint256 lane) internal pure returns (uint256) {
        return lane & MASK_85;
    }

    function funds(uint256 lane) internal pure returns (uint256) {
        return (lane >> 85) & MASK_85;
    }

    function uncollected(uint256 lane) internal pure returns (uint256) {
        return (lane >> 170) & MASK_85;
    }

    /// @notice Packs the fields (each must fit 85 bits; callers pass checked values).
    function pack(uint256 claimed_, uint256 funds_, uint256 uncollected_) internal pure returns (uint256) {
        return claimed_ | (funds_ << 85) | (uncollected_ << 170);
    }
}
