"""Tests of the on-disk bundle queue and of the bridge's policy when it is full."""

from __future__ import annotations

from pathlib import Path

import pytest

from device_bridge.decoder import Reading
from device_bridge.exceptions import QueueFullError
from device_bridge.keys import DeviceKey
from device_bridge.queue import BundleQueue, leaf_hash
from device_bridge.window import ClosedWindow, Sealer
from protocol.bundle import Bundle, decode_signed_bundle, sign_bundle
from protocol.eip712 import dimo_domain

DOMAIN = dimo_domain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")
KEY = DeviceKey.from_private_key("0x" + "24" * 32)
SOC = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current"
T0 = 1_735_689_600_000


def _signed(sequence: int) -> object:
    start = T0 + sequence * 10_000
    bundle = Bundle(KEY.address, 5, sequence, start, start + 10_000, {SOC: [(start, 50.0)]})
    return sign_bundle(bundle, KEY.private_key, DOMAIN)


def test_the_queue_runs_sqlite_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    with BundleQueue(tmp_path / "q.sqlite") as queue:
        assert queue._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert queue._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_a_bundle_stays_queued_across_reopening_until_its_receipt(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite"
    signed = _signed(1)
    with BundleQueue(path) as queue:
        queue.put(signed)  # type: ignore[arg-type]
    with BundleQueue(path) as queue:
        (row,) = queue.peek(10)
        assert decode_signed_bundle(row.wire) == signed
        assert row.leaf_hash == leaf_hash(signed)  # type: ignore[arg-type]
        queue.acknowledge(row.id, "accepted")
    with BundleQueue(path) as queue:
        assert queue.depth() == 0
        assert queue.counters()["accepted"] == 1


def test_a_rejected_bundle_moves_to_dead_letters_with_its_problem(tmp_path: Path) -> None:
    with BundleQueue(tmp_path / "q.sqlite") as queue:
        queue.put(_signed(1))  # type: ignore[arg-type]
        (row,) = queue.peek(1)
        problem = {
            "type": "https://dimo.local/problems/implausible-value",
            "reason": "implausible-value",
        }
        queue.dead_letter(row.id, problem)
        assert queue.depth() == 0
        (letter,) = queue.dead_letters()
    assert (letter.sequence, letter.reason, letter.problem) == (1, "implausible-value", problem)
    assert letter.wire == row.wire


def test_a_full_queue_refuses_a_bundle_and_keeps_what_it_has(tmp_path: Path) -> None:
    with BundleQueue(tmp_path / "q.sqlite", max_bundles=2) as queue:
        queue.put(_signed(1))  # type: ignore[arg-type]
        queue.put(_signed(2))  # type: ignore[arg-type]
        with pytest.raises(QueueFullError):
            queue.put(_signed(3))  # type: ignore[arg-type]
        assert [r.sequence for r in queue.peek(10)] == [1, 2]


def test_other_receipt_statuses_cannot_delete_a_bundle(tmp_path: Path) -> None:
    with BundleQueue(tmp_path / "q.sqlite") as queue:
        queue.put(_signed(1))  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="accepted/duplicate"):
            queue.acknowledge(queue.peek(1)[0].id, "rejected")
        assert queue.depth() == 1


def test_the_bridge_coalesces_windows_while_the_queue_is_full(tmp_path: Path) -> None:
    from device_bridge.runner import Bridge
    from device_bridge.window import Windower

    queue = BundleQueue(tmp_path / "q.sqlite", max_bundles=1)
    windower = Windower(10_000, lateness_ms=0)
    bridge = Bridge(None, windower, Sealer(queue, KEY, DOMAIN, 5))  # type: ignore[arg-type]
    t = T0 / 1000
    for i in range(4):  # four windows; the first fills the queue
        bridge.feed_readings([Reading(t + 10 * i + 1, SOC, 50.0 - i)])
    bridge.feed_readings([Reading(t + 41, SOC, 1.0)])  # closes the fourth window
    assert queue.depth() == 1
    assert bridge.stats.held_back == 3
    queue.acknowledge(queue.peek(1)[0].id, "accepted")
    bridge.tick(int(t * 1000) + 41_000)  # room again: the held windows are signed as one
    (row,) = queue.peek(10)
    merged = decode_signed_bundle(row.wire).bundle
    assert (merged.window_start, merged.window_end) == (T0 + 10_000, T0 + 40_000)
    assert merged.readings[SOC] == ((T0 + 31_000, 47.0),)
    assert merged.sequence == 2
    queue.close()


def test_closed_window_helper_counts_samples() -> None:
    window = ClosedWindow(0, 10, {SOC: [(1, 1.0), (2, 2.0)]})
    assert window.sample_count == 2
