// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title The oracle quorum
/// @notice The set of oracle signer addresses and the threshold M of N that anchors,
/// rewards roots and certificates need. Only the admin (the timelock, once governance owns
/// the platform) replaces the set.
interface IOracleRegistry {
    /* ERRORS */

    /// @notice The signer list is empty, longer than 255, or the threshold is outside 1..N.
    error OracleRegistryInvalidQuorum(uint256 signers, uint256 threshold);
    /// @notice The signer list has the zero address or a duplicate, `signer`.
    error OracleRegistryInvalidSigner(address signer);
    /// @notice `signatures` is not a whole number of 65-byte signatures.
    error OracleRegistryMalformedSignatures(uint256 length);
    /// @notice Only `given` signatures where `threshold` are needed.
    error OracleRegistryQuorumNotReached(uint256 given, uint256 threshold);
    /// @notice `signer` is not in the oracle set (wrong key, or a signature over other data).
    error OracleRegistryUnknownSigner(address signer);
    /// @notice Signers must be sorted ascending without repeats; `signer` came after `previous`.
    error OracleRegistryUnsortedSigners(address previous, address signer);

    /* EVENTS */

    /// @notice The oracle set became `signers` with `threshold`, as version `version`.
    event OracleSetChanged(uint32 indexed version, address[] signers, uint8 threshold);

    /* FUNCTIONS */

    /// @notice Replaces the oracle set.
    /// @dev Only the admin.
    /// @param signers The new signer addresses, distinct and non-zero.
    /// @param threshold How many of them must sign, 1..N.
    function setOracles(address[] calldata signers, uint8 threshold) external;

    /// @notice Reverts unless `signatures` holds at least `threshold` valid signatures of
    /// `digest` by distinct oracle signers, concatenated (65 bytes each, r ‖ s ‖ v) and
    /// sorted by signer address ascending.
    /// @param digest The EIP-712 digest that was signed.
    /// @param signatures The concatenated signatures.
    function requireQuorum(bytes32 digest, bytes calldata signatures) external view;

    /// @notice The current oracle set.
    /// @return signers The signer addresses.
    /// @return threshold How many must sign.
    /// @return version Increases with each change.
    function oracles()
        external
        view
        returns (address[] memory signers, uint8 threshold, uint32 version);

    /// @notice Whether `account` is in the current oracle set.
    /// @param account Any address.
    /// @return True for a current signer.
    function isOracle(address account) external view returns (bool);
}
