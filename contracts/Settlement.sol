// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ISettlement} from "./interfaces/ISettlement.sol";
import {IPackedSettlement} from "./interfaces/IPackedSettlement.sol";
import {SignedRequest, SignedVoucher, Reason} from "./interfaces/IPreflightTypes.sol";
import {Escrow} from "./Escrow.sol";
import {InferencePermissions} from "./InferencePermissions.sol";
import {PayerAccount} from "./libraries/PayerAccount.sol";
import {PackedRequests} from "./libraries/PackedRequests.sol";
import {PreflightHash} from "./libraries/PreflightHash.sol";
import {SignatureVerification} from "./libraries/SignatureVerification.sol";

/// @title Settlement
/// @notice Settles signed requests (one, or a batch) and cumulative vouchers to `msg.sender`, the
/// provider every signature names. One code path checks each item; the single entry points revert
/// with its specific error (`strict`), the batch entry points skip the item and report its reason.
abstract contract Settlement is Escrow, InferencePermissions, ISettlement, IPackedSettlement {
    using PayerAccount for uint256;

    mapping(bytes32 channelKey => uint256 claimed) private _claimed;

    // ------------------------------------------------------------------ requests

    /// @inheritdoc ISettlement
    function settle(SignedRequest calldata request) external {
        (, uint256 price) = _settleRequest(request, msg.sender, true);
        _creditEarnings(msg.sender, request.token, price);
        emit RequestSettled(request.payer, msg.sender, request.token, request.nonce, price);
    }

    /// @inheritdoc ISettlement
    function settleBatch(address token, SignedRequest[] calldata requests) external returns (Reason[] memory reasons) {
        uint256 count = requests.length;
        reasons = new Reason[](count);
        if (count == 0) return reasons;
        uint256 total;
        uint256 settled;
        for (uint256 i; i < count; ++i) {
            SignedRequest calldata request = requests[i];
            (Reason reason, uint256 price) = request.token == token
                ? _settleRequest(request, msg.sender, false)
                : (Reason.TokenMismatch, 0);
            if (reason == Reason.Settled) {
                // Cannot overflow: each price fits 96 bits and a batch holds far fewer than 2^160 items.
                unchecked {
                    total += price;
                    ++settled;
                }
            } else {
                reasons[i] = reason;
                emit RequestSkipped(msg.sender, i, request.payer, request.nonce, reason);
            }
        }
        uint256 feeAmount = total == 0 ? 0 : _creditEarnings(msg.sender, token, total);
        emit BatchSettled(msg.sender, token, settled, total, feeAmount);
    }

    /// @inheritdoc IPackedSettlement
    function settlePacked(address token, bytes calldata packed) external returns (Reason[] memory reasons) {
        reasons = new Reason[](_countPacked(packed));
        uint256 buffer = PreflightHash.allocateRequestBuffer();
        bytes32 separator = DOMAIN_SEPARATOR();
        uint256 total;
        uint256 settled;
        uint256 index;
        for (uint256 offset; offset < packed.length;) {
            (uint256 end,,) = PackedRequests.groupEnd(packed, offset);
            (uint256 groupTotal, uint256 groupSettled) = _settleGroup(token, packed, offset, end, index, reasons, buffer, separator);
            // Cannot overflow: sums of 96-bit prices and item counts of one calldata argument.
            unchecked {
                total += groupTotal;
                settled += groupSettled;
                index += (end - offset - PackedRequests.HEADER) / PackedRequests.ITEM;
            }
            offset = end;
        }
        uint256 feeAmount = total == 0 ? 0 : _creditEarnings(msg.sender, token, total);
        emit BatchSettled(msg.sender, token, settled, total, feeAmount);
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

    // ------------------------------------------------------------------ vouchers

    /// @inheritdoc ISettlement
    function claimVoucher(SignedVoucher calldata voucher) external returns (uint256 amount) {
        (, amount) = _claim(voucher, msg.sender, true);
        _creditEarnings(msg.sender, voucher.token, amount);
    }

    /// @inheritdoc ISettlement
    function claimVouchers(address token, SignedVoucher[] calldata vouchers) external returns (Reason[] memory reasons) {
        uint256 count = vouchers.length;
        reasons = new Reason[](count);
        uint256 total;
        for (uint256 i; i < count; ++i) {
            SignedVoucher calldata voucher = vouchers[i];
            (Reason reason, uint256 amount) =
                voucher.token == token ? _claim(voucher, msg.sender, false) : (Reason.TokenMismatch, 0);
            if (reason == Reason.Settled) {
                // Cannot overflow: each amount is a 128-bit balance debit.
                unchecked {
                    total += amount;
                }
            } else {
                reasons[i] = reason;
                emit VoucherSkipped(msg.sender, i, voucher.payer, voucher.channel, reason);
            }
        }
        if (total != 0) _creditEarnings(msg.sender, token, total);
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

    /// @dev Checks that the groups of `packed` tile it exactly; returns how many items they hold.
    function _countPacked(bytes calldata packed) private pure returns (uint256 count) {
        for (uint256 offset; offset < packed.length;) {
            (uint256 end, uint256 n, bool ok) = PackedRequests.groupEnd(packed, offset);
            if (!ok) revert MalformedPackedBatch(offset);
            // Cannot overflow: n < 2^16 per group.
            unchecked {
                count += n;
            }
            offset = end;
        }
    }

    /// @dev Settles the group of `packed` in [offset, end) to the caller; its first item is batch item
    /// `index`; `buffer` holds the request encoding, whose shared fields are written once per group, and
    /// `separator` is the domain separator, read once per batch. The payer's slot is read and written once for the whole group: nothing else reads it
    /// meanwhile, as the only external calls are ERC-1271 staticcalls, which cannot settle or withdraw.
    function _settleGroup(
        address token,
        bytes calldata packed,
        uint256 offset,
        uint256 end,
        uint256 index,
        Reason[] memory reasons,
        uint256 buffer,
        bytes32 separator
    ) private returns (uint256 total, uint256 settled) {
        (address payer, bytes32 model, uint256 price, uint256 deadline, uint256 nonce) =
            PackedRequests.header(packed, offset);
        PreflightHash.setRequestGroup(buffer, payer, msg.sender, token, model, price, deadline);
        bool expired = block.timestamp > deadline;
        uint256 accountSlot = PayerAccount.slotOf(_accounts, payer, token);
        uint256 account = PayerAccount.load(accountSlot);
        uint256 loaded = account;
        // Cannot overflow: `at` is bounded by `end` (checked by _countPacked), nonces are 64-bit plus
        // < 2^16, totals are sums of 96-bit prices.
        unchecked {
            for (uint256 at = offset + PackedRequests.HEADER; at < end; at += PackedRequests.ITEM) {
                Reason reason = Reason.Expired;
                if (!expired) {
                    (bytes32 inputHash, bytes calldata signature) = PackedRequests.item(packed, at);
                    bytes32 digest = _hashTypedData(separator, PreflightHash.hashInBuffer(buffer, nonce, inputHash));
                    (reason, account) = _debitPacked(account, payer, token, model, price, nonce, digest, signature);
                }
                if (reason == Reason.Settled) {
                    total += price;
                    ++settled;
                } else {
                    reasons[index] = reason;
                    emit RequestSkipped(msg.sender, index, payer, nonce, reason);
                }
                ++index;
                ++nonce;
            }
        }
        if (account != loaded) PayerAccount.store(accountSlot, account);
    }

    /// @dev The checks of `_settleRequest` for one packed item, on the group's cached payer account.
    /// @return reason `Settled` or why the item is skipped
    /// @return updated the account with the nonce used and the price debited (unchanged when skipped)
    function _debitPacked(
        uint256 account,
        address payer,
        address token,
        bytes32 model,
        uint256 price,
        uint256 nonce,
        bytes32 digest,
        bytes calldata signature
    ) private returns (Reason reason, uint256 updated) {
        address delegate;
        uint256 grantSpent;
        uint256 grantPeriodEnd;
        (reason, delegate, grantSpent, grantPeriodEnd) =
            _authorize(payer, token, msg.sender, model, price, true, digest, signature, false);
        if (reason != Reason.Settled) return (reason, account);
        uint256 balance = account.balance();
        if (balance < price) return (Reason.InsufficientBalance, account);
        (uint256 word, uint256 mask) = PayerAccount.locate(nonce);
        bool fresh;
        (updated, fresh) = account.useNonces(word, mask, _spilledNonces, payer, token);
        if (!fresh) return (Reason.NonceUsed, account);
        if (delegate != address(0)) _recordSpend(payer, token, delegate, grantSpent, grantPeriodEnd);
        // Cannot underflow: balance >= price was checked above.
        unchecked {
            updated = updated.withBalance(balance - price);
        }
    }

    /// @dev Verifies `request` for `provider` and debits the payer. Writes nothing unless every check
    /// passes; when one fails it reverts (`strict`) or returns the reason.
    function _settleRequest(SignedRequest calldata request, address provider, bool strict)
        private
        returns (Reason reason, uint256 price)
    {
        if (block.timestamp > request.deadline) {
            if (strict) revert RequestExpired(request.deadline);
            return (Reason.Expired, 0);
        }
        address payer = request.payer;
        address token = request.token;
        price = request.price;
        bytes32 digest = _hashTypedData(PreflightHash.hash(request, provider));
        address delegate;
        uint256 grantSpent;
        uint256 grantPeriodEnd;
        (reason, delegate, grantSpent, grantPeriodEnd) =
            _authorize(payer, token, provider, request.model, price, true, digest, request.signature, strict);
        if (reason != Reason.Settled) return (reason, 0);

        uint256 accountSlot = PayerAccount.slotOf(_accounts, payer, token);
        uint256 account = PayerAccount.load(accountSlot);
        uint256 balance = account.balance();
        if (balance < price) {
            if (strict) revert InsufficientBalance(balance, price);
            return (Reason.InsufficientBalance, 0);
        }
        (uint256 word, uint256 mask) = PayerAccount.locate(request.nonce);
        bool fresh;
        (account, fresh) = account.useNonces(word, mask, _spilledNonces, payer, token);
        if (!fresh) {
            if (strict) revert NonceAlreadyUsed(payer, request.nonce);
            return (Reason.NonceUsed, 0);
        }
        // Cannot underflow: balance >= price was checked above.
        unchecked {
            PayerAccount.store(accountSlot, account.withBalance(balance - price));
        }
        if (delegate != address(0)) _recordSpend(payer, token, delegate, grantSpent, grantPeriodEnd);
        return (Reason.Settled, price);
    }

    /// @dev Verifies `voucher` for `provider`, debits the payer and advances the channel. Writes nothing
    /// unless every check passes; when one fails it reverts (`strict`) or returns the reason.
    function _claim(SignedVoucher calldata voucher, address provider, bool strict)
        private
        returns (Reason, uint256 amount)
    {
        address payer = voucher.payer;
        address token = voucher.token;
        bytes32 key = _channelKey(payer, provider, token, voucher.channel);
        uint256 claimed = _claimed[key];
        uint256 cumulative = voucher.cumulativeAmount;
        if (cumulative <= claimed) {
            if (strict) revert NothingToClaim(cumulative, claimed);
            return (Reason.NothingToClaim, 0);
        }
        // Cannot underflow: cumulative > claimed.
        unchecked {
            amount = cumulative - claimed;
        }
        bytes32 digest = _hashTypedData(PreflightHash.hash(voucher, provider));
        (Reason reason, address delegate, uint256 grantSpent, uint256 grantPeriodEnd) =
            _authorize(payer, token, provider, voucher.model, amount, false, digest, voucher.signature, strict);
        if (reason != Reason.Settled) return (reason, 0);

        uint256 accountSlot = PayerAccount.slotOf(_accounts, payer, token);
        uint256 account = PayerAccount.load(accountSlot);
        uint256 balance = account.balance();
        if (balance < amount) {
            if (strict) revert InsufficientBalance(balance, amount);
            return (Reason.InsufficientBalance, 0);
        }
        _claimed[key] = cumulative;
        // Cannot underflow: balance >= amount was checked above.
        unchecked {
            PayerAccount.store(accountSlot, account.withBalance(balance - amount));
        }
        if (delegate != address(0)) _recordSpend(payer, token, delegate, grantSpent, grantPeriodEnd);
        emit VoucherClaimed(payer, provider, token, voucher.channel, cumulative, amount);
        return (Reason.Settled, amount);
    }

    /// @dev Decides who signed `digest` and whether they may spend `amount`: the payer by ECDSA, a
    /// delegate by ECDSA within its grant, or the payer's wallet by ERC-1271 (tried last, only when
    /// ECDSA did not match, and with capped gas).
    function _authorize(
        address payer,
        address token,
        address provider,
        bytes32 model,
        uint256 amount,
        bool isRequest,
        bytes32 digest,
        bytes calldata signature,
        bool strict
    )
        private
        view
        returns (Reason reason, address delegate, uint256 grantSpent, uint256 grantPeriodEnd)
    {
        address signer;
        (signer, reason) = SignatureVerification.recover(digest, signature);
        if (signer == payer && signer != address(0)) return (Reason.Settled, address(0), 0, 0);
        if (signer != address(0) && _isDelegate(payer, token, signer)) {
            (reason, grantSpent, grantPeriodEnd) =
                _checkGrant(payer, token, signer, provider, model, amount, isRequest, strict);
            return (reason, signer, grantSpent, grantPeriodEnd);
        }
        if (payer.code.length != 0 && SignatureVerification.isValidERC1271(payer, digest, signature, ERC1271_GAS_LIMIT))
        {
            return (Reason.Settled, address(0), 0, 0);
        }
        if (strict) _revertSignature(reason, signer, signature.length);
        return (reason == Reason.Settled ? Reason.InvalidSigner : reason, address(0), 0, 0);
    }

    function _channelKey(address payer, address provider, address token, bytes32 channel)
        private
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(payer, provider, token, channel));
    }
}
