"""Reorgs on real anvil: index a branch, revert it with evm_snapshot/evm_revert, mine a
different branch, sync again: the database equals a clean sync of the new chain."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from indexer import schema as s

_spec = importlib.util.spec_from_file_location(
    "idx_sync_helpers", Path(__file__).with_name("test_sync.py")
)
assert _spec is not None
assert _spec.loader is not None
h = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(h)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def new_db(db_kind: str, tmp_path: Path) -> Iterator[Callable[[], str]]:
    cleanups: list[Callable[[], None]] = []

    def _make() -> str:
        url, drop = h.fresh_db(db_kind, tmp_path)
        cleanups.append(drop)
        return url

    yield _make
    for drop in cleanups:
        drop()


def test_a_reorged_branch_rolls_back_to_the_state_of_a_clean_sync_of_the_new_chain(
    platform: dict[str, Any],
    accounts: Any,
    paired_vehicle: Callable[..., Any],
    rpc_url: str,
    deployment_record: Path,
    new_db: Callable[[], str],
    db_kind: str,
) -> None:
    from ape import chain

    base = 63_000 if db_kind == "sqlite" else 63_100
    owner, other, stranger = accounts[2], accounts[3], accounts[4]
    rights = platform["VehicleRights"]
    vehicles = platform["VehicleId"]
    url = new_db()
    h.sync_all(url, rpc_url, deployment_record)
    snapshot = chain.snapshot()
    # Branch A: a vehicle paired, granted and transferred.
    va, _ = paired_vehicle(base)
    rights.grant(va, stranger, 0b11, 2**40, h.TERMS, sender=owner)
    vehicles.transferFrom(owner, other, va, sender=owner)
    engine = h.sync_all(url, rpc_url, deployment_record)
    with engine.connect() as conn:
        branch_a = conn.execute(select(s.vehicles.c.id).where(s.vehicles.c.id == va)).all()
    assert branch_a
    chain.restore(snapshot)
    # Branch B: other vehicles and rights, and a longer chain.
    vb, _ = paired_vehicle(base + 1)
    paired_vehicle(base + 2)
    rights.grant(vb, other, 0b100, 2**40, h.TERMS, sender=owner)
    chain.mine(3)
    h.sync_all(url, rpc_url, deployment_record)
    clean = h.sync_all(new_db(), rpc_url, deployment_record)
    assert h.dump(engine) == h.dump(clean)
    h.assert_matches_chain(engine, platform, accounts)
    with engine.connect() as conn:
        grants = conn.execute(select(s.grants).where(s.grants.c.vehicle_id == va)).all()
        owner_of_va = conn.execute(select(s.vehicles.c.owner).where(s.vehicles.c.id == va)).scalar()
    assert va == vb  # the same id was minted on both branches, to different effect
    assert grants == [] or all(g.grantee != stranger.address.lower() for g in grants)
    assert owner_of_va == owner.address.lower()
