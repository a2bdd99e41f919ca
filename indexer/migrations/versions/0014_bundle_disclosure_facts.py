"""Each indexed bundle keeps what a disclosure decision needs of it (issue 21).

A reading's proof is served only after `indexer.disclosure.decide` has settled what the caller
may see of the reading's bundle, and that took every reading time of every signal of the
bundle, decoded from its wire form for each proof (two CBOR decodes: about a tenth of a proof
query's server CPU, profiled under load). The bundle's schema and each signal's first and
last reading time (`BundleFacts`) settle it for a caller whose rights hold them in one
interval; the loader now stores them with the bundle. This adds the column and fills it for
the bundles loaded before, from their wire forms, a thousand rows a statement.

Revision ID: 0014_bundle_disclosure_facts
Revises: 0013_readings_covering_index
Create Date: 2026-12-06
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

from indexer.disclosure import BundleFacts

revision = "0014_bundle_disclosure_facts"
down_revision = "0013_readings_covering_index"
branch_labels = None
depends_on = None

log = logging.getLogger(__name__)

TABLE = "bundles_index"
COLUMN = "disclosure"
#: Rows read and written per round of the backfill.
CHUNK = 1000


def _has_column() -> bool:
    return COLUMN in {c["name"] for c in sa.inspect(op.get_bind()).get_columns(TABLE)}


def upgrade() -> None:
    """Adds the column (a database made from the current schema has it) and fills it where it
    is empty."""
    if not _has_column():
        op.add_column(
            TABLE,
            sa.Column(
                COLUMN,
                sa.Text(),
                nullable=True,
                comment="what a disclosure decision needs of the bundle "
                "(indexer.disclosure.BundleFacts, JSON); null: read from the wire",
            ),
        )
    bind = op.get_bind()
    after = (-1, -1)
    while True:
        rows = bind.execute(
            sa.text(
                # A row comparison, which a B-tree on the key serves (an OR of the two
                # conditions would make each round scan from the start).
                f"SELECT batch_id, leaf_index, wire FROM {TABLE} WHERE {COLUMN} IS NULL AND "
                "(batch_id, leaf_index) > (:b, :i) ORDER BY batch_id, leaf_index LIMIT :n"
            ),
            {"b": after[0], "i": after[1], "n": CHUNK},
        ).all()
        if not rows:
            return
        filled = [
            {"f": facts, "b": batch, "i": leaf}
            for batch, leaf, wire in rows
            if (facts := _facts(bytes(wire))) is not None
        ]
        if filled:
            bind.execute(
                sa.text(
                    f"UPDATE {TABLE} SET {COLUMN} = :f WHERE batch_id = :b AND leaf_index = :i"
                ),
                filled,
            )
        after = (rows[-1][0], rows[-1][1])


def _facts(wire: bytes) -> str | None:
    """The stored facts of a wire form; None (the column left empty, so that a proof of it
    fails as before, with its decoding error) for one that does not decode."""
    try:
        return BundleFacts.of_wire(wire).encode()
    except ValueError as exc:  # MalformedBundleError and its kind are ValueErrors
        log.warning("bundle facts not stored: %s", exc)
        return None


def downgrade() -> None:
    """Drops the column."""
    if _has_column():
        with op.batch_alter_table(TABLE) as batch:
            batch.drop_column(COLUMN)
