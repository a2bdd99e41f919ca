"""The outbox on SQLite and PostgreSQL, one code path: claims under a lease never overlap
(PostgreSQL `FOR UPDATE SKIP LOCKED`), a lapsed lease is claimed again, and backoff grows
with full jitter."""

from __future__ import annotations

import os
import random
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, insert, text

from triggers.outbox import backoff_ms, claim
from triggers.tables import DeliveryState, deliveries, open_store, webhooks

PG_URL = os.environ.get("DIMO_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = open_store(f"sqlite:///{tmp_path / 'triggers.db'}")
        yield engine
        engine.dispose()
        return
    schema = f"trg_test_{secrets.token_hex(6)}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = open_store(f"{PG_URL}?options=-csearch_path%3D{schema}", pool_size=10)
    yield engine
    engine.dispose()
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def fill(engine: Engine, n: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(webhooks).values(
                id="w1",
                owner="0x" + "a1" * 20,
                service="signals",
                metric_name="speed",
                condition="true",
                cooldown_s=0,
                target_url="https://example.com/hook",
                status="enabled",
                description="",
                display_name="w1",
                latency="journaled",
                all_vehicles=False,
                secret="whsec_" + "A" * 44,
                failure_count=0,
                created_ms=0,
                updated_ms=0,
            )
        )
        conn.execute(
            insert(deliveries),
            [
                {
                    "id": f"msg_{i:04d}",
                    "webhook_id": "w1",
                    "vehicle_id": 1,
                    "privilege": 8,
                    "reading_ms": i,
                    "target": "https://example.com:443",
                    "payload": "{}",
                    "state": DeliveryState.PENDING.value,
                    "attempts": 0,
                    "next_attempt_ms": 0,
                    "lease_until_ms": 0,
                    "created_ms": 0,
                    "received_ms": 0,
                }
                for i in range(n)
            ],
        )


def test_concurrent_claims_never_lease_a_delivery_twice(store: Engine) -> None:
    fill(store, 400)
    got: list[list[str]] = []
    lock = threading.Lock()

    def worker() -> None:
        while True:
            batch = [c.id for c in claim(store, 1_000, 25, 60_000)]
            if not batch:
                return
            with lock:
                got.append(batch)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [i for batch in got for i in batch]
    assert len(ids) == 400
    assert len(set(ids)) == 400


def test_a_lapsed_lease_is_claimed_again(store: Engine) -> None:
    fill(store, 3)
    assert len(claim(store, 1_000, 10, 5_000)) == 3
    assert claim(store, 2_000, 10, 5_000) == []  # leased until 6,000
    assert len(claim(store, 6_000, 10, 5_000)) == 3  # the worker died; sent again


def test_backoff_grows_exponentially_with_full_jitter_up_to_the_cap() -> None:
    rng = random.Random(1)
    first = [backoff_ms(0, 1.0, 3600.0, rng) for _ in range(500)]
    tenth = [backoff_ms(10, 1.0, 3600.0, rng) for _ in range(500)]
    capped = [backoff_ms(30, 1.0, 3600.0, rng) for _ in range(500)]
    assert max(first) <= 1_000
    assert 300_000 < sum(tenth) / 500 < 700_000  # uniform in [0, 1024 s]
    assert max(capped) <= 3_600_000
    assert len(set(tenth)) > 400  # jitter: no two receivers retry in lockstep
