"""The `dimo` command: one entry point with a subcommand per service."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import typer
from eth_account import Account
from rich.console import Console
from rich.table import Table

from device_bridge.cli import app as bridge_app
from device_bridge.simulator.cli import app as fleet_app
from indexer.cli import app as indexer_app
from oracle.cli import app as oracle_app
from stack.chain import DEV_MNEMONIC, Anvil, anvil_binary
from stack.config import StackSettings
from stack.deploy import deploy, existing_deployment
from stack.exceptions import StackError

ROOT = Path(__file__).resolve().parent.parent

app = typer.Typer(help="The DIMO-style vehicle data platform.", no_args_is_help=True)
stack_app = typer.Typer(
    help="The local platform: chain, contracts, services.", no_args_is_help=True
)
app.add_typer(stack_app, name="stack")
app.add_typer(oracle_app, name="oracle", help="Ingest, verify, journal and anchor bundles.")
app.add_typer(bridge_app, name="bridge", help="CAN/OBD-II to signed VSS bundles.")
app.add_typer(fleet_app, name="fleet", help="Simulated fleets with ground truth.")
app.add_typer(indexer_app, name="indexer", help="Chain sync into SQL, verified telemetry.")
console = Console()

Account.enable_unaudited_hdwallet_features()


def _dev_accounts(n: int = 5) -> list[tuple[str, str]]:
    out = []
    for i in range(n):
        acct = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}")
        out.append((acct.address, acct.key.hex()))
    return out


@stack_app.command("run")
def stack_run(
    once: bool = typer.Option(False, help="Stop after deploying instead of serving."),
) -> None:
    """Starts anvil, deploys (or resumes) the contracts and serves until Ctrl-C."""
    settings = StackSettings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    anvil = Anvil(
        anvil_binary(ROOT),
        settings.host,
        settings.anvil_port,
        settings.data_dir / "anvil-state.json",
        settings.block_time,
        settings.data_dir / "anvil.log",
    )
    try:
        with console.status("starting anvil"):
            anvil.start()
        console.print(f"[green]chain[/] anvil at {anvil.url} (state in {settings.data_dir})")
        record = existing_deployment(settings.deployment_path, anvil.url)
        if record is not None:
            console.print(f"[green]contracts[/] resumed from {settings.deployment_path}")
        else:
            with console.status("deploying contracts"):
                record = deploy(ROOT, anvil.url, settings.network, settings.deployment_path)
            console.print(f"[green]contracts[/] deployed, record in {settings.deployment_path}")
        table = Table(title=f"contracts on chain {record.chain_id}")
        table.add_column("contract")
        table.add_column("address", no_wrap=True, min_width=42)
        table.add_column("block", justify="right")
        for name, rec in record.contracts.items():
            table.add_row(name, rec.address, str(rec.block))
        console.print(table)
        console.print("[bold]dev accounts[/] (anvil's public test keys; never use elsewhere):")
        for address, key in _dev_accounts():
            console.print(f"  {address}  0x{key}", soft_wrap=True, highlight=False)
        console.print(f"[bold]ready[/] RPC {anvil.url}; Ctrl-C stops and keeps the state")
        if not once:
            stop.wait()
    except StackError as err:
        console.print(f"[red]error[/] {err}")
        raise typer.Exit(1) from None
    finally:
        with console.status("stopping anvil (saving state)"):
            anvil.stop()
        console.print("stopped")
