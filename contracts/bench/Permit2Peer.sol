// SPDX-License-Identifier: MIT
// solhint-disable-next-line compiler-version
pragma solidity 0.8.17;

// BENCHMARK PEER, NOT PART OF PREFLIGHT. Pulls Uniswap Permit2 from its published source
// (@uniswap/v4-periphery/lib/permit2) into the build. hardhat.config.ts compiles this file and
// everything it imports with Permit2's own foundry.toml settings: solc 0.8.17, via-IR,
// 1,000,000 optimizer runs, no metadata hash.
// solhint-disable-next-line no-unused-import
import {Permit2} from "@uniswap/v4-periphery/lib/permit2/src/Permit2.sol";
