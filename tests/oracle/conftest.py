"""Fixtures for the oracle tests: settings on the session's anvil, signed bundles, journals."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from oracle.config import OracleSettings
from oracle.tables import open_journal
from protocol.bundle import Bundle, SignedBundle, sign_bundle
from protocol.deployment import Deployment
from protocol.eip712 import Eip712Domain, dimo_domain

PG_ADMIN_URL = os.environ.get(
    "DIMO_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
ROOT = Path(__file__).resolve().parents[2]

SOC = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current"
SPEED = "Vehicle.Speed"
ODOMETER = "Vehicle.TraveledDistance"
VOLTAGE = "Vehicle.Powertrain.TractionBattery.CurrentVoltage"


def readings(start_ms: int, odometer_km: float = 1000.0, seconds: int = 10) -> dict[str, Any]:
    """Ten seconds (by default) of plausible 1 Hz readings starting at `start_ms`."""
    ts = [start_ms + 1000 * i for i in range(seconds)]
    return {
        SPEED: [(t, 50.0 + i) for i, t in enumerate(ts)],
        SOC: [(t, 80.0 - 0.01 * i) for i, t in enumerate(ts)],
        ODOMETER: [(t, odometer_km + 0.014 * i) for i, t in enumerate(ts)],
        VOLTAGE: [(t, 390.0 + 0.1 * i) for i, t in enumerate(ts)],
    }


@pytest.fixture(scope="session")
def deployment(deployment_record: Path) -> Deployment:
    return Deployment.load(deployment_record)


@pytest.fixture(scope="session")
def domain(deployment: Deployment) -> Eip712Domain:
    """The DIMO domain devices sign bundles in (verifyingContract = AttestationAnchor)."""
    return dimo_domain(deployment.chain_id, deployment.contract("AttestationAnchor").address)


@pytest.fixture
def settings(deployment_record: Path, rpc_url: str, tmp_path: Path) -> OracleSettings:
    """Oracle settings on the session's anvil with a fresh SQLite journal; no cache TTL."""
    return OracleSettings(
        database_url=f"sqlite:///{tmp_path / 'oracle.db'}",
        rpc_url=rpc_url,
        deployment=deployment_record,
        blob_dir=tmp_path / "blobs",
        device_cache_ttl_s=0.0,
    )


@pytest.fixture
def chain_now_ms() -> Callable[[], int]:
    """The latest block's timestamp in ms (pairings are dated by it)."""

    def _now() -> int:
        from ape import chain

        return int(chain.blocks.head.timestamp) * 1000

    return _now


@pytest.fixture
def make_signed(domain: Eip712Domain) -> Callable[..., SignedBundle]:
    """Signs a bundle of 10 s of readings for a device key and vehicle."""

    def _make(
        key: Any,
        vehicle: int,
        sequence: int,
        start_ms: int,
        *,
        odometer_km: float = 1000.0,
        data: dict[str, Any] | None = None,
        signer: Any = None,
        schema: int = 1,
    ) -> SignedBundle:
        bundle = Bundle(
            device=key.address,
            vehicle_id=vehicle,
            sequence=sequence,
            window_start=start_ms,
            window_end=start_ms + 10_000,
            readings=data if data is not None else readings(start_ms, odometer_km),
            schema_version=schema,
        )
        return sign_bundle(bundle, bytes((signer or key).key), domain)

    return _make


def _drop_schema(admin: Engine, schema: str) -> None:
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


@pytest.fixture(params=["sqlite", "postgresql"])
def journal_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A fresh, empty journal on SQLite (a temp file) and on PostgreSQL (a fresh schema)."""
    if request.param == "sqlite":
        engine = open_journal(f"sqlite:///{tmp_path / 'journal.db'}")
        yield engine
        engine.dispose()
        return
    admin = open_journal_admin()
    schema = f"oracle_test_{secrets.token_hex(6)}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = open_journal(PG_ADMIN_URL, connect_args={"options": f"-csearch_path={schema}"})
    try:
        yield engine
    finally:
        engine.dispose()
        _drop_schema(admin, schema)
        admin.dispose()


def open_journal_admin() -> Engine:
    """An engine on the test PostgreSQL server (skips nothing: an absent server fails)."""
    from sqlalchemy import create_engine

    return create_engine(PG_ADMIN_URL)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def oracle_server(settings: OracleSettings) -> Iterator[str]:
    """A real uvicorn process serving the oracle API on a free port; yields its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "DIMO_ORACLE_DATABASE_URL": settings.database_url,
        "DIMO_ORACLE_RPC_URL": settings.rpc_url,
        "DIMO_ORACLE_DEPLOYMENT": str(settings.deployment),
        "DIMO_ORACLE_BLOB_DIR": str(settings.blob_dir),
        "DIMO_ORACLE_DEVICE_CACHE_TTL_S": "0",
        "DIMO_ORACLE_INDEXERS": json.dumps(settings.indexers),
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "oracle.api:app_from_env",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                out = proc.stdout.read().decode() if proc.stdout else ""
                raise RuntimeError(f"oracle server exited ({proc.returncode}):\n{out}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("oracle server did not start within 30 s")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
