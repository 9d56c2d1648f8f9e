// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {SignedRequest, SignedVoucher, LaneVoucher, GrantTerms} from "../interfaces/IPreflightTypes.sol";
import {PreflightHash} from "../libraries/PreflightHash.sol";
import {EIP712Domain} from "../EIP712Domain.sol";

/// @notice Exposes `PreflightHash` and the EIP-712 domain digest, so tests can check the SDK's type
/// tables, struct hashes and digests against the contracts'. Tests only.
contract PreflightHashHarness is EIP712Domain {
    function REQUEST_TYPEHASH() external pure returns (bytes32) {
        return PreflightHash.REQUEST_TYPEHASH;
    }

    function VOUCHER_TYPEHASH() external pure returns (bytes32) {
        return PreflightHash.VOUCHER_TYPEHASH;
    }

    function LANE_VOUCHER_TYPEHASH() external pure returns (bytes32) {
        return PreflightHash.LANE_VOUCHER_TYPEHASH;
    }

    function hashLaneVoucher(LaneVoucher calldata voucher, address provider) external pure returns (bytes32) {
        return PreflightHash.hash(voucher, provider);
    }

    /// @notice The lane voucher struct hash through the packed path's buffer (`claimLanesPacked`).
    function hashLaneVoucherInBuffer(address payer, address provider, address token, bytes32 model, uint256 cumulativeAmount)
        external
        pure
        returns (bytes32)
    {
        uint256 buffer = PreflightHash.allocateLaneBuffer(provider, token, model);
        return PreflightHash.hashLaneInBuffer(buffer, payer, cumulativeAmount);
    }

    function GRANT_TYPEHASH() external pure returns (bytes32) {
        return PreflightHash.GRANT_TYPEHASH;
    }

    function hashRequest(SignedRequest calldata request, address provider) external pure returns (bytes32) {
        return PreflightHash.hash(request, provider);
    }

    function hashVoucher(SignedVoucher calldata voucher, address provider) external pure returns (bytes32) {
        return PreflightHash.hash(voucher, provider);
    }

    function hashGrant(address payer, GrantTerms calldata terms, uint16 epoch, uint256 deadline)
        external
        pure
        returns (bytes32)
    {
        return PreflightHash.hash(payer, terms, epoch, deadline);
    }

    /// @notice The EIP-712 digest of `structHash` under this contract's domain.
    function hashTypedData(bytes32 structHash) external view returns (bytes32) {
        return _hashTypedData(structHash);
    }
}
