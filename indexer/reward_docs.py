"""Rewards allocations: each posted epoch's document, fetched by CID and checked against the chain.

For each `RootPosted` the syncer fetches the allocation document (`dimo-rewards-v1`, written
by `dimo rewards compute`) from the blob store by the posted CID, parses it with
`protocol.rewards_document.parse_document` (canonical form, leaves rebuild the root, amounts
add up to the total within the budget) and compares its epoch, root and total with the posted
ones. A document that passes is loaded: one row per vehicle with its amount, points, Merkle proof
and the inputs of its points, which is what the API serves an owner who wants to claim or check.
One that fails is recorded as `rejected` with the reason, and serves nothing. Content the
store cannot serve yet is `pending` and retried, as for telemetry batches.

A document belongs to the block of its `RootPosted`: a reorg removes the documents posted
above the fork, and a re-post after a veto replaces the epoch's document.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
)

from indexer import schema as s
from indexer.db import insert_rows, metadata
from indexer.schema import Uint256
from protocol.blobstore import (
    BlobCidMismatch,
    BlobCorrupted,
    BlobStore,
    BlobStoreError,
    BlobUnsupported,
)
from protocol.cid import Cid, InvalidCid
from protocol.rewards_document import InvalidAllocation, parse_document

log = logging.getLogger(__name__)

LOADED: Final = "loaded"
REJECTED: Final = "rejected"
PENDING: Final = "pending"

reward_documents = Table(
    "reward_documents",
    metadata,
    Column("epoch", BigInteger, primary_key=True, autoincrement=False, comment="rewards epoch"),
    Column("root", String(66), nullable=False, comment="the posted root, 0x hex"),
    Column("cid", String(128), nullable=False, comment="document CID (text form)"),
    Column("status", String(16), nullable=False, comment="loaded | rejected | pending"),
    Column("reason", String(64), nullable=True, comment="why rejected or pending"),
    Column("detail", Text, nullable=True, comment="the reason explained"),
    Column("vehicles", Integer, nullable=False, comment="vehicles with an entry"),
    Column("points_version", String(32), nullable=True, comment="points formula version"),
    Column("header", Text, nullable=True, comment="the document's top-level members, JSON"),
    Column("block_number", BigInteger, nullable=False, comment="block of RootPosted"),
    Column("tx_hash", String(66), nullable=False, comment="transaction of RootPosted"),
)

reward_allocations = Table(
    "reward_allocations",
    metadata,
    Column("epoch", BigInteger, primary_key=True, autoincrement=False),
    Column("vehicle_id", BigInteger, primary_key=True, autoincrement=False),
    Column("amount", Uint256, nullable=False, comment="DIMO wei allocated"),
    Column("points", BigInteger, nullable=False, comment="points earned in the epoch"),
    Column("proof", Text, nullable=False, comment="Merkle proof, JSON list of 0x hex"),
    Column("inputs", Text, nullable=False, comment="inputs of the points, JSON"),
)

#: Tables of this module (migration 0005 creates them with the Rewards projections).
REWARD_DOCUMENT_TABLES = (reward_documents, reward_allocations)


@dataclass(frozen=True)
class PostedRoot:
    """A `RootPosted` event as the syncer hands it over."""

    epoch: int
    root: str
    total: int
    cid: str
    block_number: int
    tx_hash: str

    @classmethod
    def from_args(cls, args: Mapping[str, Any], block_number: int, tx_hash: str) -> PostedRoot:
        """From decoded event arguments (`root` and `cid` as 0x hex)."""
        raw = bytes.fromhex(str(args["cid"])[2:])
        try:
            cid = Cid.from_bytes(raw).encode()
        except InvalidCid:
            cid = "0x" + raw.hex()
        return cls(
            int(args["epoch"]),
            str(args["root"]).lower(),
            int(args["total"]),
            cid,
            block_number,
            tx_hash,
        )


def _record(
    conn: Connection,
    posted: PostedRoot,
    status: str,
    reason: str | None,
    detail: str | None,
    vehicles: int = 0,
    points_version: str | None = None,
    header: str | None = None,
) -> None:
    conn.execute(delete(reward_allocations).where(reward_allocations.c.epoch == posted.epoch))
    conn.execute(delete(reward_documents).where(reward_documents.c.epoch == posted.epoch))
    conn.execute(
        insert(reward_documents).values(
            epoch=posted.epoch,
            root=posted.root,
            cid=posted.cid,
            status=status,
            reason=reason,
            detail=detail,
            vehicles=vehicles,
            points_version=points_version,
            header=header,
            block_number=posted.block_number,
            tx_hash=posted.tx_hash,
        )
    )


def load_document(conn: Connection, store: BlobStore, posted: PostedRoot) -> str:
    """Fetch, check and load the document of a posted root, inside the caller's transaction.

    Returns:
        The status recorded: `loaded`, `rejected`, or `pending` (the store cannot serve it now).
    """
    known = conn.execute(
        select(
            reward_documents.c.root, reward_documents.c.status, reward_documents.c.tx_hash
        ).where(reward_documents.c.epoch == posted.epoch)
    ).first()
    if (
        known is not None
        and known.status != PENDING
        and (known.root, known.tx_hash)
        == (
            posted.root,
            posted.tx_hash,
        )
    ):
        return str(known.status)
    try:
        raw = store.get(posted.cid)
    except (InvalidCid, BlobCorrupted, BlobCidMismatch, BlobUnsupported) as exc:
        _record(conn, posted, REJECTED, "cid-mismatch", str(exc))
        return REJECTED
    except BlobStoreError as exc:
        _record(conn, posted, PENDING, "content-unavailable", str(exc))
        log.warning("rewards epoch %d document pending: %s", posted.epoch, exc)
        return PENDING
    try:
        doc = parse_document(raw, posted.cid)
    except InvalidAllocation as exc:
        _record(conn, posted, REJECTED, "invalid-document", exc.reason)
        return REJECTED
    root = None if doc.root is None else "0x" + doc.root.hex()
    if (doc.epoch, root, doc.total) != (posted.epoch, posted.root, posted.total):
        _record(
            conn,
            posted,
            REJECTED,
            "header-mismatch",
            f"the document has (epoch, root, total) {(doc.epoch, root, doc.total)}, posted "
            f"{(posted.epoch, posted.root, posted.total)}",
        )
        return REJECTED
    header = json.dumps(doc.header, separators=(",", ":"), sort_keys=True)
    _record(
        conn,
        posted,
        LOADED,
        None,
        None,
        len(doc.vehicles),
        str(doc.header.get("pointsVersion", "")) or None,
        header,
    )
    insert_rows(
        conn,
        reward_allocations,
        [
            {
                "epoch": doc.epoch,
                "vehicle_id": vehicle,
                "amount": int(entry["amount"]),
                "points": int(entry["points"]),
                "proof": json.dumps(entry["proof"], separators=(",", ":")),
                "inputs": json.dumps(entry["inputs"], separators=(",", ":"), sort_keys=True),
            }
            for vehicle, entry in doc.vehicles.items()
        ],
    )
    return LOADED


def rollback_documents_after(conn: Connection, block_number: int) -> list[int]:
    """Delete the documents posted above `block_number`; returns their epochs."""
    epochs = [
        int(r[0])
        for r in conn.execute(
            select(reward_documents.c.epoch).where(reward_documents.c.block_number > block_number)
        )
    ]
    if epochs:
        conn.execute(delete(reward_allocations).where(reward_allocations.c.epoch.in_(epochs)))
        conn.execute(delete(reward_documents).where(reward_documents.c.epoch.in_(epochs)))
    return epochs


def undecided(conn: Connection) -> list[PostedRoot]:
    """Posted roots whose document is pending, or missing (its post was replayed by a reorg)."""
    e, d = s.reward_epochs, reward_documents
    rows = conn.execute(
        select(e.c.epoch, e.c.root, e.c.total, e.c.cid, e.c.block_number, e.c.tx_hash)
        .outerjoin(d, d.c.epoch == e.c.epoch)
        .where((d.c.epoch.is_(None)) | (d.c.status == PENDING) | (d.c.tx_hash != e.c.tx_hash))
        .order_by(e.c.epoch)
    )
    return [
        PostedRoot.from_args(
            {"epoch": r.epoch, "root": r.root, "total": r.total, "cid": r.cid},
            int(r.block_number),
            r.tx_hash,
        )
        for r in rows
    ]
