// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title LaneState
/// @notice A lane, the funds a payer reserved for one provider in one token, in one storage slot:
///
///   bits   0..111  claimed: the cumulative amount vouchers have paid, ever (never decreases)
///   bits 112..223  funds: what the provider may still claim
///   bits 224..255  closeReadyAt: when a requested close may execute (0 = none requested)
///
/// Funding keeps claimed + funds within 112 bits, so a paid cumulative amount always fits.
library LaneState {
    uint256 private constant MASK_112 = (1 << 112) - 1;
    /// @notice The largest claimed + funds a lane holds.
    uint256 internal constant MAX_AMOUNT = MASK_112;

    function claimed(uint256 lane) internal pure returns (uint256) {
        return lane & MASK_112;
    }

    function funds(uint256 lane) internal pure returns (uint256) {
        return (lane >> 112) & MASK_112;
    }

    function closeReadyAt(uint256 lane) internal pure returns (uint256) {
        return lane >> 224;
    }

    /// @notice Packs the fields (each must fit its width; callers pass checked values).
    function pack(uint256 claimed_, uint256 funds_, uint256 closeReadyAt_) internal pure returns (uint256) {
        return claimed_ | (funds_ << 112) | (closeReadyAt_ << 224);
    }
}
