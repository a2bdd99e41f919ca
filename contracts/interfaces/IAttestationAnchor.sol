// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title Anchors of attested telemetry
/// @notice The oracle quorum anchors each batch of device-signed bundles as a Merkle root,
/// with the content identifier (CID) of the batch in the content-addressed store. No
/// telemetry is kept here. Anyone may relay an anchor, and anyone can check that a reading
/// belongs to an anchored batch.
interface IAttestationAnchor {
    /* TYPES */

    /// @notice A batch as the oracles sign it (EIP-712 type `AnchorBatch`).
    /// @param id Sequential id, from 1.
    /// @param root Root of the OpenZeppelin StandardMerkleTree over the batch's leaves.
    /// @param cid The batch content's CID, in binary form.
    /// @param count Number of leaves (bundles).
    /// @param windowStart Earliest bundle window start, unix milliseconds.
    /// @param windowEnd Latest bundle window end, unix milliseconds.
    struct Batch {
        uint64 id;
        bytes32 root;
        bytes cid;
        uint32 count;
        uint64 windowStart;
        uint64 windowEnd;
    }

    /// @notice The Merkle leaf of one device-signed bundle.
    /// @param device The device's address.
    /// @param vehicleId The vehicle the device was paired to.
    /// @param sequence The device's bundle sequence number.
    /// @param windowStart Window start, unix milliseconds.
    /// @param windowEnd Window end, unix milliseconds.
    /// @param dataHash keccak256 of the bundle's canonical encoding.
    /// @param signatureHash keccak256 of the device's 65-byte signature.
    struct Leaf {
        address device;
        uint256 vehicleId;
        uint64 sequence;
        uint64 windowStart;
        uint64 windowEnd;
        bytes32 dataHash;
        bytes32 signatureHash;
    }

    /// @notice One disclosed signal of a schema-2 bundle (see docs/protocol.md).
    /// @param name The signal's VSS name, as in its leaf of the bundle's signal tree.
    /// @param salt The signal's secret salt in this bundle.
    /// @param samples Canonical CBOR of the signal's samples, `[[timestamp, value], ...]`.
    /// @param proof The Merkle path from the signal's leaf to the bundle's `dataHash`.
    struct SignalOpening {
        string name;
        bytes32 salt;
        bytes samples;
        bytes32[] proof;
    }

    /* ERRORS */

    /// @notice Batch `id` was submitted where `expected` is next.
    error AttestationAnchorUnexpectedBatchId(uint64 id, uint64 expected);
    /// @notice The batch has a zero root, no leaves, no CID, or a window that ends before it
    /// starts.
    error AttestationAnchorInvalidBatch(uint64 id);
    /// @notice No batch `id` has been anchored.
    error AttestationAnchorUnknownBatch(uint64 id);

    /* EVENTS */

    /// @notice Batch `id` was anchored with `root`; its content is at `cid`.
    event BatchAnchored(
        uint64 indexed id,
        bytes32 indexed root,
        bytes cid,
        uint32 count,
        uint64 windowStart,
        uint64 windowEnd
    );

    /* FUNCTIONS */

    /// @notice Anchors `batch`, signed by a quorum of oracles.
    /// @param batch The batch; its id must be the next one.
    /// @param signatures Oracle signatures of the batch's EIP-712 digest, 65 bytes each,
    /// concatenated in ascending signer order.
    function anchor(Batch calldata batch, bytes calldata signatures) external;

    /// @notice Whether `leaf` is in anchored batch `batchId`.
    /// @param batchId An anchored batch.
    /// @param leaf The reading's bundle leaf.
    /// @param proof The Merkle path from the leaf to the root.
    /// @return True when the proof leads to the batch's root.
    function verifyReading(uint64 batchId, Leaf calldata leaf, bytes32[] calldata proof)
        external
        view
        returns (bool);

    /// @notice Whether `opening` discloses one signal of the schema-2 bundle `leaf`, and `leaf`
    /// is in anchored batch `batchId`.
    /// @dev The signal leaf is OpenZeppelin's standard leaf of `(string name, bytes32
    /// commitment)` with `commitment = keccak256(salt || samples)`; the signal proof must lead
    /// to `leaf.dataHash`, and the batch proof from `leaf` to the batch root. Decoding
    /// `samples` is the caller's: the contract checks the bytes, not their meaning.
    /// @param batchId An anchored batch.
    /// @param leaf The bundle's leaf.
    /// @param proof The Merkle path from the bundle's leaf to the batch root.
    /// @param opening The disclosed signal.
    /// @return True when both proofs hold.
    function verifySignal(
        uint64 batchId,
        Leaf calldata leaf,
        bytes32[] calldata proof,
        SignalOpening calldata opening
    ) external view returns (bool);

    /// @notice The EIP-712 digest the oracles sign for `batch`.
    /// @param batch The batch.
    /// @return The digest.
    function batchDigest(Batch calldata batch) external view returns (bytes32);

    /// @notice The root of batch `batchId`.
    /// @param batchId An anchored batch.
    /// @return The root.
    function rootOf(uint64 batchId) external view returns (bytes32);

    /// @notice The id of the last anchored batch, 0 before the first.
    /// @return The id.
    function lastBatchId() external view returns (uint64);
}
