"""One oracle process: the ingest API (uvicorn) and the batcher loop, stopped cleanly by signal."""

from __future__ import annotations

import importlib.util
import logging
import signal
import threading
from pathlib import Path

from oracle.anchoring import Anchorer
from oracle.batcher import Batcher, BatcherTuning
from oracle.config import OracleSettings
from oracle.exceptions import ChainUnavailableError, OracleConfigError
from oracle.journal import Journal
from oracle.quorum import OracleSigner, Quorum, RemoteSigner
from oracle.tables import open_journal
from protocol.blobstore import BlobStore, KuboRpcStore, LocalCidStore
from protocol.deployment import Deployment

__all__ = ["blob_store", "build_batcher", "open_engine", "run", "tuning_of"]

log = logging.getLogger(__name__)


def blob_store(settings: OracleSettings) -> BlobStore:
    """The configured blob store: Kubo when `kubo_url` is set, else the local CID store."""
    if settings.kubo_url:
        return KuboRpcStore(settings.kubo_url)
    return LocalCidStore(Path(settings.blob_dir))


def open_engine(settings: OracleSettings) -> Journal:
    """Open the journal (creating a SQLite file's directory) with write-locking transactions.

    Returns:
        The `Journal` over the engine (`.engine`); SQLite transactions take the write lock at
        BEGIN, as on the ingest side.
    """
    prefix = "sqlite:///"
    url = settings.database_url
    if url.startswith(prefix) and ":memory:" not in url:
        Path(url[len(prefix) :].split("?", 1)[0]).parent.mkdir(parents=True, exist_ok=True)
    return Journal(open_journal(url))


def tuning_of(settings: OracleSettings) -> BatcherTuning:
    """Batcher timings from the settings (fields the settings lack keep their defaults)."""
    defaults = BatcherTuning()
    return BatcherTuning(
        batch_interval_s=settings.batch_interval_s,
        batch_max_bundles=settings.batch_max_bundles,
        confirmations=settings.confirmations,
        tx_timeout_s=float(getattr(settings, "tx_timeout_s", defaults.tx_timeout_s)),
        poll_s=float(getattr(settings, "poll_s", defaults.poll_s)),
        backoff_s=defaults.backoff_s,
        backoff_max_s=float(getattr(settings, "backoff_max_s", defaults.backoff_max_s)),
        crash_at=settings.crash_at,
    )


def build_batcher(settings: OracleSettings, stop: threading.Event | None = None) -> Batcher:
    """Assemble the batcher from settings: journal, blob store, quorum, anchorer.

    The oracle set and threshold are read from the contract; while the chain is down this
    retries (until `stop` is set).

    Raises:
        OracleConfigError: no submitter key, or no signer configured.
    """
    if settings.submitter_key is None:
        raise OracleConfigError(
            "submitter_key", "set DIMO_ORACLE_SUBMITTER_KEY to a funded account's hex key"
        )
    if not settings.signer_keys and not settings.signer_urls:
        raise OracleConfigError(
            "signer_keys", "set DIMO_ORACLE_SIGNER_KEYS or DIMO_ORACLE_SIGNER_URLS (JSON lists)"
        )
    deployment = Deployment.load(Path(settings.deployment))
    anchorer = Anchorer(settings.rpc_url, deployment, settings.submitter_key.get_secret_value())
    signers: list[OracleSigner | RemoteSigner] = [
        OracleSigner(k.get_secret_value(), anchorer.domain) for k in settings.signer_keys
    ]
    signers += [RemoteSigner(u) for u in settings.signer_urls]
    wait = 0.5
    while True:
        try:
            oracle_set, threshold = anchorer.oracles()
            break
        except ChainUnavailableError as exc:
            log.warning("reading the oracle set: %s; retrying in %.1f s", exc, wait)
            if stop is not None and stop.wait(wait):
                raise
            if stop is None:
                threading.Event().wait(wait)
            wait = min(wait * 2, 15.0)
    quorum = Quorum(signers, oracle_set, threshold, anchorer.domain)
    return Batcher(
        open_engine(settings).engine, blob_store(settings), quorum, anchorer, tuning_of(settings)
    )


def run(settings: OracleSettings, *, api: bool = True, batcher: bool = True) -> None:
    """Serve the ingest API and run the batcher until SIGINT or SIGTERM.

    On a signal the API stops accepting, the batcher finishes its current RPC and stops; a
    batch in flight stays in its persisted state and the next start resumes it.

    Args:
        settings: The oracle's settings.
        api: Whether to serve the ingest API (False runs the batcher alone).
        batcher: Whether to run the batcher (False serves the ingest API alone; another
            process runs the batcher over the same journal).
    """
    if not api and not batcher:
        raise OracleConfigError("api", "with neither the ingest API nor the batcher, nothing runs")
    stop = threading.Event()
    failure: list[BaseException] = []

    def batcher_main() -> None:
        try:
            build_batcher(settings, stop).run(stop)
        except ChainUnavailableError:
            if not stop.is_set():
                raise
        except BaseException as exc:  # reported by the main thread
            failure.append(exc)
            log.exception("batcher stopped")
            stop.set()

    # Ours until uvicorn's own handlers take over while it serves (it re-raises the signal
    # to these when it stops), so a signal at any moment stops cleanly.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    worker = threading.Thread(target=batcher_main, name="batcher", daemon=True)
    if batcher:
        worker.start()
    if api:
        import uvicorn

        from oracle.api import create_app

        config = uvicorn.Config(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
            http="httptools" if importlib.util.find_spec("httptools") else "h11",
            log_level="warning",
            access_log=False,
        )
        server = uvicorn.Server(config)

        def watch() -> None:
            stop.wait()
            server.should_exit = True

        threading.Thread(target=watch, name="stop-watch", daemon=True).start()
        if not stop.is_set():
            server.run()  # returns after SIGINT/SIGTERM (uvicorn's handlers) or `stop`
        stop.set()
    else:
        while not stop.wait(0.5):
            pass
    if batcher:
        worker.join(timeout=30)
    if failure:
        raise failure[0]
