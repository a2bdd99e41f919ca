// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IParameters, ParameterKeys} from "./interfaces/IParameters.sol";

/// @title Parameters
/// @notice Feature flags and numeric parameters set by governance, read by contracts and
/// services.
contract Parameters is AccessControl, IParameters {
    /* KEYS */

    /// @notice Flag: the COMMANDS privilege is unlocked.
    bytes32 public constant FEATURE_COMMANDS_SCOPE = ParameterKeys.FEATURE_COMMANDS_SCOPE;
    /// @notice Flag: grid programmes are enabled.
    bytes32 public constant FEATURE_GRID_PROGRAMMES = ParameterKeys.FEATURE_GRID_PROGRAMMES;
    /// @notice Flag: the new data product category is open.
    bytes32 public constant FEATURE_NEW_PRODUCT_CATEGORY =
        ParameterKeys.FEATURE_NEW_PRODUCT_CATEGORY;
    /// @notice Number: protocol fee in basis points.
    bytes32 public constant PROTOCOL_FEE_BPS = ParameterKeys.PROTOCOL_FEE_BPS;
    /// @notice Number: rewards challenge delay in seconds.
    bytes32 public constant REWARDS_CHALLENGE_DELAY = ParameterKeys.REWARDS_CHALLENGE_DELAY;
    /// @notice Number: the oracle threshold services expect.
    bytes32 public constant ORACLE_THRESHOLD = ParameterKeys.ORACLE_THRESHOLD;
    /// @notice Key of the developer licence fee, in DIMO wei.
    bytes32 public constant DEVELOPER_LICENCE_FEE = ParameterKeys.DEVELOPER_LICENCE_FEE;

    /* STORAGE */

    mapping(bytes32 key => bool) private _flags;
    mapping(bytes32 key => uint256) private _uints;

    /// @param admin Holder of the admin role (the timelock; on a local chain also the
    /// deployer).
    constructor(address admin) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @inheritdoc IParameters
    function setFlag(bytes32 key, bool value) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _flags[key] = value;
        emit FlagSet(key, value);
    }

    /// @inheritdoc IParameters
    function setUint(bytes32 key, uint256 value) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (key == ParameterKeys.PROTOCOL_FEE_BPS && value > ParameterKeys.MAX_PROTOCOL_FEE_BPS) {
            revert ParametersValueOutOfRange(key, value, ParameterKeys.MAX_PROTOCOL_FEE_BPS);
        }
        if (key == ParameterKeys.REWARDS_CHALLENGE_DELAY) {
            if (value < ParameterKeys.MIN_REWARDS_CHALLENGE_DELAY) {
                revert ParametersValueBelowMinimum(
                    key, value, ParameterKeys.MIN_REWARDS_CHALLENGE_DELAY
                );
            }
            if (value > ParameterKeys.MAX_REWARDS_CHALLENGE_DELAY) {
                revert ParametersValueOutOfRange(
                    key, value, ParameterKeys.MAX_REWARDS_CHALLENGE_DELAY
                );
            }
        }
        _uints[key] = value;
        emit UintSet(key, value);
    }

    /// @inheritdoc IParameters
    function flag(bytes32 key) external view returns (bool) {
        return _flags[key];
    }

    /// @inheritdoc IParameters
    function uintOf(bytes32 key) external view returns (uint256) {
        return _uints[key];
    }
}
