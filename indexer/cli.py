"""The `dimo indexer` commands: `sync` (backfill, then stop), `run` (sync, follow and serve the
API), `serve` (the API alone, with several workers) and `login` (Sign-In with Ethereum, saving
the token the other commands use)."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from indexer.config import IndexerSettings
from indexer.exceptions import IndexerError
from protocol.clisession import (
    DEFAULT_API_URL,
    DEV_MNEMONIC,
    LOCAL_CHAIN_ID,
    CliError,
    api_errors,
    check_answer,
    one_line_errors,
    save_token,
    siwe_message,
)

if TYPE_CHECKING:  # the API, migrations and sync pull in web3 and SQLAlchemy: not for --help
    import uvicorn
    from sqlalchemy import Engine

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
    from indexer.migrate import upgrade
    from indexer.sync import Syncer

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
    import uvicorn

    from indexer.api.main import create_app, freeze_startup_heap

    api = create_app(settings, engine)
    freeze_startup_heap()
    config = uvicorn.Config(
        api,
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
    from indexer.migrate import upgrade
    from indexer.sync import Syncer

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
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="API worker processes (default: one per core)."),
    ] = None,
) -> None:
    """Serves the API over an index another process syncs, with one worker process per core
    by default. Workers share DIMO_INDEXER_JWT_SECRET; without it (and without `--workers`),
    they share a random key made for this run, so tokens die with the server."""
    import secrets

    import uvicorn

    from indexer.migrate import upgrade

    settings = _settings(database_url, None, None)
    upgrade(settings.database_url)
    env = {"DIMO_INDEXER_DATABASE_URL": settings.database_url}
    if workers is None:
        workers = os.cpu_count() or 1
        if settings.jwt_secret is None:
            env["DIMO_INDEXER_JWT_SECRET"] = secrets.token_hex(32)
    elif workers > 1 and settings.jwt_secret is None:
        raise typer.BadParameter(
            "several workers need a shared key: set DIMO_INDEXER_JWT_SECRET (32+ bytes)",
            param_hint="--workers",
        )
    os.environ.update(env)
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


def _login_failed(message: str) -> typer.Exit:
    console.print(f"[red]error[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


@app.command()
@one_line_errors(_login_failed)
def login(
    api_url: Annotated[
        str, typer.Option(envvar="DIMO_API_URL", help="The indexer API's base URL (DIMO_API_URL).")
    ] = DEFAULT_API_URL,
    keystore: Annotated[
        Path | None,
        typer.Option(help="Encrypted JSON keystore (geth/ape) of the account to sign in with."),
    ] = None,
    password_env: Annotated[
        str,
        typer.Option(help="Environment variable holding the keystore's password (else asked)."),
    ] = "DIMO_KEYSTORE_PASSWORD",
    dev: Annotated[
        int | None,
        typer.Option(
            min=0, max=19, help="Sign in as anvil dev account N (the local `make run` chain only)."
        ),
    ] = None,
    print_token: Annotated[
        bool, typer.Option(help="Also print the bare token on standard output, for scripts.")
    ] = False,
) -> None:
    """Signs in with Ethereum (EIP-4361) and saves the token the other commands use."""
    if (keystore is None) == (dev is None):
        raise CliError("give --keystore FILE or --dev N (an account of `make run`'s local chain)")
    import httpx
    from eth_account import Account
    from eth_account.messages import encode_defunct

    with api_errors(api_url), httpx.Client(base_url=api_url.rstrip("/"), timeout=30) as client:
        nonce_reply = client.get("/auth/nonce")
        check_answer(nonce_reply)
        nonce = nonce_reply.json()
        if dev is not None:
            if nonce["chain_id"] != LOCAL_CHAIN_ID:
                raise CliError(
                    f"--dev accounts exist on the local chain only; {api_url} is on chain "
                    f"{nonce['chain_id']}: use --keystore"
                )
            Account.enable_unaudited_hdwallet_features()
            account = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{dev}")
            key = bytes(account.key)
        else:
            assert keystore is not None
            password = os.environ.get(password_env)
            if password is None:
                password = typer.prompt(f"password of {keystore}", hide_input=True)
            try:
                key = bytes(Account.decrypt(json.loads(keystore.read_text()), password))
            except OSError as exc:
                raise CliError(f"cannot read the keystore {keystore}: {exc.strerror}") from None
            except ValueError:
                raise CliError(f"{keystore} is not a keystore, or the password is wrong") from None
        wallet = Account.from_key(key)
        message = siwe_message(nonce, wallet.address, "Sign in from the dimo command line.")
        signature = wallet.sign_message(encode_defunct(text=message)).signature.hex()
        reply = client.post(
            "/auth/login",
            json={"message": message, "signature": "0x" + signature.removeprefix("0x")},
        )
        check_answer(reply)
    body = reply.json()
    path = save_token(
        api_url, body["address"], body["access_token"], time.time() + body["expires_in"]
    )
    if print_token:
        print(body["access_token"])
    console.print(
        f"signed in as {body['address']} at {api_url} for {body['expires_in'] // 60} min; "
        f"token saved in {path}",
        highlight=False,
    )
