"""Ground truth of a simulated vehicle: what really happened, to check decoders and analytics."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ChargingSession", "GroundTruth", "HarshEvent", "Rollback", "Trip"]


@dataclass(frozen=True, slots=True)
class Trip:
    """One drive from standstill to standstill (times in epoch seconds)."""

    start: float
    end: float
    purpose: str
    distance_km: float
    max_speed_kmh: float
    energy_kwh: float
    wh_per_km: float
    soc_start: float
    soc_end: float
    odometer_start_km: float
    odometer_end_km: float
    ambient_c: float


@dataclass(frozen=True, slots=True)
class ChargingSession:
    """One charging session; `start`/`end` bound the power flow (epoch seconds).

    `energy_battery_kwh` is the energy into the pack (the integral of voltage times current),
    `energy_grid_kwh` what the charger drew; their ratio is the charging efficiency.
    """

    start: float
    end: float
    kind: str
    charger_kw: float
    max_power_kw: float
    mean_power_kw: float
    energy_battery_kwh: float
    energy_grid_kwh: float
    soc_start: float
    soc_end: float


@dataclass(frozen=True, slots=True)
class HarshEvent:
    """A braking at or above 7 mph/s; `time` is its start (epoch seconds)."""

    time: float
    deceleration_mps2: float
    deceleration_mphps: float
    speed_kmh: float


@dataclass(frozen=True, slots=True)
class Rollback:
    """An injected odometer rollback: the reading jumps from `from_km` down to `to_km`."""

    time: float
    from_km: float
    to_km: float


@dataclass(slots=True)
class GroundTruth:
    """Everything true about one simulated vehicle.

    Attributes:
        vehicle: index in the fleet (0-based).
        model: the mapping its frames decode with.
        seed: the vehicle's own seed.
        log: file name of its candump log (empty when not written).
        nominal_capacity_kwh: energy of the new pack.
        soh_percent: configured state of health.
        usable_capacity_kwh: nominal times state of health.
        start, end: simulated period, epoch seconds.
        rate_scale: frame-rate factor used for the log.
        odometer_start_km, odometer_end_km: true odometer (after any rollback at the end).
        soc_start, soc_end: state of charge at the ends, percent.
        trips, charging_sessions, harsh_events: what happened, in time order.
        rollback: the injected rollback, if any.
    """

    vehicle: int
    model: str
    seed: int
    nominal_capacity_kwh: float
    soh_percent: float
    usable_capacity_kwh: float
    start: float
    end: float
    odometer_start_km: float
    soc_start: float
    odometer_end_km: float = 0.0
    soc_end: float = 0.0
    rate_scale: float = 1.0
    log: str = ""
    trips: list[Trip] = field(default_factory=list)
    charging_sessions: list[ChargingSession] = field(default_factory=list)
    harsh_events: list[HarshEvent] = field(default_factory=list)
    rollback: Rollback | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the truth as plain JSON-able data."""
        return asdict(self)

    def write(self, path: Path) -> None:
        """Write the truth as indented JSON (keys in a fixed order, so runs compare byte-wise)."""
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GroundTruth:
        """Rebuild a truth written by `write` (after `json.load`)."""
        data = dict(data)
        trips = [Trip(**t) for t in data.pop("trips")]
        sessions = [ChargingSession(**s) for s in data.pop("charging_sessions")]
        harsh = [HarshEvent(**h) for h in data.pop("harsh_events")]
        raw_rollback = data.pop("rollback")
        rollback = Rollback(**raw_rollback) if raw_rollback else None
        return cls(
            **data, trips=trips, charging_sessions=sessions, harsh_events=harsh, rollback=rollback
        )

    @classmethod
    def read(cls, path: Path) -> GroundTruth:
        """Read a truth file written by `write`."""
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
