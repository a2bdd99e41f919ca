"""Settlement payments in the index: `SettlementPaid` and `SettlementCredited` projected, and
rolled back by a reorg to the state of a clean sync of the new chain."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from indexer import schema as s
from protocol.privileges import Privilege
from tests.conftest import TERMS_CID, vin_commitment

_spec = importlib.util.spec_from_file_location(
    "idx_sync_helpers", Path(__file__).with_name("test_sync.py")
)
assert _spec is not None
assert _spec.loader is not None
h = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(h)

PRICE = 10**18


@pytest.fixture(params=["sqlite", "postgresql"])
def new_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], str]]:
    cleanups: list[Callable[[], None]] = []

    def _make() -> str:
        url, drop = h.fresh_db(str(request.param), tmp_path)
        cleanups.append(drop)
        return url

    yield _make
    for drop in cleanups:
        drop()


def _payments(engine: Any, product: int) -> tuple[list[Any], list[Any]]:
    """The indexed payments and credits through `product` (other tests' may share the chain)."""
    sp, sc = s.settlement_payments, s.settlement_credits
    with engine.connect() as conn:
        paid = conn.execute(select(sp).where(sp.c.product_id == product)).all()
        credits = conn.execute(
            select(sc).where(sc.c.product_id == product).order_by(sc.c.log_index)
        ).all()
    return paid, credits


def test_a_paid_settlement_is_indexed_and_a_reorg_replaces_it_with_the_new_branchs(
    data_market: Any,
    parameters: Any,
    vehicle_id: Any,
    token: Any,
    admin: Any,
    owner: Any,
    buyer: Any,
    curator: Any,
    rpc_url: str,
    deployment_record: Path,
    new_db: Callable[[], str],
) -> None:
    from ape import chain

    grid = parameters.FEATURE_GRID_PROGRAMMES()
    product = int(
        data_market.listProduct(
            int(Privilege.CHARGING), PRICE, 86_400, TERMS_CID, sender=curator
        ).return_value
    )
    cars = []
    for i in range(2):
        vin = vin_commitment(f"SETTLE{product:05d}{i:06d}")
        tx = vehicle_id.mint("Hyundai", "Kona Electric", 2019, vin, sender=owner)
        cars.append(int(tx.return_value))
        data_market.optIn(cars[-1], product, sender=owner)
    token.mint(buyer, 100 * PRICE, sender=admin)
    token.approve(data_market, 100 * PRICE, sender=buyer)
    data_market.buy(product, 1, sender=buyer)
    parameters.setFlag(grid, True, sender=admin)
    try:
        url = new_db()
        engine = h.sync_all(url, rpc_url, deployment_record)
        snapshot = chain.snapshot()
        # Branch A: settlement A pays both cars.
        tx = data_market.paySettlement(product, b"\xaa" * 32, cars, [5, 7], sender=buyer)
        h.sync_all(url, rpc_url, deployment_record)
        paid, credits = _payments(engine, product)
        assert [(p.payer, p.settlement_id, p.product_id, p.vehicles, p.total) for p in paid] == [
            (buyer.address.lower(), "0x" + "aa" * 32, product, 2, 12)
        ]
        assert paid[0].tx_hash == str(tx.txn_hash).lower()
        assert [(c.vehicle_id, c.amount, c.settlement_id) for c in credits] == [
            (cars[0], 5, "0x" + "aa" * 32),
            (cars[1], 7, "0x" + "aa" * 32),
        ]
        chain.restore(snapshot)
        # Branch B: settlement B pays the second car only, on a longer chain.
        data_market.paySettlement(product, b"\xbb" * 32, cars[1:], [9], sender=buyer)
        chain.mine(3)
        h.sync_all(url, rpc_url, deployment_record)
        clean = h.sync_all(new_db(), rpc_url, deployment_record)
        assert h.dump(engine) == h.dump(clean)
        paid, credits = _payments(engine, product)
        assert [(p.settlement_id, p.total) for p in paid] == [("0x" + "bb" * 32, 9)]
        assert [(c.vehicle_id, c.amount) for c in credits] == [(cars[1], 9)]
    finally:
        parameters.setFlag(grid, False, sender=admin)
