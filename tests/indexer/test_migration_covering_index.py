"""Migration 0013: the readings' series index covers batch and leaf, so ranked series and a
proof's sources are index-only scans on PostgreSQL."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, insert, text

from indexer.db import make_engine
from indexer.migrate import downgrade, upgrade
from indexer.queries import _series_sql
from indexer.telemetry import readings

PG_URL = os.environ.get("DIMO_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
INDEX = "ix_readings_vehicle_id_signal_ts"


@pytest.fixture
def pg_url() -> Iterator[str]:
    schema = f"mig_test_{secrets.token_hex(6)}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def _definition(url: str) -> str:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return str(
                conn.execute(
                    text(
                        "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                        "AND indexname = :n"
                    ),
                    {"n": INDEX},
                ).scalar_one()
            )
    finally:
        engine.dispose()


def test_a_database_made_before_gets_the_covering_index_and_gives_it_back(pg_url: str) -> None:
    upgrade(pg_url, "0012_vehicle_credentials")
    engine = make_engine(pg_url)
    with engine.begin() as conn:  # the index as revisions up to 0012 made it
        conn.execute(text(f"DROP INDEX {INDEX}"))
        conn.execute(
            text(f"CREATE INDEX {INDEX} ON readings (vehicle_id, signal, ts) INCLUDE (value)")
        )
    engine.dispose()
    upgrade(pg_url)
    assert "INCLUDE (value, batch_id, leaf_index)" in _definition(pg_url)
    downgrade(pg_url, "0012_vehicle_credentials")
    assert _definition(pg_url).endswith("INCLUDE (value)")
    upgrade(pg_url)
    assert "INCLUDE (value, batch_id, leaf_index)" in _definition(pg_url)


@pytest.mark.parametrize("aggregation", ["first", "last", "min", "max"])
def test_a_ranked_series_is_an_index_only_scan(pg_url: str, aggregation: str) -> None:
    upgrade(pg_url)
    engine = make_engine(pg_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(readings),
                [
                    {
                        "vehicle_id": v,
                        "signal": s,
                        "ts": 1_000 * k,
                        "value": float(k % 7),
                        "batch_id": 1,
                        "leaf_index": k // 10,
                    }
                    for v in range(1, 21)
                    for s in (1, 2)
                    for k in range(200)
                ],
            )
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE readings"))  # the visibility map index-only needs
        sql, _, fixed = _series_sql(engine.dialect, False, 1, aggregation, None)  # type: ignore[arg-type]
        params = {
            **fixed,
            "vehicle_id": 3,
            "sid_0": 1,
            "start_ms": 0,
            "end_ms": 200_000,
            "interval_ms": 10_000,
        }
        with engine.connect() as conn:
            conn.execute(text("SET enable_seqscan = off"))
            conn.execute(text("SET enable_bitmapscan = off"))
            dbapi = conn.connection.dbapi_connection
            assert dbapi is not None
            with dbapi.cursor() as cur:
                cur.execute("EXPLAIN " + sql, params)
                plan = "\n".join(str(row[0]) for row in cur.fetchall())
        assert f"Index Only Scan using {INDEX}" in plan, plan
    finally:
        engine.dispose()
