"""Settings of the indexer, read once at start from `DIMO_INDEXER_*` variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class IndexerSettings(BaseSettings):
    """The indexer's settings; every field can be set as `DIMO_INDEXER_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="DIMO_INDEXER_", extra="ignore")

    # SQLAlchemy URL of the index: SQLite (embedded default) or postgresql+psycopg://...
    database_url: str = "sqlite:///data/indexer.db"
    # JSON-RPC URL of the chain (anvil locally; Polygon or Base live).
    rpc_url: str = "http://127.0.0.1:8545"
    # Deployment record (addresses, ABIs, start block) written by scripts/deploy.py.
    deployment: Path = Path("data/deployments/31337.json")
    # Blocks on top of a block before it is indexed (0 locally; reorg depth live).
    confirmations: int = Field(default=0, ge=0)
    # First eth_getLogs range size, in blocks; it grows while fast and shrinks on errors.
    initial_range: int = Field(default=2_000, ge=1)
    # Largest eth_getLogs range, in blocks.
    max_range: int = Field(default=100_000, ge=1)
    # Smallest eth_getLogs range before an error is given up on, in blocks.
    min_range: int = Field(default=1, ge=1)
    # A range answered faster than this (seconds) makes the next one larger.
    fast_range_s: float = Field(default=1.0, gt=0)
    # Seconds one JSON-RPC request may take before it counts as a timeout.
    rpc_timeout_s: float = Field(default=30.0, gt=0)
    # Seconds between polls for new heads when following the chain live.
    poll_interval_s: float = Field(default=1.0, gt=0)
    # Most recent indexed blocks whose hashes are kept to detect a reorg.
    reorg_window: int = Field(default=256, ge=1)
    # TEST ONLY: seconds to sleep after each committed range (lets tests kill a sync mid-way).
    test_sleep_between_ranges_s: float = Field(default=0.0, ge=0)
