"""Settings of the device bridge, read once at start from `DIMO_BRIDGE_*` variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
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
    # Length of a bundle's window in ms; windows are aligned to wall-clock multiples of it.
    window_ms: int = Field(default=10_000, gt=0, le=3_600_000)
    # How long (ms) a window stays open past its end for late frames before it is sealed.
    window_lateness_ms: int = Field(default=1_000, ge=0)
    # The vehicle's token id (VehicleId) the device is paired with.
    vehicle_id: int | None = Field(default=None, ge=0)
    # Device key as hex (throwaway/local use); prefer the encrypted keystore below on a car.
    device_key: SecretStr | None = None
    # Encrypted keystore (eth-account / Web3 Secret Storage JSON) holding the device key.
    keystore: Path | None = None
    # Password of the keystore (prefer keystore_password_file on a car).
    keystore_password: SecretStr | None = None
    # File whose first line is the keystore's password.
    keystore_password_file: Path | None = None
    # Chain id of the EIP-712 domain bundles are signed in (read from `deployment` if set).
    chain_id: int = Field(default=31337, gt=0)
    # AttestationAnchor address, the domain's verifyingContract (read from `deployment` if set).
    anchor_address: str | None = None
    # Deployment record (protocol.deployment) giving chain id and the AttestationAnchor address.
    deployment: Path | None = None
    # The on-disk queue of signed bundles (SQLite, WAL, synchronous=FULL).
    queue_path: Path = Path("data/bridge/queue.sqlite")
    # Most signed bundles the queue holds; when full, closed windows are coalesced unsigned.
    queue_max_bundles: int = Field(default=50_000, gt=0)
    # The oracle's base URL; bundles go to POST {oracle_url}/v1/bundles.
    oracle_url: str = "http://127.0.0.1:8000"
    # Bundles per POST (the ingest contract allows up to 1000).
    upload_batch_size: int = Field(default=100, gt=0, le=1000)
    # Timeout of one upload request, in seconds.
    upload_timeout_s: float = Field(default=30.0, gt=0)
    # First retry delay after a connection error or 5xx, in seconds (doubles each attempt).
    retry_base_s: float = Field(default=0.5, gt=0)
    # Longest retry delay, in seconds.
    retry_max_s: float = Field(default=60.0, gt=0)
    # Seconds between two OBD-II polls of every PID; 0 disables OBD polling.
    obd_interval_s: float = Field(default=0.0, ge=0)
    # Seconds to wait for an ECU's answer to one OBD-II request.
    obd_timeout_s: float = Field(default=0.5, gt=0)
