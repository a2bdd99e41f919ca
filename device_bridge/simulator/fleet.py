"""A fleet of simulated vehicles: configuration from a seed, traces, logs and ground truth."""

from __future__ import annotations

import datetime as dt
import heapq
import json
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import can

from device_bridge.logs import replay
from device_bridge.simulator.encoding import (
    MESSAGES,
    Frame,
    FrameEncoder,
    frames_to_messages,
)
from device_bridge.simulator.exceptions import SimulationError
from device_bridge.simulator.truth import GroundTruth
from device_bridge.simulator.vehicle import VehicleConfig, VehicleTrace, simulate_vehicle

__all__ = [
    "DEFAULT_START",
    "SUPPORTED_MODELS",
    "FleetOptions",
    "FleetResult",
    "fleet_configs",
    "fleet_frames",
    "live_frames",
    "simulate_fleet",
    "vehicle_frames",
    "write_fleet",
]

SUPPORTED_MODELS: tuple[str, ...] = tuple(MESSAGES)
DEFAULT_START = dt.date(2025, 1, 6)  # a Monday


@dataclass(frozen=True, slots=True)
class FleetOptions:
    """What describes a simulated fleet; the same options give the same bytes.

    Attributes:
        vehicles: number of vehicles.
        days: number of simulated days.
        seed: the fleet seed.
        models: models assigned in turn to vehicles 0, 1, 2, ...
        soh_percent: state of health of every pack, or None to draw each around 95 %.
        start: first day (UTC midnight).
        rollback_vehicles: indices of vehicles whose odometer is rolled back half-way.
        initial_soc: state of charge of every vehicle at the start, or None to draw it.
        rate_scale: factor on every message rate (0.1 = a tenth of the frames).
        dbc_dir: directory of DBCs named by bare file names (the Kona `pcan.dbc`).
    """

    vehicles: int = 1
    days: int = 1
    seed: int = 0
    models: tuple[str, ...] = SUPPORTED_MODELS
    soh_percent: float | None = None
    start: dt.date = DEFAULT_START
    rollback_vehicles: frozenset[int] = field(default_factory=frozenset)
    initial_soc: float | None = None
    rate_scale: float = 1.0
    dbc_dir: Path | None = None

    def validate(self) -> None:
        """Check the options.

        Raises:
            SimulationError: an option is out of range or names an unknown model.
        """
        if self.vehicles < 1:
            raise SimulationError("vehicles", self.vehicles, "simulate at least one vehicle")
        if not 1 <= self.days <= 366:
            raise SimulationError("days", self.days, "simulate 1 to 366 days")
        if not self.models:
            raise SimulationError("models", self.models, "name at least one model")
        for model in self.models:
            if model not in MESSAGES:
                raise SimulationError("models", model, f"choose from {list(SUPPORTED_MODELS)}")
        if self.soh_percent is not None and not 50.0 <= self.soh_percent <= 100.0:
            raise SimulationError(
                "soh", self.soh_percent, "give a state of health in percent, 50-100"
            )
        if self.initial_soc is not None and not 5.0 <= self.initial_soc <= 100.0:
            raise SimulationError("initial_soc", self.initial_soc, "give a percentage, 5-100")
        if not 0.0 < self.rate_scale <= 10.0:
            raise SimulationError("rate_scale", self.rate_scale, "give a factor in (0, 10]")
        for index in self.rollback_vehicles:
            if not 0 <= index < self.vehicles:
                raise SimulationError(
                    "rollback_vehicle", index, f"name a vehicle index from 0 to {self.vehicles - 1}"
                )

    @property
    def start_us(self) -> int:
        """UTC midnight of the first day, epoch microseconds."""
        midnight = dt.datetime(self.start.year, self.start.month, self.start.day, tzinfo=dt.UTC)
        return int(midnight.timestamp()) * 1_000_000


def fleet_configs(options: FleetOptions) -> list[VehicleConfig]:
    """Draw every vehicle's configuration from the fleet seed.

    Args:
        options: the fleet options.

    Returns:
        One configuration per vehicle; the same options always give the same list.

    Raises:
        SimulationError: the options are invalid.
    """
    options.validate()
    rng = random.Random(f"dimo-fleet:{options.seed}")
    configs = []
    for index in range(options.vehicles):
        seed = rng.getrandbits(63)
        soh = min(100.0, max(80.0, rng.gauss(95.0, 2.0)))
        odometer = rng.uniform(2_000.0, 80_000.0)
        soc = rng.uniform(45.0, 90.0)
        configs.append(
            VehicleConfig(
                index=index,
                model=options.models[index % len(options.models)],
                seed=seed,
                soh_percent=options.soh_percent if options.soh_percent is not None else soh,
                odometer_km=odometer,
                soc=options.initial_soc if options.initial_soc is not None else soc,
                rollback=index in options.rollback_vehicles,
            )
        )
    return configs


def simulate_fleet(options: FleetOptions) -> list[VehicleTrace]:
    """Simulate every vehicle of the fleet (physics and ground truth, no frames yet).

    Raises:
        SimulationError: the options are invalid.
    """
    start = options.start_us
    weekday = options.start.weekday()
    return [simulate_vehicle(c, start, options.days, weekday) for c in fleet_configs(options)]


class _Encoders:
    def __init__(self, dbc_dir: Path | None) -> None:
        self.dbc_dir = dbc_dir
        self._by_model: dict[str, FrameEncoder] = {}

    def get(self, model: str) -> FrameEncoder:
        if model not in self._by_model:
            self._by_model[model] = FrameEncoder(model, dbc_dir=self.dbc_dir)
        return self._by_model[model]


def vehicle_frames(
    trace: VehicleTrace,
    rate_scale: float = 1.0,
    *,
    encoder: FrameEncoder | None = None,
    dbc_dir: Path | None = None,
) -> Iterator[can.Message]:
    """Yield one vehicle's frames as `can.Message`s in time order (as fast as they are built).

    Args:
        trace: the simulated vehicle.
        rate_scale: factor on every message rate.
        encoder: a `FrameEncoder` of the vehicle's model to reuse.
        dbc_dir: where the Kona `pcan.dbc` is, if no encoder is given.
    """
    encoder = encoder or FrameEncoder(trace.config.model, dbc_dir=dbc_dir)
    return frames_to_messages(encoder.frames(trace, rate_scale))


def live_frames(
    trace: VehicleTrace,
    speed: float = 1.0,
    rate_scale: float = 1.0,
    *,
    dbc_dir: Path | None = None,
    clock: Callable[[], float] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> Iterator[can.Message]:
    """Yield one vehicle's frames paced in real time for a bridge to consume.

    Args:
        trace: the simulated vehicle.
        speed: time acceleration (1.0 real time, 60.0 a minute a second, 0 no waiting).
        rate_scale: factor on every message rate.
        dbc_dir: where the Kona `pcan.dbc` is.
        clock: monotonic clock (injectable).
        sleep: sleep function (injectable).
    """
    kwargs: dict[str, Callable[..., object]] = {}
    if clock is not None:
        kwargs["clock"] = clock
    if sleep is not None:
        kwargs["sleep"] = sleep
    return replay(vehicle_frames(trace, rate_scale, dbc_dir=dbc_dir), speed, **kwargs)  # type: ignore[arg-type]


def fleet_frames(
    traces: Sequence[VehicleTrace], rate_scale: float = 1.0, *, dbc_dir: Path | None = None
) -> Iterator[tuple[int, can.Message]]:
    """Yield `(vehicle index, message)` for the whole fleet, merged in time order."""
    encoders = _Encoders(dbc_dir)

    def tagged(trace: VehicleTrace) -> Iterator[tuple[int, int, Frame]]:
        for frame in encoders.get(trace.config.model).frames(trace, rate_scale):
            yield frame.t_us, trace.config.index, frame

    for _, index, frame in heapq.merge(*(tagged(t) for t in traces)):
        yield index, next(frames_to_messages((frame,)))


@dataclass(frozen=True, slots=True)
class FleetResult:
    """What `write_fleet` wrote: the files and per-vehicle frame counts."""

    out_dir: Path
    truths: tuple[GroundTruth, ...]
    logs: tuple[Path, ...]
    frames: tuple[int, ...]


def log_name(config: VehicleConfig) -> str:
    """File name of a vehicle's candump log."""
    return f"vehicle-{config.index:04d}-{config.model}.log"


def write_fleet(
    options: FleetOptions,
    out_dir: Path,
    *,
    progress: Callable[[VehicleTrace, int], None] | None = None,
) -> FleetResult:
    """Simulate the fleet and write, per vehicle, a candump log and its ground truth JSON.

    Files: `vehicle-NNNN-<model>.log` (`candump -L`), `vehicle-NNNN.truth.json` and
    `fleet.json` (the options and the list of vehicles).

    Args:
        options: the fleet options.
        out_dir: directory to write to (created).
        progress: called after each vehicle with its trace and frame count.

    Returns:
        The written files and counts.

    Raises:
        SimulationError: the options are invalid.
        DbcNotFoundError: the Kona `pcan.dbc` is not in `options.dbc_dir`.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    encoders = _Encoders(options.dbc_dir)
    start = options.start_us
    weekday = options.start.weekday()
    truths, logs, counts = [], [], []
    for config in fleet_configs(options):
        trace = simulate_vehicle(config, start, options.days, weekday)
        encoder = encoders.get(config.model)
        path = out_dir / log_name(config)
        with path.open("w", encoding="ascii", newline="\n") as file:
            count = encoder.write_candump(trace, file, options.rate_scale)
        trace.truth.log = path.name
        trace.truth.rate_scale = options.rate_scale
        trace.truth.write(out_dir / f"vehicle-{config.index:04d}.truth.json")
        truths.append(trace.truth)
        logs.append(path)
        counts.append(count)
        if progress is not None:
            progress(trace, count)
    summary = {
        "seed": options.seed,
        "days": options.days,
        "start": options.start.isoformat(),
        "rate_scale": options.rate_scale,
        "models": list(options.models),
        "soh_percent": options.soh_percent,
        "rollback_vehicles": sorted(options.rollback_vehicles),
        "vehicles": [
            {
                "vehicle": t.vehicle,
                "model": t.model,
                "log": t.log,
                "frames": n,
                "truth": f"vehicle-{t.vehicle:04d}.truth.json",
            }
            for t, n in zip(truths, counts, strict=True)
        ],
    }
    (out_dir / "fleet.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return FleetResult(out_dir, tuple(truths), tuple(logs), tuple(counts))
