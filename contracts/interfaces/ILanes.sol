// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {LaneVoucher} from "./IPreflightTypes.sol";

/// @title ILanes
/// @notice A lane holds funds a payer reserved for one provider, per (payer, provider, token), in one
/// storage slot: claimed so far, funds, and uncollected (85 bits each). The slot is keyed provider,
/// token, then payer, so a batch of claims (one provider, one token) hashes one key per claim. Only that provider can take
/// them, with the payer's (or a delegate's) cumulative `LaneVoucher`s. A claim reads and writes only
/// the lane's slot: what it pays waits in the lane as "uncollected" until the provider moves it to
/// its earnings with `collectLanes` (any time, for many lanes at once), so the claim does not touch
/// the provider's earnings slot. The payer gets the remaining funds only by closing the lane,
/// `NOTICE_PERIOD` after asking, within `WITHDRAWAL_WINDOW` (then the close request lapses); the
/// close never takes what was claimed. Funding a lane never cancels a pending close, and a close
/// cannot be armed before a deposit: it returns at most the lane's funds when it was requested (see
/// `requestLaneClose`), so funds added later stay in the lane. A lane's claimed total never
/// decreases, even across a close and a re-opening, so no voucher pays twice.
///
/// LOGS. `LanesClaimed` data is NOT ABI-encoded: it is packed claims back to back, big-endian:
///
///   claim := payer (20) . cumulativeAmount (16) . amount (16) . tag (1) [. delegate (20) when tag = 0x80]
///
/// A paid claim (tag 0x00: signed by the payer; 0x80: by `delegate`, whose grant's remaining budget
/// fell by amount) moved the lane (payer, topic-1 provider, topic-2 token) to claimed =
/// cumulativeAmount, funds -= amount, uncollected += amount. A skipped claim (tag = `Reason` code)
/// carries the voucher's cumulativeAmount and amount 0, and changed nothing.
///
/// `LanesCollected` data := (payer (20) . amount (16))*: each listed lane's uncollected amount went
/// to 0 and the provider's earnings rose by the sum.
interface ILanes {
    /// @notice `closeLane` was called with no close requested.
    error LaneCloseNotRequested();
    /// @notice `closeLane` was called before the notice period elapsed.
    error LaneCloseNotReady(uint256 readyAt);
    /// @notice `closeLane` was called after the close request lapsed; request again.
    error LaneCloseLapsed(uint256 expiredAt);
    /// @notice The lane's claimed total plus funds would exceed `LaneState.MAX_AMOUNT` (2^85 - 1).
    error LaneOverflow(uint256 funds, uint256 added);

    /// @notice `amount` was added to lane (payer, provider, token), now holding `funds`; `from` paid
    /// (the payer's own escrow balance when `from` is the Preflight contract itself). A pending close
    /// is unchanged and will not return this amount.
    event LaneFunded(
        address indexed payer, address indexed provider, address indexed token, address from, uint256 amount, uint256 funds
    );
    /// @notice `payer` may close the lane from `readyAt` until `expiresAt` (exclusive); the close
    /// returns at most the lane's funds now (as the logs before this one left them) less what is
    /// claimed from the lane meanwhile. Replaces any earlier request.
    event LaneCloseRequested(
        address indexed payer, address indexed provider, address indexed token, uint256 readyAt, uint256 expiresAt
    );
    /// @notice The lane was closed: `amount` (what was left of the funds under notice) was sent to
    /// `to` and left the lane's funds; what was added after the close request stays; the request is consumed.
    event LaneClosed(address indexed payer, address indexed provider, address indexed token, address to, uint256 amount);
    /// @notice A lane claim call paid and skipped the lane vouchers described by the packed log data.
    event LanesClaimed(address indexed provider, address indexed token);
    /// @notice The provider collected the uncollected claims of the lanes in the packed log data.
    event LanesCollected(address indexed provider, address indexed token);

    /// @notice Moves `amount` of the caller's escrow balance of `token` into its lane for `provider`.
    function fundLane(address provider, address token, uint256 amount) external;

    /// @notice Pulls `amount` of ERC-20 `token` from the caller into `payer`'s lane for `provider`.
    /// Fee-on-transfer tokens are credited by the amount received.
    function depositToLane(address payer, address provider, address token, uint256 amount) external;

    /// @notice Puts `msg.value` native ETH into `payer`'s lane for `provider`.
    function depositETHToLane(address payer, address provider) external payable;

    /// @notice Starts the notice period for closing the caller's lane for `provider` in `token`.
    function requestLaneClose(address provider, address token) external;

    /// @notice Inside the close window, sends to `to` the lane's funds at the close request less what
    /// was claimed since (never what was claimed, never funds added after the request).
    /// @return amount what was sent (may be 0 when the provider claimed everything)
    function closeLane(address provider, address token, address to) external returns (uint256 amount);

    /// @notice Claims one lane voucher for the caller (the lane's provider), into the lane's uncollected amount. Reverts on any failure;
    /// emits `LanesClaimed` with one claim.
    /// @return amount what was paid
    function claimLane(LaneVoucher calldata voucher) external returns (uint256 amount);

    /// @notice The compact entry point for lane claims. Invalid claims are skipped and logged; a
    /// malformed `packed` reverts with `MalformedPackedBatch`.
    ///
    ///   packed := model (32) . claim+
    ///   claim  := payer (20) . cumulativeAmount (16) . r (32) . vs (32)     (64-byte EIP-2098 signature)
    ///
    /// Claim k is the `LaneVoucher` (payer, msg.sender, token, model, cumulativeAmount).
    function claimLanesPacked(address token, bytes calldata packed) external;

    /// @notice Moves the uncollected claims of the caller's lanes from `payers` in `token` to the
    /// caller's earnings (withdrawn with `withdrawEarnings`). Lanes with nothing uncollected are skipped.
    /// @return amount what was moved
    function collectLanes(address token, address[] calldata payers) external returns (uint256 amount);

    /// @notice Lane (payer, provider, token): claimed so far, funds, what the provider has not
    /// collected yet, and when a requested close may execute (0 = no close requested).
    function laneOf(address payer, address provider, address token)
        external
        view
        returns (uint256 claimed, uint256 funds, uint256 uncollected, uint256 closeReadyAt);
}
