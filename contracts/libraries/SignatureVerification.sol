// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Reason} from "../interfaces/IPreflightTypes.sol";

/// @title SignatureVerification
/// @notice ECDSA recovery for 65-byte (r,s,v) and 64-byte EIP-2098 (r,vs) signatures in scratch
/// space, and a gas-capped ERC-1271 check for contract accounts.
/// @dev There is deliberately no code-size check in front of `ecrecover`: an EIP-7702-delegated EOA
/// has code and must still sign with its key. Callers try ERC-1271 only when recovery does not match.
library SignatureVerification {
    /// @dev secp256k1 order / 2. Signatures with a larger s are malleable twins of a low-s one.
    uint256 private constant HALF_ORDER = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;
    /// @dev `bytes4(keccak256("isValidSignature(bytes32,bytes)"))`
    bytes4 private constant ERC1271_MAGIC = 0x1626ba7e;
    /// @dev `ISignatureErrors.SignatureCheckOutOfGas.selector`
    bytes4 private constant OUT_OF_GAS_SELECTOR = 0xbf236373;
    /// @dev What a STATICCALL costs before it forwards gas, with margin: a cold account access (2,600)
    /// and the opcodes between the gas check and the call.
    uint256 private constant CALL_OVERHEAD = 2_700;

    /// @notice Recovers the ECDSA signer of `digest`.
    /// @return signer the recovered address, or zero when the signature is not a valid ECDSA one
    /// @return reason `Settled` when well formed, else `SignatureLength`, `SignatureMalleable` or `InvalidSigner`
    function recover(bytes32 digest, bytes calldata signature) internal view returns (address signer, Reason reason) {
        bytes32 r;
        bytes32 s;
        uint256 v;
        bool wellSized = true;
        assembly ("memory-safe") {
            switch signature.length
            case 65 {
                r := calldataload(signature.offset)
                s := calldataload(add(signature.offset, 0x20))
                v := byte(0, calldataload(add(signature.offset, 0x40)))
            }
            case 64 {
                // EIP-2098: the top bit of vs is v - 27, the rest is s.
                r := calldataload(signature.offset)
                let vs := calldataload(add(signature.offset, 0x20))
                s := shr(1, shl(1, vs))
                v := add(shr(255, vs), 27)
            }
            default { wellSized := 0 }
        }
        if (!wellSized) return (address(0), Reason.SignatureLength);
        return recover(digest, v, r, s);
    }

    /// @notice Recovers the signer of (v, r, s) over `digest`, refusing a high s.
    function recover(bytes32 digest, uint256 v, bytes32 r, bytes32 s) internal view returns (address signer, Reason reason) {
        if (uint256(s) > HALF_ORDER) return (address(0), Reason.SignatureMalleable);
        assembly ("memory-safe") {
            let m := mload(0x40) // ecrecover's input overwrites the free memory pointer: keep it
            mstore(0x00, digest)
            mstore(0x20, v)
            mstore(0x40, r)
            mstore(0x60, s)
            // On failure (e.g. v not 27/28) the precompile returns nothing and 0x00 still holds digest.
            pop(staticcall(gas(), 0x01, 0x00, 0x80, 0x00, 0x20))
            signer := mul(mload(0x00), eq(returndatasize(), 0x20))
            mstore(0x40, m) // restore the free memory pointer
            mstore(0x60, 0) // restore the zero slot
        }
        if (signer == address(0)) reason = Reason.InvalidSigner;
    }

    /// @notice Whether contract `account` accepts `signature` for `digest` (ERC-1271), spending at most
    /// `gasLimit` in the call and copying at most 32 bytes of its answer (a hostile wallet can neither
    /// burn the caller's gas nor flood it with return data).
    /// @dev Reverts `SignatureCheckOutOfGas(account)` BEFORE the call when the caller cannot give the
    /// wallet its whole `gasLimit` (EIP-150 forwards at most 63/64 of what is left): so every refusal
    /// comes from a wallet that had its full allowance, however deep the wallet nests its own check
    /// (a Safe's fallback handler, a validator module), and a valid item is never reported invalid for
    /// want of gas. The provider retries with more gas.
    function isValidERC1271(address account, bytes32 digest, bytes calldata signature, uint256 gasLimit)
        internal
        view
        returns (bool valid)
    {
        bytes4 selector = ERC1271_MAGIC;
        uint256 needed;
        // Cannot overflow: gas limits are far below 2^250.
        unchecked {
            needed = gasLimit * 64 / 63 + CALL_OVERHEAD;
        }
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, selector) // isValidSignature(bytes32,bytes)
            mstore(add(m, 0x04), digest)
            mstore(add(m, 0x24), 0x40) // offset of the bytes argument
            mstore(add(m, 0x44), signature.length)
            calldatacopy(add(m, 0x64), signature.offset, signature.length)
            mstore(add(add(m, 0x64), signature.length), 0) // zero the padding after the bytes
            let size := add(0x64, and(add(signature.length, 0x1f), not(0x1f))) // padded to whole words
            // Memory is expanded above, so what the call costs before forwarding is the account access.
            if lt(gas(), needed) {
                mstore(0x00, OUT_OF_GAS_SELECTOR)
                mstore(0x04, account)
                revert(0x00, 0x24) // SignatureCheckOutOfGas(account)
            }
            let ok := staticcall(gasLimit, account, m, size, 0x00, 0x20)
            // Valid only if the call succeeded, returned a full word, and that word is the magic value.
            valid := and(and(ok, gt(returndatasize(), 0x1f)), eq(mload(0x00), selector))
        }
    }
}
