// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @dev The part of Uniswap Permit2's `ISignatureTransfer` the benchmark uses.
interface ISignatureTransferLike {
    struct TokenPermissions {
        address token;
        uint256 amount;
    }

    struct PermitTransferFrom {
        TokenPermissions permitted;
        uint256 nonce;
        uint256 deadline;
    }

    struct SignatureTransferDetails {
        address to;
        uint256 requestedAmount;
    }

    function permitTransferFrom(
        PermitTransferFrom calldata permit,
        SignatureTransferDetails calldata transferDetails,
        address owner,
        bytes calldata signature
    ) external;
}

/// @dev EIP-3009 `transferWithAuthorization` (v, r, s form).
interface IEip3009Like {
    function transferWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external;
}

/// @title PeerBatcher
/// @notice BENCHMARK HELPER, NOT PART OF PREFLIGHT. Lets the peers settle N paid requests in one
/// transaction, as a provider's settlement contract would: one Permit2 `permitTransferFrom` (this
/// contract is the signed spender) or one EIP-3009 `transferWithAuthorization` per request, paid to
/// `to`. Reverts if any item fails, as each peer does on its own.
contract PeerBatcher {
    /// @notice One Permit2 signature transfer.
    struct Permit2Item {
        ISignatureTransferLike.PermitTransferFrom permit;
        address owner;
        bytes signature;
    }

    /// @notice One EIP-3009 authorization.
    struct Eip3009Item {
        address from;
        uint256 value;
        uint256 validAfter;
        uint256 validBefore;
        bytes32 nonce;
        uint8 v;
        bytes32 r;
        bytes32 s;
    }

    /// @notice Pays `to` each item's full permitted amount through Permit2.
    function permit2Batch(ISignatureTransferLike permit2, address to, Permit2Item[] calldata items) external {
        for (uint256 i; i < items.length; ++i) {
            Permit2Item calldata item = items[i];
            permit2.permitTransferFrom(
                item.permit,
                ISignatureTransferLike.SignatureTransferDetails(to, item.permit.permitted.amount),
                item.owner,
                item.signature
            );
        }
    }

    /// @notice Pays `to` each authorization through the EIP-3009 `token`.
    function eip3009Batch(IEip3009Like token, address to, Eip3009Item[] calldata items) external {
        for (uint256 i; i < items.length; ++i) {
            Eip3009Item calldata a = items[i];
            token.transferWithAuthorization(a.from, to, a.value, a.validAfter, a.validBefore, a.nonce, a.v, a.r, a.s);
        }
    }
}
