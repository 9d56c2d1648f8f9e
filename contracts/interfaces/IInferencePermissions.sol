// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {GrantTerms} from "./IPreflightTypes.sol";
import {ISignatureErrors} from "./ISignatureErrors.sol";

/// @title IInferencePermissions
/// @notice Scoped, revocable grants from a payer to a delegate key, per (payer, token, delegate).
/// A delegate may sign requests and vouchers that the payer's escrow (or lanes) pay, within its grant's
/// scope. A delegated settlement reads and writes one slot of its grant (remaining budget, price cap,
/// period end, expiry, epoch, any-model flag); the budget and period are read only when a period
/// rolls over, the model set only for a grant restricted to models.
/// @dev Settlements record a delegate's spending in the settlement logs (see `ISettlement`): a
/// follower rebuilds a grant's remaining budget from `GrantSet`, `GrantRevoked` and those logs.
interface IInferencePermissions is ISignatureErrors {
    /// @notice The delegate's grant was revoked.
    error RevokedGrant(address delegate);
    /// @notice The delegate's grant expired.
    error GrantExpired(address delegate, uint256 expiry);
    /// @notice The delegate's grant does not cover this provider.
    error ProviderNotAllowed(address provider);
    /// @notice The delegate's grant does not cover this model.
    error ModelNotAllowed(bytes32 model);
    /// @notice The request's price exceeds the grant's cap per request.
    error PriceAboveCap(uint256 price, uint256 maxPrice);
    /// @notice The settlement would take the grant's spending past its budget for the period.
    error BudgetExceeded(uint256 wouldSpend, uint256 budget);
    /// @notice The grant's expiry is not in the future.
    error GrantExpiryInPast(uint256 expiry);
    /// @notice A signed grant or signed request arrived after its deadline.
    error SignatureExpired(uint256 deadline);
    /// @notice The (payer, token, delegate) slot was re-granted 32,767 times and is exhausted.
    error GrantEpochExhausted();

    /// @notice `payer` granted `delegate` the scope below, under a new `epoch`; the grant's remaining
    /// budget is `budget` and its first period ends `period` seconds after this block (never if 0).
    event GrantSet(
        address indexed payer,
        address indexed token,
        address indexed delegate,
        uint16 epoch,
        address provider,
        uint88 maxPrice,
        uint88 budget,
        uint32 period,
        uint32 expiry,
        bytes32[] models
    );
    /// @notice `payer` revoked `delegate`'s grant; `epoch` is the new epoch.
    event GrantRevoked(address indexed payer, address indexed token, address indexed delegate, uint16 epoch);

    /// @notice Grants `terms` to `terms.delegate` on behalf of the caller (replacing any earlier grant).
    function grant(GrantTerms calldata terms) external;

    /// @notice Applies a grant that `payer` signed (EIP-712 `Grant`), submitted by anyone.
    /// The signature binds the current epoch, so it works once and dies with a revoke.
    function grantBySig(address payer, GrantTerms calldata terms, uint256 deadline, bytes calldata signature)
        external;

    /// @notice Revokes the caller's grant to `delegate` for `token` at once, and every signed grant not yet applied.
    function revoke(address token, address delegate) external;

    /// @notice The state of a grant.
    /// @return provider address(0) = any
    /// @return maxPrice cap per request
    /// @return budget per period
    /// @return spent in the current period (as of the last settlement; budget - remaining)
    /// @return periodEnd when the current period ends
    /// @return period period length (0 = never resets)
    /// @return expiry 0 = no active grant
    /// @return epoch bumps on every grant and revoke
    /// @return anyModel whether every model is allowed
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
        );

    /// @notice Whether the grant of (payer, token, delegate) is active (not revoked, not expired) and allows `model`.
    function isModelAllowed(address payer, address token, address delegate, bytes32 model)
        external
        view
        returns (bool);
}
