"""The `dimo triggers` commands: run the service, show its outbox."""

from __future__ import annotations

import json
import logging

import typer
from rich.console import Console

from triggers.config import TriggersSettings
from triggers.exceptions import TriggersError

app = typer.Typer(help="Webhooks on vehicle signals and events.", no_args_is_help=True)
console = Console()


@app.command("run")
def run_command(verbose: bool = typer.Option(True, help="Log the service's progress.")) -> None:
    """Serves the registration API, evaluates triggers and delivers webhooks until Ctrl-C."""
    from triggers.service import run

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per delivery
    settings = TriggersSettings()
    console.print(f"[green]triggers[/] API on http://{settings.host}:{settings.port}")
    try:
        run(settings)
    except TriggersError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc


@app.command("status")
def status_command() -> None:
    """Deliveries in the outbox, by state."""
    from triggers.outbox import counts
    from triggers.tables import open_store

    settings = TriggersSettings()
    console.print_json(json.dumps(counts(open_store(settings.database_url))))
