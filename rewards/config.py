"""Settings of the rewards service, read once at start from `DIMO_REWARDS_*` variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class RewardsSettings(BaseSettings):
    """The rewards service's settings; every field can be set as `DIMO_REWARDS_<FIELD>`.

    Lists are given as JSON in the environment, e.g. `DIMO_REWARDS_SIGNER_KEYS='["0x.."]'`.
    """

    model_config = SettingsConfigDict(env_prefix="DIMO_REWARDS_", extra="ignore")

    # JSON-RPC URL of the chain (anvil locally; Polygon or Base live).
    rpc_url: str = "http://127.0.0.1:8545"
    # Deployment record (addresses, ABIs, start block) written by scripts/deploy.py.
    deployment: Path = Path("data/deployments/31337.json")
    # Directory of the local content-addressed blob store (used when kubo_url is not set):
    # batch contents are read from it and allocation documents written to it.
    blob_dir: Path = Path("data/blobs")
    # Kubo RPC URL, e.g. http://127.0.0.1:5001; when set, blobs are read from and put in IPFS.
    kubo_url: str | None = None
    # Where `compute` writes `epoch-<N>/allocation.json` and `allocation.csv`.
    out_dir: Path = Path("data/rewards")
    # Model catalog (signals each make and model can report); None: the one shipped in
    # rewards/models.yaml. Part of the formula's inputs: its hash is in every allocation.
    catalog: Path | None = None
    # Processes that check batch contents (signatures, roots) in parallel.
    workers: int = Field(default=1, ge=1)
    # Largest eth_getLogs range, in blocks.
    log_range: int = Field(default=10_000, ge=1)
    # Seconds one JSON-RPC request may take.
    rpc_timeout_s: float = Field(default=30.0, gt=0)
    # Hex private keys of the oracle signers this process runs (secret; environment only).
    signer_keys: list[SecretStr] = Field(default_factory=list)
    # Hex private key of the account that relays `post` and `fund` transactions (secret).
    submitter_key: SecretStr | None = None
    # Depth of the tree level `fund` stores on-chain (`Rewards.cacheLevel`), so that every
    # claim's proof is this many elements shorter (about 700 gas each); the level's 2**depth
    # nodes cost about 22,100 gas each, once per epoch. 0 stores none.
    cache_depth: int = Field(default=8, ge=0, le=16)
