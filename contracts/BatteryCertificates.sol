// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {IBatteryCertificates} from "./interfaces/IBatteryCertificates.sol";
import {IOracleRegistry} from "./interfaces/IOracleRegistry.sol";

/// @title BatteryCertificates
/// @notice Checks battery health certificates signed by the oracle quorum.
contract BatteryCertificates is EIP712, IBatteryCertificates {
    /// @notice EIP-712 type the oracles sign.
    bytes32 public constant CERTIFICATE_TYPEHASH = keccak256(
        "BatteryCertificate(uint256 vehicleId,uint16 sohBps,uint16 lowerBps,uint16 upperBps,"
        "uint32 methodVersion,uint64 windowStart,uint64 windowEnd,bytes32 inputsRoot)"
    );

    /* STORAGE */

    IOracleRegistry private immutable _oracles;

    /// @param oracles The oracle registry (the AttestationAnchor) whose quorum signs.
    constructor(IOracleRegistry oracles) EIP712("DIMO", "1") {
        _oracles = oracles;
    }

    /// @inheritdoc IBatteryCertificates
    function verifyCertificate(Certificate calldata certificate, bytes calldata signatures)
        external
        view
        returns (bool)
    {
        if (certificate.lowerBps > certificate.sohBps || certificate.sohBps > certificate.upperBps
                || certificate.upperBps > 10_000) {
            revert BatteryCertificatesInvalidInterval(
                certificate.lowerBps, certificate.sohBps, certificate.upperBps
            );
        }
        if (certificate.windowEnd <= certificate.windowStart) {
            revert BatteryCertificatesInvalidWindow(certificate.windowStart, certificate.windowEnd);
        }
        if (certificate.inputsRoot == bytes32(0)) {
            revert BatteryCertificatesMissingInputs(certificate.vehicleId);
        }
        _oracles.requireQuorum(_digest(certificate), signatures);
        return true;
    }

    /// @inheritdoc IBatteryCertificates
    function certificateDigest(Certificate calldata certificate) external view returns (bytes32) {
        return _digest(certificate);
    }

    /// @inheritdoc IBatteryCertificates
    function oracleRegistry() external view returns (address) {
        return address(_oracles);
    }

    function _digest(Certificate calldata c) private view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    CERTIFICATE_TYPEHASH,
                    c.vehicleId,
                    c.sohBps,
                    c.lowerBps,
                    c.upperBps,
                    c.methodVersion,
                    c.windowStart,
                    c.windowEnd,
                    c.inputsRoot
                )
            )
        );
    }
}
