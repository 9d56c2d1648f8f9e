// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ILanes} from "./interfaces/ILanes.sol";
import {LaneVoucher, Reason} from "./interfaces/IPreflightTypes.sol";
import {Settlement} from "./Settlement.sol";
import {LaneState} from "./libraries/LaneState.sol";
import {MappingSlots} from "./libraries/MappingSlots.sol";
import {PackedRequests} from "./libraries/PackedRequests.sol";
import {PayerAccount} from "./libraries/PayerAccount.sol";
import {PreflightHash} from "./libraries/PreflightHash.sol";
import {SettlementLog} from "./libraries/SettlementLog.sol";

/// @title Lanes
/// @notice Funds a payer reserves for one provider (see `ILanes`). A claim reads and writes the lane's
/// one slot and nothing else; `collectLanes` moves claims to the provider's earnings; the signer
/// rules are `Settlement`'s.
abstract contract Lanes is Settlement, ILanes {
    using LaneState for uint256;
    using PayerAccount for uint256;

    /// @dev Largest log record of a lane claim: 20 + 16 + 16 + 1 + 20.
    uint256 private constant LANE_RECORD = 73;
    /// @dev The readyAt bits of a close request (40 bits, as a withdrawal's).
    uint256 private constant READY_AT_MASK = (1 << 40) - 1;

    /// @dev Lane (payer, provider, token) at `_lanes[provider][token][payer]`: a batch of claims shares
    /// provider and token, so it locates their inner mapping once and hashes one key per claim.
    mapping(address provider => mapping(address token => mapping(address payer => uint256 lane))) private _lanes;
    /// @dev A requested close, off the claim path: readyAt (bits 0..39, 0 = none) and, above, the
    /// lane's claimed total plus funds when the close was requested (see `closeLane`).
    mapping(address payer => mapping(address provider => mapping(address token => uint256 close))) private _laneCloses;

    /// @inheritdoc ILanes
    function fundLane(address provider, address token, uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        uint256 account = _accounts[msg.sender][token];
        uint256 balance = account.balance();
        if (balance < amount) revert InsufficientBalance(balance, amount);
        // Cannot underflow: balance >= amount was checked above.
        unchecked {
            _accounts[msg.sender][token] = account.withBalance(balance - amount);
        }
        _addToLane(msg.sender, provider, token, amount, address(this));
    }

    /// @inheritdoc ILanes
    function depositToLane(address payer, address provider, address token, uint256 amount) external nonReentrant {
        _addToLane(payer, provider, token, _pull(token, amount), msg.sender);
    }

    /// @inheritdoc ILanes
    function depositETHToLane(address payer, address provider) external payable nonReentrant {
        if (msg.value == 0) revert ZeroAmount();
        _addToLane(payer, provider, ETH, msg.value, msg.sender);
    }

    /// @inheritdoc ILanes
    function requestLaneClose(address provider, address token) external {
        uint256 readyAt = block.timestamp + NOTICE_PERIOD;
        uint256 lane = _lanes[provider][token][msg.sender];
        // What the close may return is fixed now, so every unit it returns was in the lane for the
        // whole notice period: funds added later stay in the lane (see `closeLane`).
        _laneCloses[msg.sender][provider][token] = readyAt | ((lane.claimed() + lane.funds()) << 40);
        emit LaneCloseRequested(msg.sender, provider, token, readyAt, readyAt + WITHDRAWAL_WINDOW);
    }

    /// @inheritdoc ILanes
    function closeLane(address provider, address token, address to) external nonReentrant returns (uint256 amount) {
        if (to == address(0)) revert ZeroAddress();
        uint256 close = _laneCloses[msg.sender][provider][token];
        uint256 readyAt = close & READY_AT_MASK;
        Window window = _window(readyAt);
        if (window == Window.NotRequested) revert LaneCloseNotRequested();
        if (window == Window.NotReady) revert LaneCloseNotReady(readyAt);
        if (window == Window.Lapsed) revert LaneCloseLapsed(readyAt + WITHDRAWAL_WINDOW);
        uint256 lane = _lanes[provider][token][msg.sender];
        uint256 funds = lane.funds();
        // Return what is left of the funds under notice: they covered cumulative claims up to
        // `ceiling` (claimed + funds at the request), and claims draw on the oldest funds first.
        uint256 ceiling = close >> 40;
        uint256 claimed = lane.claimed();
        // Cannot underflow: amount = ceiling - claimed <= funds, as funds only grew since the request
        // and claims moved exactly what they claimed out of them.
        unchecked {
            amount = ceiling > claimed ? ceiling - claimed : 0;
            funds -= amount;
        }
        _lanes[provider][token][msg.sender] = LaneState.pack(claimed, funds, lane.uncollected());
        delete _laneCloses[msg.sender][provider][token];
        emit LaneClosed(msg.sender, provider, token, to, amount);
        if (amount != 0) _send(token, to, amount);
    }

    /// @inheritdoc ILanes
    function claimLane(LaneVoucher calldata voucher) external returns (uint256 amount) {
        uint256 log = SettlementLog.allocate(LANE_RECORD);
        address token = voucher.token;
        bytes32 digest = _hashTypedData(PreflightHash.hash(voucher, msg.sender));
        (, amount) = _claimLane(
            _lanes[msg.sender][token], voucher.payer, token, voucher.model, voucher.cumulativeAmount, digest, voucher.signature, log, true
        );
        SettlementLog.emitLog(log, LanesClaimed.selector, msg.sender, token);
    }

    /// @inheritdoc ILanes
    function claimLanesPacked(address token, bytes calldata packed) external {
        uint256 length = packed.length;
        if (length < 32 + PackedRequests.LANE_CLAIM) revert MalformedPackedBatch(0);
        if ((length - 32) % PackedRequests.LANE_CLAIM != 0) revert MalformedPackedBatch(length);
        bytes32 model;
        assembly ("memory-safe") {
            model := calldataload(packed.offset) // bytes 0..31
        }
        uint256 buffer = PreflightHash.allocateLaneBuffer(msg.sender, token, model);
        bytes32 separator = DOMAIN_SEPARATOR();
        // A claim of 100 calldata bytes logs at most 73.
        uint256 log = SettlementLog.allocate(length);
        mapping(address => uint256) storage lanes = _lanes[msg.sender][token];
        for (uint256 at = 32; at < length; at += PackedRequests.LANE_CLAIM) {
            (address payer, uint256 cumulative, bytes calldata signature) = PackedRequests.laneClaim(packed, at);
            bytes32 digest = _hashTypedData(separator, PreflightHash.hashLaneInBuffer(buffer, payer, cumulative));
            _claimLane(lanes, payer, token, model, cumulative, digest, signature, log, false);
        }
        SettlementLog.emitLog(log, LanesClaimed.selector, msg.sender, token);
    }

    /// @inheritdoc ILanes
    function collectLanes(address token, address[] calldata payers) external returns (uint256 amount) {
        uint256 count = payers.length;
        uint256 log = SettlementLog.allocate(count * 36);
        mapping(address => uint256) storage lanes = _lanes[msg.sender][token];
        for (uint256 i; i < count; ++i) {
            address payer = payers[i];
            uint256 lane = lanes[payer];
            uint256 uncollected = lane.uncollected();
            if (uncollected == 0) continue;
            lanes[payer] = LaneState.pack(lane.claimed(), lane.funds(), 0);
            SettlementLog.appendCollected(log, payer, uncollected);
            // Cannot overflow: each amount fits 85 bits.
            unchecked {
                amount += uncollected;
            }
        }
        if (amount != 0) _creditEarnings(msg.sender, token, amount);
        SettlementLog.emitLog(log, LanesCollected.selector, msg.sender, token);
    }

    /// @inheritdoc ILanes
    function laneOf(address payer, address provider, address token)
        external
        view
        returns (uint256 claimed, uint256 funds, uint256 uncollected, uint256 closeReadyAt)
    {
        uint256 lane = _lanes[provider][token][payer];
        return (lane.claimed(), lane.funds(), lane.uncollected(), _laneCloses[payer][provider][token] & READY_AT_MASK);
    }

    // ------------------------------------------------------------------ internal

    /// @dev Adds `amount` to lane (payer, provider, token), paid by `from`. A pending close is left as
    /// it is: it cannot return these funds (see `closeLane`), so anyone may fund a lane without
    /// affecting the payer's close.
    function _addToLane(address payer, address provider, address token, uint256 amount, address from) private {
        if (payer == address(0) || provider == address(0)) revert ZeroAddress();
        uint256 lane = _lanes[provider][token][payer];
        uint256 claimed = lane.claimed();
        uint256 funds = lane.funds();
        if (claimed + funds + amount > LaneState.MAX_AMOUNT) revert LaneOverflow(funds, amount);
        funds += amount;
        _lanes[provider][token][payer] = LaneState.pack(claimed, funds, lane.uncollected());
        emit LaneFunded(payer, provider, token, from, amount, funds);
    }

    /// @dev Claims the lane voucher (payer, caller, token, model, cumulative) whose digest is `digest`
    /// from `lanes` (`_lanes[msg.sender][token]`),
    /// and logs it. Checks, in order: something to claim, signer (payer, delegate within its grant, or
    /// ERC-1271), lane funds. Writes nothing unless every check passes.
    /// @return reason `Settled` or why not (reverts instead when `strict`)
    /// @return amount what was paid into the lane's uncollected amount (0 when not)
    function _claimLane(
        mapping(address payer => uint256) storage lanes,
        address payer,
        address token,
        bytes32 model,
        uint256 cumulative,
        bytes32 digest,
        bytes calldata signature,
        uint256 log,
        bool strict
    ) private returns (Reason reason, uint256 amount) {
        uint256 slot = MappingSlots.slotOf(lanes, payer); // hashed once, for the read and the write
        uint256 lane = MappingSlots.load(slot);
        uint256 claimed = lane.claimed();
        address delegate;
        if (cumulative <= claimed) {
            if (strict) revert NothingToClaim(cumulative, claimed);
            reason = Reason.NothingToClaim;
        } else {
            // Cannot underflow: cumulative > claimed.
            unchecked {
                amount = cumulative - claimed;
            }
            bytes32 grantKey;
            uint256 grantState;
            (reason, delegate, grantKey, grantState) =
                _authorize(payer, token, model, amount, false, digest, signature, strict);
            uint256 funds = lane.funds();
            if (reason == Reason.Settled && funds < amount) {
                if (strict) revert InsufficientBalance(funds, amount);
                reason = Reason.InsufficientBalance;
            }
            if (reason == Reason.Settled) {
                // Cannot underflow: funds >= amount. Fits: cumulative = claimed + amount <= claimed + funds
                // <= MAX_AMOUNT, and uncollected + amount <= cumulative.
                unchecked {
                    MappingSlots.store(slot, LaneState.pack(cumulative, funds - amount, lane.uncollected() + amount));
                }
                if (delegate != address(0)) _recordSpend(grantKey, grantState);
            }
        }
        if (reason != Reason.Settled) (amount, delegate) = (0, address(0));
        SettlementLog.appendClaim(log, payer, false, 0, cumulative, amount, uint256(reason), delegate);
    }
}
