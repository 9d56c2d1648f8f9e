// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title GrantState
/// @notice The hot slot of a delegate's grant: everything a delegated settlement reads and writes,
/// packed in one word so that it costs one slot read and one slot write:
///
///   bits   0..87   remaining budget in the current period      (uint88)
///   bits  88..175  price cap per request                         (uint88)
///   bits 176..207  end of the current period (unix seconds)      (uint32)
///   bits 208..239  expiry (unix seconds; 0 = revoked / none)     (uint32)
///   bits 240..254  epoch (bumps on every grant and revoke)       (15 bits)
///   bit  255       any model allowed
///
/// The budget and the period are read from the cold record only when a period rolls over.
library GrantState {
    uint256 private constant MASK_88 = (1 << 88) - 1;
    uint256 private constant MASK_32 = (1 << 32) - 1;
    /// @notice The largest epoch the hot slot holds.
    uint256 internal constant MAX_EPOCH = (1 << 15) - 1;

    function remaining(uint256 state) internal pure returns (uint256) {
        return state & MASK_88;
    }

    function maxPrice(uint256 state) internal pure returns (uint256) {
        return (state >> 88) & MASK_88;
    }

    function periodEnd(uint256 state) internal pure returns (uint256) {
        return (state >> 176) & MASK_32;
    }

    function expiry(uint256 state) internal pure returns (uint256) {
        return (state >> 208) & MASK_32;
    }

    function epoch(uint256 state) internal pure returns (uint256) {
        return (state >> 240) & MAX_EPOCH;
    }

    function anyModel(uint256 state) internal pure returns (bool) {
        return state >> 255 != 0;
    }

    /// @notice Packs the fields (each must fit its width; callers pass checked values).
    function pack(uint256 remaining_, uint256 maxPrice_, uint256 periodEnd_, uint256 expiry_, uint256 epoch_, bool anyModel_)
        internal
        pure
        returns (uint256)
    {
        return remaining_ | (maxPrice_ << 88) | (periodEnd_ << 176) | (expiry_ << 208) | (epoch_ << 240)
            | (anyModel_ ? 1 << 255 : 0);
    }

    /// @notice `state` with a new remaining budget and period end (both within their widths).
    function withSpend(uint256 state, uint256 remaining_, uint256 periodEnd_) internal pure returns (uint256) {
        uint256 kept = state & ~(MASK_88 | (MASK_32 << 176));
        return kept | remaining_ | (periodEnd_ << 176);
    }

    /// @notice `state` revoked: expiry 0, epoch replaced.
    function revoked(uint256 state, uint256 epoch_) internal pure returns (uint256) {
        uint256 kept = state & ~((MASK_32 << 208) | (MAX_EPOCH << 240));
        return kept | (epoch_ << 240);
    }
}
