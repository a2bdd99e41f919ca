"""The indexer's database: one SQLAlchemy MetaData every table module attaches to, and engines.

SQLite (WAL) is the embedded default; PostgreSQL comes by URL (`postgresql+psycopg://...`).
Table modules: `indexer.schema` (chain state: identity, rights, market, governance,
checkpoints) and `indexer.telemetry` (anchored batches and verified readings).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Engine, MetaData, Table, create_engine, event

if TYPE_CHECKING:
    import psycopg

#: Every indexer table belongs to this MetaData (Alembic's target_metadata).
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`; SQLite gets WAL, synchronous=NORMAL, a busy timeout, 64 MiB of
    page cache per connection and a checkpoint every 10,000 WAL pages (40 MiB) rather than
    1,000: a backfill's random-key index pages are then copied back and synced ten times
    less often."""
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.execute("PRAGMA cache_size=-65536")  # 64 MiB: bulk index inserts stay in memory
            cur.execute("PRAGMA wal_autocheckpoint=10000")
            cur.close()

    return engine


def insert_rows(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    ignore_conflicts: bool = False,
) -> None:
    """Bulk-insert `rows` into `table` in the caller's transaction, with the least overhead.

    Args:
        conn: A connection inside a transaction.
        table: The target table.
        rows: One mapping per row, keyed by column name; a missing key is NULL.
        ignore_conflicts: Skip rows whose primary or unique key is already there.
    """
    if not rows:
        return
    names = tuple(c.name for c in table.columns)
    values = [tuple(map(row.get, names)) for row in rows]
    insert_tuples(conn, table, names, values, ignore_conflicts=ignore_conflicts)


def insert_tuples(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    values: Sequence[tuple[Any, ...]],
    *,
    ignore_conflicts: bool = False,
) -> None:
    """Bulk-insert rows given as tuples in `columns` order (see `insert_rows`).

    Values go through each column type's bind processing, as `conn.execute(insert(...))`
    would. PostgreSQL gets `COPY ... FROM STDIN` (into a temporary table first when conflicts
    are ignored, then `INSERT ... SELECT ... ON CONFLICT DO NOTHING`); SQLite gets one
    executemany of a prepared `INSERT [OR IGNORE]`.

    Args:
        conn: A connection inside a transaction.
        table: The target table.
        columns: Column names, in the order of each tuple; columns left out are NULL.
        values: The rows.
        ignore_conflicts: Skip rows whose primary or unique key is already there.
    """
    if not values:
        return
    dialect = conn.dialect
    procs = [(i, table.c[n].type.bind_processor(dialect)) for i, n in enumerate(columns)]
    needed = [(i, p) for i, p in procs if p is not None]
    if needed:
        out = []
        for value in values:
            fixed = list(value)
            for i, proc in needed:
                fixed[i] = proc(fixed[i])
            out.append(tuple(fixed))
        values = out
    cols = ", ".join(f'"{n}"' for n in columns)
    if dialect.name == "postgresql":
        dbapi = cast("psycopg.Connection[Any]", conn.connection.dbapi_connection)
        with dbapi.cursor() as cur:
            target = table.name
            if ignore_conflicts:
                target = f"_in_{table.name}"
                cur.execute(
                    f'CREATE TEMP TABLE IF NOT EXISTS "{target}" '
                    f'(LIKE "{table.name}" INCLUDING DEFAULTS) ON COMMIT DELETE ROWS'
                )
            with cur.copy(f'COPY "{target}" ({cols}) FROM STDIN') as copy:
                for value in values:
                    copy.write_row(value)
            if ignore_conflicts:
                cur.execute(
                    f'INSERT INTO "{table.name}" ({cols}) SELECT {cols} FROM "{target}" '
                    "ON CONFLICT DO NOTHING"
                )
                cur.execute(f'DELETE FROM "{target}"')
        return
    marks = (
        ", ".join("?" for _ in columns)
        if dialect.paramstyle == "qmark"
        else ", ".join("%s" for _ in columns)
    )
    verb = "INSERT OR IGNORE" if ignore_conflicts and dialect.name == "sqlite" else "INSERT"
    conn.exec_driver_sql(f'{verb} INTO "{table.name}" ({cols}) VALUES ({marks})', values)
