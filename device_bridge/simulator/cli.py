"""The `dimo fleet simulate` command: simulated fleets as candump logs with their ground truth."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from device_bridge.config import BridgeSettings
from device_bridge.exceptions import BridgeError
from device_bridge.simulator.fleet import DEFAULT_START, SUPPORTED_MODELS, FleetOptions, write_fleet
from device_bridge.simulator.vehicle import VehicleTrace

app = typer.Typer(help="Simulated vehicle fleets.", no_args_is_help=True)
console = Console()
_MODELS_HELP = (
    f"Models, in turn per vehicle (comma-separated or repeated): {', '.join(SUPPORTED_MODELS)}."
)


def _models(values: list[str] | None) -> tuple[str, ...]:
    if not values:
        return SUPPORTED_MODELS
    return tuple(m.strip() for value in values for m in value.split(",") if m.strip())


@app.callback()
def main() -> None:
    """Simulated vehicle fleets: CAN logs from the real DBCs, with their ground truth."""


@app.command("simulate")
def simulate_command(
    out: Path = typer.Option(..., "--out", help="Directory for the logs and ground truth."),  # noqa: B008
    vehicles: int = typer.Option(1, min=1, help="Number of vehicles."),
    days: int = typer.Option(1, min=1, max=366, help="Number of days."),
    seed: int = typer.Option(0, help="Fleet seed; the same seed gives the same bytes."),
    models: list[str] | None = typer.Option(  # noqa: B008
        None,
        "--models",
        help=_MODELS_HELP,
    ),
    soh: float | None = typer.Option(
        None, help="State of health of every pack in percent (default: drawn around 95)."
    ),
    rollback_vehicle: list[int] | None = typer.Option(  # noqa: B008
        None, "--rollback-vehicle", help="Roll this vehicle's odometer back half-way (repeatable)."
    ),
    rate_scale: float = typer.Option(
        1.0, help="Factor on every message rate, e.g. 0.1 for long runs."
    ),
    start: str = typer.Option(DEFAULT_START.isoformat(), help="First day (UTC), YYYY-MM-DD."),
    initial_soc: float | None = typer.Option(
        None, help="State of charge of every vehicle at the start (default: drawn)."
    ),
    dbc_dir: Path | None = typer.Option(  # noqa: B008
        None, help="Directory of the Kona pcan.dbc (default: DIMO_BRIDGE_DBC_DIR)."
    ),
) -> None:
    """Simulates a fleet and writes one candump log and one ground-truth JSON per vehicle."""
    try:
        first_day = dt.date.fromisoformat(start)
    except ValueError:
        console.print(f"[red]error[/] --start {start!r} is not a date like 2025-01-06")
        raise typer.Exit(2) from None
    options = FleetOptions(
        vehicles=vehicles,
        days=days,
        seed=seed,
        models=_models(models),
        soh_percent=soh,
        start=first_day,
        rollback_vehicles=frozenset(rollback_vehicle or ()),
        initial_soc=initial_soc,
        rate_scale=rate_scale,
        dbc_dir=dbc_dir if dbc_dir is not None else BridgeSettings().dbc_dir,
    )
    began = time.perf_counter()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("simulating", total=vehicles)

        def step(trace: VehicleTrace, frames: int) -> None:
            progress.advance(task)

        try:
            result = write_fleet(options, out, progress=step)
        except BridgeError as exc:
            console.print(f"[red]error[/] {exc}")
            raise typer.Exit(1) from None
    total = sum(result.frames)
    elapsed = time.perf_counter() - began
    console.print(
        f"[green]wrote[/] {len(result.logs)} vehicles, {days} day(s), {total:,} frames to {out} "
        f"in {elapsed:.1f} s"
    )
    for truth, frames in zip(result.truths, result.frames, strict=True):
        console.print(
            f"  {truth.vehicle:4d} {truth.model:22s} SoH {truth.soh_percent:5.1f} %  "
            f"{len(truth.trips):3d} trips  {len(truth.charging_sessions):2d} charges  "
            f"{len(truth.harsh_events):2d} harsh  {frames:,} frames"
            + ("  [yellow]odometer rolled back[/]" if truth.rollback else "")
        )
