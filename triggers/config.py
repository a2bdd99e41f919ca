"""Settings of the triggers service, read once at start from `DIMO_TRIGGERS_*` variables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class TriggersSettings(BaseSettings):
    """The triggers service's settings; every field can be set as `DIMO_TRIGGERS_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="DIMO_TRIGGERS_", extra="ignore")

    # SQLAlchemy URL of the outbox and webhook registry: SQLite (default) or postgresql+psycopg.
    database_url: str = "sqlite:///data/triggers.db"
    # SQLAlchemy URL of the oracle's journal, read only (journaled and anchored readings).
    journal_url: str = "sqlite:///data/oracle.db"
    # Base URL of the indexer's API, asked for a subscriber's rights on a vehicle.
    indexer_url: str = "http://127.0.0.1:8700"
    # Interface the registration API binds.
    host: str = "127.0.0.1"
    # Port the registration API listens on.
    port: int = Field(default=8800, ge=1, le=65_535)
    # HS256 key of the wallet access tokens (the indexer's DIMO_INDEXER_JWT_SECRET).
    jwt_secret: SecretStr = SecretStr("")
    # Issuer the access tokens must name (the indexer's DIMO_INDEXER_SIWE_DOMAIN).
    jwt_issuer: str = "localhost:8700"
    # Issuer the developer JWTs of DIMO's SDKs must name (the indexer's DIMO_INDEXER_SIWE_URI):
    # a developer JWT acts for its licence's client id, whose grants are the licence's.
    developer_jwt_issuer: str = "http://localhost:8700"
    # `live`: targets must be https on public addresses; `local`: the local chain, where
    # loopback targets (http or https) are allowed when `allow_loopback` is set.
    network: Literal["live", "local"] = "live"
    # Allow targets on 127.0.0.0/8 and ::1 (only honoured when `network` is `local`).
    allow_loopback: bool = False
    # Seconds one delivery attempt (connect, send, read the answer) may take.
    delivery_timeout_s: float = Field(default=10.0, gt=0, le=120)
    # Largest answer body read from a target, bytes; a larger one fails the attempt.
    max_response_bytes: int = Field(default=64 * 1024, ge=256, le=16 * 1024 * 1024)
    # Attempts in flight to one target (scheme, host, port) at once.
    per_target_concurrency: int = Field(default=4, ge=1, le=256)
    # Attempts in flight in this process at once.
    max_in_flight: int = Field(default=256, ge=1, le=10_000)
    # First retry delay, s; each retry doubles it (full jitter), up to `retry_max_delay_s`.
    retry_base_s: float = Field(default=1.0, gt=0, le=3600)
    # Longest delay between two attempts, s.
    retry_max_delay_s: float = Field(default=3600.0, gt=0, le=86_400)
    # How long a delivery is retried before it goes to the dead-letter list, s (>= 24 h).
    retry_window_s: float = Field(default=86_400.0, ge=60, le=30 * 86_400)
    # Seconds a claimed delivery stays leased to a worker; after a crash it is retried then.
    lease_s: float = Field(default=30.0, gt=0, le=3600)
    # Most deliveries claimed in one outbox round.
    claim_batch: int = Field(default=500, ge=1, le=10_000)
    # Seconds between polls of the journal and the outbox when idle.
    poll_interval_s: float = Field(default=0.05, gt=0, le=60)
    # Most journal bundles evaluated in one transaction.
    evaluate_batch: int = Field(default=500, ge=1, le=100_000)
    # Seconds a subscriber's rights answer is reused; a revocation stops deliveries after this.
    rights_ttl_s: float = Field(default=1.0, ge=0, le=300)
    # Smallest and largest cooldown a webhook may set, s.
    min_cooldown_s: int = Field(default=0, ge=0)
    max_cooldown_s: int = Field(default=7 * 86_400, ge=1)
    # Largest static cost of a CEL condition (see `triggers.conditions.cost`).
    max_condition_cost: int = Field(default=200, ge=1, le=100_000)
    # Seconds the previous secret still signs (beside the new one) after a rotation.
    secret_overlap_s: int = Field(default=86_400, ge=0, le=30 * 86_400)
    # Seconds the verification request to a new target may take.
    verify_timeout_s: float = Field(default=10.0, gt=0, le=60)
    # Chain id and VehicleId contract address the payload's `assetDID` names.
    chain_id: int = Field(default=31337, ge=1)
    vehicle_contract: str = "0x0000000000000000000000000000000000000000"
