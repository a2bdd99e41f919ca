"""Chain sync on real anvil: the synced database equals the chain's view calls; a sync killed
with SIGKILL mid-backfill and restarted ends where a clean sync ends (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, select, text

from indexer import schema as s
from indexer.config import IndexerSettings
from indexer.db import make_engine
from indexer.migrate import upgrade
from indexer.sync import StepResult, Syncer

PG_URL = os.environ.get("DIMO_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ROOT = Path(__file__).resolve().parents[2]
TERMS = bytes.fromhex("01551220") + b"\x07" * 32
PRICE = 10**18
ZERO = "0x" + "00" * 20


def fresh_db(kind: str, tmp_path: Path) -> tuple[str, Callable[[], None]]:
    """A migrated empty database URL (SQLite file or fresh PostgreSQL schema) and its cleanup."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / f'idx-{secrets.token_hex(4)}.db'}"
        upgrade(url)
        return url, lambda: None
    schema = f"idx_test_{secrets.token_hex(6)}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    upgrade(url)

    def _drop() -> None:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()

    return url, _drop


@pytest.fixture(params=["sqlite", "postgresql"])
def db_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def new_db(db_kind: str, tmp_path: Path) -> Iterator[Callable[[], str]]:
    """Makes fresh migrated databases of the parametrized kind; drops them afterwards."""
    cleanups: list[Callable[[], None]] = []

    def _make() -> str:
        url, drop = fresh_db(db_kind, tmp_path)
        cleanups.append(drop)
        return url

    yield _make
    for drop in cleanups:
        drop()


def settings_for(url: str, rpc_url: str, deployment: Path, **extra: Any) -> IndexerSettings:
    return IndexerSettings(database_url=url, rpc_url=rpc_url, deployment=deployment, **extra)


def sync_all(url: str, rpc_url: str, deployment: Path, **extra: Any) -> Engine:
    """Backfills `url` to the head; returns an engine on it."""
    syncer = Syncer(settings_for(url, rpc_url, deployment, **extra))
    try:
        syncer.backfill()
    finally:
        syncer.close()
    return syncer.engine


def dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every event and projection row, sorted (what two equal syncs must agree on)."""
    out = {}
    with engine.connect() as conn:
        for table in (s.events, *s.PROJECTIONS):
            rows = conn.execute(select(table)).all()
            out[table.name] = sorted(tuple(r) for r in rows)
    return out


def scenario(platform: dict[str, Any], accounts: Any, n: int, paired: Callable[..., Any]) -> None:
    """Mint, claim, pair, transfer, grant, revoke, list, opt in/out, buy."""
    admin, owner, other, stranger, buyer = (accounts[i] for i in (0, 2, 3, 4, 6))
    vehicles = platform["VehicleId"]
    rights = platform["VehicleRights"]
    market = platform["DataMarket"]
    token = platform["DimoToken"]
    v1, _ = paired(n)
    v2, _ = paired(n + 1)
    v3, _ = paired(n + 2)
    vehicles.transferFrom(owner, other, v2, sender=owner)  # unpairs v2's device
    rights.grant(v1, stranger, 0b1111, 2**40, TERMS, sender=owner)
    rights.grant(v1, buyer, 0b1, 2**40, TERMS, sender=owner)
    rights.grant(v1, buyer, 0b11, 2**40, TERMS, sender=owner)  # replaces
    rights.grant(v3, stranger, 0b10, 2**40, TERMS, sender=owner)
    rights.revoke(v3, stranger, sender=owner)
    rights.grant(v3, other, 0b100, 2**40, TERMS, sender=owner)
    vehicles.transferFrom(owner, other, v3, sender=owner)  # voids v3's grants
    market.grantRole(market.CURATOR_ROLE(), admin, sender=admin)
    product = int(market.listProduct(0b11, PRICE, 3600, TERMS, sender=admin).return_value)
    market.optIn(v1, product, sender=owner)
    market.optIn(v2, product, sender=other)
    market.optOut(v2, product, sender=other)
    token.mint(buyer, 10 * PRICE, sender=admin)
    token.approve(market, 10 * PRICE, sender=buyer)
    market.buy(product, 2, sender=buyer)
    market.buy(product, 1, sender=buyer)


def assert_matches_chain(engine: Engine, platform: dict[str, Any], accounts: Any) -> None:
    """Every vehicle, device, grant and licence in the database equals the chain's view."""
    from ape import chain

    vehicles = platform["VehicleId"]
    devices = platform["DeviceId"]
    rights = platform["VehicleRights"]
    market = platform["DataMarket"]
    now = int(chain.blocks.head.timestamp)
    people = [a.address.lower() for a in list(accounts)[:10]]
    with engine.connect() as conn:
        vrows = conn.execute(
            select(s.vehicles, s.models.c.make, s.models.c.model).join(
                s.models, s.models.c.id == s.vehicles.c.model_id
            )
        ).all()
        assert len(vrows) == vehicles.lastVehicleId()
        epochs = {}
        for v in vrows:
            make, model, year, device = vehicles.vehicleOf(v.id)
            owner, epoch = vehicles.ownerAndEpochOf(v.id)
            assert (v.make, v.model, v.year) == (make, model, year)
            assert (v.device or ZERO) == device.lower()
            assert (v.owner, v.epoch) == (owner.lower(), epoch)
            epochs[v.id] = v.epoch
        drows = conn.execute(select(s.devices)).all()
        assert drows
        for d in drows:
            _, vehicle_id, _, paired_since = devices.deviceInfo(d.address)
            assert d.owner == devices.ownerOf(int(d.address, 16)).lower()
            assert (d.vehicle_id or 0, d.paired_since or 0) == (vehicle_id, paired_since)
            open_pairings = [
                p
                for p in conn.execute(
                    select(s.pairings).where(s.pairings.c.device == d.address)
                ).all()
                if p.unpaired_block is None
            ]
            assert [p.vehicle_id for p in open_pairings] == ([vehicle_id] if vehicle_id else [])
        grants = {(g.vehicle_id, g.grantee): g for g in conn.execute(select(s.grants)).all()}
        for vid in epochs:
            for person in people:
                g = grants.get((vid, person))
                live = g is not None and g.expiry > now and g.epoch == epochs[vid]
                expected = (g.scopes, g.expiry) if live and g is not None else (0, 0)
                assert tuple(rights.privilegesOf(vid, person)) == expected
        licences = {(r.buyer, r.product_id): r.expiry for r in conn.execute(select(s.licences))}
        for product in range(1, market.lastProductId() + 1):
            for person in people:
                assert market.licenceOf(person, product) == licences.get((person, product), 0)


def test_synced_database_equals_the_chains_view_calls(
    platform: dict[str, Any],
    accounts: Any,
    paired_vehicle: Callable[..., Any],
    rpc_url: str,
    deployment_record: Path,
    new_db: Callable[[], str],
    db_kind: str,
) -> None:
    scenario(platform, accounts, 61_000 if db_kind == "sqlite" else 61_100, paired_vehicle)
    engine = sync_all(new_db(), rpc_url, deployment_record, initial_range=7, max_range=50)
    assert_matches_chain(engine, platform, accounts)
    with engine.connect() as conn:
        reasons = {r.reason for r in conn.execute(select(s.pairings))}
        ended = {r.end_reason for r in conn.execute(select(s.grant_history))}
        opt_outs = conn.execute(
            select(s.opt_ins).where(s.opt_ins.c.opted_out_block.is_not(None))
        ).all()
    assert "vehicle-transferred" in reasons
    assert {"replaced", "revoked"} <= ended
    assert opt_outs


def test_syncing_twice_changes_nothing(
    platform: dict[str, Any], rpc_url: str, deployment_record: Path, new_db: Callable[[], str]
) -> None:
    url = new_db()
    first = dump(sync_all(url, rpc_url, deployment_record))
    engine = make_engine(url)
    with engine.begin() as conn:  # replay the whole history over the same rows
        conn.execute(s.sync_state.update().values(last_block=-1, last_hash=""))
    assert dump(sync_all(url, rpc_url, deployment_record)) == first


def test_a_small_log_budget_shrinks_the_ranges_and_indexes_the_same_rows(
    platform: dict[str, Any], rpc_url: str, deployment_record: Path, new_db: Callable[[], str]
) -> None:
    """`target_logs` cuts the next range when one returns more logs than the budget; the
    smaller, prefetched ranges must index exactly what one large range does."""
    whole = dump(sync_all(new_db(), rpc_url, deployment_record, initial_range=10**6))
    syncer = Syncer(
        settings_for(new_db(), rpc_url, deployment_record, initial_range=8, target_logs=5)
    )
    steps: list[StepResult] = []
    try:
        syncer.backfill(progress=lambda step, _goal: steps.append(step))
    finally:
        syncer.close()
    assert sum(step.events for step in steps) == len(whole["events"])
    assert any(step.to_block - step.from_block + 1 < 8 for step in steps[1:-1])
    assert dump(syncer.engine) == whole


def test_worker_processes_prefetching_index_the_same_rows_and_replay_in_full(
    platform: dict[str, Any], rpc_url: str, deployment_record: Path, new_db: Callable[[], str]
) -> None:
    """With `prefetch_process_logs=1` the first range moves prefetching to worker processes,
    which send back only the entities they did not fold; the rows must equal a one-range
    sync's, and replaying the history over them (which needs every key's events) too."""
    whole = dump(sync_all(new_db(), rpc_url, deployment_record, initial_range=10**6))
    url = new_db()
    settings = settings_for(
        url, rpc_url, deployment_record, initial_range=4, max_range=4, prefetch_process_logs=1
    )
    syncer = Syncer(settings)
    steps: list[StepResult] = []
    try:
        syncer.backfill(progress=lambda step, _goal: steps.append(step))
        assert syncer._workers is not None, "the worker processes never started"
    finally:
        syncer.close()
    assert syncer._workers is None
    assert sum(step.events for step in steps) == len(whole["events"])
    assert dump(syncer.engine) == whole
    with syncer.engine.begin() as conn:  # replay the whole history over the same rows
        conn.execute(s.sync_state.update().values(last_block=-1, last_hash=""))
    again = Syncer(settings)
    try:
        again.backfill()
    finally:
        again.close()
    assert dump(again.engine) == whole


def test_a_sync_killed_mid_backfill_resumes_to_the_state_of_a_clean_sync(
    platform: dict[str, Any],
    accounts: Any,
    paired_vehicle: Callable[..., Any],
    rpc_url: str,
    deployment_record: Path,
    new_db: Callable[[], str],
    db_kind: str,
) -> None:
    scenario(platform, accounts, 62_000 if db_kind == "sqlite" else 62_100, paired_vehicle)
    from ape import chain

    head = int(chain.blocks.head.number)
    url = new_db()
    env = {
        **os.environ,
        # Test-only hook: sleep after each committed range so the kill lands mid-backfill.
        "DIMO_INDEXER_TEST_SLEEP_BETWEEN_RANGES_S": "0.2",
        "DIMO_INDEXER_INITIAL_RANGE": "3",
        "DIMO_INDEXER_MAX_RANGE": "3",
    }
    cmd = [sys.executable, "-m", "indexer.cli", "sync", "--database-url", url]
    cmd += ["--rpc-url", rpc_url, "--deployment", str(deployment_record)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    engine = make_engine(url)
    try:
        last = -1
        while last < head // 3:
            assert proc.poll() is None, "the sync ended before it could be killed"
            with engine.connect() as conn:
                last = conn.execute(select(s.sync_state.c.last_block)).scalar() or -1
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    with engine.connect() as conn:
        stopped_at = conn.execute(select(s.sync_state.c.last_block)).scalar()
    assert stopped_at is not None
    assert stopped_at < head
    resumed = subprocess.run(
        [*cmd[:3], *cmd[3:]], cwd=ROOT, env=dict(os.environ), capture_output=True, check=False
    )
    assert resumed.returncode == 0, resumed.stderr.decode()
    clean = sync_all(new_db(), rpc_url, deployment_record)
    assert dump(engine) == dump(clean)
    assert_matches_chain(engine, platform, accounts)
