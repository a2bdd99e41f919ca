"""The `dimo oracle` commands: run the oracle, show its status, run a remote signer."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from oracle.config import OracleSettings
from oracle.exceptions import OracleError
from protocol.deployment import DeploymentError

app = typer.Typer(help="The oracle: ingest, journal, batches, anchors.", no_args_is_help=True)
console = Console()

#: `--deployment`: the deployment record to read instead of DIMO_ORACLE_DEPLOYMENT's.
DeploymentOpt = Annotated[
    Path | None, typer.Option(help="Deployment record to read (default DIMO_ORACLE_DEPLOYMENT).")
]


def _settings(deployment: Path | None) -> OracleSettings:
    """The oracle's settings, with the deployment record the command line names, if any."""
    return OracleSettings() if deployment is None else OracleSettings(deployment=deployment)


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@app.command("run")
def run_command(
    api: bool = typer.Option(True, help="Serve the ingest API (--no-api runs the batcher only)."),
    batcher: bool = typer.Option(
        True, help="Run the batcher (--no-batcher serves the ingest API only)."
    ),
    verbose: bool = typer.Option(True, help="Log each batch's progress."),
    deployment: DeploymentOpt = None,
) -> None:
    """Serves the ingest API and runs the batcher until Ctrl-C or SIGTERM.

    The two can run as separate processes over one journal (`--no-batcher` and `--no-api`),
    so that building and anchoring batches never holds up the ingest.
    """
    from oracle.service import run

    _logging(verbose)
    settings = _settings(deployment)
    if api:
        console.print(f"[green]oracle[/] ingest on http://{settings.host}:{settings.port}")
    try:
        run(settings, api=api, batcher=batcher)
    except (OracleError, DeploymentError) as exc:
        console.print(f"[red]error[/] {exc}")
        raise typer.Exit(1) from None


@app.command("status")
def status_command(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Journal depth, batches by state and the last anchor, read from the journal."""
    from oracle.service import open_engine

    journal = open_engine(OracleSettings())
    try:
        out = journal.status()
    finally:
        journal.engine.dispose()
    if as_json:
        print(json.dumps(out))
        return
    table = Table(title="oracle")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("journal depth (unbatched bundles)", str(out["journal_depth"]))
    for state, count in out["batches_by_state"].items():
        table.add_row(f"batches {state}", str(count))
    last = out["last_anchor"]
    table.add_row(
        "last anchor",
        "none" if last is None else f"batch {last['id']} block {last['block']} {last['tx_hash']}",
    )
    console.print(table)


@app.command("signer")
def signer_command(
    key_env: str = typer.Option(..., help="Environment variable holding the signer's hex key."),
    port: int = typer.Option(..., help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    deployment: DeploymentOpt = None,
) -> None:
    """Runs one oracle signer as an HTTP service (POST /v1/sign).

    It fetches each batch's content from the blob store (DIMO_ORACLE_BLOB_DIR or
    DIMO_ORACLE_KUBO_URL) by CID and signs only if the content rebuilds the header.
    """
    import uvicorn

    from oracle.quorum import OracleSigner, create_signer_app
    from oracle.service import blob_store
    from protocol.deployment import Deployment
    from protocol.eip712 import dimo_domain

    key = os.environ.get(key_env)
    if not key:
        console.print(f"[red]error[/] environment variable {key_env} is not set")
        raise typer.Exit(2)
    settings = _settings(deployment)
    try:
        record = Deployment.load(Path(settings.deployment))
    except DeploymentError as exc:
        console.print(f"[red]error[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    domain = dimo_domain(record.chain_id, record.contract("AttestationAnchor").address)
    signer = OracleSigner(key, domain)
    console.print(f"[green]signer[/] {signer.address} on http://{host}:{port}")
    uvicorn.run(
        create_signer_app(signer, blob_store(settings)),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    app()
