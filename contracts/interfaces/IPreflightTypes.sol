// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @notice A signed inference request as the provider submits it. The provider is not in calldata:
/// it is `msg.sender`, and it is bound by the signature (see `RequestHash`).
/// @dev EIP-712: Request(address payer,address provider,address token,bytes32 model,uint96 price,
/// uint256 nonce,uint256 deadline,bytes32 inputHash)
struct SignedRequest {
    address payer; // whose escrow pays
    address token; // the escrowed asset (address(0) = native ETH)
    bytes32 model; // model identifier, e.g. keccak256("llama-3.1-70b")
    uint96 price; // amount debited, in the token's smallest unit
    uint256 nonce; // unordered: word = nonce >> 6, bit = nonce & 63
    uint256 deadline; // last second (inclusive) at which the request may settle
    bytes32 inputHash; // commitment to the inference input
    bytes signature; // 65-byte (r,s,v) or 64-byte EIP-2098 ECDSA, or anything an ERC-1271 payer accepts
}

/// @notice A cumulative voucher: "the total owed to `provider` on this channel is `cumulativeAmount`".
/// @dev EIP-712: Voucher(address payer,address provider,address token,bytes32 model,bytes32 channel,
/// uint128 cumulativeAmount). Each voucher supersedes the previous one on its channel.
struct SignedVoucher {
    address payer;
    address token;
    bytes32 model; // checked against a delegate's grant; payers may put anything
    bytes32 channel; // lets a payer run independent streams to one provider (e.g. one per session key)
    uint128 cumulativeAmount;
    bytes signature;
}

/// @notice The scope a payer grants to a delegate (session key, agent, dApp backend).
/// @dev EIP-712 (when granted by signature): Grant(address payer,address delegate,address token,
/// address provider,uint88 maxPrice,uint88 budget,uint32 period,uint32 expiry,bytes32[] models,
/// uint16 epoch,uint256 deadline)
struct GrantTerms {
    address delegate;
    address token; // budgets and prices are in this token
    address provider; // address(0) = any provider
    uint88 maxPrice; // cap per request
    uint88 budget; // spend allowed per period
    uint32 period; // budget period in seconds; 0 = the budget never resets
    uint32 expiry; // unix time at which the grant stops working
    bytes32[] models; // empty = any model
}

/// @notice Why a request or voucher did not settle inside a batch (0 = it settled).
enum Reason {
    Settled,
    Expired,
    SignatureLength,
    SignatureMalleable,
    InvalidSigner,
    GrantRevoked,
    GrantExpired,
    ProviderNotAllowed,
    ModelNotAllowed,
    PriceAboveCap,
    BudgetExceeded,
    NonceUsed,
    InsufficientBalance,
    NothingToClaim,
    TokenMismatch
}
