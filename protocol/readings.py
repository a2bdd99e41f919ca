"""Verified readings as every part handles them: the `Reading` value, the VSS signals the
applications read, and which signals hold text."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from protocol.vss import CATALOG, VssDatatype

SPEED: Final = "Vehicle.Speed"
IGNITION: Final = "Vehicle.LowVoltageSystemState"
ODOMETER: Final = "Vehicle.TraveledDistance"
IS_CHARGING: Final = "Vehicle.Powertrain.TractionBattery.Charging.IsCharging"
SOC: Final = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current"
CHARGE_POWER: Final = "Vehicle.Powertrain.TractionBattery.Charging.Power"
#: `Vehicle.LowVoltageSystemState` values meaning the ignition is on.
IGNITION_ON: Final = frozenset({"ON", "START"})
#: `Vehicle.LowVoltageSystemState` values meaning the ignition is off (a trip ends there).
IGNITION_OFF: Final = frozenset({"OFF", "LOCK"})

Value = float | str
#: A half-open time range `[from_ms, to_ms)`.
Interval = tuple[int, int]


def is_text_signal(name: str) -> bool:
    """Whether `name` holds text values (catalog `string` signals live in `readings_text`)."""
    entry = CATALOG.get(name)
    return entry is not None and entry.datatype is VssDatatype.STRING


@dataclass(frozen=True)
class Reading:
    """One verified reading and where it came from.

    Attributes:
        ts: Unix ms.
        value: A float (booleans as 0/1, integers as floats) or, for text signals, text.
        batch_id: The anchored batch.
        leaf_index: The bundle's index in the batch.
    """

    ts: int
    value: Value
    batch_id: int
    leaf_index: int


def segments(
    marks: Sequence[tuple[int, bool | None]], gap_ms: int, min_duration_ms: int
) -> list[tuple[int, int]]:
    """Runs of active marks (True) no more than `gap_ms` apart and not broken by a False.

    `marks` are `(ts, state)` sorted by time: True active, False an explicit stop, None
    neutral (neither extends nor breaks a run). Runs shorter than `min_duration_ms` drop out.
    """
    out: list[tuple[int, int]] = []
    start: int | None = None
    last = 0
    for ts, state in marks:
        if state is None:
            continue
        if state:
            if start is not None and ts - last > gap_ms:
                out.append((start, last))
                start = None
            if start is None:
                start = ts
            last = ts
        elif start is not None:
            out.append((start, last))
            start = None
    if start is not None:
        out.append((start, last))
    return [(a, b) for a, b in out if b - a >= min_duration_ms]
