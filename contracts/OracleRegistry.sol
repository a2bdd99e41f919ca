// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {IOracleRegistry} from "./interfaces/IOracleRegistry.sol";

/// @title OracleRegistry
/// @notice The oracle signer set and its M-of-N threshold, inherited by the contract that
/// needs it on its hot path (AttestationAnchor); other contracts call `requireQuorum` there.
abstract contract OracleRegistry is AccessControl, IOracleRegistry {
    /* STORAGE */

    address[] private _signers;
    /// @dev A signer is current when its recorded version equals `_version`, so replacing
    /// the set never loops over the old one.
    mapping(address signer => uint32 version) private _signerVersion;
    /// @dev Declared last so that a derived contract's first small variable shares the slot
    /// (the anchor's batch counter: one cold read serves the quorum check and the counter).
    uint8 private _threshold;
    uint32 private _version;

    /// @param admin Holder of the admin role (the timelock on a live network).
    /// @param signers The first oracle set.
    /// @param threshold How many of them must sign.
    constructor(address admin, address[] memory signers, uint8 threshold) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _setOracles(signers, threshold);
    }

    /// @inheritdoc IOracleRegistry
    function setOracles(address[] calldata signers, uint8 threshold)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        _setOracles(signers, threshold);
    }

    /// @inheritdoc IOracleRegistry
    function requireQuorum(bytes32 digest, bytes calldata signatures) external view {
        _requireQuorum(digest, signatures);
    }

    /// @inheritdoc IOracleRegistry
    function oracles()
        external
        view
        returns (address[] memory signers, uint8 threshold, uint32 version)
    {
        return (_signers, _threshold, _version);
    }

    /// @inheritdoc IOracleRegistry
    function isOracle(address account) external view returns (bool) {
        return account != address(0) && _signerVersion[account] == _version;
    }

    function _requireQuorum(bytes32 digest, bytes calldata signatures) internal view {
        if (signatures.length % 65 != 0) {
            revert OracleRegistryMalformedSignatures(signatures.length);
        }
        uint256 threshold = _threshold;
        uint32 version = _version;
        uint256 given = signatures.length / 65;
        if (given < threshold) revert OracleRegistryQuorumNotReached(given, threshold);
        address previous;
        for (uint256 i; i < given; ++i) {
            uint256 o = i * 65;
            address signer = ECDSA.recover(
                digest,
                uint8(signatures[o + 64]),
                bytes32(signatures[o:o + 32]),
                bytes32(signatures[o + 32:o + 64])
            );
            if (signer <= previous) revert OracleRegistryUnsortedSigners(previous, signer);
            if (_signerVersion[signer] != version) revert OracleRegistryUnknownSigner(signer);
            previous = signer;
        }
    }

    function _setOracles(address[] memory signers, uint8 threshold) private {
        if (signers.length == 0 || signers.length > type(uint8).max || threshold == 0
                || threshold > signers.length) {
            revert OracleRegistryInvalidQuorum(signers.length, threshold);
        }
        uint32 version = _version + 1;
        for (uint256 i; i < signers.length; ++i) {
            address signer = signers[i];
            if (signer == address(0) || _signerVersion[signer] == version) {
                revert OracleRegistryInvalidSigner(signer);
            }
            _signerVersion[signer] = version;
        }
        _signers = signers;
        _threshold = threshold;
        _version = version;
        emit OracleSetChanged(version, signers, threshold);
    }
}
