// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title PayerSignedRun
/// @notice The fast path of `settlePacked`: settles a run of a group's items that are signed by the
/// group's payer, or by a delegate of the payer within a plain grant, in one assembly loop, and stops
/// at the first item it cannot accept.
/// @dev ACCEPT-ONLY. The loop settles an item only when the general rules (`Settlement._debitRecovered`)
/// would settle it with the same effect: an EIP-2098 signature with a low s recovering to the
/// (non-zero) payer, or to a delegate whose grant the rules would accept from its hot slot alone (see
/// `grantAccepts` in `run`); a balance of at least `price`; and a nonce in the account's window word
/// that is not used yet and does not fill the word (filling it slides the window, which reads
/// storage). Any other item (a contract payer, a bad signature, a delegate whose grant is for any
/// provider, restricted to models, rolling over or refused, too little balance, a used or spilled
/// nonce, a full word) stops the loop, untouched: the caller gives it to the shared Solidity rules,
/// which decide (and log) it, then calls the loop again. So the rules have one implementation; this
/// only skips their overhead for the common cases. The differential, invariant and security suites
/// compare every outcome of `settlePacked` with the reference model.
library PayerSignedRun {
    /// @dev secp256k1 order / 2, as in `SignatureVerification`: a larger s is a malleable twin.
    uint256 private constant HALF_ORDER = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;
    /// @dev The balance bits of an account (see `PayerAccount`).
    uint256 private constant BALANCE_MASK = 0xffffffffffffffffffffffffffffffff;
    /// @dev A nonce word with every bit used.
    uint256 private constant FULL_WORD = 0xffffffffffffffff;
    /// @dev An 88-bit field of a grant's hot slot (remaining budget, price cap; see `GrantState`).
    uint256 private constant MASK_88 = 0xffffffffffffffffffffff;
    /// @dev A 32-bit field of a grant's hot slot (period end, expiry).
    uint256 private constant MASK_32 = 0xffffffff;
    /// @dev Buffer words past the ones `PreflightHash` fills: the `_grantStates` mapping's slot
    /// (`setGrantStates`), and `run`'s first item.
    uint256 private constant GRANT_STATES = 0x200;
    uint256 private constant START = 0x220;

    /// @notice Records where the grants' hot slots live (`_grantStates`' storage slot) in `buffer`.
    function setGrantStates(uint256 buffer, uint256 grantStates) internal pure {
        assembly ("memory-safe") {
            mstore(add(buffer, GRANT_STATES), grantStates)
        }
    }

    /// @notice Settles the items from calldata offset `start` up to `last` while each is accepted (see
    /// the notes above), for `payer` at `price`, from nonce `nonce` on.
    /// @param buffer the Request buffer with every field but nonce and inputHash set, followed by the
    /// digest and ecrecover scratch (see `PreflightHash.allocateRequestBuffer`) and the words above
    /// @param payer the group's payer (as in the buffer)
    /// @param price the section's price (as in the buffer)
    /// @param account the payer's account word (see `PayerAccount`)
    /// @param log the settlement log (see `SettlementLog`): each settled item appends its tag, one
    /// byte 0 for the payer, or `SettlementLog.DELEGATE_TAG` and the delegate's 20 bytes
    /// @return settled how many items were settled: the first not settled is item `settled`, with
    /// nonce `nonce + settled`
    /// @return updated `account` with the settled items' nonces used and prices debited
    /// @return signer the ECDSA signer of the first item not settled, 0 for a high s or a failed
    /// recovery (meaningless when all were settled); its digest is `stoppedDigest(buffer)`
    /// @dev The loop checks neither balance nor window: `limit` bounds it by both, computed once.
    /// Nonces are consecutive, so they stay in the window's word for 64 - (nonce % 64) items, and the
    /// balance pays floor(balance / price) of them (any number at price 0). No item is within the
    /// limit when the payer is zero or the nonce is not in the window's word (bits 128..191).
    /// A delegate's item within those bounds is checked against its grant last (`grantAccepts`).
    function run(uint256 start, uint256 last, uint256 buffer, address payer, uint256 price, uint256 account, uint256 nonce, uint256 log)
        internal
        returns (uint256 settled, uint256 updated, address signer)
    {
        assembly ("memory-safe") {
            // Whether `delegate_` may spend `price_` of `payer_`'s token (the buffer's) with this provider
            // (the buffer's) now, as the rules would decide from its hot slot alone: unexpired (expiry,
            // bits 208..239, after now; 0 = revoked or none), any model (bit 255), inside its period
            // (end, bits 176..207, after now: no roll-over), the price within the cap (bits 88..175)
            // and the remaining budget (bits 0..87). Then the spend is written and it returns 1; else 0,
            // nothing written. A grant for any provider (stored under provider zero) is left to the rules.
            function grantAccepts(buffer_, payer_, delegate_, price_) -> ok {
                let m := mload(0x40) // free memory as scratch: abi.encode(payer, token, delegate, provider)
                mstore(m, payer_)
                mstore(add(m, 0x20), mload(add(buffer_, 0x60))) // Request.token
                mstore(add(m, 0x40), delegate_)
                mstore(add(m, 0x60), mload(add(buffer_, 0x40))) // Request.provider
                mstore(0x00, keccak256(m, 0x80)) // the grant key, as InferencePermissions._grantKey
                mstore(0x20, mload(add(buffer_, GRANT_STATES)))
                let slot := keccak256(0x00, 0x40) // _grantStates[key]
                let state := sload(slot)
                ok := and(
                    and(gt(and(shr(208, state), MASK_32), timestamp()), shr(255, state)),
                    and(gt(and(shr(176, state), MASK_32), timestamp()), iszero(or(gt(price_, and(shr(88, state), MASK_88)), gt(price_, and(state, MASK_88)))))
                )
                if ok { sstore(slot, sub(state, price_)) } // the remaining budget less the price: no borrow, price <= remaining
            }

            mstore(add(buffer, START), start) // for `settled` after the loop (not on the stack: coverage builds need the slot)
            let bits := shr(192, account) // bits 192..255: the window's used nonces
            let limit := start // items at or past this stop the loop
            if and(iszero(iszero(payer)), eq(shr(6, nonce), and(shr(128, account), FULL_WORD))) { // a payer, nonce in the window
                let allowed := sub(64, and(nonce, 63)) // items left in the window's word
                if price { // at price 0 the balance bounds nothing
                    let affordable := div(and(account, BALANCE_MASK), price) // items the balance pays for
                    if lt(affordable, allowed) { allowed := affordable } // the smaller bound
                }
                limit := add(start, mul(allowed, 0x60)) // 96 bytes an item
            }
            let q := add(add(log, 0x20), mload(log)) // where the next tag goes
            let p := start // the current item
            for {} lt(p, last) {} { // every item of the group, unless one stops the run
                mstore(add(buffer, 0xc0), nonce) // Request.nonce
                mstore(add(buffer, 0x100), calldataload(p)) // Request.inputHash: item bytes 0..31
                mstore(add(buffer, 0x160), keccak256(buffer, 0x120)) // hashStruct(Request)
                mstore(add(buffer, 0x180), keccak256(add(buffer, 0x13e), 0x42)) // digest: "\x19\x01" ++ separator ++ structHash
                let vs := calldataload(add(p, 0x40)) // item bytes 64..95: EIP-2098 vs
                mstore(add(buffer, 0x1a0), add(shr(255, vs), 27)) // v = 27 + the top bit of vs
                mstore(add(buffer, 0x1c0), calldataload(add(p, 0x20))) // r: item bytes 32..63
                let s := shr(1, shl(1, vs)) // vs without its top bit is s
                mstore(add(buffer, 0x1e0), s) // s
                mstore(0x00, 0) // no stale signer if the precompile returns nothing
                pop(staticcall(gas(), 0x01, add(buffer, 0x180), 0x80, 0x00, 0x20)) // ecrecover(digest, v, r, s)
                signer := mul(mload(0x00), iszero(gt(s, HALF_ORDER))) // 0 when it failed or s is high (malleable)
                let mask := shl(and(nonce, 63), 1) // this nonce's bit in the window word
                let newBits := or(bits, mask) // the window with this nonce used
                // Within balance and window (`limit`), the nonce unused, and not filling the word...
                if iszero(and(lt(p, limit), and(iszero(and(bits, mask)), lt(newBits, FULL_WORD)))) { break } // else the rules take it
                // ...and signed by the payer (not zero, checked above) with a low s: tag 0...
                switch eq(signer, payer)
                case 1 {
                    mstore8(q, 0)
                    q := add(q, 1)
                }
                default {
                    // ...or by a delegate within its grant (checked last: it reads and writes storage):
                    // tag DELEGATE_TAG, then the delegate.
                    if iszero(signer) { break } // a high s or a failed recovery: the rules say which
                    if iszero(grantAccepts(buffer, payer, signer, price)) { break }
                    mstore(q, or(shl(248, 0x80), shl(88, signer)))
                    q := add(q, 21)
                }
                bits := newBits // use the nonce (the limit stops the loop past bit 63)
                nonce := add(nonce, 1) // the group's next nonce; stays 64-bit (checked by the caller)
                p := add(p, 0x60) // next item (96 bytes)
            }
            settled := div(sub(p, mload(add(buffer, START))), 0x60) // items settled
            mstore(log, sub(q, add(log, 0x20))) // the log's new length
            // Cannot underflow: settled <= balance / price. The window's word index is unchanged.
            updated := or(sub(and(account, not(shl(192, FULL_WORD))), mul(settled, price)), shl(192, bits)) // debited, new bitmap
        }
    }

    /// @notice The digest of the first item `run` did not settle (it leaves it in the buffer).
    function stoppedDigest(uint256 buffer) internal pure returns (bytes32 digest) {
        assembly ("memory-safe") {
            digest := mload(add(buffer, 0x180)) // the ecrecover input's first word
        }
    }
}
