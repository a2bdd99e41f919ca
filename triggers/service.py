"""One triggers process: the registration API (uvicorn), one evaluator thread per latency and
the delivery worker, stopped cleanly by SIGINT or SIGTERM (a kill -9 loses nothing: the outbox
and the cursors are durable)."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from pathlib import Path

from sqlalchemy import Engine

from triggers.config import TriggersSettings
from triggers.delivery import Deliverer
from triggers.evaluator import Evaluator, Latency
from triggers.exceptions import RightsUnavailable, TriggersConfigError
from triggers.journal import JournalReader
from triggers.rights import IndexerRights
from triggers.tables import open_store

__all__ = ["build", "run"]

log = logging.getLogger(__name__)


def _mkdir_for(url: str) -> None:
    prefix = "sqlite:///"
    if url.startswith(prefix) and ":memory:" not in url:
        Path(url[len(prefix) :].split("?", 1)[0]).parent.mkdir(parents=True, exist_ok=True)


def build(
    settings: TriggersSettings,
) -> tuple[Engine, JournalReader, IndexerRights, list[Evaluator], Deliverer]:
    """The store, the journal reader, the rights client, the evaluators and the deliverer."""
    if settings.network == "live" and settings.allow_loopback:
        raise TriggersConfigError(
            "allow_loopback", "loopback targets are allowed only with DIMO_TRIGGERS_NETWORK=local"
        )
    if not settings.jwt_secret.get_secret_value():
        raise TriggersConfigError(
            "jwt_secret", "set DIMO_TRIGGERS_JWT_SECRET to the indexer's DIMO_INDEXER_JWT_SECRET"
        )
    _mkdir_for(settings.database_url)
    store = open_store(settings.database_url)
    journal = JournalReader(settings.journal_url)
    rights = IndexerRights(settings.indexer_url, settings.rights_ttl_s)
    latencies: tuple[Latency, ...] = ("journaled", "anchored")
    evaluators = [
        Evaluator(
            store,
            journal,
            rights,
            latency,
            chain_id=settings.chain_id,
            vehicle_contract=settings.vehicle_contract,
            max_cost=settings.max_condition_cost,
            batch=settings.evaluate_batch,
        )
        for latency in latencies
    ]
    return store, journal, rights, evaluators, Deliverer(store, rights, settings)


def evaluate_until(evaluator: Evaluator, stop: threading.Event, poll_s: float) -> None:
    """Runs `evaluator` until `stop` is set; waits `poll_s` when the journal has nothing new."""
    wait = poll_s
    while not stop.is_set():
        try:
            done = evaluator.step()
            wait = poll_s
        except RightsUnavailable as exc:  # the cursor stays: the rows are evaluated again
            log.warning("%s evaluation waits for the indexer: %s", evaluator.latency, exc)
            done, wait = 0, min(wait * 2, 5.0)
        except Exception:
            log.exception("%s evaluation failed; retrying", evaluator.latency)
            done, wait = 0, min(wait * 2, 5.0)
        if not done:
            stop.wait(wait)


def run(settings: TriggersSettings) -> None:
    """Serves the API, evaluates and delivers until SIGINT or SIGTERM."""
    import uvicorn

    from triggers.api import create_app

    store, _, rights, evaluators, deliverer = build(settings)
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=evaluate_until,
            args=(e, stop, settings.poll_interval_s),
            name=f"evaluate-{e.latency}",
            daemon=True,
        )
        for e in evaluators
    ]
    for t in threads:
        t.start()
    config = uvicorn.Config(
        create_app(settings, store, rights),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        lifespan="off",
    )
    server = uvicorn.Server(config)

    async def main() -> None:
        delivering = asyncio.Event()
        task = asyncio.create_task(deliverer.run(delivering))
        try:
            await server.serve()
        finally:
            delivering.set()
            await task

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        asyncio.run(main())
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
        rights.close()
