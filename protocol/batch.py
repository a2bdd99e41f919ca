"""Batch content: the document the oracle stores by CID for each anchored batch.

`dimo-batch-v1` is canonical JSON (sorted keys, no spaces, ASCII) with the batch id, count,
root, window, the signed bundles in their wire form (hex, journal order) and the
OpenZeppelin StandardMerkleTree dump over their leaves. Anyone who fetches it by the CID
anchored on-chain can check every bundle's device signature and rebuild the root: the
oracle's signers do before they sign, the indexer does before it loads readings.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from protocol.bundle import (
    BUNDLE_LEAF_ENCODING,
    BundleError,
    SignedBundle,
    decode_signed_bundle,
    verify_bundle,
)
from protocol.crypto import SignatureError, keccak256
from protocol.eip712 import Eip712Domain
from protocol.exceptions import ProtocolError
from protocol.merkle import StandardMerkleTree

CONTENT_FORMAT: Final = "dimo-batch-v1"


class InvalidBatchContent(ProtocolError, ValueError):
    """A batch document is malformed, holds a bad bundle, or disagrees with its bundles."""

    def __init__(self, batch_id: int, reason: str) -> None:
        super().__init__(
            f"batch {batch_id}: {reason}; the content must be the oracle's {CONTENT_FORMAT} "
            "document for this batch"
        )
        self.batch_id = batch_id
        self.reason = reason


def _cbor_head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes((major << 5 | n,))
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes((major << 5 | info,)) + n.to_bytes(size, "big")
    raise ValueError("length too large for CBOR")


_BUNDLE_KEY: Final = b"\x66bundle"
_SIGNATURE_KEY: Final = b"\x69signature\x58\x41"


def wire_form(encoding: bytes, signature: bytes) -> bytes:
    """The wire form of a signed bundle from its canonical encoding and signature.

    Byte for byte what `protocol.bundle.encode_signed_bundle` writes, without decoding.
    """
    return b"".join(
        (b"\xa2", _BUNDLE_KEY, _cbor_head(2, len(encoding)), encoding, _SIGNATURE_KEY, signature)
    )


def leaf_of_row(
    device: str,
    vehicle_id: int,
    sequence: int,
    window_start: int,
    window_end: int,
    data_hash: bytes,
    signature: bytes,
) -> tuple[str, int, int, int, int, bytes, bytes]:
    """The Merkle leaf of a journaled bundle (as `protocol.bundle.bundle_leaf`)."""
    return (
        device,
        vehicle_id,
        sequence,
        window_start,
        window_end,
        data_hash,
        keccak256(signature),
    )


@dataclass(frozen=True)
class BatchContent:
    """A parsed batch document: the signed bundles' wire forms and the tree over them.

    `signed` holds the same bundles decoded, each with its device signature verified (so a
    reader need not decode them again).
    """

    batch_id: int
    bundles: list[bytes]
    tree: StandardMerkleTree
    window_start: int
    window_end: int
    raw: bytes
    signed: list[SignedBundle]


def _canonical_json(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def build_content(
    batch_id: int,
    wires: Sequence[bytes],
    leaves: Sequence[tuple[str, int, int, int, int, bytes, bytes]],
    tree: StandardMerkleTree | None = None,
) -> tuple[bytes, StandardMerkleTree]:
    """Build the canonical batch document.

    Args:
        batch_id: The batch's on-chain id.
        wires: Wire forms of the signed bundles, in journal order.
        leaves: Their leaves, same order.
        tree: The tree over `leaves`, if already built.

    Returns:
        The document's bytes and the tree.
    """
    if tree is None:
        tree = StandardMerkleTree.of(list(leaves), BUNDLE_LEAF_ENCODING)
    doc = {
        "format": CONTENT_FORMAT,
        "id": batch_id,
        "count": len(wires),
        "root": "0x" + tree.root.hex(),
        "windowStart": min(leaf[3] for leaf in leaves),
        "windowEnd": max(leaf[4] for leaf in leaves),
        "bundles": ["0x" + w.hex() for w in wires],
        "tree": tree.dump(),
    }
    return _canonical_json(doc), tree


def parse_content(raw: bytes, domain: Eip712Domain, batch_id: int = 0) -> BatchContent:
    """Parse a batch document and check every bundle in it.

    Each bundle is decoded (canonical wire form), its device signature verified under
    `domain`, and the tree rebuilt from the leaves; the document's own tree dump and root must
    equal the rebuilt ones.

    Args:
        raw: The document's bytes.
        domain: The DIMO domain the bundles are signed in.
        batch_id: The id the caller expects (for error messages).

    Returns:
        The content, with the rebuilt tree.

    Raises:
        InvalidBatchContent: the document is malformed, a bundle is malformed or badly
            signed, or the dump disagrees with the bundles.
    """
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidBatchContent(batch_id, f"content is not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != CONTENT_FORMAT:
        raise InvalidBatchContent(batch_id, f"content is not a {CONTENT_FORMAT} document")
    if _canonical_json(doc) != raw:
        raise InvalidBatchContent(batch_id, "content is not in canonical JSON form")
    wires_hex = doc.get("bundles")
    if not isinstance(wires_hex, list) or not wires_hex:
        raise InvalidBatchContent(batch_id, "content holds no bundles")
    wires: list[bytes] = []
    decoded: list[SignedBundle] = []
    leaves: list[tuple[str, int, int, int, int, bytes, bytes]] = []
    for i, item in enumerate(wires_hex):
        try:
            wire = bytes.fromhex(str(item).removeprefix("0x"))
            signed = decode_signed_bundle(wire)
            verify_bundle(signed, domain)
        except (ValueError, BundleError, SignatureError) as exc:
            raise InvalidBatchContent(batch_id, f"bundle {i} is invalid: {exc}") from None
        b = signed.bundle
        wires.append(wire)
        decoded.append(signed)
        leaves.append(
            leaf_of_row(
                b.device,
                b.vehicle_id,
                b.sequence,
                b.window_start,
                b.window_end,
                b.data_hash,
                signed.signature,
            )
        )
    tree = StandardMerkleTree.of(leaves, BUNDLE_LEAF_ENCODING)
    if doc.get("tree") != tree.dump():
        raise InvalidBatchContent(batch_id, "the tree dump does not match the tree of the bundles")
    window_start = min(leaf[3] for leaf in leaves)
    window_end = max(leaf[4] for leaf in leaves)
    expected = {
        "id": doc.get("id"),
        "count": len(wires),
        "root": "0x" + tree.root.hex(),
        "windowStart": window_start,
        "windowEnd": window_end,
    }
    for key, value in expected.items():
        if doc.get(key) != value:
            raise InvalidBatchContent(
                batch_id, f"content field {key} is {doc.get(key)!r}, not {value!r}"
            )
    return BatchContent(int(doc["id"]), wires, tree, window_start, window_end, raw, decoded)
