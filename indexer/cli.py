"""The `dimo indexer` commands: `sync` (backfill, then stop) and `run` (sync and follow)."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from indexer.config import IndexerSettings
from indexer.migrate import upgrade
from indexer.sync import StepResult, Syncer

app = typer.Typer(help="Chain sync into SQL, verified telemetry and the API.", no_args_is_help=True)
console = Console(stderr=True)


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


@app.command()
def run(database_url: DbOpt = None, rpc_url: RpcOpt = None, deployment: DeployOpt = None) -> None:
    """Migrates, backfills, then follows new blocks until SIGINT/SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = _settings(database_url, rpc_url, deployment)
    upgrade(settings.database_url)
    syncer = Syncer(settings)
    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    try:
        _backfill(syncer)
        syncer.follow(lambda: stopping)
    except KeyboardInterrupt:
        pass
    finally:
        syncer.close()


if __name__ == "__main__":
    app()
