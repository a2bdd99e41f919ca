"""Settings of the local platform behind `make run` (env prefix DIMO_STACK_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Where the Kona EV's `pcan.dbc` lives in this machine's shared data (the simulator needs it).
DEFAULT_DBC_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "can" / "kona-ev"


class StackSettings(BaseSettings):
    """Where the platform keeps its state, how it reaches the chain and what it runs.

    Each embedded default can be switched for the real thing: `rpc_url` (a live network; then
    no anvil is started and no fleet is simulated), `oracle_database_url` and
    `indexer_database_url` (PostgreSQL), `kubo_url` (IPFS).
    """

    model_config = SettingsConfigDict(env_prefix="DIMO_STACK_", extra="ignore")

    # One folder holds all state: chain, deployment record, journals, index, blobs, logs.
    data_dir: Path = Path("data")
    # Interface anvil and the services bind to; loopback only by default.
    host: str = "127.0.0.1"
    # Port of the local anvil node.
    anvil_port: int = Field(default=8545, ge=1, le=65535)
    # Seconds between blocks on anvil; None mines a block per transaction.
    block_time: float | None = Field(default=None, gt=0)
    # JSON-RPC URL of a live network; when set, no anvil is started and no fleet simulated.
    rpc_url: str | None = None
    # Ape network choice used to deploy to `rpc_url`, e.g. "polygon:amoy:node".
    network: str = "ethereum:local:foundry"
    # Chain id of `rpc_url` (names the deployment record data/deployments/<id>.json).
    chain_id: int = Field(default=31337, gt=0)

    # Port of the oracle's ingest API.
    oracle_port: int = Field(default=8600, ge=1, le=65535)
    # Ports of the oracle signer services, one each (JSON list).
    signer_ports: list[int] = Field(default=[8610, 8611, 8612], min_length=1)
    # Port of the indexer's API (and /docs).
    indexer_port: int = Field(default=8700, ge=1, le=65535)
    # Port of the battery certifier (`dimo certify serve`) started with the simulated fleet.
    certifier_port: int = Field(default=8620, ge=1, le=65535)
    # Port of the triggers service's API (webhook registration).
    triggers_port: int = Field(default=8800, ge=1, le=65535)
    # Port of the attestation host (`dimo certify attestations`: DIMO's Attestation API).
    attestation_port: int = Field(default=8630, ge=1, le=65535)
    # SQLAlchemy URL of the triggers' outbox; None: SQLite in the data folder.
    triggers_database_url: str | None = None
    # Requests one caller may make to the indexer's API per minute; 0: no limit.
    api_rate_limit_per_minute: int = Field(default=600, ge=0)
    # SQLAlchemy URL of the oracle's journal; None: SQLite in the data folder.
    oracle_database_url: str | None = None
    # SQLAlchemy URL of the index; None: SQLite in the data folder.
    indexer_database_url: str | None = None
    # Kubo RPC URL (e.g. http://127.0.0.1:5001); None: the local CID store in data/blobs.
    kubo_url: str | None = None
    # Seconds between the oracle's batches.
    batch_interval_s: float = Field(default=10.0, gt=0)
    # Oracle signer keys on a live network (JSON list; secrets, environment only). Locally
    # anvil's dev accounts 7, 8 and 9 sign.
    oracle_keys: list[SecretStr] = Field(default_factory=list)
    # Account relaying anchors on a live network (secret). Locally anvil's dev account 7.
    submitter_key: SecretStr | None = None

    # Seconds before a crashed service is started again; doubled for each further crash
    # inside `restart_window_s`, up to `restart_max_backoff_s`.
    restart_backoff_s: float = Field(default=1.0, gt=0, le=60)
    # Longest wait before a crashed service is started again, in seconds.
    restart_max_backoff_s: float = Field(default=30.0, gt=0, le=600)
    # Crashes of one service inside `restart_window_s` that stop the platform (naming the
    # service and its log) instead of restarting it again.
    restart_max_crashes: int = Field(default=5, ge=1, le=1000)
    # Seconds over which a service's crashes are counted.
    restart_window_s: float = Field(default=300.0, gt=0, le=86_400)

    # Simulated vehicles (bridges) on the local chain; 0 runs no fleet.
    fleet_vehicles: int = Field(default=20, ge=0, le=1000)
    # Models given in turn to the simulated vehicles (comma-separated simulator model names).
    fleet_models: str = "hyundai_kona_ev_2019,tesla_model3,nissan_leaf_2018"
    # Seed of the simulated fleet; the same seed drives the same cars.
    fleet_seed: int = 0
    # Simulated seconds per wall-clock second until the fleet has caught up with the present.
    time_factor: float = Field(default=60.0, ge=1.0, le=100_000.0)
    # Days of history the fleet drives through at `time_factor` on a fresh chain (the chain
    # starts that far back); the oracle accepts windows up to 7 days old.
    history_days: float = Field(default=2.0, ge=0.0, le=6.0)
    # Factor on every CAN message rate of the simulated cars (1.0: the real rates).
    fleet_rate_scale: float = Field(default=0.05, gt=0.0, le=1.0)
    # Whether the fleet keeps driving in real time once it has caught up with the present
    # (off: it seals what is open, waits for every receipt and stops driving).
    fleet_live: bool = True
    # Length of each simulated bridge's bundle windows, in seconds (the bridge's default: 10).
    fleet_window_s: int = Field(default=10, ge=1, le=3600)
    # Directory of the Kona `pcan.dbc` used by the simulator and the bridges.
    dbc_dir: Path = DEFAULT_DBC_DIR

    @property
    def anvil_url(self) -> str:
        """URL of the local anvil node."""
        return f"http://{self.host}:{self.anvil_port}"

    @property
    def chain_url(self) -> str:
        """The JSON-RPC URL services use: the live network's, else the local anvil."""
        return self.rpc_url or self.anvil_url

    @property
    def deployment_path(self) -> Path:
        """Where the deployment record of the chain lives."""
        chain_id = self.chain_id if self.rpc_url else 31337
        return self.data_dir / "deployments" / f"{chain_id}.json"

    @property
    def oracle_url(self) -> str:
        """Base URL of the oracle's ingest API."""
        return f"http://{self.host}:{self.oracle_port}"

    @property
    def triggers_url(self) -> str:
        """Base URL of the triggers service's API."""
        return f"http://{self.host}:{self.triggers_port}"

    @property
    def attestation_url(self) -> str:
        """Base URL of the attestation host."""
        return f"http://{self.host}:{self.attestation_port}"

    @property
    def indexer_url(self) -> str:
        """Base URL of the indexer's API."""
        return f"http://{self.host}:{self.indexer_port}"

    @property
    def models(self) -> tuple[str, ...]:
        """The fleet's models, in turn."""
        return tuple(m.strip() for m in self.fleet_models.split(",") if m.strip())
