"""Tests of the window policy, coalescing and sequences that survive restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

from device_bridge.decoder import Reading
from device_bridge.keys import DeviceKey
from device_bridge.queue import BundleQueue
from device_bridge.window import ClosedWindow, Policy, Sealer, Windower
from protocol.bundle import decode_signed_bundle, verify_bundle
from protocol.eip712 import dimo_domain

SPEED = "Vehicle.Speed"
SOC = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current"
T0 = 1_735_689_600.0  # 2025-01-01T00:00:00Z, a multiple of 10 s
DOMAIN = dimo_domain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")
KEY = DeviceKey.from_private_key("0x" + "42" * 32)


def r(offset_s: float, path: str, value: object) -> Reading:
    return Reading(T0 + offset_s, path, value)  # type: ignore[arg-type]


def test_a_signal_keeps_its_last_reading_at_the_time_it_was_observed() -> None:
    w = Windower(10_000)
    w.add([r(0.5, SOC, 36.0), r(3.25, SOC, 36.5), r(9.0, SOC, 37.0)])
    (window,) = w.flush()
    assert window.readings[SOC] == [(int(T0 * 1000) + 9000, 37.0)]


def test_speed_keeps_first_min_max_and_last_as_observed_samples() -> None:
    w = Windower(10_000)
    speeds = [(0.1, 50.0), (1.0, 20.0), (2.0, 90.0), (3.0, 20.0), (4.0, 90.0), (5.0, 60.0)]
    w.add([r(t, SPEED, v) for t, v in speeds])
    (window,) = w.flush()
    base = int(T0 * 1000)
    assert window.readings[SPEED] == [
        (base + 100, 50.0),
        (base + 1000, 20.0),  # the first time the minimum was seen
        (base + 2000, 90.0),
        (base + 5000, 60.0),
    ]


def test_windows_are_aligned_and_half_open() -> None:
    w = Windower(10_000, lateness_ms=0)
    closed = w.add([r(3.0, SOC, 1.0), r(9.999, SOC, 2.0), r(10.0, SOC, 3.0)])
    base = int(T0 * 1000)
    assert [(c.start, c.end) for c in closed] == [(base, base + 10_000)]
    assert closed[0].readings[SOC] == [(base + 9999, 2.0)]
    (last,) = w.flush()
    assert (last.start, last.readings[SOC]) == (base + 10_000, [(base + 10_000, 3.0)])


def test_a_window_waits_for_late_readings_then_drops_and_counts_later_ones() -> None:
    w = Windower(10_000, lateness_ms=1_000)
    assert w.add([r(5.0, SOC, 1.0), r(10.5, SOC, 2.0)]) == []
    assert w.add([r(9.5, SOC, 1.5)]) == []  # within the lateness: still taken
    closed = w.add([r(11.0, SOC, 3.0)])
    assert closed[0].readings[SOC] == [(int(T0 * 1000) + 9500, 1.5)]
    w.add([r(8.0, SOC, 9.9)])
    assert w.stats.late == 1


def test_non_finite_values_are_dropped_and_counted() -> None:
    w = Windower(10_000)
    w.add([r(1.0, SOC, float("nan")), r(2.0, SPEED, float("inf")), r(3.0, SPEED, 10.0)])
    (window,) = w.flush()
    assert SOC not in window.readings
    assert window.readings[SPEED] == [(int(T0 * 1000) + 3000, 10.0)]
    assert w.stats.non_finite == 1 + 1


def test_coalescing_keeps_later_last_values_and_overall_extremes() -> None:
    w = Windower(10_000)
    w.add([r(1.0, SPEED, 10.0), r(2.0, SPEED, 80.0), r(3.0, SOC, 50.0)])
    closed = w.add([r(11.0, SPEED, 5.0), r(12.0, SPEED, 30.0), r(13.0, SOC, 49.0)])
    first, second = closed + w.flush()
    merged = w.coalesce(first, second)
    base = int(T0 * 1000)
    assert (merged.start, merged.end, merged.windows) == (base, base + 20_000, 2)
    assert merged.readings[SOC] == [(base + 13_000, 49.0)]
    assert merged.readings[SPEED] == [
        (base + 1000, 10.0),
        (base + 2000, 80.0),
        (base + 11_000, 5.0),
        (base + 12_000, 30.0),
    ]


def test_extremes_of_a_text_signal_are_refused() -> None:
    with pytest.raises(ValueError, match="not numeric"):
        Windower(policies={"Vehicle.LowVoltageSystemState": Policy.EXTREMES})


def _window(start_ms: int) -> ClosedWindow:
    return ClosedWindow(start_ms, start_ms + 10_000, {SOC: [(start_ms + 5, 40.0)]})


def test_sequences_increase_and_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite"
    base = int(T0 * 1000)
    with BundleQueue(path) as queue:
        sealer = Sealer(queue, KEY, DOMAIN, vehicle_id=7)
        first = [sealer.seal(_window(base + i * 10_000)).bundle.sequence for i in range(3)]
    with BundleQueue(path) as queue:
        sealer = Sealer(queue, KEY, DOMAIN, vehicle_id=7)
        after = sealer.seal(_window(base + 30_000))
        rows = queue.peek(10)
    assert first == [1, 2, 3]
    assert after.bundle.sequence == 4
    assert [row.sequence for row in rows] == [1, 2, 3, 4]
    for row in rows:
        assert verify_bundle(decode_signed_bundle(row.wire), DOMAIN) == KEY.address


def test_a_sequence_reserved_before_a_crash_is_never_reused(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite"
    with BundleQueue(path) as queue:
        assert queue.reserve_sequence(KEY.address) == 1  # the process dies before signing
    with BundleQueue(path) as queue:
        signed = Sealer(queue, KEY, DOMAIN, 7).seal(_window(int(T0 * 1000)))
    assert signed.bundle.sequence == 2


def test_a_sealed_bundle_is_schema_2_and_its_queued_copy_opens_each_signal(
    tmp_path: Path,
) -> None:
    from protocol.bundle import SCHEMA_SIGNALS
    from protocol.disclosure import open_signal

    start = int(T0 * 1000)
    window = ClosedWindow(
        start, start + 10_000, {SOC: [(start + 5, 40.0)], "Vehicle.Speed": [(start + 5, 12.5)]}
    )
    with BundleQueue(tmp_path / "q.sqlite") as queue:
        Sealer(queue, KEY, DOMAIN, 7).seal(window)
        (row,) = queue.peek(1)
    queued = decode_signed_bundle(row.wire).bundle
    assert queued.schema_version == SCHEMA_SIGNALS
    assert queued.salts is not None
    assert len(set(queued.salts.values())) == 2
    for name, samples in window.readings.items():
        assert open_signal(queued, name).verify(queued.data_hash) == tuple(samples)
