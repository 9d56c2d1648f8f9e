// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @notice A signed inference request as the provider submits it to the readable entry points. The
/// provider is not in calldata: it is `msg.sender`, and it is bound by the signature.
/// @dev EIP-712: Request(address payer,address provider,address token,bytes32 model,uint96 price,
/// uint256 nonce,uint256 deadline,bytes32 inputHash). Nonces must be below 2^64 (`NonceOutOfRange`).
struct SignedRequest {
    address payer; // whose escrow pays
    address token; // the escrowed asset (address(0) = native ETH)
    bytes32 model; // model identifier, e.g. keccak256("llama-3.1-70b")
    uint96 price; // amount debited, in the token's smallest unit
    uint256 nonce; // unordered, < 2^64: word = nonce >> 6, bit = nonce & 63
    uint256 deadline; // last second (inclusive) at which the request may settle
    bytes32 inputHash; // commitment to the inference input
    bytes signature; // 65-byte (r,s,v) or 64-byte EIP-2098 ECDSA, or anything an ERC-1271 payer accepts
}

/// @notice A cumulative voucher on a channel of the payer's shared balance: "the total owed to
/// `provider` on this channel is `cumulativeAmount`".
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

/// @notice A cumulative voucher on a lane, the funds a payer reserved for one provider: "the total
/// owed to `provider` from this lane is `cumulativeAmount`".
/// @dev EIP-712: LaneVoucher(address payer,address provider,address token,bytes32 model,
/// uint128 cumulativeAmount). A distinct type from `Voucher`, so no signature is valid on both.
struct LaneVoucher {
    address payer;
    address token;
    bytes32 model; // checked against a delegate's grant; payers may put anything
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

/// @notice Why a request or voucher did not settle (0 = it settled). In logs this is the item's tag
/// (see `ISettlement`); the values are part of the log format and never change meaning.
enum Reason {
    Settled, // 0
    Expired, // 1  deadline passed
    SignatureLength, // 2  neither 64 nor 65 bytes, and the payer has no ERC-1271 code that accepts it
    SignatureMalleable, // 3  s in the upper half of the curve order
    InvalidSigner, // 4  not the payer, not a delegate with a grant, not accepted by ERC-1271
    GrantRevoked, // 5
    GrantExpired, // 6
    ProviderNotAllowed, // 7
    ModelNotAllowed, // 8
    PriceAboveCap, // 9
    BudgetExceeded, // 10
    NonceUsed, // 11
    InsufficientBalance, // 12 the payer's balance (or the lane's funds) does not cover the amount
    NothingToClaim, // 13 the voucher does not exceed what its channel or lane already paid
    TokenMismatch, // 14 a readable batch item names another token than the batch
    NonceOutOfRange // 15 a readable request's nonce is 2^64 or more
}
