"""Batch content: the documents the oracle keeps for each anchored batch.

Two canonical JSON documents (sorted keys, no spaces, ASCII) describe one batch:

- `dimo-batch-v2`, the public document, stored by the CID anchored on-chain: batch id, count,
  root, window, the OpenZeppelin StandardMerkleTree dump over the bundles' leaves, and for each
  bundle (journal order) its schema, device signature and signal names with, for schema 2,
  each signal's salted commitment. It holds no reading value. Anyone can check every device
  signature (from the leaf fields), every schema-2 bundle's commitments against its signed
  `dataHash`, and rebuild the root: the oracle's signers do before they sign, the rewards
  verifier does before it counts signals.
- `dimo-batch-v1`, the readings document: the same header and tree with the signed bundles in
  their wire form (values and salts). Batches anchored before schema 2 published it by CID;
  now the oracle hands it only to authorised indexers, which check it against the same root.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from protocol.bundle import (
    BUNDLE_LEAF_ENCODING,
    SCHEMA_SIGNALS,
    SCHEMA_VERSIONS,
    BundleError,
    SignedBundle,
    decode_bundle,
    decode_signed_bundle,
    leaf_signer,
    verify_bundle,
)
from protocol.crypto import (
    InvalidSignerError,
    MalformedSignatureError,
    SignatureError,
    address_bytes,
    checksum_address,
    keccak256,
    recover_address_bytes,
    sign_digest,
)
from protocol.disclosure import verify_commitments
from protocol.eip712 import Eip712Domain
from protocol.exceptions import ProtocolError
from protocol.merkle import StandardMerkleTree

CONTENT_FORMAT: Final = "dimo-batch-v1"
"""The readings document (wire-form bundles, values included): private since schema 2."""
PUBLIC_FORMAT: Final = "dimo-batch-v2"
"""The public document stored by the anchored CID: commitments and signatures, no values."""


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

    @property
    def count(self) -> int:
        """The number of bundles (leaves)."""
        return len(self.bundles)


Leaf = tuple[str, int, int, int, int, bytes, bytes]
"""`(device, vehicleId, sequence, windowStart, windowEnd, dataHash, sigHash)`."""


@dataclass(frozen=True)
class PublicEntry:
    """One bundle of a public batch document.

    Attributes:
        leaf: Its batch leaf.
        schema: Its bundle schema (1 or 2).
        signature: The device's 65-byte signature (its hash is the leaf's `sigHash`).
        signals: Signal name -> commitment, in the bundle's order; for schema 1 the
            commitments are None (a schema-1 bundle commits to all its signals at once).
    """

    leaf: Leaf
    schema: int
    signature: bytes
    signals: dict[str, bytes | None]


@dataclass(frozen=True)
class PublicBatch:
    """A parsed, checked public batch document (`dimo-batch-v2`)."""

    batch_id: int
    tree: StandardMerkleTree
    window_start: int
    window_end: int
    raw: bytes
    entries: list[PublicEntry]

    @property
    def count(self) -> int:
        """The number of bundles (leaves)."""
        return len(self.entries)


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
    tree, window_start, window_end = _check_header(doc, leaves, batch_id)
    return BatchContent(int(doc["id"]), wires, tree, window_start, window_end, raw, decoded)


def _check_header(
    doc: dict[str, Any], leaves: Sequence[Leaf], batch_id: int
) -> tuple[StandardMerkleTree, int, int]:
    """Rebuild the tree of `leaves`; the document's dump, id, count, root and window must agree.

    Returns:
        The tree, the earliest window start and the latest window end.
    """
    tree = StandardMerkleTree.of(list(leaves), BUNDLE_LEAF_ENCODING)
    if doc.get("tree") != tree.dump():
        raise InvalidBatchContent(batch_id, "the tree dump does not match the tree of the bundles")
    window_start = min(leaf[3] for leaf in leaves)
    window_end = max(leaf[4] for leaf in leaves)
    expected = {
        "id": doc.get("id"),
        "count": len(leaves),
        "root": "0x" + tree.root.hex(),
        "windowStart": window_start,
        "windowEnd": window_end,
    }
    for key, value in expected.items():
        if doc.get(key) != value:
            raise InvalidBatchContent(
                batch_id, f"content field {key} is {doc.get(key)!r}, not {value!r}"
            )
    return tree, window_start, window_end


# ------------------------------------------------------------------------------------------------
# The public document (dimo-batch-v2): no reading values
# ------------------------------------------------------------------------------------------------


def document_format(raw: bytes) -> str | None:
    """The `format` of a batch document, or None if it is not a JSON object with one."""
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    fmt = doc.get("format") if isinstance(doc, dict) else None
    return fmt if isinstance(fmt, str) else None


def public_entry(signed: SignedBundle) -> dict[str, Any]:
    """The public document's entry of one signed bundle: schema, signature, commitments."""
    b = signed.bundle
    signals: list[list[str | None]]
    if b.schema_version == SCHEMA_SIGNALS:
        signals = [[name, "0x" + c.hex()] for name, c in b.commitments.items()]
    else:
        signals = [[name, None] for name in b.readings]
    return {
        "schema": b.schema_version,
        "signature": "0x" + signed.signature.hex(),
        "signals": signals,
    }


def build_public(
    batch_id: int,
    encodings: Sequence[bytes],
    signatures: Sequence[bytes],
    leaves: Sequence[Leaf],
    tree: StandardMerkleTree | None = None,
) -> tuple[bytes, StandardMerkleTree]:
    """Build the public batch document (no reading values).

    Args:
        batch_id: The batch's on-chain id.
        encodings: The bundles' canonical encodings, in journal order.
        signatures: Their device signatures, same order.
        leaves: Their leaves, same order.
        tree: The tree over `leaves`, if already built.

    Returns:
        The document's bytes and the tree.
    """
    if tree is None:
        tree = StandardMerkleTree.of(list(leaves), BUNDLE_LEAF_ENCODING)
    entries = [
        public_entry(SignedBundle(decode_bundle(e), s))
        for e, s in zip(encodings, signatures, strict=True)
    ]
    doc = {
        "format": PUBLIC_FORMAT,
        "id": batch_id,
        "count": len(entries),
        "root": "0x" + tree.root.hex(),
        "windowStart": min(leaf[3] for leaf in leaves),
        "windowEnd": max(leaf[4] for leaf in leaves),
        "bundles": entries,
        "tree": tree.dump(),
    }
    return _canonical_json(doc), tree


def _public_entry(item: object, leaf: Leaf, domain: Eip712Domain) -> PublicEntry:
    if not isinstance(item, dict) or set(item) != {"schema", "signature", "signals"}:
        raise ValueError("an entry is {schema, signature, signals}")
    schema, signals = item["schema"], item["signals"]
    if type(schema) is not int or schema not in SCHEMA_VERSIONS:
        raise ValueError(f"schema {schema!r} is not one of {list(SCHEMA_VERSIONS)}")
    signature = bytes.fromhex(str(item["signature"]).removeprefix("0x"))
    if keccak256(signature) != leaf[6]:
        raise ValueError("the signature is not the one the leaf's sigHash commits to")
    signer = leaf_signer(leaf, signature, domain)
    if signer != address_bytes(leaf[0]):
        raise InvalidSignerError(checksum_address(signer), leaf[0])
    if not isinstance(signals, list):
        raise ValueError("signals are [[name, commitment], ...]")
    names: dict[str, bytes | None] = {}
    for pair in signals:
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
            raise ValueError("signals are [[name, commitment], ...]")
        if pair[0] in names:
            raise ValueError(f"signal {pair[0]} is listed twice")
        if schema == SCHEMA_SIGNALS:
            names[pair[0]] = bytes.fromhex(str(pair[1]).removeprefix("0x"))
        elif pair[1] is not None:
            raise ValueError("a schema-1 bundle has no per-signal commitments")
        else:
            names[pair[0]] = None
    if schema == SCHEMA_SIGNALS:
        verify_commitments(leaf[5], {n: c for n, c in names.items() if c is not None})
    return PublicEntry(leaf, schema, signature, names)


def parse_public(raw: bytes, domain: Eip712Domain, batch_id: int = 0) -> PublicBatch:
    """Parse a public batch document and check everything in it.

    Each entry's device signature is recovered from its leaf's fields, each schema-2 entry's
    commitments must lead to its leaf's `dataHash`, and the tree dump must rebuild (from its
    values, in entry order) the document's root.

    Args:
        raw: The document's bytes.
        domain: The DIMO domain the bundles are signed in.
        batch_id: The id the caller expects (for error messages).

    Returns:
        The batch, with the rebuilt tree.

    Raises:
        InvalidBatchContent: malformed, a bad signature or commitment, or a header field that
            disagrees with the entries.
    """
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidBatchContent(batch_id, f"content is not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != PUBLIC_FORMAT:
        raise InvalidBatchContent(batch_id, f"content is not a {PUBLIC_FORMAT} document")
    if _canonical_json(doc) != raw:
        raise InvalidBatchContent(batch_id, "content is not in canonical JSON form")
    items, dump = doc.get("bundles"), doc.get("tree")
    if not isinstance(items, list) or not items or not isinstance(dump, dict):
        raise InvalidBatchContent(batch_id, "content holds no bundles")
    try:
        values = dump["values"]
        leaves: list[Leaf] = [
            (
                checksum_address(v["value"][0]),
                int(v["value"][1]),
                int(v["value"][2]),
                int(v["value"][3]),
                int(v["value"][4]),
                bytes.fromhex(v["value"][5].removeprefix("0x")),
                bytes.fromhex(v["value"][6].removeprefix("0x")),
            )
            for v in values
        ]
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise InvalidBatchContent(batch_id, f"the tree dump is malformed ({exc})") from None
    if len(leaves) != len(items):
        raise InvalidBatchContent(batch_id, "the tree and the bundles differ in number")
    entries: list[PublicEntry] = []
    for i, (item, leaf) in enumerate(zip(items, leaves, strict=True)):
        try:
            entries.append(_public_entry(item, leaf, domain))
        except (ValueError, TypeError, BundleError, SignatureError) as exc:
            raise InvalidBatchContent(batch_id, f"bundle {i} is invalid: {exc}") from None
    tree, window_start, window_end = _check_header(doc, leaves, batch_id)
    return PublicBatch(int(doc["id"]), tree, window_start, window_end, raw, entries)


def parse_any(raw: bytes, domain: Eip712Domain, batch_id: int = 0) -> BatchContent | PublicBatch:
    """Parse a batch document of either format (`parse_public` or `parse_content`)."""
    if document_format(raw) == PUBLIC_FORMAT:
        return parse_public(raw, domain, batch_id)
    return parse_content(raw, domain, batch_id)


# ------------------------------------------------------------------------------------------------
# The readings channel: authorised indexers ask the oracle for a batch's readings document
# ------------------------------------------------------------------------------------------------

READINGS_HEADER: Final = "X-DIMO-Indexer"
"""HTTP header carrying `<issuedAt ms>.<0x signature>` of an indexer's `ReadBatch` request."""
READ_BATCH_TYPE: Final = "ReadBatch(uint64 batchId,uint64 issuedAt)"
READ_BATCH_TYPEHASH: Final = keccak256(READ_BATCH_TYPE.encode())


def read_batch_digest(domain: Eip712Domain, batch_id: int, issued_ms: int) -> bytes:
    """The EIP-712 digest an indexer signs to read batch `batch_id`'s readings."""
    words = batch_id.to_bytes(32, "big") + issued_ms.to_bytes(32, "big")
    return domain.digest(keccak256(READ_BATCH_TYPEHASH + words))


def readings_request_header(
    domain: Eip712Domain, private_key: bytes | str, batch_id: int, issued_ms: int
) -> str:
    """The `READINGS_HEADER` value of an indexer's request for one batch's readings."""
    signature = sign_digest(read_batch_digest(domain, batch_id, issued_ms), private_key)
    return f"{issued_ms}.0x{signature.hex()}"


def readings_request_signer(domain: Eip712Domain, header: str, batch_id: int) -> tuple[str, int]:
    """The indexer that signed a `READINGS_HEADER` value, and when it says it did.

    Raises:
        SignatureError: the header is malformed or its signature does not recover.
    """
    issued, _, signature = header.partition(".")
    try:
        issued_ms = int(issued)
        raw = bytes.fromhex(signature.removeprefix("0x"))
    except ValueError:
        raise MalformedSignatureError(b"", "the header is <issuedAt ms>.<0x signature>") from None
    if not 0 <= issued_ms < 2**64:
        raise MalformedSignatureError(raw, "issuedAt is not a uint64")
    signer = recover_address_bytes(read_batch_digest(domain, batch_id, issued_ms), raw)
    return checksum_address(signer), issued_ms
