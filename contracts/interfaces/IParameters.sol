// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title Well-known parameter keys
/// @notice Keys of the flags and numbers governance sets in `Parameters`. Each is
/// `keccak256` of its name. Services read them; only an executed proposal changes them.
library ParameterKeys {
    /// @notice Flag: data products (and later grants) may carry the COMMANDS privilege.
    bytes32 internal constant FEATURE_COMMANDS_SCOPE = keccak256("FEATURE_COMMANDS_SCOPE");
    /// @notice Flag: grid (demand-response) programmes are enabled in the services.
    bytes32 internal constant FEATURE_GRID_PROGRAMMES = keccak256("FEATURE_GRID_PROGRAMMES");
    /// @notice Flag: the new data product category is open to curators (read by services).
    bytes32 internal constant FEATURE_NEW_PRODUCT_CATEGORY =
        keccak256("FEATURE_NEW_PRODUCT_CATEGORY");
    /// @notice Number: the protocol fee on licence sales, in basis points (at most 2,000).
    bytes32 internal constant PROTOCOL_FEE_BPS = keccak256("PROTOCOL_FEE_BPS");
    /// @notice Number: seconds a posted rewards root can be vetoed before claims open, within
    /// [`MIN_REWARDS_CHALLENGE_DELAY`, `MAX_REWARDS_CHALLENGE_DELAY`]. Zero would make a veto
    /// impossible; a huge value would make `Rewards.post` overflow `claimableAt`.
    bytes32 internal constant REWARDS_CHALLENGE_DELAY = keccak256("REWARDS_CHALLENGE_DELAY");
    /// @notice Number: the oracle quorum threshold services expect (read by services; the
    /// anchor's own threshold is set on AttestationAnchor).
    bytes32 internal constant ORACLE_THRESHOLD = keccak256("ORACLE_THRESHOLD");
    /// @notice Number: the fee of a developer licence (`DeveloperLicence.mint`), in DIMO wei.
    bytes32 internal constant DEVELOPER_LICENCE_FEE = keccak256("DEVELOPER_LICENCE_FEE");
    /// @notice The highest protocol fee: 20%.
    uint256 internal constant MAX_PROTOCOL_FEE_BPS = 2000;
    /// @notice The shortest rewards challenge delay: one minute (some blocks on any chain, the
    /// local stack's value; live deploys use a day). `Rewards.post` never gives less.
    uint256 internal constant MIN_REWARDS_CHALLENGE_DELAY = 60;
    /// @notice The longest rewards challenge delay: 30 days. `Rewards.post` never gives more.
    uint256 internal constant MAX_REWARDS_CHALLENGE_DELAY = 30 days;
}

/// @title Governed platform parameters
/// @notice Feature flags and numeric parameters, keyed by `bytes32`, held for the timelock.
/// Only holders of the admin role (the timelock, so only an executed proposal) change them;
/// anyone reads them. Unset keys read as false and 0.
interface IParameters {
    /* ERRORS */

    /// @notice `value` is above `max`, the highest value allowed for `key`.
    error ParametersValueOutOfRange(bytes32 key, uint256 value, uint256 max);
    /// @notice `value` is below `min`, the lowest value allowed for `key`.
    error ParametersValueBelowMinimum(bytes32 key, uint256 value, uint256 min);

    /* EVENTS */

    /// @notice Flag `key` was set to `value`.
    event FlagSet(bytes32 indexed key, bool value);
    /// @notice Number `key` was set to `value`.
    event UintSet(bytes32 indexed key, uint256 value);

    /* FUNCTIONS */

    /// @notice Sets flag `key` to `value`.
    /// @dev Only the admin (the timelock).
    /// @param key The flag's key, e.g. `keccak256("FEATURE_COMMANDS_SCOPE")`.
    /// @param value The new value.
    function setFlag(bytes32 key, bool value) external;

    /// @notice Sets number `key` to `value`.
    /// @dev Only the admin (the timelock). `PROTOCOL_FEE_BPS` is at most 2,000;
    /// `REWARDS_CHALLENGE_DELAY` is 60 s to 30 days.
    /// @param key The number's key, e.g. `keccak256("PROTOCOL_FEE_BPS")`.
    /// @param value The new value.
    function setUint(bytes32 key, uint256 value) external;

    /// @notice The value of flag `key` (false if never set).
    /// @param key The flag's key.
    /// @return The value.
    function flag(bytes32 key) external view returns (bool);

    /// @notice The value of number `key` (0 if never set).
    /// @param key The number's key.
    /// @return The value.
    function uintOf(bytes32 key) external view returns (uint256);
}
