"""Fixtures of the device bridge tests: the Kona recording and its DBCs."""

from __future__ import annotations

from pathlib import Path

import can
import pytest
from cantools.database.can import Database

from device_bridge.decoder import Decoder
from device_bridge.logs import open_log
from device_bridge.mapping import load_databases, load_mapping

KONA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "can" / "kona-ev"
KONA_STEM = "230112-7-2019-pcan-ccan-power-off-on-ready-off"
KONA_CSV = KONA_DIR / f"{KONA_STEM}.csv"
KONA_CANDUMP = KONA_DIR / f"{KONA_STEM}.candump.log"


@pytest.fixture(scope="session")
def kona_frames() -> list[can.Message]:
    if not KONA_CSV.is_file():
        pytest.skip(f"Kona recording not found at {KONA_DIR}")
    return list(open_log(KONA_CSV))


@pytest.fixture(scope="session")
def kona_databases() -> dict[str, Database]:
    mapping = load_mapping("hyundai_kona_ev_2019")
    return {name: db for name, (db, _) in load_databases(mapping, dbc_dir=KONA_DIR).items()}


@pytest.fixture
def kona_decoder(kona_databases: dict[str, Database]) -> Decoder:
    return Decoder(load_mapping("hyundai_kona_ev_2019"), kona_databases)


@pytest.fixture(scope="session")
def kona_dir() -> Path:
    if not KONA_CSV.is_file():
        pytest.skip(f"Kona recording not found at {KONA_DIR}")
    return KONA_DIR


@pytest.fixture(scope="session")
def kona_candump(kona_dir: Path) -> Path:
    return KONA_CANDUMP
