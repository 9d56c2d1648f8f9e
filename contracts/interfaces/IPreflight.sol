// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IEscrow} from "./IEscrow.sol";
import {IInferencePermissions} from "./IInferencePermissions.sol";
import {ISettlement} from "./ISettlement.sol";
import {ILanes} from "./ILanes.sol";
import {IEIP712Domain} from "./IEIP712Domain.sol";

/// @title IPreflight
/// @notice Payment escrow, lanes, inference permissions and signed-request settlement for AI inference.
/// No owner: every parameter (notice period, fee, fee recipient) is fixed at deployment.
interface IPreflight is IEscrow, IInferencePermissions, IEIP712Domain, ISettlement, ILanes {}
