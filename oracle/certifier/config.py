"""Settings of the battery certifier (`dimo certify serve`, prefix `DIMO_CERTIFY_`) and of the
attestation service (`dimo certify attestations`, prefix `DIMO_ATTEST_`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["AttestationSettings", "CertifierSettings"]


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


class AttestationSettings(BaseSettings):
    """The attestation service: the oracle keys that sign credentials, the index and chain the
    statements are verified against, and the credentials' limits."""

    model_config = SettingsConfigDict(env_prefix="DIMO_ATTEST_", extra="ignore")

    # Interface the service binds to; loopback by default.
    host: str = "127.0.0.1"
    # Port of the attestation host (POST /v2/attestation/...).
    port: int = Field(default=8630, ge=1, le=65535)
    # Base URL of the indexer API the statements' readings and proofs are read from.
    api_url: str = "http://127.0.0.1:8700"
    # JSON-RPC URL of the chain the proofs and signatures are checked against.
    rpc_url: str = "http://127.0.0.1:8545"
    # The deployment record (AttestationAnchor, VehicleId, VehicleCredentials, ...).
    deployment: Path = Path("data/deployments/31337.json")
    # The oracle keys that sign (JSON list; secrets, environment only); at least the quorum.
    keys: list[SecretStr] = Field(default_factory=list)
    # Certifiers (`dimo certify serve`) asked for the signatures the local keys lack (JSON list).
    certifier_urls: list[str] = Field(default_factory=list)
    # The funded key that relays supersessions and revocations (secret); default: first key.
    relayer_key: SecretStr | None = None
    # Directory of the local content-addressed store credentials are kept in.
    blob_dir: Path = Path("data/blobs")
    # Base URL of the telemetry GraphQL host the VIN answer points to (`vcUrl`: it adds
    # `/query`); the indexer serves it at `/telemetry`.
    telemetry_url: str = "http://127.0.0.1:8700/telemetry"
    # HS256 key of the indexer's tokens (its DIMO_INDEXER_JWT_SECRET; secret, environment
    # only), to check vehicle JWTs here before the indexer does; None: only the indexer checks.
    jwt_secret: SecretStr | None = Field(default=None, min_length=32)
    # Issuer the vehicle JWTs name (the indexer's DIMO_INDEXER_SIWE_URI).
    vehicle_jwt_issuer: str = "http://127.0.0.1:8700"
    # Whether each credential is submitted to the indexer's index (`POST /credentials`),
    # which the Telemetry GraphQL's `vinVCLatest` reads.
    index_credentials: bool = True
    # How long a VIN credential stays valid, days.
    vin_valid_days: int = Field(default=30, ge=1, le=3650)
    # How far back an odometer statement's tamper checks look, days.
    odometer_window_days: int = Field(default=30, ge=1, le=3650)
    # Oldest position reading a position credential may state, seconds before its time.
    position_max_age_s: int = Field(default=300, ge=1, le=86_400)
