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


@app.command()
def login(
    key: Annotated[
        str, typer.Option(envvar="DIMO_KEY", help="The account's private key, 0x hex (DIMO_KEY).")
    ],
    api_url: Annotated[
        str, typer.Option(envvar="DIMO_API_URL", help="The indexer API's base URL.")
    ] = "http://127.0.0.1:8700",
    chain_id: Annotated[int, typer.Option(min=1, help="The chain the API signs in on.")] = 31337,
) -> None:
    """Signs in with Ethereum (EIP-4361) and prints the API's bearer token."""
    import httpx

    from indexer.client import login as siwe_login

    try:
        with httpx.Client(timeout=30) as client:
            token = siwe_login(api_url, key, chain_id, client=client)
    except (httpx.HTTPError, ValueError) as exc:
        console.print(f"[red]error[/] sign-in at {api_url} failed: {exc}")
        raise typer.Exit(2) from None
    print(token)


@app.command("verify-proof")
def verify_proof(
    proof: Annotated[
        Path, typer.Argument(help="A reading proof (JSON, as the API serves it); - for stdin.")
    ],
    rpc_url: Annotated[
        str, typer.Option(envvar="DIMO_INDEXER_RPC_URL", help="Chain JSON-RPC URL.")
    ] = "http://127.0.0.1:8545",
    deployment: Annotated[
        Path, typer.Option(envvar="DIMO_DEPLOYMENT", help="The deployment record.")
    ] = Path("data/deployments/31337.json"),
) -> None:
    """Checks a reading proof against the chain alone: the device signature, the reading in
    the signed bundle, and the Merkle path to the root AttestationAnchor holds."""
    import json
    import sys

    from apps.exceptions import AppError
    from indexer.client import verify_reading_proof
    from protocol.deployment import Deployment, DeploymentError

    try:
        text = sys.stdin.read() if str(proof) == "-" else proof.read_text(encoding="utf-8")
        anchor = Deployment.load(deployment).contract("AttestationAnchor").address
        checked = verify_reading_proof(json.loads(text), rpc_url, anchor)
    except AppError as exc:  # before ValueError: a failed check is one
        console.print(f"[red]proof rejected[/] {exc}")
        raise typer.Exit(1) from None
    except (OSError, ValueError, KeyError, DeploymentError) as exc:
        console.print(f"[red]error[/] {exc}")
        raise typer.Exit(2) from None
    console.print(
        f"[green]verified[/] vehicle {checked['vehicle_id']} {checked['signal']} = "
        f"{checked['value']} at {checked['ts']} ms, signed by {checked['device']}, in batch "
        f"{checked['batch']} whose root {checked['root']} AttestationAnchor holds",
        highlight=False,
    )
