// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/// @notice HOSTILE TEST WALLET: an ERC-1271 smart account owned by one key, whose `isValidSignature`
/// can be switched to misbehave: answer a wrong value, revert (with a large reason), burn all the gas
/// it is given, return a huge payload, return a too-short payload, or answer the magic value with
/// dirty low bytes; or (`Expensive`) be honest but costly, spending `EXPENSIVE_GAS` before checking, like
/// a wallet verifying a passkey in Solidity. Acts as a payer through `execute` (deposit, withdraw, grant, ...).
contract HostileWallet1271 {
    enum Mode {
        Honest,
        WrongValue,
        Revert,
        BurnGas,
        HugeData,
        ShortData,
        DirtyMagic,
        AcceptAll,
        Expensive
    }

    bytes4 private constant MAGIC = 0x1626ba7e;
    /// @notice What an `Expensive` check burns before verifying (under Preflight's 200,000 cap).
    uint256 public constant EXPENSIVE_GAS = 180_000;

    address public immutable owner;
    Mode public mode;

    error NotOwner();
    error Refused(bytes padding);
    error CallFailed(bytes reason);

    constructor(address owner_) {
        owner = owner_;
    }

    function setMode(Mode mode_) external {
        mode = mode_;
    }

    /// @notice Makes any call as this wallet; only the owner key may use it.
    function execute(address to, uint256 value, bytes calldata callData) external payable returns (bytes memory) {
        if (msg.sender != owner) revert NotOwner();
        // solhint-disable-next-line avoid-low-level-calls
        (bool ok, bytes memory ret) = to.call{value: value}(callData);
        if (!ok) revert CallFailed(ret);
        return ret;
    }

    function isValidSignature(bytes32 digest, bytes calldata signature) external view returns (bytes4) {
        Mode m = mode;
        if (m == Mode.WrongValue) return 0xffffffff;
        if (m == Mode.Revert) revert Refused(new bytes(2_000));
        if (m == Mode.BurnGas) {
            assembly ("memory-safe") {
                invalid() // consumes all gas forwarded to this frame
            }
        }
        if (m == Mode.HugeData) {
            assembly ("memory-safe") {
                return(0, 100000) // 100 kB of zeros: the caller must not copy it
            }
        }
        if (m == Mode.ShortData) {
            assembly ("memory-safe") {
                mstore(0, 0x1626ba7e00000000000000000000000000000000000000000000000000000000)
                return(0, 4) // the magic value, but not abi-encoded as a full word
            }
        }
        if (m == Mode.DirtyMagic) {
            assembly ("memory-safe") {
                mstore(0, 0x1626ba7e000000000000000000000000000000000000000000000000000000ff)
                return(0, 32) // the magic value with garbage in the padding
            }
        }
        if (m == Mode.AcceptAll) return MAGIC;
        if (m == Mode.Expensive) {
            uint256 stop = gasleft() > EXPENSIVE_GAS ? gasleft() - EXPENSIVE_GAS : 0;
            while (gasleft() > stop) {} // honest, just costly
        }
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, signature);
        return err == ECDSA.RecoverError.NoError && signer == owner ? MAGIC : bytes4(0);
    }

    receive() external payable {}
}
