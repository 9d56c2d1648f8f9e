// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IInferencePermissions} from "./interfaces/IInferencePermissions.sol";
import {GrantTerms, Reason} from "./interfaces/IPreflightTypes.sol";
import {EIP712Domain} from "./EIP712Domain.sol";
import {PreflightHash} from "./libraries/PreflightHash.sol";
import {SignatureVerification} from "./libraries/SignatureVerification.sol";

/// @title InferencePermissions
/// @notice Scoped, revocable grants per (payer, token, delegate). A delegated settlement reads two
/// slots of its grant (and rewrites the first), plus one more read for a model-restricted grant,
/// whatever the size of its model set.
abstract contract InferencePermissions is IInferencePermissions, EIP712Domain {
    /// @dev Gas a contract payer's ERC-1271 check may use. Caps what a hostile wallet can burn of a
    /// provider's batch; Safe-style wallets need well under it.
    uint256 internal constant ERC1271_GAS_LIMIT = 200_000;

    struct Grant {
        // slot 0: read and rewritten by every delegated settlement (88 + 88 + 32 + 32 + 16 = 256 bits)
        uint88 spent; // spent in the period ending at periodEnd
        uint88 maxPrice;
        uint32 periodEnd;
        uint32 expiry; // 0 = no active grant
        uint16 epoch; // bumps on every grant and revoke; keys the model set and signed grants
        // slot 1: read by every delegated settlement (160 + 88 + 8 = 256 bits)
        address provider; // address(0) = any
        uint88 budget;
        bool anyModel;
        // slot 2: read only when a budget period rolls over
        uint32 period; // 0 = never rolls over
    }

    mapping(address payer => mapping(address token => mapping(address delegate => Grant))) internal _grants;
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
                payer.code.length != 0 && SignatureVerification.isValidERC1271(payer, digest, signature, gasleft());
            if (!accepted) _revertSignature(reason, signer, signature.length);
        }
        _setGrant(payer, terms);
    }

    /// @inheritdoc IInferencePermissions
    function revoke(address token, address delegate) external {
        Grant storage g = _grants[msg.sender][token][delegate];
        // A revoke must always work. At the last epoch it only clears the expiry: no signed grant can
        // apply there anyway (granting needs a next epoch), so there is nothing else to retire.
        uint16 epoch = g.epoch;
        if (epoch != type(uint16).max) ++epoch;
        g.expiry = 0;
        g.epoch = epoch;
        emit GrantRevoked(msg.sender, token, delegate, epoch);
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
        Grant storage g = _grants[payer][token][delegate];
        return (g.provider, g.maxPrice, g.budget, g.spent, g.periodEnd, g.period, g.expiry, g.epoch, g.anyModel);
    }

    /// @inheritdoc IInferencePermissions
    function isModelAllowed(address payer, address token, address delegate, bytes32 model)
        external
        view
        returns (bool)
    {
        Grant storage g = _grants[payer][token][delegate];
        // A revoked (expiry 0) or expired grant allows nothing; `revoke` leaves its `anyModel` flag behind.
        if (block.timestamp >= g.expiry) return false;
        return g.anyModel || _grantModels[_grantModelKey(payer, token, delegate, g.epoch, model)];
    }

    // ------------------------------------------------------------------ internal

    /// @dev Checks that `delegate` may spend `amount` of `payer`'s `token` with `provider` on `model`.
    /// `maxPrice` applies to single requests only (`checkPrice`); a voucher covers many requests and is
    /// bounded by the budget. Reverts with the specific error when `strict`, else returns the reason.
    /// @return reason `Settled` when allowed
    /// @return spent the grant's spending in the current period once `amount` is added
    /// @return periodEnd the end of the current period (moved forward if it rolled over)
    function _checkGrant(
        address payer,
        address token,
        address delegate,
        address provider,
        bytes32 model,
        uint256 amount,
        bool checkPrice,
        bool strict
    ) internal view returns (Reason reason, uint256 spent, uint256 periodEnd) {
        Grant storage g = _grants[payer][token][delegate];
        uint256 expiry = g.expiry;
        if (expiry == 0) {
            if (strict) revert RevokedGrant(delegate);
            return (Reason.GrantRevoked, 0, 0);
        }
        if (block.timestamp >= expiry) {
            if (strict) revert GrantExpired(delegate, expiry);
            return (Reason.GrantExpired, 0, 0);
        }
        address allowedProvider = g.provider;
        if (allowedProvider != address(0) && allowedProvider != provider) {
            if (strict) revert ProviderNotAllowed(provider);
            return (Reason.ProviderNotAllowed, 0, 0);
        }
        if (checkPrice && amount > g.maxPrice) {
            if (strict) revert PriceAboveCap(amount, g.maxPrice);
            return (Reason.PriceAboveCap, 0, 0);
        }
        if (!g.anyModel && !_grantModels[_grantModelKey(payer, token, delegate, g.epoch, model)]) {
            if (strict) revert ModelNotAllowed(model);
            return (Reason.ModelNotAllowed, 0, 0);
        }
        spent = g.spent;
        periodEnd = g.periodEnd;
        if (block.timestamp >= periodEnd) {
            // Roll over to the period containing now (periods stay aligned to the grant's start).
            // A period of 0 never gets here: its periodEnd is the largest uint32 timestamp.
            uint256 period = g.period;
            periodEnd += ((block.timestamp - periodEnd) / period + 1) * period;
            if (periodEnd > type(uint32).max) periodEnd = type(uint32).max;
            spent = 0;
        }
        spent += amount;
        if (spent > g.budget) {
            if (strict) revert BudgetExceeded(spent, g.budget);
            return (Reason.BudgetExceeded, 0, 0);
        }
    }

    /// @dev Records a delegated spend checked by `_checkGrant` (one slot write).
    function _recordSpend(address payer, address token, address delegate, uint256 spent, uint256 periodEnd)
        internal
    {
        Grant storage g = _grants[payer][token][delegate];
        // Both fit: spent <= budget (88 bits), periodEnd is capped to 32 bits in _checkGrant.
        g.spent = uint88(spent);
        g.periodEnd = uint32(periodEnd);
    }

    /// @dev Whether any grant was ever made for (payer, token, delegate): decides between the delegate
    /// path and "unknown signer".
    function _isDelegate(address payer, address token, address delegate) internal view returns (bool) {
        return _grants[payer][token][delegate].epoch != 0;
    }

    /// @dev Reverts with the error that explains why a signature was refused.
    function _revertSignature(Reason reason, address recovered, uint256 length) internal pure {
        if (reason == Reason.SignatureLength) revert InvalidSignatureLength(length);
        if (reason == Reason.SignatureMalleable) revert MalleableSignature();
        revert InvalidSigner(recovered);
    }

    function _setGrant(address payer, GrantTerms calldata terms) private {
        if (terms.delegate == address(0)) revert ZeroAddress();
        if (terms.expiry <= block.timestamp) revert GrantExpiryInPast(terms.expiry);
        Grant storage g = _grants[payer][terms.token][terms.delegate];
        uint16 epoch = _nextEpoch(g.epoch);
        uint256 periodEnd = terms.period == 0 ? type(uint32).max : block.timestamp + terms.period;
        if (periodEnd > type(uint32).max) periodEnd = type(uint32).max;
        bool anyModel = terms.models.length == 0;
        _grants[payer][terms.token][terms.delegate] = Grant({
            spent: 0,
            maxPrice: terms.maxPrice,
            periodEnd: uint32(periodEnd),
            expiry: terms.expiry,
            epoch: epoch,
            provider: terms.provider,
            budget: terms.budget,
            anyModel: anyModel,
            period: terms.period
        });
        for (uint256 i; i < terms.models.length; ++i) {
            _grantModels[_grantModelKey(payer, terms.token, terms.delegate, epoch, terms.models[i])] = true;
        }
        emit GrantSet(
            payer,
            terms.token,
            terms.delegate,
            epoch,
            terms.provider,
            terms.maxPrice,
            terms.budget,
            terms.period,
            terms.expiry,
            terms.models
        );
    }

    function _nextEpoch(uint16 epoch) private pure returns (uint16) {
        if (epoch == type(uint16).max) revert GrantEpochExhausted();
        return epoch + 1;
    }

    function _grantModelKey(address payer, address token, address delegate, uint16 epoch, bytes32 model)
        private
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(payer, token, delegate, epoch, model));
    }
}
