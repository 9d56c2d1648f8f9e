// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title PayerAccount
/// @notice A payer's hot state for one token, packed in one storage slot so that a settlement reads
/// and writes a single slot for balance and replay protection together:
///
///   bits   0..127  balance                                  (uint128)
///   bits 128..191  index of the nonce window's bitmap word    (uint64)
///   bits 192..255  the window's bitmap: bit i = nonce word*64+i used
///
/// Nonces are unordered: nonce n lives in word n >> 6 at bit n & 63. The word under the window is
/// kept in the account slot; words above it "spill" to a separate mapping (an extra slot, so clients
/// allocate inside the window, see the SDK). Words below the window are entirely used: the window
/// only moves up when its word is full, and then loads the next word's spilled bits (over at most
/// `MAX_SLIDE` full words per use). So no nonce is ever lost or revived, and the common case touches
/// one slot.
library PayerAccount {
    uint256 private constant BALANCE_MASK = type(uint128).max;
    uint256 private constant FULL_WORD = type(uint64).max;
    /// @dev Most words the window slides over in one use: bounds what one settlement can cost.
    uint256 private constant MAX_SLIDE = 8;

    /// @notice The balance held in `account`.
    function balance(uint256 account) internal pure returns (uint256) {
        return account & BALANCE_MASK;
    }

    /// @notice `account` with its balance replaced by `newBalance` (which must fit 128 bits).
    function withBalance(uint256 account, uint256 newBalance) internal pure returns (uint256) {
        return (account & ~BALANCE_MASK) | newBalance;
    }

    /// @notice Marks the bits of `mask` in nonce `word` as used.
    /// @param spilled the payer's bitmap words above the window
    /// @return updated the account with its window moved/filled as needed
    /// @return fresh false when a bit of `mask` was already used (then nothing is written)
    function useNonces(uint256 account, uint256 word, uint256 mask, mapping(uint256 => uint256) storage spilled)
        internal
        returns (uint256 updated, bool fresh)
    {
        uint256 windowWord = (account >> 128) & FULL_WORD;
        if (word == windowWord) {
            uint256 bits = account >> 192;
            if (bits & mask != 0) return (account, false);
            return (_slide(account & BALANCE_MASK, windowWord, bits | mask, spilled), true);
        }
        if (word < windowWord) return (account, false);
        uint256 spilledBits = spilled[word];
        if (spilledBits & mask != 0) return (account, false);
        spilled[word] = spilledBits | mask;
        return (account, true);
    }

    /// @notice `useNonces` for (payer, token) that locates the spilled words only when it needs them:
    /// the common case (the nonce is in the window) then hashes no mapping key at all.
    /// @param spilled the spilled words of every (payer, token)
    function useNonces(
        uint256 account,
        uint256 word,
        uint256 mask,
        mapping(address => mapping(address => mapping(uint256 => uint256))) storage spilled,
        address payer,
        address token
    ) internal returns (uint256 updated, bool fresh) {
        if (word == (account >> 128) & FULL_WORD) {
            uint256 bits = account >> 192;
            if (bits & mask != 0) return (account, false);
            if (bits | mask != FULL_WORD) return (_pack(account & BALANCE_MASK, word, bits | mask), true);
        }
        return useNonces(account, word, mask, spilled[payer][token]);
    }

    /// @notice Slides a full window up over at most `MAX_SLIDE` full words. A settlement stops after
    /// `MAX_SLIDE` words so that a provider never pays for words a payer filled far ahead; the payer
    /// catches its own window up with this (through `invalidateNonces`), paying the reads itself.
    function slideFullWindow(uint256 account, mapping(uint256 => uint256) storage spilled)
        internal
        view
        returns (uint256)
    {
        return _slide(account & BALANCE_MASK, (account >> 128) & FULL_WORD, account >> 192, spilled);
    }

    /// @notice The used-nonce bitmap of `word`.
    function bitmap(uint256 account, uint256 word, mapping(uint256 => uint256) storage spilled)
        internal
        view
        returns (uint64)
    {
        uint256 windowWord = (account >> 128) & FULL_WORD;
        if (word < windowWord) return type(uint64).max;
        if (word == windowWord) return uint64(account >> 192);
        return uint64(spilled[word]);
    }

    /// @notice The bit of `nonce` within its word, and the word.
    function locate(uint256 nonce) internal pure returns (uint256 word, uint256 mask) {
        return (nonce >> 6, 1 << (nonce & 63));
    }

    /// @dev While the window's word is full (everything at or below it is used), slide to the next word
    /// and take over the bits already spent there, over at most MAX_SLIDE words: a payer who filled words
    /// far ahead must not make the provider settling its request pay a cold read per word (it could push
    /// a whole batch past the transaction gas cap). A window left on a full word stays correct: its
    /// nonces are used, and the ones above it live in `spilled`.
    function _slide(uint256 balance_, uint256 windowWord, uint256 bits, mapping(uint256 => uint256) storage spilled)
        private
        view
        returns (uint256)
    {
        for (uint256 i; bits == FULL_WORD && i < MAX_SLIDE; ++i) {
            ++windowWord;
            bits = spilled[windowWord];
        }
        return _pack(balance_, windowWord, bits);
    }

    function _pack(uint256 balance_, uint256 windowWord, uint256 bits) private pure returns (uint256) {
        return balance_ | (windowWord << 128) | (bits << 192);
    }
}
