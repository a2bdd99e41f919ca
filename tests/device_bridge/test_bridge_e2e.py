"""End to end: the Kona recording through the bridge into a real ingest server, and kill -9."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from device_bridge.config import BridgeSettings
from device_bridge.keys import DeviceKey
from device_bridge.queue import BundleQueue
from device_bridge.runner import Bridge
from device_bridge.sources import LogSource
from protocol.bundle import verify_bundle
from protocol.eip712 import dimo_domain

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bridge_ingest_server import IngestServer, IngestState

REPO = Path(__file__).resolve().parents[2]
KONA_DIR = REPO.parent / "shared" / "data" / "can" / "kona-ev"
KONA_LOG = KONA_DIR / "230112-7-2019-pcan-ccan-power-off-on-ready-off.candump.log"
ANCHOR = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
DOMAIN = dimo_domain(31337, ANCHOR)
KEY_HEX = "0x" + "5a" * 32
KEY = DeviceKey.from_private_key(KEY_HEX)
SOC = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current"
LOG_SECONDS = 1964.4539 - 1953.6135

pytestmark = pytest.mark.skipif(not KONA_LOG.is_file(), reason=f"no Kona log at {KONA_DIR}")


def test_the_kona_log_arrives_as_verified_contiguous_bundles(tmp_path: Path) -> None:
    state = IngestState(DOMAIN)
    with IngestServer(state) as server:
        settings = BridgeSettings(
            vehicle_id=9,
            anchor_address=ANCHOR,
            dbc_dir=KONA_DIR,
            queue_path=tmp_path / "q.sqlite",
            oracle_url=server.url,
            window_ms=2_000,
        )
        bridge = Bridge.from_settings(settings, key=KEY)
        stats = bridge.run(LogSource(KONA_LOG), drain_timeout_s=30)
    bundles = sorted(state.bundles.values(), key=lambda s: s.bundle.sequence)
    assert stats.frames == 39_546
    assert bridge.queue.depth() == 0
    assert [s.bundle.sequence for s in bundles] == list(range(1, len(bundles) + 1))
    for signed in bundles:
        assert verify_bundle(signed, DOMAIN) == KEY.address
        assert signed.bundle.vehicle_id == 9
        assert signed.bundle.window_end - signed.bundle.window_start == 2_000
        assert signed.bundle.window_start % 2_000 == 0
    for before, after in itertools.pairwise(bundles):
        assert after.bundle.window_start == before.bundle.window_end
    span = bundles[-1].bundle.window_end - bundles[0].bundle.window_start
    assert LOG_SECONDS * 1000 <= span <= LOG_SECONDS * 1000 + 4_000
    assert {v for s in bundles for _, v in s.bundle.readings.get(SOC, ())} == {36.5}
    ended = bundles[-1].bundle.window_end
    assert abs(ended - time.time() * 1000) < 60_000  # rebased: the replay ends "now"


def _bridge(args: list[str], queue: Path, url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DIMO_BRIDGE_DEVICE_KEY": KEY_HEX,
        "DIMO_BRIDGE_QUEUE_PATH": str(queue),
        "DIMO_BRIDGE_ORACLE_URL": url,
        "DIMO_BRIDGE_RETRY_BASE_S": "0.05",
        "DIMO_BRIDGE_RETRY_MAX_S": "0.2",
    }
    code = "from device_bridge.cli import app; app()"
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def test_a_bridge_killed_during_upload_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    queue_path = tmp_path / "q.sqlite"
    state = IngestState(DOMAIN)
    kill_now, release = threading.Event(), threading.Event()

    def hold_third_post(post: int) -> None:
        # journaled, but the receipt is held until the bridge process is dead
        if post == 3:
            time.sleep(1.5)  # the replay has been signed and queued in full by now
            kill_now.set()
            release.wait(30)

    state.after_journal = hold_third_post
    with IngestServer(state) as server:
        first = _bridge(
            [
                "run",
                "--log",
                str(KONA_LOG),
                "--dbc-dir",
                str(KONA_DIR),
                "--vehicle-id",
                "9",
                "--anchor-address",
                ANCHOR,
                "--window-ms",
                "1000",
                "--batch-size",
                "1",
            ],
            queue_path,
            server.url,
        )
        assert kill_now.wait(60), first.communicate()[0].decode()[-2000:]
        first.send_signal(signal.SIGKILL)
        assert first.wait(10) == -signal.SIGKILL
        release.set()
        with BundleQueue(queue_path) as queue:
            sealed = queue.counters()["sealed"]
            waiting = queue.depth()
        assert waiting > 0  # the kill left work behind
        second = _bridge(["upload", "--batch-size", "4"], queue_path, server.url)
        output = second.communicate(timeout=60)[0].decode()
        assert second.returncode == 0, output
    with BundleQueue(queue_path) as queue:
        assert queue.depth() == 0
        counters = queue.counters()
    sequences = sorted(e["sequence"] for e in state.journal.values())
    assert sequences == list(range(1, sealed + 1))  # every signed bundle, exactly once
    assert len(state.journal) == len({(e["device"], e["sequence"]) for e in state.journal.values()})
    assert counters["duplicate"] >= 1  # the held bundle came back as a duplicate
    assert counters["accepted"] + counters["duplicate"] == sealed  # each receipted once
    windows = sorted(s.bundle.window_start for s in state.bundles.values())
    assert windows == list(range(windows[0], windows[-1] + 1, 1000))
    assert len(windows) >= int(LOG_SECONDS)
