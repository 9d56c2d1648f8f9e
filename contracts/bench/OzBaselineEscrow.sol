// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

/// @title OzBaselineEscrow
/// @notice BENCHMARK BASELINE, NOT PART OF PREFLIGHT. The same paid-request flow written the usual
/// OpenZeppelin way, so the gas suite can show what Preflight's design saves: `EIP712` +
/// `ECDSA.recover` over a memory-encoded struct, a `mapping(nonce => bool)` of used nonces,
/// `Ownable`, storage-based `ReentrancyGuard`, a balance mapping, and one token transfer from the
/// escrow to the provider per settled request. It signs the same EIP-712 `Request` type under a
/// domain named "Preflight" version "1", so the Preflight SDK signs for it unchanged.
/// Batches revert on the first bad item (the usual way); Preflight skips bad items instead.
contract OzBaselineEscrow is EIP712, Ownable, ReentrancyGuard {
    using SafeERC20 for IERC20;

    /// @notice A signed request (same fields as Preflight's `SignedRequest`).
    struct Request {
        address payer;
        address token;
        bytes32 model;
        uint96 price;
        uint256 nonce;
        uint256 deadline;
        bytes32 inputHash;
        bytes signature;
    }

    // The usual OpenZeppelin style: the typehash as keccak256 of its type string (folded at compile time).
    // solhint-disable-next-line gas-small-strings
    bytes32 public constant REQUEST_TYPEHASH = keccak256(
        "Request(address payer,address provider,address token,bytes32 model,uint96 price,uint256 nonce,uint256 deadline,bytes32 inputHash)"
    );

    mapping(address payer => mapping(address token => uint256)) public balances;
    mapping(address payer => mapping(uint256 nonce => bool)) public usedNonces;

    error ZeroAmount();
    error RequestExpired(uint256 deadline);
    error NonceAlreadyUsed(address payer, uint256 nonce);
    error InvalidSigner(address recovered);
    error InsufficientBalance(uint256 balance, uint256 needed);

    event Deposited(address indexed payer, address indexed token, uint256 amount);
    event Withdrawn(address indexed payer, address indexed token, uint256 amount);
    event RequestSettled(address indexed payer, address indexed provider, address token, uint256 nonce, uint256 price);

    constructor(address initialOwner) EIP712("Preflight", "1") Ownable(initialOwner) {}

    /// @notice Pulls `amount` of `token` from the caller into `payer`'s balance.
    function deposit(address payer, address token, uint256 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        IERC20(token).safeTransferFrom(msg.sender, address(this), amount);
        balances[payer][token] += amount;
        emit Deposited(payer, token, amount);
    }

    /// @notice Sends `amount` of the caller's balance of `token` back to it.
    function withdraw(address token, uint256 amount) external nonReentrant {
        uint256 balance = balances[msg.sender][token];
        if (balance < amount) revert InsufficientBalance(balance, amount);
        balances[msg.sender][token] = balance - amount;
        emit Withdrawn(msg.sender, token, amount);
        IERC20(token).safeTransfer(msg.sender, amount);
    }

    /// @notice Settles one request to the caller (the provider).
    function settle(Request calldata request) external nonReentrant {
        _settle(request);
    }

    /// @notice Settles every request to the caller; reverts if any is invalid.
    function settleBatch(Request[] calldata requests) external nonReentrant {
        // The usual style on purpose (via-IR compiles i++ and ++i alike).
        // solhint-disable-next-line gas-increment-by-one
        for (uint256 i = 0; i < requests.length; i++) {
            _settle(requests[i]);
        }
    }

    function _settle(Request calldata request) private {
        if (block.timestamp > request.deadline) revert RequestExpired(request.deadline);
        if (usedNonces[request.payer][request.nonce]) revert NonceAlreadyUsed(request.payer, request.nonce);
        bytes32 structHash = keccak256(
            abi.encode(
                REQUEST_TYPEHASH,
                request.payer,
                msg.sender,
                request.token,
                request.model,
                request.price,
                request.nonce,
                request.deadline,
                request.inputHash
            )
        );
        address signer = ECDSA.recover(_hashTypedDataV4(structHash), request.signature);
        if (signer != request.payer) revert InvalidSigner(signer);
        usedNonces[request.payer][request.nonce] = true;
        uint256 balance = balances[request.payer][request.token];
        if (balance < request.price) revert InsufficientBalance(balance, request.price);
        balances[request.payer][request.token] = balance - request.price;
        IERC20(request.token).safeTransfer(msg.sender, request.price);
        emit RequestSettled(request.payer, msg.sender, request.token, request.nonce, request.price);
    }
}
