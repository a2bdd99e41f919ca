// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title Battery health certificates
/// @notice A battery health certificate states a vehicle's state of health (SoH) with its 95 %
/// interval, the method version, the data window and the Merkle root of the input bundles
/// (StandardMerkleTree over `(uint64 batchId, uint32 leafIndex)`), signed with EIP-712 by the
/// oracle quorum after each signer recomputed the statement from the inputs' proofs. A buyer
/// or lender checks it with `verifyCertificate` without trusting any server: the view reverts
/// unless the signatures reach the threshold of the current oracle set (the
/// AttestationAnchor's `requireQuorum`).
/// @dev Holds no state: certificates live with whoever relies on them.
interface IBatteryCertificates {
    /* TYPES */

    /// @notice A battery health statement.
    /// @param vehicleId The vehicle's VehicleId token id.
    /// @param sohBps State of health in basis points of the nominal pack energy (9200 = 92 %).
    /// @param lowerBps Lower end of the 95 % interval, basis points.
    /// @param upperBps Upper end of the 95 % interval, basis points.
    /// @param methodVersion Version of the published method (1 = battery-soh/1).
    /// @param windowStart Start of the data window, unix ms.
    /// @param windowEnd End of the data window, unix ms (exclusive).
    /// @param inputsRoot Merkle root over the input bundles' `(batchId, leafIndex)`.
    struct Certificate {
        uint256 vehicleId;
        uint16 sohBps;
        uint16 lowerBps;
        uint16 upperBps;
        uint32 methodVersion;
        uint64 windowStart;
        uint64 windowEnd;
        bytes32 inputsRoot;
    }

    /* ERRORS */

    /// @notice The interval does not hold the SoH, or exceeds 100 %.
    error BatteryCertificatesInvalidInterval(uint16 lowerBps, uint16 sohBps, uint16 upperBps);
    /// @notice The data window is empty.
    error BatteryCertificatesInvalidWindow(uint64 windowStart, uint64 windowEnd);
    /// @notice No input root: a certificate must name its inputs.
    error BatteryCertificatesMissingInputs(uint256 vehicleId);

    /* FUNCTIONS */

    /// @notice Checks a certificate: its fields hold together and the oracle quorum signed it.
    /// @dev Reverts with the oracle registry's errors when the signatures fall short.
    /// @param certificate The statement.
    /// @param signatures Oracle signatures of `certificateDigest(certificate)`, 65 bytes each,
    /// concatenated in ascending signer order.
    /// @return True (the call reverts otherwise).
    function verifyCertificate(Certificate calldata certificate, bytes calldata signatures)
        external
        view
        returns (bool);

    /// @notice The EIP-712 digest the oracles sign for a certificate.
    /// @param certificate The statement.
    /// @return The digest under this contract's `{DIMO, 1, chainId, this}` domain.
    function certificateDigest(Certificate calldata certificate) external view returns (bytes32);

    /// @notice The oracle registry whose quorum signs certificates (the AttestationAnchor).
    /// @return The registry's address.
    function oracleRegistry() external view returns (address);
}
