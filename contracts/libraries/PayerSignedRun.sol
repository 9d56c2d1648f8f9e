// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title PayerSignedRun
/// @notice The fast path of `settlePacked`: settles a run of a group's items that are signed by the
/// group's payer, in one assembly loop, and stops at the first item it cannot accept.
/// @dev ACCEPT-ONLY. The loop settles an item only when the general rules (`Settlement._debitAuthorized`
/// after a payer's signature) would settle it with the same effect: an EIP-2098 signature with a low
/// s recovering to the (non-zero) payer, a balance of at least `price`, and a nonce in the account's
/// window word that is not used yet and does not fill the word (filling it slides the window, which
/// reads storage). Any other item (a delegate, a contract payer, a bad signature, too little balance,
/// a used or spilled nonce, a full word) stops the loop, untouched: the caller gives it to the shared
/// Solidity rules, which decide (and log) it, then calls the loop again. So the rules have one
/// implementation; this only skips their overhead for the common case. The differential, invariant
/// and security suites compare every outcome of `settlePacked` with the reference model.
library PayerSignedRun {
    /// @dev secp256k1 order / 2, as in `SignatureVerification`: a larger s is a malleable twin.
    uint256 private constant HALF_ORDER = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;
    /// @dev The balance bits of an account (see `PayerAccount`).
    uint256 private constant BALANCE_MASK = 0xffffffffffffffffffffffffffffffff;
    /// @dev A nonce word with every bit used.
    uint256 private constant FULL_WORD = 0xffffffffffffffff;

    /// @notice Settles the items of `packed` from relative offset `at` up to `end` while each is
    /// accepted (see the contract's notes), for `payer` at `price`, from nonce `nonce` on.
    /// @param buffer the Request buffer with every field but nonce and inputHash set (see
    /// `PreflightHash.allocateRequestBuffer`)
    /// @param separator the EIP-712 domain separator
    /// @param account the payer's account word (see `PayerAccount`)
    /// @param log the settlement log (see `SettlementLog`): each settled item appends tag 0 (one byte)
    /// @return stopAt the offset of the first item not settled (`end` when all were)
    /// @return updated `account` with the settled items' nonces used and prices debited
    /// @return nextNonce the nonce of the item at `stopAt`
    /// @return settled how many items were settled
    /// @return digest the EIP-712 digest of the item at `stopAt` (meaningless when `stopAt == end`)
    /// @return signer the ECDSA signer of the item at `stopAt`, 0 for a high s or a failed recovery
    function run(
        bytes calldata packed,
        uint256 at,
        uint256 end,
        uint256 buffer,
        bytes32 separator,
        address payer,
        uint256 price,
        uint256 account,
        uint256 nonce,
        uint256 log
    )
        internal
        view
        returns (uint256 stopAt, uint256 updated, uint256 nextNonce, uint256 settled, bytes32 digest, address signer)
    {
        assembly ("memory-safe") {
            let m := mload(0x40) // scratch below overwrites the free memory pointer: keep it
            let tags := add(add(log, 0x20), mload(log)) // where the next tag byte goes
            let funds := and(account, BALANCE_MASK) // bits 0..127
            let window := and(shr(128, account), FULL_WORD) // bits 128..191: the window's word index
            let bits := shr(192, account) // bits 192..255: the window's used nonces
            let p := add(packed.offset, at) // absolute calldata offset of the item
            let last := add(packed.offset, end) // absolute end of the group's items
            for {} lt(p, last) {} {
                mstore(add(buffer, 0xc0), nonce) // Request.nonce
                mstore(add(buffer, 0x100), calldataload(p)) // Request.inputHash: item bytes 0..31
                let structHash := keccak256(buffer, 0x120) // hashStruct(Request)
                mstore(0x00, 0x1901) // lands in bytes 30..31 of word 0
                mstore(0x20, separator) // domain separator
                mstore(0x40, structHash) // struct hash
                digest := keccak256(0x1e, 0x42) // "\x19\x01" ++ separator ++ structHash
                let vs := calldataload(add(p, 0x40)) // item bytes 64..95: EIP-2098 vs
                let s := shr(1, shl(1, vs)) // vs without its top bit is s
                signer := 0 // stays 0 for a high s (malleable) or a failed recovery
                if iszero(gt(s, HALF_ORDER)) {
                    mstore(0x00, digest) // ecrecover input: digest
                    mstore(0x20, add(shr(255, vs), 27)) // v = 27 + the top bit of vs
                    mstore(0x40, calldataload(add(p, 0x20))) // r: item bytes 32..63
                    mstore(0x60, s) // s (overwrites the zero slot, restored below)
                    pop(staticcall(gas(), 0x01, 0x00, 0x80, 0x00, 0x20)) // ecrecover precompile
                    signer := mul(mload(0x00), eq(returndatasize(), 0x20)) // 0 when it returned nothing
                    mstore(0x60, 0) // restore the zero slot
                }
                let mask := shl(and(nonce, 63), 1) // the nonce's bit in its word
                let newBits := or(bits, mask) // the window with this nonce used
                // Accept only: signed by the payer (non-zero), balance >= price, the nonce in the
                // window word, unused, and not filling the word. Anything else goes to the rules.
                if iszero(
                    and(
                        and(eq(signer, payer), iszero(iszero(signer))), // signed by the payer
                        and(
                            iszero(lt(funds, price)), // balance >= price
                            and(
                                eq(shr(6, nonce), window), // nonce in the window's word
                                and(iszero(and(bits, mask)), iszero(eq(newBits, FULL_WORD))) // unused, word not filled
                            )
                        )
                    )
                ) { break }
                bits := newBits // use the nonce
                funds := sub(funds, price) // cannot underflow: balance >= price checked above
                mstore8(tags, 0) // tag 0: settled, signed by the payer
                tags := add(tags, 1) // next tag byte
                settled := add(settled, 1) // one more settled; cannot overflow (fewer than 2^16 items)
                nonce := add(nonce, 1) // the group's next nonce; stays 64-bit (checked by the caller)
                p := add(p, 0x60) // next item (96 bytes)
            }
            mstore(0x40, m) // restore the free memory pointer
            mstore(log, sub(tags, add(log, 0x20))) // the log's new length
            stopAt := sub(p, packed.offset) // back to an offset relative to `packed`
            nextNonce := nonce // the nonce of the item at `stopAt`
            updated := or(or(funds, shl(128, window)), shl(192, bits)) // repack (unchanged fields as loaded)
        }
    }
}
