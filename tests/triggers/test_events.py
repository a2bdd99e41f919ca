"""Events from the apps' detectors, geofences, and the anchored latency."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import insert, update

from apps.events import DetectorState, detect
from apps.insurance import KMH_PER_S_PER_MPHPS
from device_bridge.simulator.drive import DRIVE_DT, stop_trace
from oracle.tables import batches, bundles
from protocol.readings import IS_CHARGING, ODOMETER, SPEED
from tests.triggers.conftest import VEHICLE, Journal, Receiver, Triggers

MPHPS_IN_MPS2 = KMH_PER_S_PER_MPHPS / 3.6
LAT, LON = "Vehicle.CurrentLocation.Latitude", "Vehicle.CurrentLocation.Longitude"
DEPOT = (52.5200, 13.4050)


def braking_samples(mphps: float, start_ms: int) -> list[tuple[int, float]]:
    """The simulator's drive braking at `mphps`, as the bridge would sample it: 1 Hz, km/h."""
    trace = stop_trace(60.0, mphps * MPHPS_IN_MPS2)
    every = round(1 / DRIVE_DT)
    return [
        (start_ms + i // every * 1000, round(v * 3.6, 3))
        for i, v in enumerate(trace.speed)
        if i % every == 0
    ]


def fire_events(
    triggers: Triggers, journal: Journal, receiver: Receiver, metric: str, readings: dict
) -> list[dict]:
    hook = triggers.register(receiver, service="events", metricName=metric, condition="true")
    triggers.subscribe(hook, VEHICLE)
    journal.put(VEHICLE, readings)
    triggers.evaluate()
    triggers.deliver()
    return [r["body"] for r in receiver.received]


@pytest.mark.parametrize(("mphps", "fires"), [(7.1, True), (6.9, False)])
def test_a_simulated_harsh_brake_fires_at_7_1_mph_per_s_and_not_at_6_9(
    triggers: Triggers, journal: Journal, receiver: Receiver, mphps: float, fires: bool
) -> None:
    samples = braking_samples(mphps, int(time.time() * 1000) - 600_000)
    got = fire_events(triggers, journal, receiver, "behavior.harshBraking", {SPEED: samples})
    assert len(got) == (1 if fires else 0)
    if fires:
        assert got[0]["event"]["name"] == "behavior.harshBraking"
        assert got[0]["event"]["value"] == pytest.approx(mphps, abs=0.01)


def test_the_harsh_brake_threshold_is_the_insurance_scores() -> None:
    t = 1_000_000
    fast = [(t, 60.0), (t + 1000, 60.0 - 7.01 * KMH_PER_S_PER_MPHPS)]
    slow = [(t, 60.0), (t + 1000, 60.0 - 6.99 * KMH_PER_S_PER_MPHPS)]
    assert [e.name for e in detect({SPEED: fast}, DetectorState())] == ["behavior.harshBraking"]
    assert detect({SPEED: slow}, DetectorState()) == []


def test_charging_started_and_stopped_fire_on_the_changes(
    triggers: Triggers, journal: Journal, receiver: Receiver
) -> None:
    t = int(time.time() * 1000) - 60_000
    flags = [(t + i * 1000, v) for i, v in enumerate([False, True, True, False, True])]
    got = fire_events(triggers, journal, receiver, "charging.started", {IS_CHARGING: flags})
    stamps = sorted(b["event"]["timestamp"] for b in got)
    assert len(stamps) == 2
    assert all(b["event"]["value"] == 1.0 for b in got)


def test_an_odometer_rollback_is_suspected_once_per_fall(
    triggers: Triggers, journal: Journal, receiver: Receiver
) -> None:
    t = int(time.time() * 1000) - 60_000
    km = [(t, 1000.0), (t + 1000, 1000.5), (t + 2000, 400.0), (t + 3000, 400.2)]
    got = fire_events(triggers, journal, receiver, "odometer.rollbackSuspected", {ODOMETER: km})
    assert [b["event"]["value"] for b in got] == [pytest.approx(600.5)]


def test_a_geofence_fires_on_entry_only(
    triggers: Triggers, journal: Journal, receiver: Receiver
) -> None:
    lat, lon = DEPOT
    inside = f"geoDistance(value.latitude, value.longitude, {lat}, {lon}) < 0.5"
    was_outside = (
        f"geoDistance(previousValue.latitude, previousValue.longitude, {lat}, {lon}) >= 0.5"
    )
    hook = triggers.register(
        receiver,
        metricName="currentLocationCoordinates",
        condition=f"{inside} && {was_outside}",
    )
    triggers.subscribe(hook, VEHICLE)
    t = int(time.time() * 1000) - 60_000
    path = [lat + 0.02, lat + 0.01, lat + 0.001, lat, lat + 0.002, lat + 0.02, lat + 0.001]
    journal.put(
        VEHICLE,
        {
            LAT: [(t + i * 1000, p) for i, p in enumerate(path)],
            LON: [(t + i * 1000, lon) for i in range(len(path))],
        },
    )
    triggers.evaluate()
    triggers.deliver()
    entries = sorted(r["body"]["signal"]["value"]["latitude"] for r in receiver.received)
    assert entries == [lat + 0.001, lat + 0.001]  # the two entries, never while inside


def test_an_anchored_webhook_fires_after_the_anchor_with_its_proof_reference(
    triggers: Triggers, journal: Journal, receiver: Receiver
) -> None:
    hook = triggers.register(receiver, latency="anchored")
    triggers.subscribe(hook, VEHICLE)
    position = journal.put(VEHICLE, {SPEED: [(int(time.time() * 1000) - 1000, 150.0)]})
    triggers.evaluate("anchored")
    assert triggers.deliver() == 0  # journaled, not anchored yet
    now = int(time.time() * 1000)
    with journal.engine.begin() as conn:
        conn.execute(
            insert(batches).values(
                id=1,
                state="confirmed",
                root=b"\x01" * 32,
                count=1,
                window_start=0,
                window_end=now,
                cid="bafytest",
                tx_hash="0x" + "ab" * 32,
                created_at=now,
                updated_at=now,
            )
        )
        conn.execute(update(bundles).where(bundles.c.position == position).values(batch_id=1))
    triggers.evaluate("anchored")
    triggers.deliver()
    [got] = receiver.received
    proof = got["body"]["proof"]
    assert got["body"]["latency"] == "anchored"
    assert proof["batchId"] == 1
    assert proof["txHash"] == "0x" + "ab" * 32
    assert proof["leafHash"].startswith("0x")
    assert len(proof["leafHash"]) == 66
