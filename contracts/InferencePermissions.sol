// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IInferencePermissions} from "./interfaces/IInferencePermissions.sol";
import {GrantTerms, Reason} from "./interfaces/IPreflightTypes.sol";
import {EIP712Domain} from "./EIP712Domain.sol";
import {GrantState} from "./libraries/GrantState.sol";
import {PreflightHash} from "./libraries/PreflightHash.sol";
import {SignatureVerification} from "./libraries/SignatureVerification.sol";
import {MappingSlots} from "./libraries/MappingSlots.sol";

/// @title InferencePermissions
/// @notice Scoped, revocable grants per (payer, token, delegate). A delegated settlement reads and
/// writes one hot slot (`GrantState`), stored under a key that includes the grant's provider (or zero
/// for any provider): finding the slot under the settling provider's key IS the provider check. The
/// cold record (budget, period, epoch, provider) is read only when a period rolls over, when a grant
/// is changed, and on failure paths that need it for their error.
abstract contract InferencePermissions is IInferencePermissions, EIP712Domain {
    using GrantState for uint256;

    /// @dev Gas a contract payer's ERC-1271 check may use. Caps what a hostile wallet can burn of a
    /// provider's batch; Safe-style wallets need well under it.
    uint256 internal constant ERC1271_GAS_LIMIT = 200_000;

    /// @dev The cold part of a grant. Slot 0: budget, period, epoch (88 + 32 + 16 bits), read when a
    /// period rolls over; slot 1: provider, read when the grant changes.
    struct GrantRecord {
        uint88 budget;
        uint32 period; // 0 = the budget never resets
        uint16 epoch; // bumps on every grant and revoke; keys the model set and signed grants
        address provider; // address(0) = any; where the hot slot lives
    }

    mapping(address payer => mapping(address token => mapping(address delegate => GrantRecord))) private _grants;
    /// @dev keccak256(payer, token, delegate, provider) => hot slot (see `GrantState`).
    mapping(bytes32 grantKey => uint256 state) private _grantStates;
    /// @dev keccak256(payer, token, delegate, epoch, model) => allowed. Keyed by epoch, so a new grant
    /// or a revoke retires the whole previous set without touching it.
    mapping(bytes32 grantModelKey => bool) private _grantModels;

    /// @inheritdoc IInferencePermissions
    function grant(GrantTerms calldata terms) external {
        _setGrant(msg.sender, terms);
    }

    /// @inheritdoc IInferencePermissions
    function grantBySig(address payer, GrantTerms calldata terms, uint256 deadline, bytes calldata signature)
        external
    {
        if (block.timestamp > deadline) revert SignatureExpired(deadline);
        uint16 epoch = _grants[payer][terms.token][terms.delegate].epoch;
        bytes32 digest = _hashTypedData(PreflightHash.hash(payer, terms, epoch, deadline));
        (address signer, Reason reason) = SignatureVerification.recover(digest, signature);
        if (signer != payer || signer == address(0)) {
            bool accepted =
                payer.code.length != 0 && SignatureVerification.isValidERC1271(payer, digest, signature, ERC1271_GAS_LIMIT);
            if (!accepted) _revertSignature(reason, signer, signature.length);
        }
        _setGrant(payer, terms);
    }

    /// @inheritdoc IInferencePermissions
    function revoke(address token, address delegate) external {
        GrantRecord storage record = _grants[msg.sender][token][delegate];
        // A revoke must always work. At the last epoch it only clears the expiry: no signed grant can
        // apply there anyway (granting needs a next epoch), so there is nothing else to retire.
        uint256 epoch = record.epoch;
        if (epoch != GrantState.MAX_EPOCH) ++epoch;
        record.epoch = uint16(epoch);
        bytes32 key = _grantKey(msg.sender, token, delegate, record.provider);
        _grantStates[key] = _grantStates[key].revoked(epoch);
        emit GrantRevoked(msg.sender, token, delegate, uint16(epoch));
    }

    /// @inheritdoc IInferencePermissions
    function grantOf(address payer, address token, address delegate)
        external
        view
        returns (
            address provider,
            uint88 maxPrice,
            uint88 budget,
            uint88 spent,
            uint32 periodEnd,
            uint32 period,
            uint32 expiry,
            uint16 epoch,
            bool anyModel
        )
    {
        GrantRecord memory record = _grants[payer][token][delegate];
        uint256 state = _grantStates[_grantKey(payer, token, delegate, record.provider)];
        uint256 remaining = state.remaining();
        // The fields were stored from values of these widths.
        return (
            record.provider,
            uint88(state.maxPrice()),
            record.budget,
            remaining < record.budget ? uint88(record.budget - remaining) : 0,
            uint32(state.periodEnd()),
            record.period,
            uint32(state.expiry()),
            record.epoch,
            state.anyModel()
        );
    }

    /// @inheritdoc IInferencePermissions
    function isModelAllowed(address payer, address token, address delegate, bytes32 model)
        external
        view
        returns (bool)
    {
        address provider = _grants[payer][token][delegate].provider;
        uint256 state = _grantStates[_grantKey(payer, token, delegate, provider)];
        // A revoked (expiry 0) or expired grant allows nothing.
        if (block.timestamp >= state.expiry()) return false;
        return state.anyModel() || _grantModels[_grantModelKey(payer, token, delegate, state.epoch(), model)];
    }

    // ------------------------------------------------------------------ internal

    /// @dev Checks that `delegate` may spend `amount` of `payer`'s `token` with `provider` on `model`.
    /// `maxPrice` applies to single requests only (`checkPrice`); a voucher covers many requests and is
    /// bounded by the budget. Reverts with the specific error when `strict`, else returns the reason.
    /// @return known whether `delegate` has (or had) a grant from `payer` in `token` at all
    /// @return reason `Settled` when allowed
    /// @return key the hot slot's storage slot, to pass to `_recordSpend`
    /// @return updated the hot slot with `amount` spent (and the period rolled over if it ended)
    function _checkGrant(
        address payer,
        address token,
        address delegate,
        address provider,
        bytes32 model,
        uint256 amount,
        bool checkPrice,
        bool strict
    ) internal view returns (bool known, Reason reason, bytes32 key, uint256 updated) {
        // The hot slot's storage slot is hashed once, for this read and `_recordSpend`'s write.
        key = bytes32(MappingSlots.slotOf(_grantStates, _grantKey(payer, token, delegate, provider)));
        uint256 state = MappingSlots.load(uint256(key));
        if (state == 0) {
            // Not granted for this provider: an any-provider grant lives under provider zero.
            key = bytes32(MappingSlots.slotOf(_grantStates, _grantKey(payer, token, delegate, address(0))));
            state = MappingSlots.load(uint256(key));
        }
        if (state == 0) {
            (known, reason, state) = _grantOfAnotherProvider(payer, token, delegate, provider, strict);
            if (state == 0) return (known, reason, 0, 0);
        }
        known = true;
        uint256 expiry = state.expiry();
        if (expiry == 0) {
            if (strict) revert RevokedGrant(delegate);
            return (known, Reason.GrantRevoked, 0, 0);
        }
        if (block.timestamp >= expiry) {
            if (strict) revert GrantExpired(delegate, expiry);
            return (known, Reason.GrantExpired, 0, 0);
        }
        if (checkPrice && amount > state.maxPrice()) {
            if (strict) revert PriceAboveCap(amount, state.maxPrice());
            return (known, Reason.PriceAboveCap, 0, 0);
        }
        if (!state.anyModel() && !_grantModels[_grantModelKey(payer, token, delegate, state.epoch(), model)]) {
            if (strict) revert ModelNotAllowed(model);
            return (known, Reason.ModelNotAllowed, 0, 0);
        }
        (uint256 remaining, uint256 periodEnd) = _currentPeriod(payer, token, delegate, state);
        if (amount > remaining) {
            uint256 budget = _grants[payer][token][delegate].budget;
            if (strict) revert BudgetExceeded(budget - remaining + amount, budget);
            return (known, Reason.BudgetExceeded, 0, 0);
        }
        // Cannot underflow: amount <= remaining was checked above.
        unchecked {
            updated = state.withSpend(remaining - amount, periodEnd);
        }
        reason = Reason.Settled;
    }

    /// @dev No grant under this provider's key or the any-provider key. A grant made for another
    /// provider is read from its record (cold reads, on this failure path only), and refused in the
    /// same order of checks as any grant: revoked, expired, then the provider.
    /// @return known whether `delegate` has (or had) a grant at all
    /// @return reason why it is refused when the grant is active elsewhere
    /// @return state the grant's hot slot when it is revoked or expired (for `_checkGrant` to say so), else 0
    function _grantOfAnotherProvider(address payer, address token, address delegate, address provider, bool strict)
        private
        view
        returns (bool known, Reason reason, uint256 state)
    {
        GrantRecord storage record = _grants[payer][token][delegate];
        if (record.epoch == 0) return (false, Reason.InvalidSigner, 0);
        state = _grantStates[_grantKey(payer, token, delegate, record.provider)];
        uint256 expiry = state.expiry();
        if (expiry != 0 && block.timestamp < expiry) {
            if (strict) revert ProviderNotAllowed(provider);
            return (true, Reason.ProviderNotAllowed, 0);
        }
        return (true, Reason.Settled, state);
    }

    /// @dev The grant's remaining budget and period end now: rolled over to the period containing now
    /// when its period ended (periods stay aligned to the grant's start; the cold record is read only
    /// then). A period of 0 never rolls over: its periodEnd is the largest uint32 timestamp.
    function _currentPeriod(address payer, address token, address delegate, uint256 state)
        private
        view
        returns (uint256 remaining, uint256 periodEnd)
    {
        remaining = state.remaining();
        periodEnd = state.periodEnd();
        if (block.timestamp >= periodEnd) {
            GrantRecord storage record = _grants[payer][token][delegate];
            uint256 period = record.period;
            periodEnd += ((block.timestamp - periodEnd) / period + 1) * period;
            if (periodEnd > type(uint32).max) periodEnd = type(uint32).max;
            remaining = record.budget;
        }
    }

    /// @dev The storage slot of the `_grantStates` mapping, for `settlePacked`'s fast path
    /// (`PayerSignedRun`), which reads and writes grants' hot slots itself.
    function _grantStatesSlot() internal pure returns (uint256 slot) {
        assembly ("memory-safe") {
            slot := _grantStates.slot
        }
    }

    /// @dev Records a delegated spend checked by `_checkGrant` (one slot write).
    function _recordSpend(bytes32 key, uint256 updated) internal {
        MappingSlots.store(uint256(key), updated); // `key` is the slot `_checkGrant` read
    }

    /// @dev Reverts with the error that explains why a signature was refused.
    function _revertSignature(Reason reason, address recovered, uint256 length) internal pure {
        if (reason == Reason.SignatureLength) revert InvalidSignatureLength(length);
        if (reason == Reason.SignatureMalleable) revert MalleableSignature();
        revert InvalidSigner(recovered);
    }

    function _setGrant(address payer, GrantTerms calldata terms) private {
        address delegate = terms.delegate;
        address token = terms.token;
        if (delegate == address(0)) revert ZeroAddress();
        if (terms.expiry <= block.timestamp) revert GrantExpiryInPast(terms.expiry);
        GrantRecord memory previous = _grants[payer][token][delegate];
        if (previous.epoch >= GrantState.MAX_EPOCH) revert GrantEpochExhausted();
        uint256 epoch = previous.epoch + 1;
        // The hot slot moves with the provider: retire the old one, so that provider is refused.
        if (previous.epoch != 0 && previous.provider != terms.provider) {
            delete _grantStates[_grantKey(payer, token, delegate, previous.provider)];
        }
        uint256 periodEnd = terms.period == 0 ? type(uint32).max : block.timestamp + terms.period;
        if (periodEnd > type(uint32).max) periodEnd = type(uint32).max;
        bool anyModel = terms.models.length == 0;
        _grants[payer][token][delegate] = GrantRecord(terms.budget, terms.period, uint16(epoch), terms.provider);
        _grantStates[_grantKey(payer, token, delegate, terms.provider)] =
            GrantState.pack(terms.budget, terms.maxPrice, periodEnd, terms.expiry, epoch, anyModel);
        for (uint256 i; i < terms.models.length; ++i) {
            _grantModels[_grantModelKey(payer, token, delegate, epoch, terms.models[i])] = true;
        }
        emit GrantSet(
            payer,
            token,
            delegate,
            uint16(epoch),
            terms.provider,
            terms.maxPrice,
            terms.budget,
            terms.period,
            terms.expiry,
            terms.models
        );
    }

    function _grantKey(address payer, address token, address delegate, address provider)
        private
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(payer, token, delegate, provider));
    }

    function _grantModelKey(address payer, address token, address delegate, uint256 epoch, bytes32 model)
        private
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(payer, token, delegate, uint16(epoch), model));
    }
}
