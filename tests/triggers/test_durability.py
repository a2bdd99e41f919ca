"""The service as a process (`dimo triggers run`): a receiver down for 60 s misses nothing, and
a kill -9 mid-delivery loses nothing (at least once, the same `webhook-id` on a resend)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import create_engine, text

from tests.triggers.conftest import (
    OWNER,
    VEHICLE,
    Index,
    Journal,
    Receiver,
    free_port,
    make_settings,
    token_for,
)

SPEED = "Vehicle.Speed"
ROOT = Path(__file__).resolve().parents[2]


class Process:
    """`dimo triggers run` in a child process, started and killed at will."""

    def __init__(self, tmp_path: Path, journal: Journal, index: Index, **extra: Any) -> None:
        self.port = free_port()
        settings = make_settings(tmp_path, journal, index, port=self.port, **extra)
        self.env = dict(os.environ)
        for name, value in settings.model_dump().items():
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            self.env[f"DIMO_TRIGGERS_{name.upper()}"] = (
                str(value).lower() if isinstance(value, bool) else str(value)
            )
        self.url = f"http://127.0.0.1:{self.port}"
        self.database_url = settings.database_url
        self.log = tmp_path / "triggers.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "stack", "triggers", "run"],
                env=self.env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert self.proc.poll() is None, self.log.read_text()
            time.sleep(0.1)
        raise RuntimeError("dimo triggers run did not start")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill9()

    def outbox(self) -> dict[str, str]:
        engine = create_engine(self.database_url)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, state FROM trigger_deliveries")).all()
        engine.dispose()
        return {r.id: r.state for r in rows}

    def rows(self) -> list[Any]:
        engine = create_engine(self.database_url)
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT id, state, attempts, created_ms, delivered_ms FROM trigger_deliveries")
            ).all()
        engine.dispose()
        return [tuple(r) for r in rows]

    def register(self, receiver: Receiver) -> str:
        headers = {"Authorization": f"Bearer {token_for(OWNER)}"}
        r = httpx.post(
            f"{self.url}/v1/webhooks",
            json={
                "service": "signals",
                "metricName": "speed",
                "condition": "value > 100",
                "coolDownPeriod": 0,
                "targetURL": receiver.url,
                "verificationToken": receiver.token,
            },
            headers=headers,
            timeout=30,
        )
        assert r.status_code == 201, r.text
        receiver.secrets.append(r.json()["secret"])
        hook = r.json()["id"]
        r = httpx.post(f"{self.url}/v1/webhooks/{hook}/subscribe/{VEHICLE}", headers=headers)
        assert r.status_code == 200, r.text
        return str(hook)


def journal_firings(journal: Journal, n: int, per_bundle: int = 10) -> None:
    """`n` readings that each fire (speed over 100), `per_bundle` to a bundle."""
    t = int(time.time() * 1000) - 10 * n
    for start in range(0, n, per_bundle):
        journal.put(
            VEHICLE, {SPEED: [(t + 10 * i, 150.0) for i in range(start, start + per_bundle)]}
        )


def wait_for(check: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return bool(check())


@pytest.fixture
def process(tmp_path: Path, journal: Journal, index: Index) -> Iterator[Process]:
    p = Process(
        tmp_path,
        journal,
        index,
        lease_s=2.0,
        retry_base_s=0.5,
        retry_max_delay_s=4.0,
        rights_ttl_s=1.0,
        per_target_concurrency=4,
    )
    p.start()
    yield p
    p.stop()


def test_a_kill_9_mid_delivery_loses_nothing(
    process: Process, journal: Journal, receiver: Receiver
) -> None:
    process.register(receiver)
    receiver.delay_s = 0.05  # slow, so deliveries are in flight when the kill comes
    journal_firings(journal, 300)
    assert wait_for(lambda: len(receiver.ids()) >= 20, 60)
    process.kill9()
    killed_ms = int(time.time() * 1000)
    assert len(receiver.ids()) < 300, "the kill came after every delivery"
    process.start()
    assert wait_for(lambda: len(receiver.ids()) >= 300, 120), (
        len(receiver.ids()),
        killed_ms,
        [r for r in process.rows() if r[0] not in receiver.ids()],
    )
    outbox = process.outbox()
    assert len(outbox) == 300  # each reading fired once: no firing lost or doubled
    assert receiver.ids() == set(outbox)  # every firing delivered (at least once)
    assert wait_for(lambda: set(process.outbox().values()) == {"delivered"}, 30)
    assert receiver.bad_signatures == 0


def test_a_receiver_down_for_60_s_misses_nothing(
    process: Process, journal: Journal, receiver: Receiver
) -> None:
    process.register(receiver)
    receiver.stop()
    down_at = time.monotonic()
    for _ in range(6):  # firings keep coming during the outage
        journal_firings(journal, 20)
        time.sleep(9)
    time.sleep(max(0.0, 60 - (time.monotonic() - down_at)))
    assert receiver.ids() == set()
    receiver.start()
    assert wait_for(lambda: len(receiver.ids()) >= 120, 60), len(receiver.ids())
    outbox = process.outbox()
    assert len(outbox) == 120
    assert receiver.ids() == set(outbox)
    assert receiver.bad_signatures == 0
