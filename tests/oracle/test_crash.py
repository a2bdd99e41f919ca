"""The oracle killed (exit 137, as kill -9) in every batch state resumes and anchors each bundle
exactly once.

The oracle runs as a real subprocess (`python -m oracle.cli run`) with the fault-injection
setting `DIMO_ORACLE_CRASH_AT=<checkpoint>` (`OracleSettings.crash_at`), which makes it exit
with status 137 right after persisting that checkpoint.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from oracle.anchoring import Anchorer
from oracle.config import CRASH_POINTS
from oracle.tables import BatchState, batches, bundles
from protocol.blobstore import LocalCidStore
from protocol.deployment import Deployment
from protocol.eip712 import dimo_domain
from tests.conftest import private_key
from tests.oracle.test_batcher import (
    assert_anchored_exactly_once,
    journal_bundles,
    open_journal_engine,
)

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _settled(engine: Engine) -> bool:
    with engine.connect() as conn:
        waiting = conn.execute(
            select(func.count()).select_from(bundles).where(bundles.c.batch_id.is_(None))
        ).scalar_one()
        open_batches = conn.execute(
            select(func.count())
            .select_from(batches)
            .where(batches.c.state != BatchState.CONFIRMED.value)
        ).scalar_one()
    return waiting == 0 and open_batches == 0


@pytest.mark.parametrize("crash_at", CRASH_POINTS)
def test_an_oracle_killed_in_any_state_anchors_every_bundle_exactly_once_after_restart(
    crash_at: str,
    tmp_path: Path,
    rpc_url: str,
    deployment_record: Path,
    oracle_signers: list[Any],
    accounts: Any,
) -> None:
    url = f"sqlite:///{tmp_path / 'oracle.db'}"
    engine = open_journal_engine(url)
    record = Deployment.load(deployment_record)
    domain = dimo_domain(record.chain_id, record.contract("AttestationAnchor").address)
    journal_bundles(engine, domain, 5)
    env = {
        **os.environ,
        "DIMO_ORACLE_DATABASE_URL": url,
        "DIMO_ORACLE_RPC_URL": rpc_url,
        "DIMO_ORACLE_DEPLOYMENT": str(deployment_record),
        "DIMO_ORACLE_BLOB_DIR": str(tmp_path / "blobs"),
        "DIMO_ORACLE_PORT": str(_free_port()),
        "DIMO_ORACLE_BATCH_INTERVAL_S": "0.05",
        "DIMO_ORACLE_BATCH_MAX_BUNDLES": "3",
        "DIMO_ORACLE_CONFIRMATIONS": "0",
        "DIMO_ORACLE_SIGNER_KEYS": json.dumps([private_key(s) for s in oracle_signers]),
        "DIMO_ORACLE_SUBMITTER_KEY": private_key(accounts[6]),
    }
    command = [sys.executable, "-m", "oracle.cli", "run"]
    crashed = subprocess.run(
        command,
        cwd=ROOT,
        env={**env, "DIMO_ORACLE_CRASH_AT": crash_at},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert crashed.returncode == 137, crashed.stderr[-3000:]
    journal_bundles(engine, domain, 2, start_sequence=5)  # more arrive while it is down
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while not _settled(engine):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the restarted oracle did not anchor everything"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    anchorer = Anchorer(rpc_url, record, None)
    assert_anchored_exactly_once(engine, anchorer, LocalCidStore(tmp_path / "blobs"), domain)
