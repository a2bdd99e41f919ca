"""Settings of the oracle, read once at start from `DIMO_ORACLE_*` variables."""

from __future__ import annotations

from pathlib import Path
from typing import Final, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Batcher checkpoints at which `crash_at` can stop the process (see `oracle.batcher`).
CRASH_POINTS: Final = ("built", "stored", "signed", "submitted", "sent", "confirmed")
CrashPoint = Literal["built", "stored", "signed", "submitted", "sent", "confirmed"]


class OracleSettings(BaseSettings):
    """The oracle's settings; every field can be set as `DIMO_ORACLE_<FIELD>`.

    Lists are given as JSON in the environment, e.g.
    `DIMO_ORACLE_SIGNER_URLS='["http://127.0.0.1:8701"]'`.
    """

    model_config = SettingsConfigDict(env_prefix="DIMO_ORACLE_", extra="ignore")

    # SQLAlchemy URL of the journal: SQLite (embedded default) or postgresql+psycopg://...
    database_url: str = "sqlite:///data/oracle.db"
    # JSON-RPC URL of the chain (anvil locally; Polygon or Base live).
    rpc_url: str = "http://127.0.0.1:8545"
    # Deployment record (addresses, ABIs, start block) written by scripts/deploy.py.
    deployment: Path = Path("data/deployments/31337.json")
    # Directory of the local content-addressed blob store (used when kubo_url is not set).
    blob_dir: Path = Path("data/blobs")
    # Kubo RPC URL, e.g. http://127.0.0.1:5001; when set, batches are stored in IPFS there.
    kubo_url: str | None = None
    # Interface the ingest API binds.
    host: str = "127.0.0.1"
    # Port the ingest API listens on.
    port: int = Field(default=8600, ge=1, le=65_535)
    # Seconds between batches: a batch is cut at least this often when bundles are waiting.
    batch_interval_s: float = Field(default=60.0, gt=0)
    # Most bundles in one batch; a full batch is cut at once.
    batch_max_bundles: int = Field(default=10_000, ge=1)
    # Blocks on top of an anchor transaction's block before its batch counts as confirmed.
    confirmations: int = Field(default=0, ge=0)
    # Hex private keys of the oracle signers this process runs (secret; environment only).
    signer_keys: list[SecretStr] = Field(default_factory=list)
    # URLs of remote signer services asked for their signature on each batch.
    signer_urls: list[str] = Field(default_factory=list)
    # Hex private key of the account that relays anchor transactions (secret).
    submitter_key: SecretStr | None = None
    # Latest a bundle's window may end past now, in ms (later is `window-in-future`).
    max_future_ms: int = Field(default=300_000, ge=0)
    # Earliest a bundle's window may start before now, in ms (older is `window-too-old`).
    max_age_ms: int = Field(default=7 * 24 * 3600 * 1000, ge=0)
    # Seconds a cached device answer is used before new pairing logs are polled.
    device_cache_ttl_s: float = Field(default=1.0, ge=0)
    # Addresses of the indexers that may read batches' reading values (GET
    # /v1/batches/{id}/readings, requests signed as EIP-712 `ReadBatch`); nobody else can.
    indexers: list[str] = Field(default_factory=list)
    # How far a readings request's signed `issuedAt` may lie from now, in ms.
    readings_request_ttl_ms: int = Field(default=300_000, ge=1_000)
    # Largest request body the ingest API reads, in bytes (larger is a 413 problem).
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    # Most bundles in one request array.
    max_bundles_per_request: int = Field(default=1000, ge=1)
    # Fault injection, for crash tests only; off (None) by default and never set in service.
    # Names a batcher checkpoint (`built`, `stored`, `signed`, `submitted`: the signed tx is
    # persisted, not yet broadcast; `sent`: broadcast, no receipt yet; `confirmed`); the
    # process exits with status 137 right after persisting it, as after `kill -9`.
    crash_at: CrashPoint | None = None
