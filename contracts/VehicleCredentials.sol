// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {IOracleRegistry} from "./interfaces/IOracleRegistry.sol";
import {IVehicleCredentials} from "./interfaces/IVehicleCredentials.sol";

/// @title VehicleCredentials
/// @notice Checks, revokes and supersedes vehicle credentials signed by the oracle quorum.
contract VehicleCredentials is EIP712, IVehicleCredentials {
    /// @notice EIP-712 type the oracles sign for a credential.
    bytes32 public constant CREDENTIAL_TYPEHASH = keccak256(
        "VehicleCredential(uint256 vehicleId,uint8 kind,uint64 issuedAt,uint64 validFrom,"
        "uint64 validUntil,bytes32 documentHash)"
    );
    /// @notice EIP-712 type the oracles sign to revoke one.
    bytes32 public constant REVOCATION_TYPEHASH =
        keccak256("CredentialRevocation(bytes32 credential)");
    /// @notice The highest credential kind (1 VIN, 2 odometer, 3 health, 4 position).
    uint8 public constant MAX_KIND = 4;

    /* STORAGE */

    IOracleRegistry private immutable _oracles;
    mapping(bytes32 digest => bool) private _revoked;
    mapping(uint256 vehicleId => mapping(uint8 kind => uint64 issuedAt)) private _latest;

    /// @param oracles The oracle registry (the AttestationAnchor) whose quorum signs.
    constructor(IOracleRegistry oracles) EIP712("DIMO", "1") {
        _oracles = oracles;
    }

    /// @inheritdoc IVehicleCredentials
    function verifyCredential(Credential calldata credential, bytes calldata signatures)
        external
        view
        returns (bool)
    {
        _verify(credential, signatures);
        return true;
    }

    /// @inheritdoc IVehicleCredentials
    function revoke(Credential calldata credential, bytes calldata signatures) external {
        bytes32 digest = _digest(credential);
        if (_revoked[digest]) revert VehicleCredentialsAlreadyRevoked(digest);
        _oracles.requireQuorum(_revocationDigest(digest), signatures);
        _revoked[digest] = true;
        emit CredentialRevoked(digest, credential.vehicleId, credential.kind);
    }

    /// @inheritdoc IVehicleCredentials
    function supersede(Credential calldata credential, bytes calldata signatures) external {
        bytes32 digest = _verify(credential, signatures);
        uint64 latest = _latest[credential.vehicleId][credential.kind];
        if (credential.issuedAt <= latest) {
            revert VehicleCredentialsNotNewer(
                credential.vehicleId, credential.kind, credential.issuedAt, latest
            );
        }
        _latest[credential.vehicleId][credential.kind] = credential.issuedAt;
        emit CredentialSuperseding(
            digest, credential.vehicleId, credential.kind, credential.issuedAt
        );
    }

    /// @inheritdoc IVehicleCredentials
    function credentialDigest(Credential calldata credential) external view returns (bytes32) {
        return _digest(credential);
    }

    /// @inheritdoc IVehicleCredentials
    function revocationDigest(bytes32 digest) external view returns (bytes32) {
        return _revocationDigest(digest);
    }

    /// @inheritdoc IVehicleCredentials
    function isRevoked(bytes32 digest) external view returns (bool) {
        return _revoked[digest];
    }

    /// @inheritdoc IVehicleCredentials
    function latestIssuedAt(uint256 vehicleId, uint8 kind) external view returns (uint64) {
        return _latest[vehicleId][kind];
    }

    /// @inheritdoc IVehicleCredentials
    function oracleRegistry() external view returns (address) {
        return address(_oracles);
    }

    /// @dev Every check of `verifyCredential`; returns the digest.
    function _verify(Credential calldata c, bytes calldata signatures)
        private
        view
        returns (bytes32 digest)
    {
        if (c.kind == 0 || c.kind > MAX_KIND) revert VehicleCredentialsUnknownKind(c.kind);
        if (c.validUntil != 0 && c.validUntil < c.validFrom) {
            revert VehicleCredentialsInvalidWindow(c.validFrom, c.validUntil);
        }
        if (c.documentHash == bytes32(0)) revert VehicleCredentialsMissingDocument(c.vehicleId);
        digest = _digest(c);
        _oracles.requireQuorum(digest, signatures);
        if (_revoked[digest]) revert VehicleCredentialsRevoked(digest);
        uint64 latest = _latest[c.vehicleId][c.kind];
        if (c.issuedAt < latest) revert VehicleCredentialsSuperseded(digest, c.issuedAt, latest);
        // Block time is in seconds; credentials count in ms.
        uint64 nowMs = uint64(block.timestamp) * 1000;
        if (c.validUntil != 0 && nowMs > c.validUntil) {
            revert VehicleCredentialsExpired(digest, c.validUntil, nowMs);
        }
    }

    function _digest(Credential calldata c) private view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    CREDENTIAL_TYPEHASH,
                    c.vehicleId,
                    c.kind,
                    c.issuedAt,
                    c.validFrom,
                    c.validUntil,
                    c.documentHash
                )
            )
        );
    }

    function _revocationDigest(bytes32 digest) private view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(REVOCATION_TYPEHASH, digest)));
    }
}
