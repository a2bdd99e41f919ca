"""A bundle's disclosure facts (`indexer.disclosure.BundleFacts`), stored with it from its
loading: what the loader stores is what the wire form says, a decision made with them is the
decision made from the wire form, and migration 0014 fills them in for bundles loaded before."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, text

from indexer.db import make_engine
from indexer.disclosure import BundleFacts, Served, decide
from indexer.exceptions import BundleNotDisclosable, BundleNotServed
from indexer.loader import bundle_index_rows
from indexer.migrate import downgrade, upgrade
from indexer.rights import Coverage, normalize
from indexer.telemetry import STATUS_LOADED, batches, bundles_index
from protocol.bundle import (
    SCHEMA_SIGNALS,
    SCHEMA_VERSION,
    Bundle,
    SignedBundle,
    encode_signed_bundle,
    sign_bundle,
)
from protocol.crypto import keccak256
from protocol.eip712 import dimo_domain
from protocol.privileges import Privilege
from tests.indexer.test_migration_covering_index import pg_url  # noqa: F401  (a fixture)

SPEED = "Vehicle.Speed"
SOC = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current"
LAT = "Vehicle.CurrentLocation.Latitude"
LON = "Vehicle.CurrentLocation.Longitude"
T0 = 1_700_000_000_000
DEVICE = Account.from_key(keccak256(b"bundle-facts-device"))
DOMAIN = dimo_domain(31337, "0x" + "a1" * 20)


def _signed(
    schema: int, times: dict[str, list[int]], vehicle: int = 9, seq: int = 0
) -> SignedBundle:
    readings = {
        name: [
            (T0 + t, 40.0 + i if name in (SPEED, SOC) else 10.0 + i / 8) for i, t in enumerate(ts)
        ]
        for name, ts in times.items()
    }
    start = min(T0 + t for ts in times.values() for t in ts)
    bundle = Bundle(
        DEVICE.address, vehicle, seq, start, start + 3_600_000, readings, schema_version=schema
    )
    return sign_bundle(bundle, bytes(DEVICE.key), DOMAIN)


@pytest.mark.parametrize("schema", [SCHEMA_VERSION, SCHEMA_SIGNALS])
def test_the_loader_stores_what_the_wire_form_says(schema: int) -> None:
    signed = _signed(schema, {SPEED: [5, 1, 900], LAT: [3, 7], LON: [3, 7], SOC: [2]})
    wire = encode_signed_bundle(signed)
    (row,) = bundle_index_rows(4, [signed], [wire])
    stored = BundleFacts.decode(row["disclosure"])
    assert stored == BundleFacts.of_wire(wire)
    assert list(stored.spans) == list(BundleFacts.of_wire(wire).spans)  # the bundle's order
    assert stored.schema == schema
    assert stored.spans[SPEED] == (T0 + 1, T0 + 900)


@pytest.mark.parametrize(
    "text_form",
    ["", "x", "[1]", '[1,{"a":[1]}]', '["1",{}]', '[1,{"a":[1,"2"]}]', '{"schema":1}'],
)
def test_a_stored_form_that_is_not_facts_is_a_value_error(text_form: str) -> None:
    with pytest.raises(ValueError, match="not a bundle's disclosure facts"):
        BundleFacts.decode(text_form)


def test_facts_round_trip_and_a_signal_without_readings() -> None:
    facts = BundleFacts.of_times(2, {SPEED: [9, 3, 5], LAT: []})
    assert facts.spans == {SPEED: (3, 9), LAT: None}
    assert BundleFacts.decode(facts.encode()) == facts
    whole = Coverage(1, "0x" + "ab" * 20, 0, {p: ((0, 100),) for p in Privilege}, True)
    assert not facts.held_whole(whole)  # a signal without readings: decided the exact way
    assert not BundleFacts(1, {}).held_whole(whole)


# --------------------------------------------------------------------------------------------
# the decision: with the facts, the same as from the wire form
# --------------------------------------------------------------------------------------------

times = st.lists(st.integers(0, 1_000), min_size=1, max_size=5, unique=True).map(sorted)
spans = st.lists(
    st.tuples(st.integers(0, 1_000), st.integers(1, 1_200)).map(
        lambda p: (T0 + p[0], T0 + p[0] + p[1])
    ),
    max_size=3,
).map(normalize)


def _outcome(served: Any) -> Any:
    """What a route sees of a decision: the grounds, what goes out, or the problem."""
    if isinstance(served, Served):
        opened = served.opened
        return (
            served.disclosure,
            served.whole,
            None
            if opened is None
            else (opened.commitments, [o.as_json() for o in opened.openings]),
        )
    return type(served), str(served)


def _decided(wire: bytes, coverage: Coverage, facts: BundleFacts | None, wanted: Any) -> Any:
    try:
        return _outcome(decide(wire, coverage, (9, 1, 0), wanted=wanted, facts=facts))
    except (BundleNotDisclosable, BundleNotServed) as exc:
        return _outcome(exc)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    schema=st.sampled_from([SCHEMA_VERSION, SCHEMA_SIGNALS]),
    speed=times,
    position=times,
    driving=spans,
    location=spans,
    wanted=st.sampled_from([None, [SPEED], [LAT]]),
)
def test_a_decision_with_the_facts_is_the_decision_from_the_wire(
    schema: int,
    speed: list[int],
    position: list[int],
    driving: tuple[tuple[int, int], ...],
    location: tuple[tuple[int, int], ...],
    wanted: list[str] | None,
) -> None:
    signed = _signed(schema, {SPEED: speed, LAT: position})
    wire = encode_signed_bundle(signed)
    coverage = Coverage(
        9,
        "0x" + "ab" * 20,
        T0 + 10**6,
        {Privilege.DRIVING: driving, Privilege.LOCATION: location},
        False,
    )
    facts = BundleFacts.of_wire(wire)
    assert _decided(wire, coverage, facts, wanted) == _decided(wire, coverage, None, wanted)


def test_the_facts_decide_a_covered_bundle_without_its_wire_times() -> None:
    """A caller holding the facts whole is decided from them: a wire form the facts do not
    describe (here, not even a bundle) is not read for its times."""
    facts = BundleFacts(SCHEMA_VERSION, {SPEED: (T0, T0 + 5)})
    owner = Coverage(9, "0x" + "ab" * 20, T0, {Privilege.DRIVING: ((0, 2**62),)}, True)
    served = decide(b"not read", owner, (9, 1, 0), facts=facts)
    assert served.whole
    assert served.disclosure.signals == (SPEED,)
    narrow = Coverage(9, "0x" + "ab" * 20, T0, {Privilege.DRIVING: ((T0, T0 + 3),)}, False)
    with pytest.raises(ValueError, match="bundle"):  # not held whole: the wire form is read
        decide(b"not read", narrow, (9, 1, 0), facts=facts)


# --------------------------------------------------------------------------------------------
# migration 0014
# --------------------------------------------------------------------------------------------


def _stored(url: str) -> dict[int, str | None]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {
                int(i): f
                for i, f in conn.execute(
                    text("SELECT leaf_index, disclosure FROM bundles_index ORDER BY leaf_index")
                )
            }
    finally:
        engine.dispose()


def _columns(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {
                str(c)
                for (c,) in conn.execute(
                    text(
                        "SELECT column_name FROM information_schema.columns WHERE "
                        "table_schema = current_schema() AND table_name = 'bundles_index'"
                    )
                )
            }
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'index.db'}"
    else:
        yield request.getfixturevalue("pg_url")


def test_bundles_loaded_before_get_their_facts(db_url: str) -> None:
    """2,500 bundles, one of them not decodable, taken back to revision 0013 (no column):
    the upgrade fills every decodable one with the loader's facts (the one that is not stays
    empty, its proof failing as before), and again after another round trip."""
    upgrade(db_url)
    engine = make_engine(db_url)
    signed = [
        _signed(SCHEMA_SIGNALS if i % 2 else SCHEMA_VERSION, {SPEED: [i % 50, 60], SOC: [7]}, seq=i)
        for i in range(4)
    ]
    wires = [encode_signed_bundle(s) for s in signed]
    rows = bundle_index_rows(1, signed * 625, wires * 625)
    rows[1_234]["wire"] = b"\xa1garbage"
    with engine.begin() as conn:
        conn.execute(
            insert(batches),
            {
                "id": 1,
                "root": b"\x01" * 32,
                "cid": "c",
                "count": len(rows),
                "window_start": T0,
                "window_end": T0 + 1,
                "tx_hash": "0x" + "02" * 32,
                "block_number": 3,
                "status": STATUS_LOADED,
                "reading_count": 0,
            },
        )
        conn.execute(insert(bundles_index), rows)
    engine.dispose()
    expected = {i: r["disclosure"] for i, r in enumerate(rows)}
    expected[1_234] = None
    downgrade(db_url, "0013_readings_covering_index")  # the column goes: a database from before
    if db_url.startswith("postgresql"):
        assert "disclosure" not in _columns(db_url)
    upgrade(db_url)
    assert _stored(db_url) == expected
    downgrade(db_url, "0013_readings_covering_index")
    upgrade(db_url)
    assert _stored(db_url) == expected
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            # (the leaves are not a real tree: read the facts, not the Merkle path)
            got = conn.execute(
                text("SELECT disclosure FROM bundles_index WHERE leaf_index = 5")
            ).scalar_one()
        assert BundleFacts.decode(got) == BundleFacts.of_wire(wires[1])
    finally:
        engine.dispose()
