"""Per-vehicle mappings from DBC `message.signal` to VSS paths, with conversions and overrides."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cantools.database.can import Database

from device_bridge.dbc import DbcLoadReport, load_dbc, resolve_dbc
from device_bridge.exceptions import MappingError, MappingNotFoundError
from protocol.vss import UnknownSignalError, VssDatatype, VssValue, get_signal

__all__ = [
    "CONVERSIONS",
    "MAPPINGS_DIR",
    "BusMapping",
    "Gate",
    "SignalMapping",
    "VehicleMapping",
    "available_mappings",
    "load_databases",
    "load_mapping",
    "parse_mapping",
]

MAPPINGS_DIR = Path(__file__).resolve().parent / "mappings"

# Named unit conversions: VSS value = DBC physical value * factor + offset.
CONVERSIONS: Mapping[str, tuple[float, float]] = {
    "identity": (1.0, 0.0),
    "mph_to_kmh": (1.609344, 0.0),
    "mps_to_kmh": (3.6, 0.0),
    "km_to_m": (1000.0, 0.0),
    "m_to_km": (0.001, 0.0),
    "miles_to_km": (1.609344, 0.0),
    "w_to_kw": (0.001, 0.0),
    "kw_to_w": (1000.0, 0.0),
    "g_to_mps2": (9.80665, 0.0),
    "kelvin_to_celsius": (1.0, -273.15),
    "fahrenheit_to_celsius": (5.0 / 9.0, -160.0 / 9.0),
    "fraction_to_percent": (100.0, 0.0),
    "min_to_s": (60.0, 0.0),
    "mv_to_v": (0.001, 0.0),
    "wh_to_kwh": (0.001, 0.0),
}

_SIGNAL_KEYS = {
    "message",
    "signal",
    "vss",
    "conversion",
    "scale",
    "offset",
    "values",
    "signed",
    "invalid",
    "invalid_raw",
    "invalid_all_ones",
    "note",
    "valid_when",
}
_GATE_KEYS = {"message", "signal", "equals", "in", "min", "max", "within_ms"}


@dataclass(frozen=True, slots=True)
class Gate:
    """A condition another signal must meet for a mapped signal to be kept (`valid_when`).

    The gating signal's DBC physical value (cantools scale and offset, no mapping scale) is
    compared: equal to `equals`, one of `values`, or within [`min`, `max`].

    Attributes:
        signal: the gating DBC signal.
        message: its message; None for the mapped signal's own frame.
        equals: the value it must have, or None.
        values: the values it may have, or empty.
        min: lowest value allowed (inclusive), or None.
        max: highest value allowed (inclusive), or None.
        within_ms: for another message, how recent (ms, on the same channel) its frame must be.
    """

    signal: str
    message: str | None = None
    equals: float | None = None
    values: tuple[float, ...] = ()
    min: float | None = None
    max: float | None = None
    within_ms: float = 1000.0

    def holds(self, value: float) -> bool:
        """Whether the gating signal's physical value lets the mapped signal through."""
        if self.equals is not None and abs(value - self.equals) > 1e-9:
            return False
        if self.values and not any(abs(value - v) <= 1e-9 for v in self.values):
            return False
        if self.min is not None and value < self.min:
            return False
        return not (self.max is not None and value > self.max)


@dataclass(frozen=True, slots=True)
class SignalMapping:
    """How one DBC signal becomes one VSS signal.

    The VSS value is `dbc_physical * scale + offset`, then looked up in `values` if given,
    then made boolean/integer as the VSS datatype says.

    Attributes:
        message: DBC message name.
        signal: DBC signal name.
        vss: VSS path (must be in the catalog).
        scale: factor applied to the DBC physical value (from `conversion` and/or `scale`).
        offset: offset added after the factor.
        values: DBC physical value -> VSS value (enumerations such as gears); others dropped.
        signed: read the raw bits as two's complement although the DBC says unsigned.
        invalid: DBC physical values meaning "not valid" (e.g. 3276.7), dropped.
        invalid_raw: raw values meaning "not valid", dropped.
        invalid_all_ones: True drops the all-ones raw value ("signal not available"
            sentinel) as `invalid-value`; False keeps it; unset (None), an unsigned numeric signal
            of 10 bits or more drops it as `implausible` (a sentinel the mapping forgot to declare).
        valid_when: conditions on other signals, all of which must hold (`Gate`).
    """

    message: str
    signal: str
    vss: str
    scale: float = 1.0
    offset: float = 0.0
    values: Mapping[float, VssValue] | None = None
    signed: bool = False
    invalid: tuple[float, ...] = ()
    invalid_raw: tuple[int, ...] = ()
    invalid_all_ones: bool | None = None
    valid_when: tuple[Gate, ...] = ()


@dataclass(frozen=True, slots=True)
class BusMapping:
    """The signals read from one bus, decoded with one DBC.

    Attributes:
        name: the bus's name in the mapping (`pcan`, `ccan`, `party`, ...).
        dbc: DBC reference, resolved by `device_bridge.dbc.resolve_dbc`.
        channels: python-can channels the bus appears as (e.g. `0`, `"can0"`); empty = any.
        signals: the signal mappings.
    """

    name: str
    dbc: str
    channels: tuple[str | int, ...]
    signals: tuple[SignalMapping, ...]


@dataclass(frozen=True, slots=True)
class VehicleMapping:
    """A vehicle model's mapping.

    Attributes:
        model: model identifier, e.g. `hyundai_kona_ev_2019`.
        description: free text (provenance, caveats).
        buses: the buses and their signals.
        source: file the mapping came from.
    """

    model: str
    description: str
    buses: tuple[BusMapping, ...]
    source: str

    @property
    def vss_paths(self) -> frozenset[str]:
        """Every VSS path this mapping can produce."""
        return frozenset(s.vss for b in self.buses for s in b.signals)


def available_mappings() -> list[str]:
    """Return the names of the mappings shipped in `device_bridge/mappings/`."""
    return sorted(p.stem for p in MAPPINGS_DIR.iterdir() if p.suffix in (".yaml", ".yml", ".json"))


def load_mapping(name_or_path: str | Path) -> VehicleMapping:
    """Load a shipped mapping by name, or a mapping file by path.

    Args:
        name_or_path: `hyundai_kona_ev_2019` or `/path/to/mapping.yaml`.

    Returns:
        The validated mapping.

    Raises:
        MappingNotFoundError: no such mapping.
        MappingError: the file is malformed or names unknown VSS signals or conversions.
    """
    path = Path(name_or_path)
    if not path.is_file():
        for suffix in (".yaml", ".yml", ".json"):
            candidate = MAPPINGS_DIR / f"{name_or_path}{suffix}"
            if candidate.is_file():
                path = candidate
                break
        else:
            raise MappingNotFoundError(str(name_or_path), tuple(available_mappings()))
    text = path.read_text(encoding="utf-8")
    try:
        document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise MappingError(path, f"not valid YAML/JSON: {exc}") from exc
    return parse_mapping(document, source=str(path))


def parse_mapping(document: object, *, source: str = "<mapping>") -> VehicleMapping:
    """Validate a mapping document (the parsed YAML/JSON).

    Args:
        document: `{model, description, buses: {name: {dbc, channels, signals: [...]}}}`.
        source: a name for errors.

    Returns:
        The validated mapping.

    Raises:
        MappingError: the document is malformed or names unknown VSS signals or conversions.
    """
    if not isinstance(document, dict):
        raise MappingError(source, "top level must be a mapping")
    model = document.get("model")
    buses = document.get("buses")
    if not isinstance(model, str) or not isinstance(buses, dict) or not buses:
        raise MappingError(source, "needs a string 'model' and a non-empty 'buses' mapping")
    parsed = tuple(_parse_bus(name, bus, source) for name, bus in buses.items())
    return VehicleMapping(model, str(document.get("description", "")), parsed, source)


def _parse_bus(name: str, bus: Any, source: str) -> BusMapping:
    where = f"bus {name!r}"
    if not isinstance(bus, dict) or not isinstance(bus.get("dbc"), str):
        raise MappingError(source, f"{where} needs a 'dbc' string")
    channels = bus.get("channels", [])
    if not isinstance(channels, list) or not all(isinstance(c, str | int) for c in channels):
        raise MappingError(source, f"{where}: 'channels' must be a list of strings/integers")
    signals = bus.get("signals")
    if not isinstance(signals, list) or not signals:
        raise MappingError(source, f"{where} needs a non-empty 'signals' list")
    parsed = tuple(
        _parse_signal(entry, f"{where} signal #{i}", source) for i, entry in enumerate(signals)
    )
    return BusMapping(name, bus["dbc"], tuple(channels), parsed)


def _parse_signal(entry: Any, where: str, source: str) -> SignalMapping:
    if not isinstance(entry, dict):
        raise MappingError(source, f"{where} must be a mapping")
    unknown = set(entry) - _SIGNAL_KEYS
    if unknown:
        raise MappingError(source, f"{where}: unknown keys {sorted(unknown)}")
    for key in ("message", "signal", "vss"):
        if not isinstance(entry.get(key), str):
            raise MappingError(source, f"{where}: '{key}' must be a string")
    where = f"{where} ({entry['message']}.{entry['signal']} -> {entry['vss']})"
    try:
        vss = get_signal(entry["vss"])
    except UnknownSignalError as exc:
        raise MappingError(source, f"{where}: {exc}") from None
    scale, offset = 1.0, 0.0
    if "conversion" in entry:
        try:
            scale, offset = CONVERSIONS[entry["conversion"]]
        except KeyError:
            raise MappingError(
                source,
                f"{where}: unknown conversion {entry['conversion']!r}; use {sorted(CONVERSIONS)}",
            ) from None
    try:
        extra_scale = float(entry.get("scale", 1.0))
        extra_offset = float(entry.get("offset", 0.0))
        invalid = tuple(float(v) for v in entry.get("invalid", ()))
        invalid_raw = tuple(int(v) for v in entry.get("invalid_raw", ()))
    except (TypeError, ValueError) as exc:
        raise MappingError(source, f"{where}: {exc}") from None
    values: dict[float, VssValue] | None = None
    if "values" in entry:
        raw_values = entry["values"]
        if not isinstance(raw_values, dict):
            raise MappingError(source, f"{where}: 'values' must map DBC values to VSS values")
        values = {}
        for key, value in raw_values.items():
            reason = vss.plausibility_error(value)
            if reason is not None:
                raise MappingError(source, f"{where}: value {value!r} for {key!r}: {reason}")
            values[float(key)] = value
    elif vss.datatype is VssDatatype.STRING:
        raise MappingError(source, f"{where}: a string signal needs a 'values' table")
    return SignalMapping(
        message=entry["message"],
        signal=entry["signal"],
        vss=vss.path,
        scale=scale * extra_scale,
        offset=offset * extra_scale + extra_offset,
        values=values,
        signed=bool(entry.get("signed", False)),
        invalid=invalid,
        invalid_raw=invalid_raw,
        invalid_all_ones=(
            None if entry.get("invalid_all_ones") is None else bool(entry["invalid_all_ones"])
        ),
        valid_when=_parse_gates(entry.get("valid_when"), where, source),
    )


def _parse_gates(raw: Any, where: str, source: str) -> tuple[Gate, ...]:
    if raw is None:
        return ()
    entries = raw if isinstance(raw, list) else [raw]
    gates = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("signal"), str):
            raise MappingError(
                source,
                f"{where}: 'valid_when' needs {{signal: NAME, equals: V}} (or 'in: [..]', "
                "'min'/'max'; 'message' and 'within_ms' for another frame), or a list of them",
            )
        unknown = set(entry) - _GATE_KEYS
        if unknown:
            raise MappingError(
                source,
                f"{where}: unknown 'valid_when' keys {sorted(unknown)}; use {sorted(_GATE_KEYS)}",
            )
        if not {"equals", "in", "min", "max"} & set(entry):
            raise MappingError(
                source, f"{where}: 'valid_when' on {entry['signal']} needs equals, in, min or max"
            )
        message = entry.get("message")
        if message is not None and not isinstance(message, str):
            raise MappingError(source, f"{where}: 'valid_when.message' must be a string")
        try:
            within = float(entry.get("within_ms", 1000.0))
            gate = Gate(
                signal=entry["signal"],
                message=message,
                equals=float(entry["equals"]) if "equals" in entry else None,
                values=tuple(float(v) for v in entry.get("in", ())),
                min=float(entry["min"]) if "min" in entry else None,
                max=float(entry["max"]) if "max" in entry else None,
                within_ms=within,
            )
        except (TypeError, ValueError) as exc:
            raise MappingError(source, f"{where}: 'valid_when': {exc}") from None
        if within <= 0:
            raise MappingError(source, f"{where}: 'valid_when.within_ms' must be > 0")
        gates.append(gate)
    return tuple(gates)


def load_databases(
    mapping: VehicleMapping,
    *,
    dbc_dir: Path | None = None,
    dbc_paths: dict[str, Path] | None = None,
) -> dict[str, tuple[Database, DbcLoadReport]]:
    """Load the DBC of every bus of a mapping, leniently.

    Args:
        mapping: the vehicle mapping.
        dbc_dir: directory for bare DBC file names (setting `DIMO_BRIDGE_DBC_DIR`).
        dbc_paths: explicit DBC paths by the name the mapping uses.

    Returns:
        Bus name -> (database, load report).

    Raises:
        DbcNotFoundError: a DBC cannot be found.
        DbcLoadError: a DBC cannot be parsed even after repairs.
    """
    base_dir = Path(mapping.source).parent if Path(mapping.source).is_file() else None
    loaded: dict[str, tuple[Database, DbcLoadReport]] = {}
    cache: dict[Path, tuple[Database, DbcLoadReport]] = {}
    for bus in mapping.buses:
        path = resolve_dbc(bus.dbc, dbc_dir=dbc_dir, dbc_paths=dbc_paths, base_dir=base_dir)
        if path not in cache:
            cache[path] = load_dbc(path)
        loaded[bus.name] = cache[path]
    return loaded
