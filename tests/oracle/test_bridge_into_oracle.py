"""End to end across services: the Kona recording, through the bridge, into the real oracle."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from device_bridge.config import BridgeSettings
from device_bridge.keys import DeviceKey
from device_bridge.runner import Bridge
from device_bridge.sources import LogSource
from oracle.config import OracleSettings
from oracle.tables import bundles, open_journal
from protocol.deployment import Deployment

REPO = Path(__file__).resolve().parents[2]
KONA_DIR = REPO.parent / "shared" / "data" / "can" / "kona-ev"
KONA_LOG = KONA_DIR / "230112-7-2019-pcan-ccan-power-off-on-ready-off.candump.log"

pytestmark = pytest.mark.skipif(not KONA_LOG.is_file(), reason=f"no Kona log at {KONA_DIR}")


def test_a_replayed_recording_is_journaled_by_the_oracle_exactly_once(
    paired_vehicle: Callable[[int], tuple[int, Any]],
    oracle_server: str,
    settings: OracleSettings,
    deployment: Deployment,
    tmp_path: Path,
) -> None:
    vehicle, device_key = paired_vehicle(21)
    # Data recorded before a pairing is refused (`unpaired-device`), so the recording is
    # replayed at its recorded speed from now on, after the pairing's block, and its first
    # window (aligned down to 2 s) must start after it too.
    time.sleep(2.5)
    bridge_settings = BridgeSettings(
        vehicle_id=vehicle,
        chain_id=deployment.chain_id,
        anchor_address=deployment.contract("AttestationAnchor").address,
        dbc_dir=KONA_DIR,
        queue_path=tmp_path / "queue.sqlite",
        oracle_url=oracle_server,
        window_ms=2_000,
    )
    bridge = Bridge.from_settings(bridge_settings, key=DeviceKey.from_private_key(device_key.key))
    stats = bridge.run(LogSource(KONA_LOG, speed=1.0), drain_timeout_s=60)

    assert stats.frames == 39_546
    assert bridge.queue.depth() == 0, "every bundle got a receipt"
    assert bridge.queue.dead_letters() == [], "the oracle rejected nothing"
    engine = open_journal(settings.database_url)
    with engine.connect() as conn:
        rows = conn.execute(
            select(bundles.c.sequence, bundles.c.vehicle_id, bundles.c.device).order_by(
                bundles.c.sequence
            )
        ).all()
        distinct = conn.execute(select(func.count(func.distinct(bundles.c.leaf_hash)))).scalar()
    assert rows, "the oracle journaled the recording"
    assert [r.sequence for r in rows] == list(range(1, len(rows) + 1))
    assert {r.vehicle_id for r in rows} == {vehicle}
    assert {r.device for r in rows} == {device_key.address}
    assert distinct == len(rows)
