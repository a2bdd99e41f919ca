"""Webhook conditions in Google's Common Expression Language, through the maintained
`common-expression-language` package (the Rust `cel` interpreter behind Python bindings).

A condition is compiled once, at registration: a syntax error is refused with the compiler's
own message, a name outside the webhook's variables is refused, and so is a condition whose
static cost (`cost`) exceeds the limit or whose result on a sample is not a boolean.

Variables of a **signal** condition: `value` and `previousValue` (a number, a text, or for
location `{latitude, longitude, hdop}`), DIMO's typed aliases `valueNumber`, `valueString`,
`previousValueNumber`, `previousValueString`, the reading's `time` and `previousTime` and the
evaluation's `now` (timestamps), and `source`. An **event** condition sees `name`, `value`
(the event's measure, e.g. the peak deceleration in mph/s), `durationNs`, `metadata`,
`time`, `now`, `source` and their `previous*` forms. Both may call
`geoDistance(lat1, lon1, lat2, lon2)`: the great-circle distance in km (haversine).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

import cel

from triggers.exceptions import ConditionInvalid, ConditionTooCostly

__all__ = ["Condition", "compile_condition", "cost", "geo_distance_km"]

#: Mean Earth radius, km (the haversine's sphere).
EARTH_RADIUS_KM: Final = 6371.0088
#: Cost of one list macro (all, exists, exists_one, map, filter): it loops.
MACRO_COST: Final = 50

SIGNAL_VARIABLES: Final = frozenset(
    {
        "value",
        "previousValue",
        "valueNumber",
        "valueString",
        "previousValueNumber",
        "previousValueString",
        "time",
        "previousTime",
        "now",
        "source",
        "previousSource",
    }
)
EVENT_VARIABLES: Final = frozenset(
    {
        "name",
        "value",
        "durationNs",
        "metadata",
        "time",
        "now",
        "source",
        "previousName",
        "previousValue",
        "previousDurationNs",
        "previousMetadata",
        "previousTime",
        "previousSource",
    }
)
_TOKEN_RE: Final = re.compile(
    r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d+)?|\S'
)
_MACRO_RE: Final = re.compile(r"\.\s*(?:all|exists_one|exists|map|filter)\s*\(\s*([A-Za-z_]\w*)")

Kind = Literal["float", "string", "location", "event"]


def geo_distance_km(lat1: Any, lon1: Any, lat2: Any, lon2: Any) -> float:
    """Great-circle distance between two points in degrees, km (haversine)."""
    p1, p2 = math.radians(float(lat1)), math.radians(float(lat2))
    dp, dl = p2 - p1, math.radians(float(lon2) - float(lon1))
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def cost(condition: str) -> int:
    """The static cost of a condition: its tokens, plus `MACRO_COST` per list macro.

    Every variable is a scalar or a fixed three-field location, so only list macros over
    literals loop; a literal list is itself tokens, so this bounds the work of an evaluation.
    """
    return len(_TOKEN_RE.findall(condition)) + MACRO_COST * len(_MACRO_RE.findall(condition))


def _sample(kind: Kind) -> dict[str, Any]:
    """A context of `kind` with every variable set, to check a condition's result type."""
    t = datetime(2025, 1, 1, tzinfo=UTC)
    if kind == "event":
        return {
            "name": "behavior.harshBraking",
            "value": 0.0,
            "durationNs": 0,
            "metadata": "",
            "time": t,
            "now": t,
            "source": "",
            "previousName": "",
            "previousValue": 0.0,
            "previousDurationNs": 0,
            "previousMetadata": "",
            "previousTime": t,
            "previousSource": "",
        }
    value: Any = {"float": 0.0, "string": "", "location": _location(0.0, 0.0)}[kind]
    return signal_context(value, value, t, t, t)


def _location(lat: float, lon: float, hdop: float = 0.0) -> dict[str, float]:
    return {"latitude": lat, "longitude": lon, "hdop": hdop}


def signal_context(
    value: Any, previous: Any, time: datetime, previous_time: datetime, now: datetime
) -> dict[str, Any]:
    """The variables of a signal condition."""
    return {
        "value": value,
        "previousValue": previous,
        "valueNumber": value if isinstance(value, float) else 0.0,
        "valueString": value if isinstance(value, str) else "",
        "previousValueNumber": previous if isinstance(previous, float) else 0.0,
        "previousValueString": previous if isinstance(previous, str) else "",
        "time": time,
        "previousTime": previous_time,
        "now": now,
        "source": "",
        "previousSource": "",
    }


@dataclass(frozen=True)
class Condition:
    """A compiled condition and the kind of value it reads."""

    source: str
    kind: Kind
    program: Any

    def __call__(self, variables: Mapping[str, Any]) -> bool:
        """Whether the condition holds; an evaluation error counts as false."""
        context = cel.Context(dict(variables))
        context.add_function("geoDistance", geo_distance_km)
        try:
            return self.program.execute(context) is True
        except (RuntimeError, ValueError, TypeError):
            return False


def compile_condition(source: str, kind: Kind, max_cost: int) -> Condition:
    """Compiles a condition for values of `kind`.

    Raises:
        ConditionInvalid: a syntax error (the compiler's message), an unknown name, or a
            result that is not a boolean.
        ConditionTooCostly: the static cost exceeds `max_cost`.
    """
    if not isinstance(source, str) or not source.strip():
        raise ConditionInvalid(str(source), "the condition is empty; e.g. `value > 100`")
    spent = cost(source)
    if spent > max_cost:
        raise ConditionTooCostly(source, spent, max_cost)
    try:
        program = cel.compile(source)
    except ValueError as exc:
        raise ConditionInvalid(source, str(exc)) from None
    allowed = (EVENT_VARIABLES if kind == "event" else SIGNAL_VARIABLES) | set(
        _MACRO_RE.findall(source)
    )
    unknown = sorted(set(program.variables()) - allowed)
    if unknown:
        raise ConditionInvalid(
            source, f"unknown name(s) {unknown}; the condition may use {sorted(allowed)}"
        )
    context = cel.Context(_sample(kind))
    context.add_function("geoDistance", geo_distance_km)
    try:
        result = program.execute(context)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ConditionInvalid(source, f"the condition fails on a sample value: {exc}") from None
    if not isinstance(result, bool):
        raise ConditionInvalid(
            source, f"the condition yields {type(result).__name__}, it must yield a boolean"
        )
    return Condition(source, kind, program)
