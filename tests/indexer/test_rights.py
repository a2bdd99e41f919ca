"""Read rights: coverage interval arithmetic (property tests against a set model), coverage from
ownership, grants and licences, and the facts read from an index synced from anvil, with their
cache (SQLite and PostgreSQL)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, event

from indexer.config import IndexerSettings
from indexer.db import make_engine
from indexer.exceptions import VehicleNotFound
from indexer.rights import (
    GrantFact,
    Intervals,
    LicencedOptIn,
    Ownership,
    RightsCache,
    RightsFacts,
    clip,
    contains,
    coverage_of,
    intersect,
    length,
    load_facts,
    normalize,
    signal_privilege,
    union,
)
from indexer.sync import Syncer
from protocol.blobstore import LocalCidStore
from protocol.privileges import Privilege
from tests.conftest import FAR_FUTURE, TERMS_CID
from tests.indexer.test_sync import fresh_db

SPEED = "Vehicle.Speed"
LAT = "Vehicle.CurrentLocation.Latitude"
SOC = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current"
A, B, C = ("0x" + c * 40 for c in "abc")
PRICE = 10**18

# -------------------------------------------------------------------------------------------
# interval arithmetic against a model: a set of integer instants
# -------------------------------------------------------------------------------------------

raw_intervals = st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60)), max_size=8)


def instants(intervals: Any) -> set[int]:
    return {t for a, b in intervals for t in range(a, b)}


def is_canonical(intervals: Intervals) -> bool:
    pairs = itertools.pairwise(intervals)
    return all(a < b for a, b in intervals) and all(x[1] < y[0] for x, y in pairs)


@given(raw_intervals)
def test_normalize_keeps_the_instants_in_canonical_form(ivs: list[tuple[int, int]]) -> None:
    got = normalize(ivs)
    assert instants(got) == instants(ivs)
    assert is_canonical(got)
    assert normalize(got) == got


@given(raw_intervals, raw_intervals)
def test_union_and_intersection_are_those_of_the_sets(
    a: list[tuple[int, int]], b: list[tuple[int, int]]
) -> None:
    na, nb = normalize(a), normalize(b)
    assert instants(union(a, b)) == instants(a) | instants(b)
    assert instants(intersect(na, nb)) == instants(a) & instants(b)
    assert is_canonical(union(a, b))
    assert is_canonical(intersect(na, nb))
    assert intersect(na, nb) == intersect(nb, na)


@given(raw_intervals, st.integers(-5, 65), st.integers(-5, 65))
def test_clip_keeps_the_instants_inside_the_range(
    ivs: list[tuple[int, int]], start: int, end: int
) -> None:
    got = clip(normalize(ivs), start, end)
    assert instants(got) == {t for t in instants(ivs) if start <= t < end}


@given(raw_intervals, st.integers(-5, 65))
def test_contains_and_length_agree_with_the_set(ivs: list[tuple[int, int]], t: int) -> None:
    n = normalize(ivs)
    assert contains(n, t) == (t in instants(ivs))
    assert length(n) == len(instants(ivs))


# -------------------------------------------------------------------------------------------
# coverage from facts
# -------------------------------------------------------------------------------------------


def facts(
    caller: str,
    ownerships: list[Ownership],
    grant: GrantFact | None = None,
    licences: tuple[LicencedOptIn, ...] = (),
    epoch: int | None = None,
) -> RightsFacts:
    return RightsFacts(
        7,
        caller,
        len(ownerships) - 1 if epoch is None else epoch,
        tuple(ownerships),
        grant,
        licences,
    )


OWNED = [Ownership(A, 1_000, 5_000), Ownership(B, 5_000, 9_000), Ownership(A, 9_000, None)]


def test_an_owner_covers_every_privilege_over_its_own_periods_only() -> None:
    cov = facts(A, OWNED).coverage(20_000)
    for p in Privilege:
        assert cov.of(p) == ((1_000, 5_000), (9_000, 20_000))
    assert cov.is_owner
    previous = facts(B, OWNED).coverage(20_000)
    assert previous.for_signal(SPEED) == ((5_000, 9_000),)
    assert not previous.is_owner
    assert not facts(C, OWNED).coverage(20_000).any()


def test_a_live_grant_covers_its_scopes_over_the_current_ownership_until_now() -> None:
    grant = GrantFact(int(Privilege.DRIVING | Privilege.BATTERY), 30, 2)
    cov = facts(C, OWNED, grant).coverage(20_000)
    assert cov.for_signal(SPEED) == ((9_000, 20_000),)
    assert cov.for_signal(SOC) == ((9_000, 20_000),)
    assert cov.for_signal(LAT) == ()  # location is its own privilege
    assert cov.of(Privilege.DRIVING | Privilege.BATTERY) == ((9_000, 20_000),)
    assert cov.of(Privilege.DRIVING | Privilege.LOCATION) == ()


def test_a_grant_is_void_from_its_expiry_and_in_a_later_epoch() -> None:
    grant = GrantFact(int(Privilege.DRIVING), 20, 2)
    assert facts(C, OWNED, grant).coverage(19_999).for_signal(SPEED) == ((9_000, 19_999),)
    assert facts(C, OWNED, grant).coverage(20_000).for_signal(SPEED) == ()
    earlier_epoch = GrantFact(int(Privilege.DRIVING), 30, 1)
    assert not facts(C, OWNED, earlier_epoch).coverage(20_000).any()


def test_a_live_licence_covers_the_opt_in_intervals_of_its_scopes() -> None:
    licences = (
        LicencedOptIn(1, int(Privilege.DRIVING), 40, 2_000, 4_000),
        LicencedOptIn(1, int(Privilege.DRIVING), 40, 8_000, None),
        LicencedOptIn(2, int(Privilege.LOCATION), 10, 1_000, None),
    )
    cov = facts(C, OWNED, None, licences).coverage(20_000)
    assert cov.for_signal(SPEED) == ((2_000, 4_000), (8_000, 20_000))
    assert cov.for_signal(LAT) == ()  # that licence expired at 10 s
    assert facts(C, OWNED, None, licences).coverage(5_000).for_signal(LAT) == ((1_000, 5_000),)
    assert not facts(C, OWNED, None, licences).coverage(40_000).any()


def test_rights_of_several_sources_add_up() -> None:
    licences = (LicencedOptIn(1, int(Privilege.DRIVING), 40, 2_000, 3_000),)
    grant = GrantFact(int(Privilege.DRIVING), 30, 2)
    cov = facts(B, OWNED, grant, licences).coverage(20_000)
    assert cov.for_signal(SPEED) == ((2_000, 3_000), (5_000, 20_000))
    assert cov.for_signal(LAT) == ((5_000, 9_000),)


def test_signals_take_their_catalog_privilege_and_others_need_raw() -> None:
    assert signal_privilege(SPEED) is Privilege.DRIVING
    assert signal_privilege(LAT) is Privilege.LOCATION
    assert signal_privilege("Vehicle.Private.Something") is Privilege.RAW
    grant = GrantFact(int(Privilege.RAW), 30, 2)
    assert facts(C, OWNED, grant).coverage(20_000).for_signal("Vehicle.X") == ((9_000, 20_000),)


# -------------------------------------------------------------------------------------------
# facts read from an index synced from the chain
# -------------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def index(
    request: pytest.FixtureRequest, tmp_path: Path, rpc_url: str, deployment_record: Path
) -> Iterator[tuple[Engine, Callable[[], None]]]:
    """A fresh index and a function that syncs it to the chain's head."""
    url, drop = fresh_db(str(request.param), tmp_path)
    engine = make_engine(url)
    settings = IndexerSettings(database_url=url, rpc_url=rpc_url, deployment=deployment_record)

    def sync() -> None:
        syncer = Syncer(settings, store=LocalCidStore(tmp_path / "blobs"))
        try:
            syncer.backfill()
        finally:
            syncer.close()

    try:
        yield engine, sync
    finally:
        engine.dispose()
        drop()


#: Vehicle and device numbers of this module (unique in the session, as the fleet's are).
_NUMBERS = itertools.count(700_000)


def head_ms() -> int:
    from ape import chain

    return int(chain.blocks.head.timestamp) * 1000


def block_ms(tx: Any) -> int:
    from ape import chain

    return int(chain.blocks[tx.block_number].timestamp) * 1000


def test_facts_follow_the_chains_transfers_grants_and_licensed_opt_ins(
    index: tuple[Engine, Callable[[], None]],
    paired_vehicle: Callable[[int], tuple[int, Any]],
    vehicle_id: Any,
    vehicle_rights: Any,
    data_market: Any,
    token: Any,
    owner: Any,
    other_owner: Any,
    stranger: Any,
    buyer: Any,
    curator: Any,
    admin: Any,
) -> None:
    engine, sync = index
    before = head_ms()
    car, _ = paired_vehicle(next(_NUMBERS))
    minted = head_ms()
    product = int(
        data_market.listProduct(
            int(Privilege.DRIVING), PRICE, 3_600, TERMS_CID, sender=curator
        ).return_value
    )
    opted = block_ms(data_market.optIn(car, product, sender=owner))
    token.mint(buyer, PRICE, sender=admin)
    token.approve(data_market, PRICE, sender=buyer)
    expiry = int(data_market.buy(product, 1, sender=buyer).return_value)
    vehicle_rights.grant(
        car, stranger, int(Privilege.LOCATION), FAR_FUTURE, TERMS_CID, sender=owner
    )
    # Block timestamps are whole seconds and anvil mines several blocks a second: without a
    # gap the sale can share the opt-in's timestamp, and the half-open [opted, moved) is empty.
    from ape import chain

    chain.mine(deltatime=60)
    moved = block_ms(vehicle_id.transferFrom(owner, other_owner, car, sender=owner))
    assert opted < moved
    sync()
    with engine.connect() as conn:
        for_buyer = load_facts(conn, car, buyer.address)
        for_grantee = load_facts(conn, car, stranger.address)
        with pytest.raises(VehicleNotFound):
            load_facts(conn, 10**12, buyer.address)
    o, n = owner.address.lower(), other_owner.address.lower()
    assert for_buyer.ownerships[0].owner == o
    assert before <= for_buyer.ownerships[0].start_ms <= minted
    assert for_buyer.ownerships[1:] == (Ownership(n, moved, None),)
    assert for_buyer.ownerships[0].end_ms == moved
    assert for_buyer.epoch == 1
    # The transfer ended the seller's opt-in (issue 18): the licence covers the car until then.
    assert for_buyer.licences == (
        LicencedOptIn(product, int(Privilege.DRIVING), expiry, opted, moved),
    )
    assert for_grantee.grant == GrantFact(int(Privilege.LOCATION), FAR_FUTURE, 0)
    # The transfer voided the grant and the opt-in alike.
    now = moved + 10_000
    assert not for_grantee.coverage(now).any()
    assert for_buyer.coverage(now).for_signal(SPEED) == ((opted, moved),)


def test_the_cache_answers_in_at_most_two_queries_until_a_new_block_is_synced(
    index: tuple[Engine, Callable[[], None]],
    paired_vehicle: Callable[[int], tuple[int, Any]],
    vehicle_id: Any,
    vehicle_rights: Any,
    owner: Any,
    stranger: Any,
) -> None:
    engine, sync = index
    car, _ = paired_vehicle(next(_NUMBERS))
    vehicle_rights.grant(car, stranger, int(Privilege.DRIVING), FAR_FUTURE, TERMS_CID, sender=owner)
    sync()
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    cache = RightsCache(size=4)
    with engine.connect() as conn:
        now = head_ms() + 1_000
        first = cache.coverage(conn, car, stranger.address, now)
        queries_on_miss = len(statements)
        second = cache.coverage(conn, car, stranger.address.lower(), now)
        queries_on_hit = len(statements) - queries_on_miss
    assert (queries_on_miss, queries_on_hit) == (2, 1)
    assert (cache.misses, cache.hits) == (1, 1)
    assert first == second
    assert first.for_signal(SPEED)
    vehicle_rights.revoke(car, stranger, sender=owner)
    sync()
    with engine.connect() as conn:
        later = cache.coverage(conn, car, stranger.address, now)
        assert later == coverage_of(conn, car, stranger.address, now)
    assert not later.any()
    assert cache.misses == 2
