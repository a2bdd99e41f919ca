"""Telemetry queries over loaded batches: aggregation, latest values, trips, charging, proofs."""

# The fixtures come from the loader tests; their names are parameters here by design.
# ruff: noqa: F811

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from sqlalchemy import Engine

from indexer.exceptions import InvalidTelemetryQuery
from indexer.loader import BatchLoader
from indexer.queries import (
    AGGREGATIONS,
    CHARGE_POWER,
    IS_CHARGING,
    charging_sessions,
    latest_values,
    raw_readings,
    reading_proof,
    signal_series,
    trips,
)
from protocol.bundle import bundle_leaf, decode_signed_bundle, verify_bundle
from protocol.eip712 import Eip712Domain
from tests.indexer.test_loader import (  # fixtures are shared with the loader tests
    IGNITION,
    SOC,
    SPEED,
    Anchored,
    anchor_bundles,  # noqa: F401
    chain_pairings,  # noqa: F401
    deployment,  # noqa: F401
    domain,  # noqa: F401
    engine,  # noqa: F401
    fleet,  # noqa: F401
    loader,  # noqa: F401
    now_ms,  # noqa: F401
    store,  # noqa: F401
    windowed_bundles,
)

ODOMETER = "Vehicle.TraveledDistance"
ENGINE = "Vehicle.OBD.EngineSpeed"
Fleet = tuple[list[tuple[int, LocalAccount]], int]


def load_samples(
    fleet: Fleet,
    samples: dict[str, list[tuple[int, Any]]],
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    loader: Callable[[], BatchLoader],
) -> tuple[int, Anchored]:
    (car, key) = fleet[0][0]
    anchored = anchor_bundles(windowed_bundles(key, car, samples, domain, window_ms=300_000))
    assert loader().load(anchored.batch).loaded
    return car, anchored


def random_samples(t0: int, rng: random.Random) -> dict[str, list[tuple[int, Any]]]:
    """An hour of irregular speed and SoC readings, two signals with clashing timestamps."""
    speed_ts = sorted(rng.sample(range(t0, t0 + 3_600_000), 900))
    soc_ts = sorted(rng.sample(range(t0, t0 + 3_600_000), 300))
    return {
        SPEED: [(t, round(rng.uniform(0, 130), 3)) for t in speed_ts],
        SOC: [(t, rng.uniform(20, 90)) for t in soc_ts],
    }


def python_series(
    series: list[tuple[int, float]], start: int, end: int, interval: int, aggregation: str
) -> list[tuple[int, float, int]]:
    buckets: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for ts, value in series:
        if start <= ts < end:
            buckets[start + (ts - start) // interval * interval].append((ts, value))
    out = []
    for bucket in sorted(buckets):
        points = sorted(buckets[bucket])
        values = [v for _, v in points]
        agg = {
            "avg": sum(values) / len(values),
            "min": min(values),
            "max": max(values),
            "first": points[0][1],
            "last": points[-1][1],
        }[aggregation]
        out.append((bucket, agg, len(values)))
    return out


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_interval_aggregation_equals_a_python_computation(
    engine: Engine,
    fleet: Fleet,
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    loader: Callable[[], BatchLoader],
    aggregation: Any,
) -> None:
    t0 = fleet[1]
    samples = random_samples(t0, random.Random(6))
    car, _ = load_samples(fleet, samples, domain, anchor_bundles, loader)
    start, end, interval = t0 + 12_345, t0 + 3_000_000, 7 * 60_000
    with engine.connect() as conn:
        got = signal_series(conn, car, [SPEED, SOC, ENGINE], start, end, interval, aggregation)
    assert got[ENGINE] == []
    for name in (SPEED, SOC):
        want = python_series(samples[name], start, end, interval, aggregation)
        assert [(p.bucket_start, p.count) for p in got[name]] == [(b, n) for b, _, n in want]
        for point, (_, value, _) in zip(got[name], want, strict=True):
            assert math.isclose(point.value, value, rel_tol=1e-12)


def test_latest_values_are_each_signals_newest_reading_before_the_bound(
    engine: Engine,
    fleet: Fleet,
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    loader: Callable[[], BatchLoader],
) -> None:
    t0 = fleet[1]
    samples = random_samples(t0, random.Random(7))
    samples[IGNITION] = [(t0 + 1000, "ON"), (t0 + 2_000_000, "OFF")]
    car, _ = load_samples(fleet, samples, domain, anchor_bundles, loader)
    bound = t0 + 1_800_000
    with engine.connect() as conn:
        latest = latest_values(conn, car)
        earlier = latest_values(conn, car, [SPEED, IGNITION], before_ms=bound)
        other = latest_values(conn, car + 1000)
    assert {k: (v.ts, v.value) for k, v in latest.items()} == {
        name: max(series) for name, series in samples.items()
    }
    assert {k: (v.ts, v.value) for k, v in earlier.items()} == {
        SPEED: max(s for s in samples[SPEED] if s[0] < bound),
        IGNITION: (t0 + 1000, "ON"),
    }
    assert other == {}


def drive(t0: int, seconds: int, *, speed: float = 50.0) -> list[tuple[int, float]]:
    return [(t0 + 1000 * i, speed) for i in range(seconds)]


def test_trips_split_on_long_gaps_and_ignition_off_and_drop_short_ones(
    engine: Engine,
    fleet: Fleet,
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    loader: Callable[[], BatchLoader],
) -> None:
    t0 = fleet[1]
    s = 1000
    speeds = (
        drive(t0, 600)  # trip 1: 10 min
        + drive(t0 + 1_000 * s, 120)  # 400 s later a 2 min run alone: too short
        + drive(t0 + 1_500 * s, 200)  # trip 2, part 1 ...
        + [(t0 + 1_750 * s, 0.0)]  # ... stopped at a light, ignition on ...
        + drive(t0 + 1_800 * s, 200)  # ... part 2
        + drive(t0 + 2_100 * s, 200)  # after an ignition OFF at 2_050 s: trip 3
    )
    ignition = [(t0 + 1_750 * s, "ON"), (t0 + 2_050 * s, "OFF")]
    ignition += [(t0 + (2_360 + 60 * i) * s, "ON") for i in range(5)]  # parked, engine on
    odometer = [(t, 1000.0 + (t - t0) / 72_000) for t, _ in speeds]
    samples = {SPEED: speeds, IGNITION: ignition, ODOMETER: odometer}
    car, _ = load_samples(fleet, samples, domain, anchor_bundles, loader)

    def spans(found: list[Any]) -> list[tuple[int, int]]:
        return [((t.start_ms - t0) // s, (t.end_ms - t0) // s) for t in found]

    with engine.connect() as conn:
        default = trips(conn, car, t0, t0 + 3_000_000)
        gap_60 = trips(conn, car, t0, t0 + 3_000_000, gap_s=60)
        gap_50 = trips(conn, car, t0, t0 + 3_000_000, gap_s=50)
    assert spans(default) == [(0, 599), (1_500, 1_999), (2_100, 2_600)]
    assert spans(gap_60) == [(0, 599), (1_500, 1_999), (2_360, 2_600)]
    assert spans(gap_50) == [(0, 599), (1_750, 1_999)]  # the parked minutes fall apart
    assert default[0].max_speed_kmh == 50.0
    assert default[0].distance_km == pytest.approx(599 / 72)
    assert default[1].avg_speed_kmh == pytest.approx(50.0 * 400 / 401)


def test_charging_sessions_follow_is_charging(
    engine: Engine,
    fleet: Fleet,
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    loader: Callable[[], BatchLoader],
) -> None:
    t0 = fleet[1]
    s = 1000
    charging = [(t0 + 30 * i * s, True) for i in range(41)]  # 20 min
    charging += [(t0 + 1_230 * s, False)]
    charging += [(t0 + (2_000 + 30 * i) * s, True) for i in range(3)]  # 60 s: kept
    charging += [(t0 + (3_000 + 30 * i) * s, True) for i in range(2)]  # 30 s: dropped
    soc = [(t, 40.0 + 0.5 * i) for i, (t, _) in enumerate(charging)]
    power = [(t, 11.0) for t, on in charging if on]
    samples = {IS_CHARGING: charging, SOC: soc, CHARGE_POWER: power}
    car, _ = load_samples(fleet, samples, domain, anchor_bundles, loader)
    with engine.connect() as conn:
        sessions = charging_sessions(conn, car, t0, t0 + 4_000_000)
    assert [(c.start_ms - t0, c.end_ms - t0) for c in sessions] == [
        (0, 1_200 * s),
        (2_000 * s, 2_060 * s),
    ]
    assert (sessions[0].soc_start, sessions[0].soc_end) == (40.0, 60.0)
    assert sessions[0].max_power_kw == 11.0


def test_proofs_of_random_readings_verify_on_chain(
    engine: Engine,
    fleet: Fleet,
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    loader: Callable[[], BatchLoader],
    platform: Any,
) -> None:
    t0 = fleet[1]
    rng = random.Random(8)
    samples = random_samples(t0, rng)
    car, anchored = load_samples(fleet, samples, domain, anchor_bundles, loader)
    anchor = platform["AttestationAnchor"]
    for _ in range(8):
        name = rng.choice([SPEED, SOC])
        ts, value = rng.choice(samples[name])
        with engine.connect() as conn:
            proof = reading_proof(conn, car, name, ts)
        assert proof.reading.value == value
        signed = decode_signed_bundle(proof.bundle.wire)
        assert dict(signed.bundle.readings[name])[ts] == value
        assert verify_bundle(signed, domain) == signed.bundle.device
        assert signed.signature == proof.bundle.signature
        assert proof.bundle.leaf == bundle_leaf(signed)
        assert (proof.bundle.root, proof.bundle.tx_hash) == (
            anchored.tree.root,
            anchored.batch.tx_hash,
        )
        assert anchor.verifyReading(proof.bundle.batch_id, proof.bundle.leaf, proof.bundle.proof)
    # A leaf with another reading's path does not verify: the check is not vacuous.
    with engine.connect() as conn:
        a = reading_proof(conn, car, SPEED, samples[SPEED][0][0]).bundle
        b = reading_proof(conn, car, SPEED, samples[SPEED][-1][0]).bundle
    assert a.leaf_index != b.leaf_index
    assert not anchor.verifyReading(a.batch_id, a.leaf, b.proof)


def test_bad_query_arguments_raise_typed_errors(engine: Engine) -> None:
    with engine.connect() as conn:
        with pytest.raises(InvalidTelemetryQuery):
            signal_series(conn, 1, [SPEED], 10, 5, 60_000)
        with pytest.raises(InvalidTelemetryQuery):
            signal_series(conn, 1, [SPEED], 0, 10**9, 1)
        with pytest.raises(InvalidTelemetryQuery):
            signal_series(conn, 1, [SPEED], 0, 10, 1, "median")  # type: ignore[arg-type]
        with pytest.raises(InvalidTelemetryQuery):
            signal_series(conn, 1, [IGNITION], 0, 10, 1, "avg")
        with pytest.raises(InvalidTelemetryQuery):
            raw_readings(conn, 1, SPEED, 0, 10, limit=0)
