// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {IAttestationAnchor} from "./interfaces/IAttestationAnchor.sol";
import {OracleRegistry} from "./OracleRegistry.sol";

/// @title AttestationAnchor
/// @notice Merkle roots of oracle-verified telemetry batches, and the oracle quorum that signs
/// them; devices sign bundles under this contract's EIP-712 domain too.
contract AttestationAnchor is EIP712, OracleRegistry, IAttestationAnchor {
    /// @notice EIP-712 type the oracles sign.
    bytes32 public constant BATCH_TYPEHASH = keccak256(
        "AnchorBatch(uint64 id,bytes32 root,bytes cid,uint32 count,uint64 windowStart,"
        "uint64 windowEnd)"
    );

    /* STORAGE */

    /// @dev Shares a slot with the oracle threshold and version (see OracleRegistry).
    uint64 private _lastBatchId;
    mapping(uint64 batchId => bytes32 root) private _roots;

    /// @param admin Holder of the admin role, which replaces the oracle set.
    /// @param signers The first oracle set.
    /// @param threshold How many of them must sign a batch.
    constructor(address admin, address[] memory signers, uint8 threshold)
        EIP712("DIMO", "1")
        OracleRegistry(admin, signers, threshold)
    {}

    /// @inheritdoc IAttestationAnchor
    function anchor(Batch calldata batch, bytes calldata signatures) external {
        uint64 expected = _lastBatchId + 1;
        if (batch.id != expected) revert AttestationAnchorUnexpectedBatchId(batch.id, expected);
        if (batch.root == bytes32(0) || batch.count == 0 || batch.cid.length == 0
                || batch.windowEnd < batch.windowStart) {
            revert AttestationAnchorInvalidBatch(batch.id);
        }
        _requireQuorum(_batchDigest(batch), signatures);
        _lastBatchId = batch.id;
        _roots[batch.id] = batch.root;
        emit BatchAnchored(
            batch.id, batch.root, batch.cid, batch.count, batch.windowStart, batch.windowEnd
        );
    }

    /// @inheritdoc IAttestationAnchor
    function verifyReading(uint64 batchId, Leaf calldata leaf, bytes32[] calldata proof)
        external
        view
        returns (bool)
    {
        return _verifyLeaf(batchId, leaf, proof);
    }

    /// @inheritdoc IAttestationAnchor
    function verifySignal(
        uint64 batchId,
        Leaf calldata leaf,
        bytes32[] calldata proof,
        SignalOpening calldata opening
    ) external view returns (bool) {
        bytes32 commitment = keccak256(bytes.concat(opening.salt, opening.samples));
        bytes32 signalLeaf =
            keccak256(bytes.concat(keccak256(abi.encode(opening.name, commitment))));
        if (MerkleProof.processProofCalldata(opening.proof, signalLeaf) != leaf.dataHash) {
            // Still revert for an unknown batch, as verifyReading does.
            if (_roots[batchId] == bytes32(0)) revert AttestationAnchorUnknownBatch(batchId);
            return false;
        }
        return _verifyLeaf(batchId, leaf, proof);
    }

    /// @inheritdoc IAttestationAnchor
    function batchDigest(Batch calldata batch) external view returns (bytes32) {
        return _batchDigest(batch);
    }

    /// @inheritdoc IAttestationAnchor
    function rootOf(uint64 batchId) external view returns (bytes32) {
        bytes32 root = _roots[batchId];
        if (root == bytes32(0)) revert AttestationAnchorUnknownBatch(batchId);
        return root;
    }

    /// @inheritdoc IAttestationAnchor
    function lastBatchId() external view returns (uint64) {
        return _lastBatchId;
    }

    /// @notice The EIP-712 domain separator of batches and device bundles.
    /// @return The separator.
    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    function _verifyLeaf(uint64 batchId, Leaf calldata leaf, bytes32[] calldata proof)
        private
        view
        returns (bool)
    {
        bytes32 root = _roots[batchId];
        if (root == bytes32(0)) revert AttestationAnchorUnknownBatch(batchId);
        bytes32 leafHash = keccak256(
            bytes.concat(
                keccak256(
                    abi.encode(
                        leaf.device,
                        leaf.vehicleId,
                        leaf.sequence,
                        leaf.windowStart,
                        leaf.windowEnd,
                        leaf.dataHash,
                        leaf.signatureHash
                    )
                )
            )
        );
        return MerkleProof.verifyCalldata(proof, root, leafHash);
    }

    function _batchDigest(Batch calldata batch) private view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    BATCH_TYPEHASH,
                    batch.id,
                    batch.root,
                    keccak256(batch.cid),
                    batch.count,
                    batch.windowStart,
                    batch.windowEnd
                )
            )
        );
    }
}
