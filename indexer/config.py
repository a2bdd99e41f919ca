"""Settings of the indexer, read once at start from `DIMO_INDEXER_*` variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
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
    # Logs a range should hold: a range that returns more makes the next one smaller, so the
    # next range is fetched and decoded while this one is written (and memory stays bounded).
    target_logs: int = Field(default=10_000, ge=1)
    # A range of at least this many events moves the prefetching (fetch, decode, fold) to a
    # worker process for the rest of the backfill, off the GIL the writes need; 0: never.
    prefetch_process_logs: int = Field(default=5_000, ge=0)
    # Worker processes then, each fetching and decoding a range ahead.
    prefetch_workers: int = Field(default=2, ge=1)
    # A range answered faster than this (seconds) makes the next one larger.
    fast_range_s: float = Field(default=1.0, gt=0)
    # Seconds one JSON-RPC request may take before it counts as a timeout.
    rpc_timeout_s: float = Field(default=30.0, gt=0)
    # Seconds between polls for new heads when following the chain live.
    poll_interval_s: float = Field(default=1.0, gt=0)
    # Most recent indexed blocks whose hashes are kept to detect a reorg.
    reorg_window: int = Field(default=256, ge=1)
    # Seconds between retries of batches whose content the blob store could not serve.
    pending_retry_s: float = Field(default=30.0, ge=0)
    # TEST ONLY: seconds to sleep after each committed range (lets tests kill a sync mid-way).
    test_sleep_between_ranges_s: float = Field(default=0.0, ge=0)

    # ---- API (indexer/api) ----
    # Interface the API binds.
    host: str = "127.0.0.1"
    # Port the API listens on.
    port: int = Field(default=8700, ge=1, le=65_535)
    # RFC 3986 authority (host[:port]) a Sign-In with Ethereum message must name as its domain.
    siwe_domain: str = "127.0.0.1:8700"
    # URI a Sign-In with Ethereum message must name (the dApp's origin), compared exactly.
    siwe_uri: str = "http://127.0.0.1:8700"
    # EIP-155 chain id a Sign-In with Ethereum message must name (the deployment's chain).
    siwe_chain_id: int = Field(default=31337, ge=1)
    # Seconds a login nonce from GET /auth/nonce stays usable (once).
    nonce_ttl_s: int = Field(default=300, ge=1)
    # HS256 key of the API's JWTs, at least 32 bytes (secret; environment only). Unset: a
    # random key per process, so tokens die with it and workers do not share them.
    jwt_secret: SecretStr | None = Field(default=None, min_length=32)
    # Seconds an access token from POST /auth/login or /auth/refresh is valid.
    jwt_ttl_s: int = Field(default=900, ge=1)
    # Seconds after the sign-in past which POST /auth/refresh refuses (sign in again).
    session_max_s: int = Field(default=86_400, ge=1)
    # ---- DIMO's developer surface (auth, token exchange, Identity GraphQL) ----
    # Seconds a developer JWT from POST /auth/web3/submit_challenge is valid (DIMO: 14 days).
    developer_jwt_ttl_s: int = Field(default=14 * 86_400, ge=60, le=90 * 86_400)
    # Seconds a vehicle JWT from POST /v1/tokens/exchange is valid (DIMO: 10 minutes).
    vehicle_jwt_ttl_s: int = Field(default=600, ge=10, le=3_600)
    # Seconds a challenge from POST /auth/web3/generate_challenge may be submitted (once).
    challenge_ttl_s: int = Field(default=300, ge=10, le=3_600)
    # NFT contract addresses token exchange accepts for our VehicleId besides its own: DIMO's
    # Production and Dev vehicle NFTs, which the SDKs send unless told otherwise.
    vehicle_nft_aliases: list[str] = Field(
        default=[
            "0xbA5738a18d83D41847dfFbDC6101d37C69c9B0cF",
            "0x45fbCD3ef7361d156e8b16F5538AE36DEdf61Da8",
        ],
        max_length=16,
    )
    # Deepest selection the Identity GraphQL API answers (deeper queries get an error); the
    # deepest query of DIMO's SDKs (rewards history by owner) is 7.
    graphql_max_depth: int = Field(default=7, ge=2, le=32)
    # Largest `first`/`last` of an Identity GraphQL connection (DIMO: 100).
    graphql_max_page: int = Field(default=100, ge=1, le=1_000)
    # Seconds the API reuses its read of the sync checkpoint when checking rights (rights then
    # trail the index by at most this; 0 reads it on every request). Under load, a value below
    # the sync's poll interval (e.g. 0.5) saves a query per request at no visible cost.
    rights_checkpoint_ttl_s: float = Field(default=0.0, ge=0)
    # Requests one caller (wallet from the JWT, else client IP) may make per minute; 0: no limit.
    rate_limit_per_minute: int = Field(default=600, ge=0)
    # Directory of the local content-addressed blob store batches are fetched from by CID
    # (the oracle's blob_dir on one machine; used when kubo_url is not set).
    blob_dir: Path = Path("data/blobs")
    # Kubo RPC URL, e.g. http://127.0.0.1:5001; when set, batch contents are fetched from IPFS.
    kubo_url: str | None = None
    # The oracle whose API serves reading values to authorised indexers; public batch
    # documents hold none, so without it only batches anchored before schema 2 load.
    oracle_url: str | None = None
    # Hex private key this indexer signs readings requests with (secret; environment only);
    # the oracle must list its address in DIMO_ORACLE_INDEXERS.
    reader_key: SecretStr | None = None
