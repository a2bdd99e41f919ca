"""The `dimo` command: one entry point with a subcommand per service."""

from __future__ import annotations

import importlib
import logging
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table
from typer import _click as click  # the click Typer vendors and its groups derive from
from typer.core import TyperCommand, TyperGroup

from stack.exceptions import StackError

if TYPE_CHECKING:
    from stack.platform import Platform
    from stack.services import Service

ROOT = Path(__file__).resolve().parent.parent

# Each service's commands, imported only when their subcommand runs: `dimo bridge decode` loads
# the bridge, not the indexer. name -> (module, Typer attribute, one-line help).
SERVICES: dict[str, tuple[str, str, str]] = {
    "oracle": ("oracle.cli", "app", "Ingest, verify, journal and anchor bundles."),
    "bridge": ("device_bridge.cli", "app", "CAN/OBD-II to signed VSS bundles."),
    "fleet": ("device_bridge.simulator.cli", "app", "Simulated fleets with ground truth."),
    "indexer": ("indexer.cli", "app", "Chain sync into SQL, verified telemetry."),
    "rewards": ("rewards.cli", "app", "Weekly rewards: compute, verify, post."),
    "apps": ("indexer.apps.cli", "app", "Battery, finance, insurance, energy apps."),
    "certify": ("oracle.certifier.cli", "app", "Battery certificates signed by the oracles."),
    "triggers": ("triggers.cli", "app", "Signed webhooks on vehicle signals and events."),
}
# Top-level commands that are one service's command: name -> (module, attribute, help).
SHORTCUTS: dict[str, tuple[str, str, str]] = {
    "login": (
        "indexer.cli",
        "login",
        "Sign in with Ethereum (keystore or dev account); other commands use the token.",
    ),
}


class LazyGroup(TyperGroup):
    """The `dimo` group: the `stack` commands are its own, each service's are imported when
    that subcommand is resolved. A help listing shows the services' one-line help without
    importing them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._listing = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        lazy = [*SHORTCUTS, *SERVICES]
        return [*super().list_commands(ctx), *(n for n in lazy if n not in self.commands)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in SHORTCUTS and cmd_name not in self.commands:
            module, attr, help_text = SHORTCUTS[cmd_name]
            if self._listing:
                return TyperCommand(name=cmd_name, help=help_text)
            function = getattr(importlib.import_module(module), attr)
            single = typer.Typer()
            single.command(name=cmd_name, help=help_text)(function)
            command = typer.main.get_command(single)
            command.name = cmd_name
            self.commands[cmd_name] = command
            return command
        if cmd_name in self.commands or cmd_name not in SERVICES:
            return super().get_command(ctx, cmd_name)
        module, attr, help_text = SERVICES[cmd_name]
        if self._listing:
            return TyperGroup(name=cmd_name, help=help_text)
        command = typer.main.get_command(getattr(importlib.import_module(module), attr))
        command.name, command.help = cmd_name, help_text
        self.commands[cmd_name] = command
        return command

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(cls=LazyGroup, help="The DIMO-style vehicle data platform.", no_args_is_help=True)
stack_app = typer.Typer(
    help="The local platform: chain, contracts, services.", no_args_is_help=True
)
app.add_typer(stack_app, name="stack")
console = Console()


def _dev_accounts(n: int = 5) -> list[tuple[str, str]]:
    from eth_account import Account

    from stack.chain import DEV_MNEMONIC

    Account.enable_unaudited_hdwallet_features()
    out = []
    for i in range(n):
        acct = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}")
        out.append((acct.address, acct.key.hex()))
    return out


def _print_ready(platform: Platform, chain_url: str, vehicle_nft: str) -> None:
    from stack.sdk_setup import sdk_setup_lines

    s = platform.settings
    console.print("[bold]ready[/]")
    console.print(f"  chain RPC     {chain_url}", highlight=False)
    console.print(f"  oracle        {s.oracle_url}  (GET /v1/status)", highlight=False)
    console.print(f"  indexer API   {s.indexer_url}  (docs: {s.indexer_url}/docs)", highlight=False)
    if platform.certifier_url is not None:
        console.print(
            f"  certifier     {platform.certifier_url}  (POST /v1/certify/battery)", highlight=False
        )
    console.print(
        f"  triggers      {s.triggers_url}  (POST /v1/webhooks, DIMO's VehicleTriggers)",
        highlight=False,
    )
    console.print(
        f"  attestations  {s.attestation_url}  (POST /v2/attestation/..., DIMO's Attestation)",
        highlight=False,
    )
    console.print("[bold]DIMO's SDKs[/] (Auth, TokenExchange and Identity are the indexer API):")
    for line in sdk_setup_lines(s.indexer_url, vehicle_nft, s.triggers_url, s.attestation_url):
        console.print(line, highlight=False, soft_wrap=True, markup=False)
    console.print("Ctrl-C stops every service and keeps the state for the next run")


class _DemoFinisher:
    """Finishes the demo in a thread once the fleet has caught up (and the oracle has had two
    batch intervals to anchor the last of the history): the proposal, epoch 0's rewards."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.caught_up_at: float | None = None
        self.thread: threading.Thread | None = None
        self.lines: list[str] = []
        self.reported = False

    def _run(self) -> None:
        try:
            self.lines = self.platform.finish_demo()
        except StackError as err:
            self.lines = [f"[red]failed[/] {err}"]

    def poll(self) -> list[str]:
        """Lines to print (once, when the demo is finished)."""
        if self.reported:
            return []
        if self.thread is None:
            if self.caught_up_at is None:
                if self.platform.history_driven():
                    self.caught_up_at = time.monotonic()
                return []
            if time.monotonic() - self.caught_up_at < 2 * self.platform.settings.batch_interval_s:
                return []
            self.thread = threading.Thread(target=self._run, name="demo", daemon=True)
            self.thread.start()
            return ["history driven: opening the proposal and posting epoch 0's rewards"]
        if self.thread.is_alive():
            return []
        self.reported = True
        return self.lines or ["nothing left to seed"]


@stack_app.command("run")
def stack_run(
    once: bool = typer.Option(False, help="Stop after deploying instead of serving."),
    progress_every: float = typer.Option(5.0, help="Seconds between progress lines."),
    demo: bool = typer.Option(
        True,
        envvar="DIMO_STACK_DEMO",
        help="Seed the demo on the local chain: a curator's two products, DIMO for the buyer "
        "(account 5) and the holder (6), an open proposal and epoch 0's rewards once the "
        "history is driven.",
    ),
) -> None:
    """Starts the whole platform: anvil, the contracts, the oracle quorum and oracle, the
    indexer and its API, and the simulated fleet's bridges. Serves until Ctrl-C."""
    from stack.config import StackSettings
    from stack.platform import Platform

    settings = StackSettings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    platform = Platform(settings, ROOT)
    code = 0
    try:
        with console.status("starting the chain"):
            chain_url = platform.start_chain()
        where = "live network" if settings.rpc_url else f"anvil (state in {settings.data_dir})"
        console.print(f"[green]chain[/] {where} at {chain_url}", highlight=False)
        with console.status("deploying contracts"):
            record, resumed = platform.deploy(demo=demo)
        if resumed:
            console.print(f"[green]contracts[/] resumed from {settings.deployment_path}")
        else:
            console.print(f"[green]contracts[/] deployed, record in {settings.deployment_path}")
        table = Table(title=f"contracts on chain {record.chain_id}")
        table.add_column("contract")
        table.add_column("address", no_wrap=True, min_width=42)
        table.add_column("block", justify="right")
        for name, rec in record.contracts.items():
            table.add_row(name, rec.address, str(rec.block))
        console.print(table)
        if not settings.rpc_url:
            console.print("[bold]dev accounts[/] (anvil's public test keys; never use elsewhere):")
            roles = {
                0: "admin" + (", curator" if demo else ""),
                1: "device maker",
                2: "owner",
                3: "owner",
                4: "owner",
                5: "data buyer" if demo else "",
                6: "token holder (voter)" if demo else "",
                7: "oracle",
                8: "oracle",
                9: "oracle",
            }
            for i, (address, key) in enumerate(_dev_accounts(10)):
                role = roles.get(i, "")
                console.print(f"  {i} {address}  0x{key}  {role}", soft_wrap=True, highlight=False)
        if once:
            console.print(f"[bold]ready[/] RPC {chain_url}; stopping (--once)")
            return
        with console.status(f"registering {settings.fleet_vehicles} simulated vehicles"):
            fleet = platform.register_fleet()
        if fleet:
            console.print(
                f"[green]fleet[/] {len(fleet)} vehicles ({', '.join(settings.models)}), "
                f"{settings.time_factor:g}x time until the present"
            )

        if demo:
            with console.status("seeding the demo (products, DIMO)"):
                for line in platform.seed_demo():
                    console.print(f"[green]demo[/] {line}", highlight=False, soft_wrap=True)

        def started(service: Service) -> None:
            console.print(f"[green]{service.name}[/] started (pid {service.pid})")

        with console.status("starting services"):
            platform.start_services(started)
        _print_ready(platform, chain_url, record.contract("VehicleId").address)
        last = 0.0
        finisher = _DemoFinisher(platform) if demo and fleet else None
        while not stop.wait(0.5):
            if finisher is not None:
                for line in finisher.poll():
                    console.print(f"[green]demo[/] {line}", highlight=False, soft_wrap=True)
            for event in platform.supervise():
                console.print(f"[yellow]supervisor[/] {event}", highlight=False, soft_wrap=True)
            if time.monotonic() - last >= progress_every:
                last = time.monotonic()
                console.print(
                    f"[dim]{time.strftime('%H:%M:%S')}[/] {platform.progress().line()}",
                    highlight=False,
                    soft_wrap=True,
                )
    except StackError as err:
        console.print(f"[red]error[/] {err}")
        code = 1
    finally:
        with console.status("stopping"):
            platform.stop(lambda name: console.print(f"[dim]stopped {name}[/]"))
        console.print("stopped")
    if code:
        raise typer.Exit(code)


@stack_app.command("fleet", hidden=True)
def stack_fleet() -> None:
    """Runs the simulated fleet's bridges (started by `dimo stack run`)."""
    from stack.config import StackSettings
    from stack.fleet import FleetRunner

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = StackSettings()
    runner = FleetRunner(
        settings.data_dir.resolve(),
        settings.deployment_path.resolve(),
        settings.oracle_url,
        settings.chain_url,
        factor=settings.time_factor,
        rate_scale=settings.fleet_rate_scale,
        dbc_dir=settings.dbc_dir,
        warp_chain=settings.rpc_url is None,
        live=settings.fleet_live,
        window_ms=settings.fleet_window_s * 1000,
    )
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: runner.stop_event.set())
    runner.run()
