// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title PayerSignedRun
/// @notice The fast path of `settlePacked`: settles a group's items that are signed by the group's
/// payer, or by a delegate of the payer within a plain grant, in one assembly block (header, log
/// record, account read, item loop, account write-back), and stops at the first item it cannot accept.
/// @dev ACCEPT-ONLY. The loop settles an item only when the general rules (`Settlement._debitRecovered`)
/// would settle it with the same effect: an EIP-2098 signature with a low s recovering to the
/// (non-zero) payer, or to a delegate whose grant the rules would accept from its hot slot alone (see
/// `grantAccepts` in `group`); a balance of at least `price`; and a nonce in the account's window word
/// that is not used yet and does not fill the word (filling it slides the window, which reads
/// storage). Any other item (a contract payer, a bad signature, a delegate whose grant is for any
/// provider, restricted to models, rolling over or refused, too little balance, a used or spilled
/// nonce, a full word) stops the loop, untouched: the caller gives it to the shared Solidity rules,
/// which decide (and log) it, then resume the loop after it. So the rules have one implementation; this
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
    /// @dev `ISettlement.MalformedPackedBatch(uint256)`'s selector in the top 4 bytes of a word, as in
    /// `PackedRequests` (assembly takes only number literals).
    uint256 private constant MALFORMED = 0x0cf35b5a00000000000000000000000000000000000000000000000000000000;
    /// @dev Buffer words past the ones `PreflightHash` fills (see `PreflightHash.allocateRequestBuffer`):
    /// the storage slots of the `_grantStates` and `_accounts` mappings (`setSlots`); the first item of
    /// the current call (not on the stack: coverage builds need the slot); and the group's state kept
    /// between a stop and the call that resumes it: the payer's account slot, the account as storage
    /// holds it, the account as the walk left it, the next item and where the group's items end
    /// (absolute calldata offsets), the next item's nonce and the stopped item's ECDSA signer.
    uint256 private constant GRANT_STATES = 0x200;
    uint256 private constant START = 0x220;
    uint256 private constant ACCOUNTS = 0x240;
    uint256 private constant SLOT = 0x260;
    uint256 private constant LOADED = 0x280;
    uint256 private constant ACCOUNT = 0x2a0;
    uint256 private constant AT = 0x2c0;
    uint256 private constant END = 0x2e0;
    uint256 private constant NONCE = 0x300;
    uint256 private constant SIGNER = 0x320;

    /// @notice Records where the grants' hot slots (`_grantStates`) and the payers' accounts
    /// (`_accounts`, keyed payer then token) live in `buffer`.
    function setSlots(uint256 buffer, uint256 grantStates, uint256 accounts) internal pure {
        assembly ("memory-safe") {
            mstore(add(buffer, GRANT_STATES), grantStates)
            mstore(add(buffer, ACCOUNTS), accounts)
        }
    }

    /// @notice Settles the packed group whose header is at `offset` of `packed` (calldata offset
    /// `base`, `length` bytes), or resumes it after a stop (`resume`), while each item is accepted
    /// (see the notes above). Reads the header (reverting `MalformedPackedBatch(offset)` when it or its
    /// items are cut short, it has no items, or its nonces pass 64 bits), appends the group's log
    /// record, reads the payer's account once and writes it back when the group ends or an item
    /// stops the walk (so that the shared rules, and the payer's wallet they may ask through ERC-1271,
    /// see the account as `settleBatch` shows it).
    /// @param buffer the Request buffer with every field but payer, nonce and inputHash set, the
    /// section's price among them, followed by the digest and ecrecover scratch and the words above
    /// @param log the settlement log (see `SettlementLog`): each settled item appends its tag, one
    /// byte 0 for the payer, or `SettlementLog.DELEGATE_TAG` and the delegate's 20 bytes
    /// @return total the prices settled by this call
    /// @return end where the group's items end (an offset of `packed`)
    /// @return stopped whether an item stopped the walk: `stoppedItem` says which, the caller gives it
    /// to the shared rules, then `resumeAfter` and a call with `resume` continue the group
    /// @dev The loop checks neither balance nor window: `limit` bounds it by both, computed once per
    /// call. Nonces are consecutive, so they stay in the window's word for 64 - (nonce % 64) items,
    /// and the balance pays floor(balance / price) of them (any number at price 0). No item is within
    /// the limit when the payer is zero or the nonce is not in the window's word (bits 128..191).
    /// A delegate's item within those bounds is checked against its grant last: `grantAccepts` says
    /// whether the delegate may spend `price` of the payer's token (the buffer's) with this provider (the
    /// buffer's) now, as the rules would decide from the grant's hot slot alone: unexpired (expiry, bits
    /// 208..239, after now; 0 = revoked or none), any model (bit 255), inside its period (end, bits
    /// 176..207, after now: no roll-over), the price within the cap (bits 88..175) and the remaining
    /// budget (bits 0..87). Then it writes the spend and returns 1; else 0, with nothing written. A
    /// grant for any provider (stored under provider zero) is left to the rules.
    // The group is one assembly block, header to write-back, so that its state stays on the stack:
    // split into Solidity steps, via-IR spills it to memory on every group (see docs/gas.md).
    // solhint-disable-next-line function-max-lines
    function group(uint256 base, uint256 length, uint256 offset, uint256 buffer, uint256 log, bool resume)
        internal
        returns (uint256 total, uint256 end, bool stopped)
    {
        assembly ("memory-safe") {
            function grantAccepts(buffer_, payer_, delegate_) -> ok {
                let price_ := mload(add(buffer_, 0xa0)) // Request.price: the section's
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

            let payer := 0 // the group's payer
            let nonce := 0 // the next item's nonce
            let account := 0 // the payer's account word (see `PayerAccount`)
            let p := 0 // the current item (absolute calldata offset)
            let last := 0 // where the group's items end (absolute)
            switch resume
            case 0 {
                let h := add(base, offset) // the group header: payer (20) . firstNonce (8) . count (2)
                payer := shr(96, calldataload(h)) // bytes 0..19
                nonce := shr(192, calldataload(add(h, 20))) // bytes 20..27: uint64
                let count := shr(240, calldataload(add(h, 28))) // bytes 28..29: uint16
                end := add(add(offset, 30), mul(count, 96)) // offsets are far below 2^64: no overflow
                // Cut short, no items, or nonces past 64 bits (the last is firstNonce + count - 1):
                if or(or(gt(add(offset, 30), length), iszero(count)), or(gt(end, length), gt(add(nonce, count), 0x10000000000000000))) {
                    mstore(0x00, MALFORMED)
                    mstore(0x04, offset)
                    revert(0x00, 0x24)
                }
                // The group's log record, as SettlementLog.appendGroup: payer . firstNonce . price . count.
                let r := add(add(log, 0x20), mload(log))
                mstore(r, shl(96, payer)) // bytes 0..19
                mstore(add(r, 20), shl(192, nonce)) // bytes 20..27 (uint64)
                mstore(add(r, 28), shl(160, mload(add(buffer, 0xa0)))) // bytes 28..39: the section's price (uint96)
                mstore(add(r, 40), shl(240, count)) // bytes 40..41 (uint16)
                mstore(log, add(mload(log), 42)) // the log's new length
                mstore(add(buffer, 0x20), payer) // Request.payer
                // _accounts[payer][token], as MappingSlots.slotOf: keccak(token . keccak(payer . slot)).
                mstore(0x00, payer)
                mstore(0x20, mload(add(buffer, ACCOUNTS)))
                mstore(0x20, keccak256(0x00, 0x40))
                mstore(0x00, mload(add(buffer, 0x60))) // Request.token
                let slot := keccak256(0x00, 0x40)
                account := sload(slot)
                mstore(add(buffer, SLOT), slot) // for the write-back
                mstore(add(buffer, LOADED), account) // what storage holds
                p := add(h, 30) // the first item
                last := add(base, end)
                mstore(add(buffer, END), last) // for a resume
            }
            default {
                // After a stop: the state `resumeAfter` left.
                payer := mload(add(buffer, 0x20))
                nonce := mload(add(buffer, NONCE))
                account := mload(add(buffer, ACCOUNT))
                p := mload(add(buffer, AT))
                last := mload(add(buffer, END))
                end := sub(last, base)
            }
            mstore(add(buffer, START), p) // for `settled` after the loop
            let bits := shr(192, account) // bits 192..255: the window's used nonces
            let limit := p // items at or past this stop the loop
            if and(iszero(iszero(payer)), eq(shr(6, nonce), and(shr(128, account), FULL_WORD))) { // a payer, nonce in the window
                let allowed := sub(64, and(nonce, 63)) // items left in the window's word
                let price := mload(add(buffer, 0xa0)) // Request.price: the section's
                if price { // at price 0 the balance bounds nothing
                    let affordable := div(and(account, BALANCE_MASK), price) // items the balance pays for
                    if lt(affordable, allowed) { allowed := affordable } // the smaller bound
                }
                limit := add(p, mul(allowed, 0x60)) // 96 bytes an item
            }
            let q := add(add(log, 0x20), mload(log)) // where the next tag goes
            for {} lt(p, last) {} { // every item of the group, unless one stops the walk
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
                let signer := mul(mload(0x00), iszero(gt(s, HALF_ORDER))) // 0 when it failed or s is high (malleable)
                mstore(add(buffer, SIGNER), signer) // for `stoppedItem`, should the walk stop here
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
                    if iszero(grantAccepts(buffer, payer, signer)) { break }
                    mstore(q, or(shl(248, 0x80), shl(88, signer)))
                    q := add(q, 21)
                }
                bits := newBits // use the nonce (the limit stops the loop past bit 63)
                nonce := add(nonce, 1) // the group's next nonce; stays 64-bit (checked with the header)
                p := add(p, 0x60) // next item (96 bytes)
            }
            let settled := div(sub(p, mload(add(buffer, START))), 0x60) // items settled
            mstore(log, sub(q, add(log, 0x20))) // the log's new length
            total := mul(settled, mload(add(buffer, 0xa0))) // the section's price; cannot overflow: fewer than 2^16 96-bit prices
            // Cannot underflow: settled <= balance / price. The window's word index is unchanged.
            account := or(sub(and(account, not(shl(192, FULL_WORD))), total), shl(192, bits)) // debited, new bitmap
            // Written back at the group's end, and before a stopped item goes to the rules.
            if iszero(eq(account, mload(add(buffer, LOADED)))) {
                sstore(mload(add(buffer, SLOT)), account)
                mstore(add(buffer, LOADED), account)
            }
            stopped := lt(p, last)
            if stopped {
                mstore(add(buffer, ACCOUNT), account)
                mstore(add(buffer, AT), p)
                mstore(add(buffer, NONCE), nonce)
            }
        }
    }

    /// @notice The item `group` stopped at: its calldata offset (absolute), the account as the walk
    /// left it (and wrote back), its nonce and its ECDSA signer (0 for a high s or a failed recovery;
    /// its digest is `stoppedDigest(buffer)`). The payer is the buffer's.
    function stoppedItem(uint256 buffer) internal pure returns (uint256 at, uint256 account, uint256 nonce, address signer) {
        assembly ("memory-safe") {
            at := mload(add(buffer, AT))
            account := mload(add(buffer, ACCOUNT))
            nonce := mload(add(buffer, NONCE))
            signer := mload(add(buffer, SIGNER))
        }
    }

    /// @notice Where a resumed `group` goes on once the rules decided the stopped item: the account
    /// after it, and the next item and nonce.
    function resumeAfter(uint256 buffer, uint256 account) internal pure {
        assembly ("memory-safe") {
            mstore(add(buffer, ACCOUNT), account)
            mstore(add(buffer, AT), add(mload(add(buffer, AT)), 0x60)) // the next item (96 bytes)
            mstore(add(buffer, NONCE), add(mload(add(buffer, NONCE)), 1)) // and its nonce
        }
    }

    /// @notice The digest of the item `group` stopped at (it leaves it in the buffer).
    function stoppedDigest(uint256 buffer) internal pure returns (bytes32 digest) {
        assembly ("memory-safe") {
            digest := mload(add(buffer, 0x180)) // the ecrecover input's first word
        }
    }
}
