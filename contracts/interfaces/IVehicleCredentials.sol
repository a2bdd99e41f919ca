// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title Vehicle credentials
/// @notice W3C Verifiable Credentials about a vehicle (its VIN, an odometer statement, its
/// health, its position at a time), issued by the oracle quorum over data the platform
/// verified. The credential document lives off-chain (in the content-addressed store, by
/// CID); what the oracles sign with EIP-712 is the `Credential` below, whose `documentHash`
/// binds every claim of the document. Anyone checks a credential with `verifyCredential`
/// without trusting any server: the view reverts unless the signatures reach the threshold
/// of the current oracle set (the AttestationAnchor's `requireQuorum`), the credential is
/// not revoked, not superseded and not expired.
/// @dev Keeps only revocations and, per vehicle and kind, the issue time of the latest
/// credential relayed here: a credential issued before it is superseded.
interface IVehicleCredentials {
    /* TYPES */

    /// @notice What the oracles sign (EIP-712 type `VehicleCredential`).
    /// @param vehicleId The subject's VehicleId token id.
    /// @param kind 1 VIN, 2 odometer statement, 3 vehicle health, 4 vehicle position.
    /// @param issuedAt When the quorum issued it, unix ms.
    /// @param validFrom Start of its validity, unix ms.
    /// @param validUntil End of its validity, unix ms; 0 when it does not expire.
    /// @param documentHash keccak256 of the credential document's canonical JSON, without its
    /// proof (see docs/attestations.md).
    struct Credential {
        uint256 vehicleId;
        uint8 kind;
        uint64 issuedAt;
        uint64 validFrom;
        uint64 validUntil;
        bytes32 documentHash;
    }

    /* ERRORS */

    /// @notice `kind` is none of 1..4.
    error VehicleCredentialsUnknownKind(uint8 kind);
    /// @notice The credential ends before it starts.
    error VehicleCredentialsInvalidWindow(uint64 validFrom, uint64 validUntil);
    /// @notice The credential names no document.
    error VehicleCredentialsMissingDocument(uint256 vehicleId);
    /// @notice The credential with digest `digest` was revoked by the quorum.
    error VehicleCredentialsRevoked(bytes32 digest);
    /// @notice A credential of the same vehicle and kind issued at `latestIssuedAt` replaced
    /// this one, issued at `issuedAt`.
    error VehicleCredentialsSuperseded(bytes32 digest, uint64 issuedAt, uint64 latestIssuedAt);
    /// @notice The credential expired at `validUntil` (unix ms); the chain is at `nowMs`.
    error VehicleCredentialsExpired(bytes32 digest, uint64 validUntil, uint64 nowMs);
    /// @notice The credential with digest `digest` is revoked already.
    error VehicleCredentialsAlreadyRevoked(bytes32 digest);
    /// @notice A credential of the vehicle and kind issued at `latestIssuedAt` is already the
    /// latest; `issuedAt` is not later.
    error VehicleCredentialsNotNewer(
        uint256 vehicleId, uint8 kind, uint64 issuedAt, uint64 latestIssuedAt
    );

    /* EVENTS */

    /// @notice The quorum revoked the credential with digest `digest`.
    event CredentialRevoked(bytes32 indexed digest, uint256 indexed vehicleId, uint8 indexed kind);
    /// @notice The credential with digest `digest`, issued at `issuedAt`, became the latest of
    /// its vehicle and kind: every earlier one is superseded.
    event CredentialSuperseding(
        bytes32 indexed digest, uint256 indexed vehicleId, uint8 indexed kind, uint64 issuedAt
    );

    /* FUNCTIONS */

    /// @notice Checks a credential: its fields hold together, the oracle quorum signed it, and
    /// it is neither revoked, superseded nor expired.
    /// @dev Reverts with the oracle registry's errors when the signatures fall short.
    /// @param credential The signed statement.
    /// @param signatures Oracle signatures of `credentialDigest(credential)`, 65 bytes each,
    /// concatenated in ascending signer order.
    /// @return True (the call reverts otherwise).
    function verifyCredential(Credential calldata credential, bytes calldata signatures)
        external
        view
        returns (bool);

    /// @notice Revokes a credential, on the quorum's word.
    /// @dev Anyone may relay the revocation; the signatures are over
    /// `revocationDigest(credentialDigest(credential))`.
    /// @param credential The credential to revoke.
    /// @param signatures Oracle signatures of the revocation digest, 65 bytes each,
    /// concatenated in ascending signer order.
    function revoke(Credential calldata credential, bytes calldata signatures) external;

    /// @notice Makes `credential` the latest of its vehicle and kind, superseding every one
    /// issued before it.
    /// @dev Anyone may relay a credential the quorum signed; it must verify and be later than
    /// the current latest.
    /// @param credential The newer credential.
    /// @param signatures Oracle signatures of its digest, as `verifyCredential` takes them.
    function supersede(Credential calldata credential, bytes calldata signatures) external;

    /// @notice The EIP-712 digest the oracles sign for a credential.
    /// @param credential The statement.
    /// @return The digest under this contract's `{DIMO, 1, chainId, this}` domain.
    function credentialDigest(Credential calldata credential) external view returns (bytes32);

    /// @notice The EIP-712 digest the oracles sign to revoke a credential.
    /// @param digest The credential's digest.
    /// @return The digest of `CredentialRevocation(bytes32 credential)`.
    function revocationDigest(bytes32 digest) external view returns (bytes32);

    /// @notice Whether the credential with digest `digest` is revoked.
    /// @param digest A credential digest.
    /// @return True once revoked.
    function isRevoked(bytes32 digest) external view returns (bool);

    /// @notice The issue time of the latest credential of a vehicle and kind relayed here.
    /// @param vehicleId The vehicle.
    /// @param kind The credential kind.
    /// @return Unix ms, 0 when none.
    function latestIssuedAt(uint256 vehicleId, uint8 kind) external view returns (uint64);

    /// @notice The oracle registry whose quorum signs credentials (the AttestationAnchor).
    /// @return The registry's address.
    function oracleRegistry() external view returns (address);
}
