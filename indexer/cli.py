"""The `dimo indexer` commands: `sync` (backfill, then stop), `run` (sync, follow and serve the
API) and `serve` (the API alone, with several workers)."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import Engine

from indexer.api.main import create_app
from indexer.config import IndexerSettings
from indexer.exceptions import IndexerError
from indexer.migrate import upgrade
from indexer.sync import StepResult, Syncer

app = typer.Typer(help="Chain sync into SQL, verified telemetry and the API.", no_args_is_help=True)
console = Console(stderr=True)
log = logging.getLogger("indexer.cli")


def _settings(
    database_url: str | None, rpc_url: str | None, deployment: Path | None
) -> IndexerSettings:
    overrides: dict[str, object] = {}
    if database_url:
        overrides["database_url"] = database_url
    if rpc_url:
        overrides["rpc_url"] = rpc_url
    if deployment:
        overrides["deployment"] = deployment
    return IndexerSettings(**overrides)  # type: ignore[arg-type]


DbOpt = Annotated[str | None, typer.Option(help="SQLAlchemy URL (DIMO_INDEXER_DATABASE_URL).")]
RpcOpt = Annotated[str | None, typer.Option(help="JSON-RPC URL (DIMO_INDEXER_RPC_URL).")]
DeployOpt = Annotated[
    Path | None, typer.Option(help="Deployment record (DIMO_INDEXER_DEPLOYMENT).")
]


def _backfill(syncer: Syncer) -> int:
    """Backfills to the confirmed head with a rich progress bar; returns the events indexed."""
    start = syncer.last_block()
    goal = syncer.target()
    with Progress(
        TextColumn("[bold]sync"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("blocks · {task.fields[events]} events"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task("sync", total=max(goal - start, 0), events=0)
        count = 0

        def _progress(step: StepResult, target: int) -> None:
            nonlocal count
            count += step.events
            bar.update(task, completed=max(step.to_block - start, 0), events=count)

        syncer.backfill(goal, _progress)
        bar.update(task, completed=max(goal - start, 0))
    return count


@app.command()
def sync(database_url: DbOpt = None, rpc_url: RpcOpt = None, deployment: DeployOpt = None) -> None:
    """Migrates the database, indexes the chain up to the confirmed head, and stops."""
    settings = _settings(database_url, rpc_url, deployment)
    upgrade(settings.database_url)
    syncer = Syncer(settings)
    try:
        events = _backfill(syncer)
    finally:
        syncer.close()
    console.print(f"indexed {events} events up to block {syncer.last_block()}")


def _follow_in_thread(syncer: Syncer, stop: threading.Event) -> threading.Thread:
    """Follows the chain in a daemon thread until `stop` is set; logs and retries on errors."""

    def _loop() -> None:
        while not stop.is_set():
            try:
                syncer.follow(stop.is_set)
            except IndexerError as err:  # the chain or blob store is down: wait and retry
                log.error("sync paused: %s", err)
                stop.wait(syncer.settings.poll_interval_s * 5)

    thread = threading.Thread(target=_loop, name="indexer-sync", daemon=True)
    thread.start()
    return thread


def _server(settings: IndexerSettings, engine: Engine) -> uvicorn.Server:
    config = uvicorn.Config(
        create_app(settings, engine),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
    )
    return uvicorn.Server(config)


@app.command()
def run(database_url: DbOpt = None, rpc_url: RpcOpt = None, deployment: DeployOpt = None) -> None:
    """Migrates, backfills, then follows new blocks and serves the API until SIGINT/SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = _settings(database_url, rpc_url, deployment)
    upgrade(settings.database_url)
    syncer = Syncer(settings)
    stop = threading.Event()
    try:
        _backfill(syncer)
        follower = _follow_in_thread(syncer, stop)
        console.print(f"API on http://{settings.host}:{settings.port} (OpenAPI at /docs)")
        _server(settings, syncer.engine).run()  # returns on SIGINT/SIGTERM
        stop.set()
        follower.join(30)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        syncer.close()


@app.command()
def serve(
    database_url: DbOpt = None,
    workers: Annotated[int, typer.Option(min=1, help="API worker processes.")] = 1,
) -> None:
    """Serves the API over an index another process syncs (several workers share a JWT key:
    set DIMO_INDEXER_JWT_SECRET)."""
    settings = _settings(database_url, None, None)
    upgrade(settings.database_url)
    if workers > 1 and settings.jwt_secret is None:
        raise typer.BadParameter(
            "several workers need a shared key: set DIMO_INDEXER_JWT_SECRET (32+ bytes)",
            param_hint="--workers",
        )
    env_url = {"DIMO_INDEXER_DATABASE_URL": settings.database_url}
    os.environ.update(env_url)
    uvicorn.run(
        "indexer.api.main:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    app()
