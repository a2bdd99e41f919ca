"""The syncer loads anchored batches as it meets their `BatchAnchored` events (real anvil).

Pairings are checked against the pairings the same sync indexed; a batch whose content is not
in the store yet is pending and is decided once it is; a reorg removes the batches of the
orphaned blocks. Every case ends equal to a clean sync. SQLite and PostgreSQL.
"""

# The fixtures come from the loader tests; their names are parameters here by design.
# ruff: noqa: F811

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from sqlalchemy import Engine, select

from indexer.config import IndexerSettings
from indexer.sync import Syncer
from indexer.telemetry import (
    STATUS_LOADED,
    STATUS_PENDING,
    STATUS_REJECTED,
    batches,
    bundles_index,
    readings,
    readings_text,
    signals,
)
from protocol.blobstore import LocalCidStore
from protocol.eip712 import Eip712Domain
from tests.indexer.test_loader import (  # fixtures are shared with the loader tests
    Anchored,
    anchor_bundles,  # noqa: F401
    deployment,  # noqa: F401
    domain,  # noqa: F401
    expected_rows,
    fleet,  # noqa: F401
    mixed_samples,
    now_ms,  # noqa: F401
    store,  # noqa: F401
    windowed_bundles,
)
from tests.indexer.test_sync import fresh_db

Fleet = tuple[list[tuple[int, LocalAccount]], int]
TELEMETRY = (batches, bundles_index, readings, readings_text, signals)


@pytest.fixture(params=["sqlite", "postgresql"])
def new_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], str]]:
    """Makes fresh migrated databases; drops them afterwards."""
    drops: list[Callable[[], None]] = []

    def _make() -> str:
        url, drop = fresh_db(str(request.param), tmp_path)
        drops.append(drop)
        return url

    yield _make
    for drop in drops:
        drop()


def sync(url: str, rpc_url: str, deployment_record: Path, store: LocalCidStore) -> Syncer:
    """Backfills `url` to the head with batches fetched from `store`."""
    settings = IndexerSettings(
        database_url=url, rpc_url=rpc_url, deployment=deployment_record, pending_retry_s=0
    )
    syncer = Syncer(settings, store=store)
    try:
        syncer.backfill()
    finally:
        syncer.close()
    return syncer


def dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {t.name: sorted(tuple(r) for r in conn.execute(select(t))) for t in TELEMETRY}


def status_of(engine: Engine, batch_id: int) -> tuple[str, str | None]:
    with engine.connect() as conn:
        row = conn.execute(select(batches).where(batches.c.id == batch_id)).one()
    return row.status, row.reason


def stored(engine: Engine, batch_id: int) -> tuple[set[tuple[Any, ...]], set[tuple[Any, ...]]]:
    out = []
    with engine.connect() as conn:
        for table in (readings, readings_text):
            q = (
                select(
                    table.c.vehicle_id,
                    signals.c.name,
                    table.c.ts,
                    table.c.value,
                    table.c.batch_id,
                    table.c.leaf_index,
                )
                .join(signals, signals.c.id == table.c.signal)
                .where(table.c.batch_id == batch_id)
            )
            out.append({tuple(r) for r in conn.execute(q)})
    return out[0], out[1]


def test_sync_loads_each_anchored_batch_and_rejects_one_from_an_unpaired_device(
    fleet: Fleet,
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    store: LocalCidStore,
    rpc_url: str,
    deployment_record: Path,
    new_db: Callable[[], str],
) -> None:
    (car_a, key_a), (car_b, _key_b) = fleet[0]
    t0 = fleet[1]
    good = anchor_bundles(windowed_bundles(key_a, car_a, mixed_samples(t0), domain))
    # Device A signs for vehicle B, to which it was never paired.
    bad = anchor_bundles(windowed_bundles(key_a, car_b, mixed_samples(t0, 60), domain))
    engine = sync(new_db(), rpc_url, deployment_record, store).engine
    assert status_of(engine, good.batch.id) == (STATUS_LOADED, None)
    assert stored(engine, good.batch.id) == expected_rows(good)
    assert status_of(engine, bad.batch.id) == (STATUS_REJECTED, "device-not-paired")
    assert stored(engine, bad.batch.id) == (set(), set())
    clean = sync(new_db(), rpc_url, deployment_record, store).engine
    assert dump(engine) == dump(clean)


def test_a_batch_whose_content_is_missing_is_pending_then_loaded_when_it_arrives(
    fleet: Fleet,
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    store: LocalCidStore,
    rpc_url: str,
    deployment_record: Path,
    new_db: Callable[[], str],
    tmp_path: Path,
) -> None:
    (car_a, key_a), _ = fleet[0]
    anchored = anchor_bundles(windowed_bundles(key_a, car_a, mixed_samples(fleet[1]), domain))
    empty = LocalCidStore(tmp_path / "late-blobs")
    url = new_db()
    engine = sync(url, rpc_url, deployment_record, empty).engine
    assert status_of(engine, anchored.batch.id) == (STATUS_PENDING, "content-unavailable")
    assert stored(engine, anchored.batch.id) == (set(), set())
    empty.put(store.get(anchored.batch.cid))
    sync(url, rpc_url, deployment_record, empty)
    assert status_of(engine, anchored.batch.id) == (STATUS_LOADED, None)
    clean = sync(new_db(), rpc_url, deployment_record, store).engine
    assert dump(engine) == dump(clean)


def test_a_reorg_removes_the_orphaned_blocks_batches_and_loads_the_new_branchs(
    fleet: Fleet,
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    store: LocalCidStore,
    rpc_url: str,
    deployment_record: Path,
    new_db: Callable[[], str],
) -> None:
    from ape import chain

    (car_a, key_a), (car_b, key_b) = fleet[0]
    t0 = fleet[1]
    url = new_db()
    syncer = sync(url, rpc_url, deployment_record, store)
    snapshot = chain.snapshot()
    orphan = anchor_bundles(windowed_bundles(key_a, car_a, mixed_samples(t0), domain))
    sync(url, rpc_url, deployment_record, store)
    assert status_of(syncer.engine, orphan.batch.id) == (STATUS_LOADED, None)
    chain.restore(snapshot)
    chain.mine(2)
    replacement = anchor_bundles(windowed_bundles(key_b, car_b, mixed_samples(t0, 90), domain))
    assert replacement.batch.id == orphan.batch.id
    sync(url, rpc_url, deployment_record, store)
    assert stored(syncer.engine, replacement.batch.id) == expected_rows(replacement)
    clean = sync(new_db(), rpc_url, deployment_record, store).engine
    assert dump(syncer.engine) == dump(clean)
