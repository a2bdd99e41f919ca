"""`dimo bridge decode --suggest`: propose a mapping from a log and a DBC, for a user to edit."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import yaml
from cantools.database.can import Database, Message, Signal
from cantools.database.errors import DecodeError

from device_bridge.dbc import load_dbc
from device_bridge.exceptions import BridgeConfigError
from device_bridge.logs import LogFormat, TimeUnit, open_log
from protocol.vss import get_signal

__all__ = ["RULES", "Observed", "SuggestRule", "suggest_mapping"]


@dataclass(frozen=True, slots=True)
class SuggestRule:
    """A VSS signal and the DBC signal names and units that may carry it.

    Attributes:
        vss: the VSS path.
        names: regular expressions, one of which the DBC signal name must match (any case).
        units: DBC units (lower case) taken as they are; `""` matches a signal with no unit.
        conversions: DBC unit -> conversion name, for units that need one.
    """

    vss: str
    names: tuple[str, ...]
    units: tuple[str, ...]
    conversions: tuple[tuple[str, str], ...] = ()


_TB = "Vehicle.Powertrain.TractionBattery"

RULES: tuple[SuggestRule, ...] = (
    SuggestRule(
        "Vehicle.Speed",
        (r"^(veh(icle)?_?)?speed$", r"vehspd", r"vehicle_?speed", r"clu_?vanz", r"^v_?speed"),
        ("km/h", "kph", "kmh"),
        (("mph", "mph_to_kmh"), ("m/s", "mps_to_kmh")),
    ),
    SuggestRule(
        f"{_TB}.StateOfCharge.Displayed", (r"soc_?disp", r"displayed_?soc", r"soc_?ui"), ("%",)
    ),
    SuggestRule(
        f"{_TB}.StateOfCharge.Current", (r"^soc$", r"soc_?(bms|real|act)", r"^bms_?soc"), ("%",)
    ),
    SuggestRule(f"{_TB}.StateOfHealth", (r"soh",), ("%",)),
    SuggestRule(
        f"{_TB}.CurrentVoltage",
        (r"^v_?batt", r"(batt|pack|hv)\w*_?volt", r"^volt(age)?_?(hv|pack)"),
        ("v",),
    ),
    SuggestRule(
        f"{_TB}.CurrentCurrent",
        (r"^i_?batt", r"(batt|pack|hv)\w*_?(curr|amp)"),
        ("a",),
    ),
    SuggestRule(
        f"{_TB}.CellVoltage.Min",
        (r"cell\w*volt\w*(min|low)", r"(min|low)\w*cell\w*volt"),
        ("v",),
        (("mv", "mv_to_v"),),
    ),
    SuggestRule(
        f"{_TB}.CellVoltage.Max",
        (r"cell\w*volt\w*(max|high)", r"(max|high)\w*cell\w*volt"),
        ("v",),
        (("mv", "mv_to_v"),),
    ),
    SuggestRule(
        f"{_TB}.Temperature.Min",
        (r"(batt|akku|cell|pack)\w*t\w*(min|low|l)$", r"t_?akku_?l"),
        ("c", "°c", "degc", ""),
    ),
    SuggestRule(
        f"{_TB}.Temperature.Max",
        (r"(batt|akku|cell|pack)\w*t\w*(max|high|h)$", r"t_?akku_?h"),
        ("c", "°c", "degc", ""),
    ),
    SuggestRule(
        f"{_TB}.MaxChargePower", (r"charge\w*(avail|limit|max)", r"max\w*charge\w*pow"), ("kw",)
    ),
    SuggestRule(
        f"{_TB}.MaxDischargePower",
        (r"discharge\w*(avail|limit|max)", r"max\w*discharge\w*pow"),
        ("kw",),
    ),
    SuggestRule(
        "Vehicle.LowVoltageBattery.CurrentVoltage", (r"12_?v", r"(aux|lv)\w*volt"), ("v", "")
    ),
    SuggestRule("Vehicle.TraveledDistance", (r"odo",), ("km",), (("mi", "miles_to_km"),)),
    SuggestRule(
        "Vehicle.Powertrain.Range", (r"^range$", r"range_?(km|est)"), ("km",), (("km", "km_to_m"),)
    ),
    SuggestRule(
        "Vehicle.Chassis.SteeringWheel.Angle",
        (r"steer\w*angle", r"sas_?angle", r"^angle$"),
        ("deg", "°", "degree", "degrees", ""),
    ),
    SuggestRule("Vehicle.AngularVelocity.Yaw", (r"yaw_?rate", r"_yr$"), ("deg/s", "°/s", "")),
    SuggestRule(
        "Vehicle.Acceleration.Longitudinal",
        (r"long\w*acc",),
        ("m/s^2", "m/s2"),
        (("g", "g_to_mps2"),),
    ),
    SuggestRule(
        "Vehicle.Acceleration.Lateral", (r"lat\w*acc",), ("m/s^2", "m/s2"), (("g", "g_to_mps2"),)
    ),
    SuggestRule(
        "Vehicle.Powertrain.ElectricMotor.Speed",
        (r"motor\w*(speed|rpm)", r"^speed_signed$"),
        ("rpm", ""),
    ),
    SuggestRule(
        "Vehicle.Exterior.AirTemperature", (r"(outside|ambient|ext)\w*temp",), ("c", "°c", "degc")
    ),
)


@dataclass
class Observed:
    """What the log showed of one DBC signal.

    Attributes:
        count: frames in which the signal was decoded.
        low: lowest physical value.
        high: highest physical value.
        first: first physical value.
        raw_all_ones: frames in which the raw value was all ones (a "not available" sentinel).
        values: distinct physical values (up to 50).
    """

    count: int = 0
    low: float = float("inf")
    high: float = float("-inf")
    first: float | None = None
    raw_all_ones: int = 0
    values: Counter[float] = field(default_factory=Counter)


def _unit(signal: Signal) -> str:
    return (signal.unit or "").strip().lower()


def _match(rule: SuggestRule, signal: Signal) -> str | None:
    """The conversion to use ("" for none) if the rule matches the signal, else None."""
    name = signal.name.lower()
    if not any(re.search(pattern, name) for pattern in rule.names):
        return None
    unit = _unit(signal)
    conversions = dict(rule.conversions)
    if unit in conversions:
        return conversions[unit]
    if unit in rule.units or (not unit and "" in rule.units):
        return ""
    return None


def _observe(
    db: Database,
    log: Path,
    channel: str | None,
    fmt: LogFormat | None,
    time_unit: TimeUnit | None,
) -> tuple[dict[tuple[str, str], Observed], object, int]:
    by_id = {m.frame_id: m for m in db.messages}
    recorded = open_log(log, fmt, time_unit=time_unit, known_ids=by_id)
    frames = list(recorded)
    if channel is None:
        hits: Counter[object] = Counter(m.channel for m in frames if m.arbitration_id in by_id)
        if not hits:
            raise BridgeConfigError(
                "--dbc", f"no frame of {log} has an id of the DBC ({recorded.describe()})"
            )
        chosen: object = hits.most_common(1)[0][0]
    else:
        chosen = int(channel) if channel.isdigit() else channel
    observed: dict[tuple[str, str], Observed] = {}
    used = 0
    for frame in frames:
        if frame.channel != chosen:
            continue
        message: Message | None = by_id.get(frame.arbitration_id)
        if message is None:
            continue
        try:
            values = cast(
                "Mapping[str, float]",
                message.decode(
                    bytes(frame.data), decode_choices=False, scaling=False, allow_truncated=True
                ),
            )
        except (DecodeError, ValueError, KeyError, IndexError):
            continue
        used += 1
        for signal in message.signals:
            if signal.name not in values or signal.is_float:
                continue
            raw = int(values[signal.name])
            physical = raw * signal.scale + signal.offset
            seen = observed.setdefault((message.name, signal.name), Observed())
            seen.count += 1
            if seen.first is None:
                seen.first = physical
            mask = (1 << signal.length) - 1
            if raw == mask and signal.length > 1 and not signal.is_signed:
                seen.raw_all_ones += 1
                continue
            seen.low = min(seen.low, physical)
            seen.high = max(seen.high, physical)
            if len(seen.values) < 50 or physical in seen.values:
                seen.values[physical] += 1
    return observed, chosen, used


def suggest_mapping(
    log: str | Path,
    dbc: str | Path,
    *,
    channel: str | None = None,
    fmt: LogFormat | None = None,
    time_unit: TimeUnit | None = None,
    model: str = "my_car",
) -> str:
    """Propose a mapping (YAML text) for the DBC signals whose names and units match VSS.

    Each proposal carries the observed range as a comment; a signal whose raw all-ones value
    appears in the log gets `invalid_all_ones: true`; one whose observed values leave the VSS
    range gets a warning comment (a missing scale, a sign, or a sentinel to declare).

    Args:
        log: a recording of the car.
        dbc: the DBC describing the bus.
        channel: the log channel the DBC describes (default: the one with most DBC ids).
        fmt: the log format (told from the content if None).
        time_unit: the unit of a table's time column.
        model: the model name written into the mapping.

    Returns:
        YAML text that `load_mapping` accepts.

    Raises:
        LogFormatError, DbcLoadError, DbcNotFoundError: the log or DBC cannot be read.
        BridgeConfigError: no frame of the log belongs to the DBC.
    """
    dbc_path = Path(dbc).resolve()
    db, _ = load_dbc(dbc_path)
    observed, chosen, used = _observe(db, Path(log), channel, fmt, time_unit)
    lines = [
        f"# Suggested by `dimo bridge decode --suggest` from {Path(log).name} and {dbc_path.name}",
        f"# ({used:,} frames of channel {chosen!r} matched the DBC). Check every entry: names and",
        "# units matched, meanings did not. VSS current is positive when charging; add `scale: -1`",
        "# if the BMS counts discharge as positive. Declare sentinels (`invalid`, `invalid_raw`).",
    ]
    signals: list[dict[str, object]] = []
    taken: set[str] = set()
    for rule in RULES:
        for message in sorted(db.messages, key=lambda m: m.frame_id):
            for signal in message.signals:
                conversion = _match(rule, signal)
                seen = observed.get((message.name, signal.name))
                if conversion is None or seen is None or rule.vss in taken:
                    continue
                if seen.low > seen.high and not seen.raw_all_ones:
                    continue
                entry: dict[str, object] = {
                    "message": message.name,
                    "signal": signal.name,
                    "vss": rule.vss,
                }
                if conversion:
                    entry["conversion"] = conversion
                if seen.raw_all_ones:
                    entry["invalid_all_ones"] = True
                vss = get_signal(rule.vss)
                note = _describe(seen, signal, vss.min, vss.max, vss.unit)
                status = _status_signal(message, signal)
                if status is not None:
                    note += f"; {status} in the same frame may say when it is valid: valid_when?"
                entry["note"] = note
                signals.append(entry)
                taken.add(rule.vss)
    if not signals:
        raise BridgeConfigError(
            "--dbc", f"no DBC signal of {dbc_path.name} seen in the log matched a VSS name"
        )
    document = {
        "model": model,
        "description": f"Suggested from {Path(log).name}; edit before use.",
        "buses": {
            "bus": {
                "dbc": str(dbc_path),
                "channels": [chosen],
                "signals": signals,
            }
        },
    }
    body = str(yaml.safe_dump(document, sort_keys=False, width=100, allow_unicode=True))
    return "\n".join(lines) + "\n" + body


_STATUS_SUFFIXES = ("_stat", "_status", "_valid", "_v", "_qf", "stat", "_sts")


def _status_signal(message: Message, signal: Signal) -> str | None:
    """A status/validity signal of the same frame named after `signal`, if there is one."""
    stem = signal.name.lower()
    for other in message.signals:
        name = other.name.lower()
        if other is not signal and name.startswith(stem) and name[len(stem) :] in _STATUS_SUFFIXES:
            return other.name
    return None


def _describe(
    seen: Observed, signal: Signal, low: float | None, high: float | None, unit: str
) -> str:
    parts = [f"observed {seen.low:g}..{seen.high:g} {signal.unit or ''}".rstrip()]
    parts.append(f"in {seen.count:,} frames")
    if seen.raw_all_ones:
        parts.append(f"raw all-ones (sentinel) in {seen.raw_all_ones:,}")
    if (low is not None and seen.low < low) or (high is not None and seen.high > high):
        parts.append(f"WARNING: outside the VSS range {low}..{high} {unit}: scale or sentinel?")
    return "; ".join(parts)
