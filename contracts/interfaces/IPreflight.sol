// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IEscrow} from "./IEscrow.sol";
import {IInferencePermissions} from "./IInferencePermissions.sol";
import {ISettlement} from "./ISettlement.sol";
import {IPackedSettlement} from "./IPackedSettlement.sol";
import {IEIP712Domain} from "./IEIP712Domain.sol";

/// @title IPreflight
/// @notice Payment escrow, inference permissions and signed-request settlement for AI inference.
interface IPreflight is IEscrow, IInferencePermissions, IEIP712Domain, ISettlement, IPackedSettlement {}
