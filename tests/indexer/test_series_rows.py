"""The series statement run on the driver's cursor (`series_rows`, the API's hot path) answers
what the SQLAlchemy statement answers, value for value, on SQLite and PostgreSQL; and the
series' JSON encoded by msgspec reads back to what `json` wrote."""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, delete, insert, literal, text

from indexer.api.encoding import encode_json, finite
from indexer.db import make_engine, metadata
from indexer.loader import CATALOG_SIGNAL_IDS
from indexer.queries import AGGREGATIONS, _series_query, series_rows, signal_series
from indexer.telemetry import readings, readings_text
from protocol.readings import is_text_signal

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SPEED = "Vehicle.Speed"
SOC = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current"
TEXT = next(name for name in CATALOG_SIGNAL_IDS if is_text_signal(name))
VEHICLE = 7
T0 = 1_700_000_000_000


@pytest.fixture(params=["sqlite", "postgresql"], scope="module")
def engine(request: pytest.FixtureRequest, tmp_path_factory: Any) -> Iterator[Engine]:
    """The readings tables in a temp SQLite file, or in a fresh PostgreSQL schema."""
    tables = [readings, readings_text]
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path_factory.mktemp('series') / 'indexer.db'}")
        metadata.create_all(eng, tables=tables)
        yield eng
        eng.dispose()
        return
    admin = create_engine(PG_URL)
    schema = f"series_rows_{secrets.token_hex(6)}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    eng = make_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
    try:
        metadata.create_all(eng, tables=tables)
        yield eng
    finally:
        eng.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def sqlalchemy_rows(
    engine: Engine,
    names: list[str],
    start: int,
    end: int,
    interval: int,
    agg: Any,
    within: list[tuple[int, int]] | None,
) -> dict[str, list[tuple[int, Any, int]]]:
    """The series as the route computed it before: the statement with the values inline,
    executed by SQLAlchemy, rows read through its result objects."""
    out: dict[str, list[tuple[int, Any, int]]] = {n: [] for n in names}
    by_id = {CATALOG_SIGNAL_IDS[n]: n for n in names}
    with engine.connect() as conn:
        for table, is_text in ((readings, False), (readings_text, True)):
            ids = [CATALOG_SIGNAL_IDS[n] for n in names if is_text_signal(n) == is_text]
            if not ids or (within is not None and not within):
                continue
            query = _series_query(
                table, VEHICLE, ids, literal(start), end, literal(interval), agg, within
            )
            for r in conn.execute(query):
                out[by_id[int(r.signal)]].append(
                    (start + int(r.bucket) * interval, r.value, int(r.n))
                )
    return out


times = st.integers(T0, T0 + 3_600_000)
#: What a text column of both databases holds: no NUL, no lone surrogate.
TEXT_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
numbers = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
spans = st.lists(st.tuples(times, st.integers(1, 1_800_000)), max_size=3).map(
    lambda raw: sorted((a, a + w) for a, w in raw)
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    speed=st.lists(st.tuples(times, numbers), max_size=40),
    soc=st.lists(st.tuples(times, numbers), max_size=20),
    words=st.lists(
        st.tuples(times, st.text(TEXT_CHARS, max_size=8)),
        max_size=20,
    ),
    start=times,
    length=st.integers(1, 3_600_000),
    interval=st.integers(100, 1_200_000),
    agg=st.sampled_from(AGGREGATIONS),
    within=st.none() | spans,
)
def test_series_rows_equal_the_sqlalchemy_statements_rows(
    engine: Engine,
    speed: list[tuple[int, float]],
    soc: list[tuple[int, float]],
    words: list[tuple[int, str]],
    start: int,
    length: int,
    interval: int,
    agg: Any,
    within: list[tuple[int, int]] | None,
) -> None:
    rows = [(SPEED, t, v) for t, v in speed] + [(SOC, t, v) for t, v in soc]
    with engine.begin() as conn:
        conn.execute(delete(readings))
        conn.execute(delete(readings_text))
        for table, items in ((readings, rows), (readings_text, [(TEXT, t, v) for t, v in words])):
            if items:
                conn.execute(
                    insert(table),
                    [
                        {
                            "vehicle_id": VEHICLE,
                            "signal": CATALOG_SIGNAL_IDS[name],
                            "ts": t,
                            "value": v,
                            "batch_id": 1,
                            "leaf_index": i,
                        }
                        for i, (name, t, v) in enumerate(items)
                    ],
                )
    end = start + length
    numeric = [SPEED, SOC]
    cases = [numeric] + ([[TEXT], [SPEED, TEXT]] if agg in ("first", "last") else [])
    for names in cases:
        with engine.connect() as conn:
            got = series_rows(conn, VEHICLE, names, start, end, interval, agg, within=within)
            points = signal_series(conn, VEHICLE, names, start, end, interval, agg, within=within)
        want = sqlalchemy_rows(engine, names, start, end, interval, agg, within)
        # Equal values of equal types: the floats bit for bit, the counts and times as ints.
        assert {n: [(t, type(v), repr(v), c) for t, v, c in rs] for n, rs in got.items()} == {
            n: [(t, type(v), repr(v), c) for t, v, c in rs] for n, rs in want.items()
        }
        assert {
            n: [(p.bucket_start, p.value, p.count) for p in ps] for n, ps in points.items()
        } == (got)


def test_a_series_statement_is_compiled_once_per_shape(engine: Engine) -> None:
    from indexer.queries import _series_sql

    with engine.connect() as conn:
        series_rows(conn, VEHICLE, [SPEED], T0, T0 + 60_000, 1_000, "avg", within=[(T0, T0 + 1)])
        before = _series_sql.cache_info()
        series_rows(conn, VEHICLE, [SPEED], T0 + 5, T0 + 9_000, 7, "avg", within=[(T0, T0 + 9)])
        after = _series_sql.cache_info()
    assert (after.hits - before.hits, after.misses - before.misses) == (1, 0)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(TEXT_CHARS),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(TEXT_CHARS), inner, max_size=4)
    ),
    max_leaves=30,
)


@given(json_values)
def test_msgspec_encoding_reads_back_to_what_json_wrote(value: Any) -> None:
    ours = encode_json(value)
    reference = json.dumps(value, separators=(",", ":"), allow_nan=False)
    assert json.loads(ours) == json.loads(reference)
    # Value for value, down to each float's bits and each number's type.
    assert json.dumps(json.loads(ours), separators=(",", ":")) == json.dumps(
        json.loads(reference), separators=(",", ":")
    )


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_value_json_cannot_hold_is_refused_not_sent(bad: float) -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        finite([1.0, bad])
