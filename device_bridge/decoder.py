"""The hot path: CAN frames to (timestamp, VSS path, value) readings, via precompiled plans."""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import can
from cantools.database.can import Database, Message, Signal

from device_bridge.config import BridgeSettings
from device_bridge.dbc import DbcLoadReport
from device_bridge.exceptions import MappingError
from device_bridge.mapping import (
    Gate,
    SignalMapping,
    VehicleMapping,
    load_databases,
    load_mapping,
)
from protocol.vss import VssDatatype, VssValue, get_signal

__all__ = ["DecodeStats", "Decoder", "Reading"]

_EXTENDED = 0x8000_0000
_MISSING = object()

Event = tuple[str, str]
Held = tuple[tuple[int, ...], str, VssValue]
Result = tuple[
    tuple[tuple[str, VssValue], ...],
    tuple[Event, ...],
    bool,
    tuple[Held, ...],
    tuple[tuple[int, bool], ...],
]


class Reading(NamedTuple):
    """One decoded value: when, which VSS signal, what value."""

    timestamp: float
    path: str
    value: VssValue


@dataclass
class DecodeStats:
    """Counters of what the decoder saw.

    Attributes:
        frames: frames offered.
        decoded: frames of a known id decoded in full (not short, not malformed).
        readings: readings produced.
        unknown_ids: frames of ids absent from the bus's DBC, by (channel, id).
        events: everything counted but not produced, by (reason, message name or VSS path):
            `short-frame`, `signal-truncated`, `remote-frame`, `error-frame`,
            `classic-frame-too-long`, `unknown-channel`, `invalid-value`, `unmapped-value`,
            `not-valid` (a `valid_when` condition failed), and `implausible`, whose name is
            `<VSS path> <- <message>.<signal>` (see `implausible`).
    """

    frames: int = 0
    decoded: int = 0
    readings: int = 0
    unknown_ids: Counter[tuple[object, int]] = field(default_factory=Counter)
    events: Counter[Event] = field(default_factory=Counter)

    def implausible(self) -> Counter[tuple[str, str]]:
        """Return the implausible values counted by (VSS path, DBC `message.signal`)."""
        out: Counter[tuple[str, str]] = Counter()
        for (reason, name), count in self.events.items():
            if reason == "implausible":
                path, _, dbc = name.partition(" <- ")
                out[path, dbc] += count
        return out

    def by_reason(self) -> Counter[str]:
        """Return the event counts summed by reason."""
        totals: Counter[str] = Counter()
        for (reason, _), count in self.events.items():
            totals[reason] += count
        return totals


@dataclass(frozen=True, slots=True)
class _Bits:
    """Where a signal's raw bits sit, for one frame length."""

    big_endian: bool
    shift: int
    mask: int
    fits: bool


def _bits(signal: Signal, length: int) -> _Bits:
    mask = (1 << signal.length) - 1
    if signal.byte_order == "little_endian":
        fits = signal.start + signal.length <= 8 * length
        return _Bits(False, signal.start, mask, fits)
    msb = 8 * (signal.start // 8) + (7 - signal.start % 8)
    lsb = msb + signal.length - 1
    return _Bits(True, 8 * length - 1 - lsb, mask, lsb < 8 * length)


def _unpack_float(raw: int, length: int) -> float:
    if length == 32:
        return float(struct.unpack("<f", raw.to_bytes(4, "little"))[0])
    return float(struct.unpack("<d", raw.to_bytes(8, "little"))[0])


@dataclass(frozen=True, slots=True)
class _SignalPlan:
    """One mapped signal of a message with its `valid_when` gates resolved."""

    signal: Signal
    spec: SignalMapping
    same_frame: tuple[tuple[Signal, Gate], ...] = ()
    cross_keys: tuple[int, ...] = ()


class _Plan:
    """Decode plan of one message: its mapped signals, compiled per frame length."""

    __slots__ = (
        "_drop_implausible",
        "_fns",
        "_gate_sources",
        "_namespace",
        "_signals",
        "cache",
        "length",
        "message",
        "name",
    )

    def __init__(
        self,
        message: Message,
        signals: list[_SignalPlan],
        drop_implausible: bool,
        gate_sources: list[tuple[int, Signal, Gate]] | None = None,
    ) -> None:
        self.message = message
        self.name: str = message.name
        self.length: int = message.length
        self._signals = signals
        self._gate_sources = gate_sources or []
        self._fns: dict[int, Callable[[bytes], Result]] = {}
        self.cache: dict[bytes, Result] = {}
        self._namespace: dict[str, Any] = {"_MISSING": _MISSING, "_unpack_float": _unpack_float}
        self._drop_implausible = drop_implausible

    def compute(self, data: bytes) -> Result:
        fn = self._fns.get(len(data))
        if fn is None:
            fn = self._fns[len(data)] = self._generate(len(data))
        return fn(data)

    def _generate(self, n: int) -> Callable[[bytes], Result]:
        ns = self._namespace
        lines = [
            "def _decode(data):",
            "    out = []",
            "    ev = []",
            "    held = []",
            "    gs = []",
        ]
        short = n < self.length
        if short:
            lines.append(f"    ev.append(('short-frame', {self.name!r}))")
        used = [p.signal for p in self._signals]
        used += [g for p in self._signals for g, _ in p.same_frame]
        used += [g for _, g, _ in self._gate_sources]
        uses = {b.big_endian for s in used if (b := _bits(s, n)).fits}
        if True in uses:
            lines.append("    B = int.from_bytes(data, 'big')")
        if False in uses:
            lines.append("    L = int.from_bytes(data, 'little')")
        for i, plan in enumerate(self._signals):
            lines += self._emit_signal(i, plan, n, ns)
        for key, signal, gate in self._gate_sources:
            raw = self._raw_expr(signal, n)
            if raw is not None:
                ns[f"GATE{key}"] = gate
                lines.append(
                    f"    gs.append(({key}, GATE{key}.holds({self._phys_expr(signal, raw)})))"
                )
        lines.append(f"    return (tuple(out), tuple(ev), {not short}, tuple(held), tuple(gs))")
        code = "\n".join(lines)
        exec(compile(code, f"<decode plan {self.name} len {n}>", "exec"), ns)
        fn: Callable[[bytes], Result] = ns.pop("_decode")
        return fn

    def _raw_expr(self, signal: Signal, n: int) -> str | None:
        bits = _bits(signal, n)
        if not bits.fits:
            return None
        source = "B" if bits.big_endian else "L"
        return f"(({source} >> {bits.shift}) & {bits.mask:#x})"

    def _phys_expr(self, signal: Signal, raw: str) -> str:
        value = raw
        if signal.is_signed:
            sign = 1 << (signal.length - 1)
            value = f"(({raw} ^ {sign:#x}) - {sign:#x})"
        if signal.is_float:
            value = f"_unpack_float({raw}, {signal.length})"
        return f"({value} * {signal.scale!r} + {signal.offset!r})"

    def _emit_signal(self, i: int, plan: _SignalPlan, n: int, ns: dict[str, Any]) -> list[str]:
        signal, spec = plan.signal, plan.spec
        path = spec.vss
        raw = self._raw_expr(signal, n)
        conditions: list[str] = []
        mux_name = signal.multiplexer_signal
        current = signal
        while mux_name is not None and raw is not None:
            mux = self.message.get_signal_by_name(mux_name)
            mux_raw = self._raw_expr(mux, n)
            if mux_raw is None:
                raw = None
                break
            ids = frozenset(current.multiplexer_ids or ())
            ns[f"MUX{i}_{len(conditions)}"] = ids
            conditions.append(f"int({self._phys_expr(mux, mux_raw)}) in MUX{i}_{len(conditions)}")
            current, mux_name = mux, mux.multiplexer_signal
        if raw is None:
            return [f"    ev.append(('signal-truncated', {path!r}))"]
        indent = "    "
        lines: list[str] = []
        if conditions:
            lines.append(f"{indent}if {' and '.join(conditions)}:")
            indent += "    "
        for j, (gate_signal, gate) in enumerate(plan.same_frame):
            gate_raw = self._raw_expr(gate_signal, n)
            ns[f"SAME{i}_{j}"] = gate
            test = (
                "False"
                if gate_raw is None
                else f"SAME{i}_{j}.holds({self._phys_expr(gate_signal, gate_raw)})"
            )
            lines.append(f"{indent}if not {test}:")
            lines.append(f"{indent}    ev.append(('not-valid', {path!r}))")
            lines.append(f"{indent}else:")
            indent += "    "
        if plan.cross_keys:
            ns[f"KEYS{i}"] = plan.cross_keys
            emit = f"held.append((KEYS{i}, {path!r}, {{}}))"
        else:
            emit = f"out.append(({path!r}, {{}}))"
        lines.append(f"{indent}r = {raw}")
        invalid = self._invalid_raw(signal, spec)
        if invalid:
            ns[f"INV{i}"] = invalid
            lines.append(f"{indent}if r in INV{i}:")
            lines.append(f"{indent}    ev.append(('invalid-value', {path!r}))")
            lines.append(f"{indent}else:")
            indent += "    "
        vss = get_signal(path)
        if (
            spec.invalid_all_ones is None
            and self._drop_implausible
            and spec.values is None
            and vss.datatype.is_numeric
            and not signal.is_float
            and not signal.is_signed
            and not spec.signed
            and signal.length >= 10
        ):
            # an undeclared all-ones raw value of 10+ bits is a sentinel (1023.5 A, 511.5 V)
            label = f"{path} <- {self.name}.{signal.name}"
            lines.append(f"{indent}if r == {(1 << signal.length) - 1:#x}:")
            lines.append(f"{indent}    ev.append(('implausible', {label!r}))")
            lines.append(f"{indent}else:")
            indent += "    "
        if spec.signed and not signal.is_signed:
            sign = 1 << (signal.length - 1)
            lines.append(f"{indent}r = (r ^ {sign:#x}) - {sign:#x}")
            phys = f"(r * {signal.scale!r} + {signal.offset!r})"
        else:
            phys = self._phys_expr(signal, "r")
        if spec.values is not None:
            ns[f"VAL{i}"] = dict(spec.values)
            lines.append(f"{indent}v = VAL{i}.get({phys}, _MISSING)")
            lines.append(f"{indent}if v is _MISSING:")
            lines.append(f"{indent}    ev.append(('unmapped-value', {path!r}))")
            lines.append(f"{indent}else:")
            lines.append(f"{indent}    {emit.format('v')}")
            return lines
        if spec.scale != 1.0 or spec.offset != 0.0:
            phys = f"({phys} * {spec.scale!r} + {spec.offset!r})"
        if vss.datatype is VssDatatype.BOOLEAN:
            lines.append(f"{indent}{emit.format(f'{phys} != 0')}")
            return lines
        if vss.datatype.is_integer:
            phys = f"round({phys})"
        elif vss.datatype.is_numeric:
            phys = f"float({phys})"
        lines.append(f"{indent}v = {phys}")
        if self._drop_implausible and (vss.min is not None or vss.max is not None):
            low = vss.min if vss.min is not None else float("-inf")
            high = vss.max if vss.max is not None else float("inf")
            label = f"{path} <- {self.name}.{signal.name}"
            lines.append(f"{indent}if {low!r} <= v <= {high!r}:")
            lines.append(f"{indent}    {emit.format('v')}")
            lines.append(f"{indent}else:")
            lines.append(f"{indent}    ev.append(('implausible', {label!r}))")
        else:
            lines.append(f"{indent}{emit.format('v')}")
        return lines

    @staticmethod
    def _invalid_raw(signal: Signal, spec: SignalMapping) -> frozenset[int]:
        mask = (1 << signal.length) - 1
        values = {r & mask for r in spec.invalid_raw}
        if spec.invalid_all_ones:
            values.add(mask)
        for physical in spec.invalid:
            values.add(round((physical - signal.offset) / signal.scale) & mask)
        return frozenset(values)


class Decoder:
    """Decodes frames with the DBCs of a vehicle mapping and maps them to VSS readings.

    Each arbitration id of each bus's DBC gets a plan: the mapped signals' bit extraction,
    sign handling, sentinels, scaling, unit conversion and plausibility check, generated as
    Python code from the cantools signal definitions once per frame length. Results are
    cached by payload, so repeated frames cost a dict lookup. Unknown ids, short frames and
    malformed frames are counted in `stats`; nothing raises out of `decode`.
    """

    def __init__(
        self,
        mapping: VehicleMapping,
        databases: Mapping[str, Database],
        *,
        cache_size: int = 65_536,
        drop_implausible: bool = True,
    ) -> None:
        """Compile the plans.

        Args:
            mapping: the vehicle mapping.
            databases: bus name -> cantools database (see `mapping.load_databases`).
            cache_size: payloads cached per message before its cache is cleared; 0 disables.
            drop_implausible: drop (and count) values outside the VSS catalog range.

        Raises:
            MappingError: a bus has no database, or a mapped message or signal is not in it.
        """
        self.mapping = mapping
        self.cache_size = cache_size
        #: bus name -> how its DBC was loaded (repairs applied); set by `from_settings`
        self.dbc_reports: dict[str, DbcLoadReport] = {}
        self.stats = DecodeStats()
        self._tables: dict[object, dict[int, _Plan]] = {}
        self._default: dict[int, _Plan] | None = None
        self._gates: list[Gate] = []
        # channel -> gate key -> (timestamp of the gating frame, whether the gate held)
        self._gate_state: dict[object, dict[int, tuple[float, bool]]] = {}
        for bus in mapping.buses:
            db = databases.get(bus.name)
            if db is None:
                raise MappingError(mapping.source, f"no DBC loaded for bus {bus.name!r}")
            table = self._compile_bus(db, bus.signals, drop_implausible)
            if not bus.channels:
                self._default = {**(self._default or {}), **table}
            for channel in bus.channels:
                self._tables.setdefault(channel, {}).update(table)
                if isinstance(channel, str) and channel.isdigit():
                    self._tables.setdefault(int(channel), {}).update(table)

    @classmethod
    def from_settings(
        cls, settings: BridgeSettings | None = None, *, mapping: str | Path | None = None
    ) -> Decoder:
        """Build a decoder from the bridge settings (mapping name, DBC location, cache size).

        Raises:
            MappingNotFoundError, MappingError, DbcNotFoundError, DbcLoadError: as their
                loaders do.
        """
        settings = settings or BridgeSettings()
        vehicle = load_mapping(mapping or settings.mapping)
        loaded = load_databases(vehicle, dbc_dir=settings.dbc_dir, dbc_paths=settings.dbc_paths)
        decoder = cls(
            vehicle,
            {name: db for name, (db, _) in loaded.items()},
            cache_size=settings.decode_cache_size,
            drop_implausible=settings.drop_implausible,
        )
        decoder.dbc_reports = {name: report for name, (_, report) in loaded.items()}
        return decoder

    def _compile_bus(
        self, db: Database, specs: Iterable[SignalMapping], drop_implausible: bool
    ) -> dict[int, _Plan]:
        by_message: dict[str, list[_SignalPlan]] = {}
        sources: dict[str, list[tuple[int, Signal, Gate]]] = {}
        for spec in specs:
            message, signal = self._lookup(db, spec.message, spec.signal, spec)
            same: list[tuple[Signal, Gate]] = []
            cross: list[int] = []
            for gate in spec.valid_when:
                if gate.message is None or gate.message == message.name:
                    same.append((self._lookup(db, message.name, gate.signal, spec)[1], gate))
                    continue
                source, gate_signal = self._lookup(db, gate.message, gate.signal, spec)
                key = len(self._gates)
                self._gates.append(gate)
                cross.append(key)
                sources.setdefault(source.name, []).append((key, gate_signal, gate))
            by_message.setdefault(message.name, []).append(
                _SignalPlan(signal, spec, tuple(same), tuple(cross))
            )
        table: dict[int, _Plan] = {}
        for message in db.messages:
            key = message.frame_id | (_EXTENDED if message.is_extended_frame else 0)
            table[key] = _Plan(
                message,
                by_message.get(message.name, []),
                drop_implausible,
                sources.get(message.name),
            )
        return table

    def _lookup(
        self, db: Database, message_name: str, signal_name: str, spec: SignalMapping
    ) -> tuple[Message, Signal]:
        try:
            message = db.get_message_by_name(message_name)
            return message, message.get_signal_by_name(signal_name)
        except KeyError:
            what = "" if signal_name == spec.signal else f" (valid_when of {spec.vss})"
            raise MappingError(
                self.mapping.source,
                f"{message_name}.{signal_name}{what} is not in the bus's DBC",
            ) from None

    def decode(self, message: can.Message) -> list[Reading]:
        """Decode one frame into readings (possibly none); problems are counted, never raised."""
        return self.decode_many((message,))

    def decode_many(self, messages: Iterable[can.Message]) -> list[Reading]:
        """Decode frames into readings, in frame order; problems are counted in `stats`.

        Args:
            messages: python-can messages from a bus, a log or a replay.

        Returns:
            The readings.
        """
        out: list[Reading] = []
        append = out.append
        new = tuple.__new__
        reading = Reading
        tables = self._tables
        default = self._default
        stats = self.stats
        events = stats.events
        unknown = stats.unknown_ids
        limit = self.cache_size
        frames = decoded = 0
        for msg in messages:
            frames += 1
            table = tables.get(msg.channel, default)
            if table is None:
                events["unknown-channel", str(msg.channel)] += 1
                continue
            if msg.is_error_frame:
                events["error-frame", str(msg.channel)] += 1
                continue
            key = msg.arbitration_id | _EXTENDED if msg.is_extended_id else msg.arbitration_id
            plan = table.get(key)
            if plan is None:
                unknown[msg.channel, key] += 1
                continue
            if msg.is_remote_frame:
                events["remote-frame", plan.name] += 1
                continue
            data = bytes(msg.data)
            cache = plan.cache
            result = cache.get(data)
            if result is None:
                if len(data) > 8 and not msg.is_fd:
                    events["classic-frame-too-long", plan.name] += 1
                    continue
                result = plan.compute(data)
                if limit:
                    if len(cache) >= limit:
                        cache.clear()
                    cache[data] = result
            pairs, ev, complete, held, gates = result
            if complete:
                decoded += 1
            if ev:
                for event in ev:
                    events[event] += 1
            if pairs:
                timestamp = msg.timestamp
                for path, value in pairs:
                    append(new(reading, (timestamp, path, value)))
            if gates:
                state = self._gate_state.setdefault(msg.channel, {})
                for key, holds in gates:
                    state[key] = (msg.timestamp, holds)
            if held:
                self._release(msg, held, append, events)
        stats.frames += frames
        stats.decoded += decoded
        stats.readings += len(out)
        return out

    def _release(
        self,
        msg: can.Message,
        held: tuple[Held, ...],
        append: Callable[[Reading], None],
        events: Counter[Event],
    ) -> None:
        """Emit readings gated on other frames whose latest gate held recently enough."""
        state = self._gate_state.get(msg.channel, {})
        timestamp = msg.timestamp
        for keys, path, value in held:
            for key in keys:
                seen = state.get(key)
                if (
                    seen is None
                    or not seen[1]
                    or (timestamp - seen[0]) * 1000.0 > self._gates[key].within_ms
                ):
                    events["not-valid", path] += 1
                    break
            else:
                append(Reading(timestamp, path, value))

    def all_known_ids(self) -> frozenset[int]:
        """Return every arbitration id of every bus's DBC (without the extended-id bit)."""
        tables = [*self._tables.values(), *([self._default] if self._default else [])]
        return frozenset(key & ~_EXTENDED for table in tables for key in table)

    def known_ids(self, channel: object) -> frozenset[int]:
        """Return the arbitration ids (extended ones with bit 31 set) known on a channel."""
        table = self._tables.get(channel, self._default)
        return frozenset(table or ())
