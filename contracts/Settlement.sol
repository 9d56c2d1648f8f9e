// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ISettlement} from "./interfaces/ISettlement.sol";
import {SignedRequest, SignedVoucher, Reason} from "./interfaces/IPreflightTypes.sol";
import {Escrow} from "./Escrow.sol";
import {InferencePermissions} from "./InferencePermissions.sol";
import {PayerAccount} from "./libraries/PayerAccount.sol";
import {MappingSlots} from "./libraries/MappingSlots.sol";
import {PackedRequests} from "./libraries/PackedRequests.sol";
import {PayerSignedRun} from "./libraries/PayerSignedRun.sol";
import {PreflightHash} from "./libraries/PreflightHash.sol";
import {SettlementLog} from "./libraries/SettlementLog.sol";
import {SignatureVerification} from "./libraries/SignatureVerification.sol";

/// @title Settlement
/// @notice Settles signed requests (one, a batch, or a packed batch) and channel vouchers to
/// `msg.sender`, the provider every signature names. One function checks a request (`_debit`), one
/// authorizes a signer (`_authorize`); the single entry points revert with the specific error
/// (`strict`), the batch entry points skip the item and log its reason.
abstract contract Settlement is Escrow, InferencePermissions, ISettlement {
    using PayerAccount for uint256;

    uint256 private constant MAX_NONCE = type(uint64).max;
    /// @dev Largest log record of a readable request: group header 42 + tag 1 + delegate 20.
    uint256 private constant REQUEST_RECORD = 63;
    /// @dev Largest log record of a channel claim: 20 + 32 + 16 + 16 + 1 + 20.
    uint256 private constant VOUCHER_RECORD = 105;

    mapping(bytes32 channelKey => uint256 claimed) private _claimed;

    // ------------------------------------------------------------------ requests

    /// @inheritdoc ISettlement
    function settle(SignedRequest calldata request) external {
        uint256 log = SettlementLog.allocate(REQUEST_RECORD);
        address token = request.token;
        (, uint256 price) = _settleRequest(request, token, log, true);
        _creditEarnings(msg.sender, token, price);
        SettlementLog.emitLog(log, RequestsSettled.selector, msg.sender, token);
    }

    /// @inheritdoc ISettlement
    function settleBatch(address token, SignedRequest[] calldata requests) external returns (Reason[] memory reasons) {
        uint256 count = requests.length;
        reasons = new Reason[](count);
        uint256 log = SettlementLog.allocate(count * REQUEST_RECORD);
        uint256 total;
        for (uint256 i; i < count; ++i) {
            uint256 price;
            (reasons[i], price) = _settleRequest(requests[i], token, log, false);
            // Cannot overflow: a sum of 96-bit prices over fewer than 2^64 items.
            unchecked {
                total += price;
            }
        }
        if (total != 0) _creditEarnings(msg.sender, token, total);
        SettlementLog.emitLog(log, RequestsSettled.selector, msg.sender, token);
    }

    /// @inheritdoc ISettlement
    function settlePacked(address token, bytes calldata packed) external {
        uint256 length = packed.length;
        if (length == 0) revert MalformedPackedBatch(0);
        // Every byte of log data is paid for by at least one byte of `packed` (an item of 96 bytes
        // logs at most 21, a group header of 30 bytes logs 42 with its first item's 96).
        uint256 log = SettlementLog.allocate(length);
        uint256 buffer = PreflightHash.allocateRequestBuffer(msg.sender, token, DOMAIN_SEPARATOR());
        PayerSignedRun.setSlots(buffer, _grantStatesSlot(), _accountsSlot());
        uint256 total;
        uint256 offset;
        while (offset < length) {
            if (offset + PackedRequests.SECTION_HEADER > length) revert MalformedPackedBatch(offset);
            (bytes32 model, uint256 price, uint256 deadline, uint256 groups) = PackedRequests.section(packed, offset);
            if (groups == 0) revert MalformedPackedBatch(offset);
            PreflightHash.setRequestSection(buffer, model, price, deadline);
            bool expired = block.timestamp > deadline;
            offset += PackedRequests.SECTION_HEADER;
            uint256 sectionTotal;
            (sectionTotal, offset) = _settleSection(packed, offset, groups, expired, buffer, log);
            // Cannot overflow: a sum of 96-bit prices over fewer than 2^64 items.
            unchecked {
                total += sectionTotal;
            }
        }
        if (total != 0) _creditEarnings(msg.sender, token, total);
        SettlementLog.emitLog(log, RequestsSettled.selector, msg.sender, token);
    }

    /// @inheritdoc ISettlement
    function invalidateNonces(address token, uint256 word, uint64 mask) external {
        mapping(uint256 => uint256) storage spilled = _spilledNonces[msg.sender][token];
        uint256 account = _accounts[msg.sender][token];
        // Only the bits not used yet, so that invalidating an already-used nonce is not an error.
        uint256 unused = uint256(mask) & ~uint256(account.bitmap(word, spilled));
        uint256 updated = account;
        if (unused != 0) (updated,) = updated.useNonces(word, unused, spilled);
        // The payer's own call also catches a window that settlements left on a full word back up.
        updated = updated.slideFullWindow(spilled);
        if (updated != account) _accounts[msg.sender][token] = updated;
        emit NoncesInvalidated(msg.sender, token, word, mask);
    }

    // ------------------------------------------------------------------ channel vouchers

    /// @inheritdoc ISettlement
    function claimVoucher(SignedVoucher calldata voucher) external returns (uint256 amount) {
        uint256 log = SettlementLog.allocate(VOUCHER_RECORD);
        address token = voucher.token;
        (, amount) = _claimChannel(voucher, token, log, true);
        _creditEarnings(msg.sender, token, amount);
        SettlementLog.emitLog(log, VouchersClaimed.selector, msg.sender, token);
    }

    /// @inheritdoc ISettlement
    function claimVouchers(address token, SignedVoucher[] calldata vouchers) external returns (Reason[] memory reasons) {
        uint256 count = vouchers.length;
        reasons = new Reason[](count);
        uint256 log = SettlementLog.allocate(count * VOUCHER_RECORD);
        uint256 total;
        for (uint256 i; i < count; ++i) {
            uint256 amount;
            (reasons[i], amount) = _claimChannel(vouchers[i], token, log, false);
            // Cannot overflow: each amount is a 128-bit balance debit.
            unchecked {
                total += amount;
            }
        }
        if (total != 0) _creditEarnings(msg.sender, token, total);
        SettlementLog.emitLog(log, VouchersClaimed.selector, msg.sender, token);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc ISettlement
    function nonceBitmap(address payer, address token, uint256 word) external view returns (uint64) {
        return _accounts[payer][token].bitmap(word, _spilledNonces[payer][token]);
    }

    /// @inheritdoc ISettlement
    function claimedOf(address payer, address provider, address token, bytes32 channel) external view returns (uint256) {
        return _claimed[_channelKey(payer, provider, token, channel)];
    }

    // ------------------------------------------------------------------ internal

    /// @dev Settles one readable request in `token` to the caller and logs it as a group of one.
    /// @return reason `Settled` or why it was skipped (reverts instead when `strict`)
    /// @return price what was debited (0 when skipped)
    function _settleRequest(SignedRequest calldata request, address token, uint256 log, bool strict)
        private
        returns (Reason reason, uint256 price)
    {
        address payer = request.payer;
        uint256 nonce = request.nonce;
        price = request.price;
        // Nonces are 64-bit in logs; one out of range is logged with the largest 64-bit value.
        SettlementLog.appendGroup(log, payer, nonce > MAX_NONCE ? MAX_NONCE : nonce, price, 1);
        address delegate;
        if (request.token != token) {
            reason = Reason.TokenMismatch; // only a batch names its token apart from its items
        } else if (block.timestamp > request.deadline) {
            if (strict) revert RequestExpired(request.deadline);
            reason = Reason.Expired;
        } else if (nonce > MAX_NONCE) {
            if (strict) revert NonceOutOfRange(nonce);
            reason = Reason.NonceOutOfRange;
        } else {
            bytes32 digest = _hashTypedData(PreflightHash.hash(request, msg.sender));
            uint256 slot = MappingSlots.slotOf(_accounts, payer, token);
            uint256 account;
            (reason, account, delegate) =
                _debit(MappingSlots.load(slot), payer, token, request.model, price, nonce, digest, request.signature, strict);
            if (reason == Reason.Settled) MappingSlots.store(slot, account);
        }
        SettlementLog.appendTag(log, uint256(reason), delegate);
        if (reason != Reason.Settled) price = 0;
    }

    /// @dev Settles the `groups` packed groups from `offset` on (their section's fields in `buffer`)
    /// and logs them. The common cases (items signed by the payer, or by a delegate within a plain
    /// grant, balance and nonce fine) settle in `PayerSignedRun.group`, one assembly block per group from
    /// its header to its account's write-back; an item it does not accept goes to the
    /// shared rules, with its signature recovered once, and the walk resumes after it. Each payer's
    /// slot is read once for its group and written at the group's end, and before any item the shared
    /// rules decide: those may ask the payer's wallet (an ERC-1271 staticcall, which cannot settle or
    /// withdraw but may read the account), which must see the items settled before it.
    /// @return total the prices settled
    /// @return end where the next section starts
    function _settleSection(
        bytes calldata packed,
        uint256 offset,
        uint256 groups,
        bool expired,
        uint256 buffer,
        uint256 log
    ) private returns (uint256 total, uint256 end) {
        if (expired) {
            end = offset;
            for (uint256 g; g < groups; ++g) {
                end = _expireGroup(packed, end, PreflightHash.requestPrice(buffer), log);
            }
            return (0, end);
        }
        end = offset;
        for (; groups != 0; --groups) {
            // One call site, so that the walk's assembly is compiled once.
            for (bool resume;; resume = true) {
                uint256 settled;
                bool stopped;
                (settled, end, stopped) =
                    PayerSignedRun.group(PackedRequests.itemOffset(packed, 0), packed.length, end, buffer, log, resume);
                // Cannot overflow: a sum of 96-bit prices over fewer than 2^64 items.
                unchecked {
                    total += settled;
                }
                if (!stopped) break;
                settled = _settleStopped(packed, buffer, log);
                unchecked {
                    total += settled;
                }
            }
        }
    }

    /// @dev Logs every item of the packed group at `offset` of an expired section as `Expired`.
    /// @return end where the next group starts
    function _expireGroup(bytes calldata packed, uint256 offset, uint256 price, uint256 log) private pure returns (uint256 end) {
        (address payer, uint256 nonce, uint256 count, uint256 groupEnd) = PackedRequests.group(packed, offset);
        SettlementLog.appendGroup(log, payer, nonce, price, count);
        for (uint256 i; i < count; ++i) {
            SettlementLog.appendTag(log, uint256(Reason.Expired), address(0));
        }
        return groupEnd;
    }

    /// @dev Settles the packed item `PayerSignedRun.group` stopped at (its offset, account, nonce and
    /// ECDSA signer from `stoppedItem`; token, payer, model, price and digest in `buffer`) by the shared
    /// rules, logs its tag, and leaves the account after it for the walk to resume with.
    /// Between the stop and the resume nothing may write the payer's account slot (the walk writes
    /// back its own copy, compared with what it loaded) or the buffer's words, and every path ends in
    /// `resumeAfter` (else the resumed walk stops at the same item again).
    /// @return settledPrice the section's price when settled, else 0
    function _settleStopped(bytes calldata packed, uint256 buffer, uint256 log) private returns (uint256 settledPrice) {
        (uint256 at, uint256 account, uint256 nonce, address signer) = PayerSignedRun.stoppedItem(buffer);
        address token = PreflightHash.requestToken(buffer);
        address payer = PreflightHash.requestPayer(buffer);
        bytes32 model = PreflightHash.requestModel(buffer);
        uint256 price = PreflightHash.requestPrice(buffer);
        uint256 updated;
        Reason reason;
        address delegate;
        bytes32 digest = PayerSignedRun.stoppedDigest(buffer);
        if (signer == payer && signer != address(0)) {
            // Signed by the payer: only balance and nonce are left to check.
            (reason, updated) = _debitAuthorized(account, payer, token, price, nonce, false);
        } else {
            (, bytes calldata signature) = PackedRequests.item(packed, at - PackedRequests.itemOffset(packed, 0));
            // A zero signer (high s or failed recovery) is recovered again to say why.
            Reason recovered;
            if (signer == address(0)) (, recovered) = SignatureVerification.recover(digest, signature);
            (reason, updated, delegate) =
                _debitRecovered(account, payer, token, model, price, nonce, digest, signature, signer, recovered, false);
        }
        if (reason == Reason.Settled) settledPrice = price;
        SettlementLog.appendTag(log, uint256(reason), delegate);
        PayerSignedRun.resumeAfter(buffer, updated);
    }

    /// @dev The checks of a request after its deadline, in order: signer (payer, delegate within its
    /// grant, or ERC-1271), balance, nonce. Works on the payer's account word `account`; writes
    /// nothing but the delegate's grant and a spilled nonce word, and only when every check passed.
    /// @return reason `Settled` or why not (reverts instead when `strict`)
    /// @return updated the account with the nonce used and the price debited (unchanged when not)
    /// @return delegate the delegate that signed, or zero
    function _debit(
        uint256 account,
        address payer,
        address token,
        bytes32 model,
        uint256 price,
        uint256 nonce,
        bytes32 digest,
        bytes calldata signature,
        bool strict
    ) private returns (Reason reason, uint256 updated, address delegate) {
        (address signer, Reason recovered) = SignatureVerification.recover(digest, signature);
        return _debitRecovered(account, payer, token, model, price, nonce, digest, signature, signer, recovered, strict);
    }

    /// @dev `_debit` once the ECDSA signer of `digest` is known (`recovered` says why it is zero).
    function _debitRecovered(
        uint256 account,
        address payer,
        address token,
        bytes32 model,
        uint256 price,
        uint256 nonce,
        bytes32 digest,
        bytes calldata signature,
        address signer,
        Reason recovered,
        bool strict
    ) private returns (Reason reason, uint256 updated, address delegate) {
        bytes32 grantKey;
        uint256 grantState;
        (reason, delegate, grantKey, grantState) =
            _authorizeRecovered(payer, token, model, price, true, digest, signature, signer, recovered, strict);
        if (reason != Reason.Settled) return (reason, account, address(0));
        (reason, updated) = _debitAuthorized(account, payer, token, price, nonce, strict);
        if (reason != Reason.Settled) return (reason, account, address(0));
        if (delegate != address(0)) _recordSpend(grantKey, grantState);
    }

    /// @dev The checks of an authorized request, in order: balance, nonce.
    /// @return reason `Settled` or why not (reverts instead when `strict`)
    /// @return updated the account with the nonce used and the price debited (unchanged when not)
    function _debitAuthorized(uint256 account, address payer, address token, uint256 price, uint256 nonce, bool strict)
        private
        returns (Reason, uint256 updated)
    {
        uint256 balance = account.balance();
        if (balance < price) {
            if (strict) revert InsufficientBalance(balance, price);
            return (Reason.InsufficientBalance, account);
        }
        (uint256 word, uint256 mask) = PayerAccount.locate(nonce);
        bool fresh;
        (updated, fresh) = account.useNonces(word, mask, _spilledNonces, payer, token);
        if (!fresh) {
            if (strict) revert NonceAlreadyUsed(payer, nonce);
            return (Reason.NonceUsed, account);
        }
        // Cannot underflow: balance >= price was checked above.
        unchecked {
            updated = updated.withBalance(balance - price);
        }
        return (Reason.Settled, updated);
    }

    /// @dev Claims channel voucher `voucher` in `token` to the caller, debiting the payer's balance,
    /// and logs it. Writes nothing unless every check passes.
    function _claimChannel(SignedVoucher calldata voucher, address token, uint256 log, bool strict)
        private
        returns (Reason reason, uint256 amount)
    {
        address payer = voucher.payer;
        uint256 cumulative = voucher.cumulativeAmount;
        address delegate;
        if (voucher.token != token) {
            reason = Reason.TokenMismatch;
        } else {
            // The channel's slot is hashed once, for the read and the write.
            uint256 channelSlot = MappingSlots.slotOf(_claimed, _channelKey(payer, msg.sender, token, voucher.channel));
            uint256 claimed = MappingSlots.load(channelSlot);
            if (cumulative <= claimed) {
                if (strict) revert NothingToClaim(cumulative, claimed);
                reason = Reason.NothingToClaim;
            } else {
                // Cannot underflow: cumulative > claimed.
                unchecked {
                    amount = cumulative - claimed;
                }
                bytes32 digest = _hashTypedData(PreflightHash.hash(voucher, msg.sender));
                bytes32 grantKey;
                uint256 grantState;
                (reason, delegate, grantKey, grantState) =
                    _authorize(payer, token, voucher.model, amount, false, digest, voucher.signature, strict);
                uint256 slot = MappingSlots.slotOf(_accounts, payer, token);
                uint256 account = MappingSlots.load(slot);
                if (reason == Reason.Settled && account.balance() < amount) {
                    if (strict) revert InsufficientBalance(account.balance(), amount);
                    reason = Reason.InsufficientBalance;
                }
                if (reason == Reason.Settled) {
                    MappingSlots.store(channelSlot, cumulative);
                    // Cannot underflow: balance >= amount was checked above.
                    unchecked {
                        MappingSlots.store(slot, account.withBalance(account.balance() - amount));
                    }
                    if (delegate != address(0)) _recordSpend(grantKey, grantState);
                }
            }
        }
        if (reason != Reason.Settled) (amount, delegate) = (0, address(0));
        SettlementLog.appendClaim(log, payer, true, voucher.channel, cumulative, amount, uint256(reason), delegate);
    }

    /// @dev Whether `digest` was signed for `payer`'s `token` by the payer, by a delegate within its
    /// grant (for `amount` with the caller on `model`), or accepted by the payer's wallet through
    /// ERC-1271 (tried last, only when ECDSA did not match, and with capped gas).
    /// @return reason `Settled` when authorized
    /// @return delegate the delegate that signed (zero for the payer or its wallet)
    /// @return grantKey the delegate's grant slot, to pass with `grantState` to `_recordSpend`
    /// @return grantState the grant's hot slot with `amount` spent
    function _authorize(
        address payer,
        address token,
        bytes32 model,
        uint256 amount,
        bool isRequest,
        bytes32 digest,
        bytes calldata signature,
        bool strict
    ) internal returns (Reason reason, address delegate, bytes32 grantKey, uint256 grantState) {
        (address signer, Reason recovered) = SignatureVerification.recover(digest, signature);
        return _authorizeRecovered(payer, token, model, amount, isRequest, digest, signature, signer, recovered, strict);
    }

    /// @dev `_authorize` once the ECDSA signer of `digest` is known (`recovered` says why it is zero).
    function _authorizeRecovered(
        address payer,
        address token,
        bytes32 model,
        uint256 amount,
        bool isRequest,
        bytes32 digest,
        bytes calldata signature,
        address signer,
        Reason recovered,
        bool strict
    ) internal returns (Reason reason, address delegate, bytes32 grantKey, uint256 grantState) {
        reason = recovered;
        if (signer == payer && signer != address(0)) return (Reason.Settled, address(0), 0, 0);
        if (signer != address(0)) {
            bool known;
            (known, reason, grantKey, grantState) =
                _checkGrant(payer, token, signer, msg.sender, model, amount, isRequest, strict);
            if (known) return (reason, reason == Reason.Settled ? signer : address(0), grantKey, grantState);
        }
        if (payer.code.length != 0 && _walletAccepts(payer, digest, signature)) return (Reason.Settled, address(0), 0, 0);
        if (strict) _revertSignature(reason, signer, signature.length);
        return (reason == Reason.Settled ? Reason.InvalidSigner : reason, address(0), 0, 0);
    }

    /// @dev Whether contract payer `payer` accepts `signature` for `digest` through ERC-1271. A wallet
    /// that refused (or ran out of its allowance) is not asked again in the same transaction: its later
    /// items are refused without a call, so a hostile wallet that burns its whole allowance on each of
    /// many items costs a batch one capped check, not one per item, and cannot push it past the
    /// transaction gas cap. The refusal is remembered in transient storage, at the payer's address with
    /// the top bit set (apart from the slots Solidity numbers from 0); a strict call's revert undoes it.
    /// One function for every caller, so the check is compiled once.
    function _walletAccepts(address payer, bytes32 digest, bytes calldata signature) private returns (bool accepted) {
        uint256 slot = uint256(uint160(payer)) | (1 << 255);
        uint256 refused;
        assembly ("memory-safe") {
            refused := tload(slot)
        }
        if (refused != 0) return false;
        accepted = SignatureVerification.isValidERC1271(payer, digest, signature, ERC1271_GAS_LIMIT);
        if (!accepted) {
            assembly ("memory-safe") {
                tstore(slot, 1)
            }
        }
    }

    /// @dev The storage slot of the `_accounts` mapping, for `PayerSignedRun.group`.
    function _accountsSlot() private pure returns (uint256 slot) {
        assembly ("memory-safe") {
            slot := _accounts.slot
        }
    }

    function _channelKey(address payer, address provider, address token, bytes32 channel)
        private
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(payer, provider, token, channel));
    }
}
