"""`dimo indexer run` as a real process: syncs the test chain, serves the API, follows new
blocks, and stops cleanly on SIGINT."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from indexer import schema as s
from indexer.db import make_engine

ROOT = Path(__file__).resolve().parents[2]
DIMO = Path(sys.executable).with_name("dimo")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], bool], proc: subprocess.Popen[str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"dimo indexer run exited with {proc.returncode}:\n{out}")
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("dimo indexer run did not get there in time")


def test_run_syncs_serves_follows_and_stops_on_sigint(
    rpc_url: str,
    deployment_record: Path,
    paired_vehicle: Callable[[int], Any],
    tmp_path: Path,
) -> None:
    from ape import chain

    port = free_port()
    db = tmp_path / "index.db"
    env = dict(
        os.environ,
        DIMO_INDEXER_DATABASE_URL=f"sqlite:///{db}",
        DIMO_INDEXER_RPC_URL=rpc_url,
        DIMO_INDEXER_DEPLOYMENT=str(deployment_record),
        DIMO_INDEXER_PORT=str(port),
        DIMO_INDEXER_POLL_INTERVAL_S="0.2",
        DIMO_INDEXER_BLOB_DIR=str(tmp_path / "blobs"),
    )
    proc = subprocess.Popen(
        [str(DIMO), "indexer", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(f"{base}/healthz", timeout=2).status_code == 200, proc)
        assert httpx.get(f"{base}/auth/nonce", timeout=5).status_code == 200
        engine = make_engine(f"sqlite:///{db}")

        def synced_to(block: int) -> bool:
            with engine.connect() as conn:
                last = conn.execute(select(s.sync_state.c.last_block)).scalar()
            return last is not None and int(last) >= block

        wait_for(lambda: synced_to(chain.blocks.head.number), proc)
        vehicle, _ = paired_vehicle(71_000)  # new blocks after the backfill: followed live

        def indexed() -> bool:
            with engine.connect() as conn:
                row = conn.execute(select(s.vehicles).where(s.vehicles.c.id == vehicle)).first()
            return row is not None and row.device is not None

        wait_for(indexed, proc)
        engine.dispose()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
