"""Settings of the battery certifier service (`dimo certify serve`, prefix `DIMO_CERTIFY_`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["CertifierSettings"]


class CertifierSettings(BaseSettings):
    """The certifier service: which oracle keys sign, and which index and chain it checks."""

    model_config = SettingsConfigDict(env_prefix="DIMO_CERTIFY_", extra="ignore")

    # Interface the certifier binds to; loopback by default.
    host: str = "127.0.0.1"
    # Port of the certifier (POST /v1/certify/battery).
    port: int = Field(default=8620, ge=1, le=65535)
    # Base URL of the indexer API the certifier fetches inputs and proofs from (its own).
    api_url: str = "http://127.0.0.1:8700"
    # JSON-RPC URL of the chain the proofs are checked against.
    rpc_url: str = "http://127.0.0.1:8545"
    # The deployment record (AttestationAnchor, VehicleId, BatteryCertificates).
    deployment: Path = Path("data/deployments/31337.json")
    # The oracle keys that sign (JSON list; secrets, environment only).
    keys: list[SecretStr] = Field(default_factory=list)
    # A bearer token of the certifier at its indexer, for requests that carry none (secret).
    api_token: SecretStr | None = None
