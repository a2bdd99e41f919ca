"""Settings of the device bridge, read once at start from `DIMO_BRIDGE_*` variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class BridgeSettings(BaseSettings):
    """The device bridge's settings; every field can be set as `DIMO_BRIDGE_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="DIMO_BRIDGE_", extra="ignore")

    # Vehicle mapping to use: a name under device_bridge/mappings/ or a path to a YAML/JSON file.
    mapping: str = "hyundai_kona_ev_2019"
    # Directory where DBC files named by bare file names in a mapping are looked up.
    dbc_dir: Path | None = None
    # Explicit DBC paths by the name a mapping gives them, e.g. {"kona_pcan": "/x/pcan.dbc"}.
    dbc_paths: dict[str, Path] = Field(default_factory=dict)
    # python-can interface of the live bus: "socketcan" on a car, "virtual" in tests.
    can_interface: str = "virtual"
    # python-can channel(s) of the live bus, comma-separated for several.
    can_channel: str = "vcan0"
    # Whether the live bus carries CAN-FD frames.
    can_fd: bool = False
    # Entries in the decoder's (id, payload) -> readings cache before it is cleared; 0 disables.
    decode_cache_size: int = Field(default=65_536, ge=0)
    # Drop readings outside the VSS catalog's plausible range (counted) instead of passing them.
    drop_implausible: bool = True
    # Replay speed of recorded logs: 1.0 = recorded timing, 0 = as fast as possible.
    replay_speed: float = Field(default=0.0, ge=0.0)
