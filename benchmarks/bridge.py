"""Bridge throughput (decode+map+window) and CPU share at 4,500 frames/s; last line is JSON."""

from __future__ import annotations

import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import can

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from device_bridge.config import BridgeSettings
from device_bridge.decoder import Decoder
from device_bridge.keys import DeviceKey
from device_bridge.logs import open_log
from device_bridge.mapping import load_databases, load_mapping
from device_bridge.queue import BundleQueue
from device_bridge.runner import Bridge
from device_bridge.sources import ReplaySource
from device_bridge.window import Sealer, Windower
from protocol.eip712 import dimo_domain

KONA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "can" / "kona-ev"
KONA_LOG = KONA_DIR / "230112-7-2019-pcan-ccan-power-off-on-ready-off.candump.log"
KONA_CSV = KONA_LOG.with_name("230112-7-2019-pcan-ccan-power-off-on-ready-off.csv")
RATE = 4_500
SECONDS = 10.0


def throughput(decoder: Decoder, frames: list[can.Message], passes: int = 7) -> float:
    """Best frames/s of decode+map+window over the preloaded frames."""
    best = 0.0
    for _ in range(passes):
        windower = Windower(10_000)
        start = time.perf_counter()
        for i in range(0, len(frames), 4096):
            windower.add(decoder.decode_many(frames[i : i + 4096]))
        windower.flush()
        best = max(best, len(frames) / (time.perf_counter() - start))
    return best


def read_rate(path: Path, passes: int = 3) -> float:
    """Best frames/s of reading a log file into messages (format detection included)."""
    best = 0.0
    for _ in range(passes):
        start = time.perf_counter()
        count = sum(1 for _ in open_log(path))
        best = max(best, count / (time.perf_counter() - start))
    return best


def plain_cantools(frames: list[can.Message], passes: int = 3) -> float:
    """Best frames/s of `db.decode_message` per frame (the bus's DBC by channel)."""
    mapping = load_mapping("hyundai_kona_ev_2019")
    loaded = load_databases(mapping, dbc_dir=KONA_DIR)
    by_channel = {}
    for bus in mapping.buses:
        for channel in bus.channels:
            by_channel[channel] = loaded[bus.name][0]
    best = 0.0
    for _ in range(passes):
        start = time.perf_counter()
        for msg in frames:
            db = by_channel.get(msg.channel)
            if db is None:
                continue
            try:
                db.decode_message(msg.arbitration_id, msg.data)
            except Exception:
                continue
        best = max(best, len(frames) / (time.perf_counter() - start))
    return best


def cpu_share(frames: list[can.Message], settings: BridgeSettings) -> tuple[float, float, int]:
    """Feed RATE frames/s in real time for SECONDS through the real pipeline; CPU / wall."""
    duration = frames[-1].timestamp - frames[0].timestamp
    feed: list[can.Message] = []
    shift = 0.0
    while len(feed) < RATE * SECONDS:
        for msg in frames:
            clone = copy.copy(msg)
            clone.timestamp += shift
            feed.append(clone)
        shift += duration + 0.001
    feed = feed[: int(RATE * SECONDS)]
    span = feed[-1].timestamp - feed[0].timestamp
    speed = span / SECONDS
    with tempfile.TemporaryDirectory() as tmp:
        queue = BundleQueue(Path(tmp) / "q.sqlite")
        key = DeviceKey.from_private_key("0x" + "11" * 32)
        domain = dimo_domain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")
        bridge = Bridge(
            Decoder.from_settings(settings),
            Windower(settings.window_ms),
            Sealer(queue, key, domain, 1),
        )
        source = ReplaySource(lambda: feed, speed=speed)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        bridge.run(source)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        bundles = queue.depth()
        queue.close()
    return cpu / wall, len(feed) / wall, bundles


def main() -> None:
    """Run the three measurements and print one JSON line."""
    settings = BridgeSettings(dbc_dir=KONA_DIR)
    frames = list(open_log(KONA_LOG))
    decoder = Decoder.from_settings(settings)
    ours = throughput(decoder, frames)
    plain = plain_cantools(frames)
    share, fed_rate, bundles = cpu_share(frames, settings)
    read_candump, read_csv = read_rate(KONA_LOG), read_rate(KONA_CSV)
    print(f"decode+map+window: {ours:,.0f} frames/s; plain decode_message: {plain:,.0f} frames/s")
    print(f"reading: candump {read_candump:,.0f} frames/s; GVRET CSV {read_csv:,.0f} frames/s")
    print(f"real-time feed {fed_rate:,.0f} frames/s: CPU share {share:.4f} ({bundles} bundles)")
    print(
        json.dumps(
            {
                "frames": len(frames),
                "frames_per_s": round(ours),
                "decode_message_frames_per_s": round(plain),
                "ratio_vs_decode_message": round(ours / plain, 1),
                "cpu_share_at_4500fps": round(share, 4),
                "fed_frames_per_s": round(fed_rate),
                "bundles_signed": bundles,
                "read_candump_frames_per_s": round(read_candump),
                "read_gvret_csv_frames_per_s": round(read_csv),
            }
        )
    )


if __name__ == "__main__":
    main()
