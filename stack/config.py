"""Settings of the local platform behind `make run` (env prefix DIMO_STACK_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class StackSettings(BaseSettings):
    """Where the platform keeps its state and how it reaches the chain."""

    model_config = SettingsConfigDict(env_prefix="DIMO_STACK_")

    # One folder holds all state: the chain's state, the deployment record, logs.
    data_dir: Path = Path("data")
    # Interface anvil and the services bind to; loopback only by default.
    host: str = "127.0.0.1"
    # Port of the local anvil node.
    anvil_port: int = Field(default=8545, ge=1, le=65535)
    # Seconds between blocks on anvil; None mines a block per transaction.
    block_time: float | None = Field(default=None, gt=0)
    # JSON-RPC URL of a live network; when set, no anvil is started.
    rpc_url: str | None = None
    # Ape network choice used to deploy to `rpc_url`, e.g. "polygon:amoy:node".
    network: str = "ethereum:local:foundry"

    @property
    def anvil_url(self) -> str:
        """URL of the local anvil node."""
        return f"http://{self.host}:{self.anvil_port}"

    @property
    def deployment_path(self) -> Path:
        """Where the deployment record of the local chain lives."""
        return self.data_dir / "deployments" / "31337.json"
