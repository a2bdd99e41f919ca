"""Request parameters shared by the routes: range and signal checks, JSON parameter objects."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection

from apps import battery
from indexer.exceptions import (
    AppParameterInvalid,
    BadTelemetryQuery,
    InvalidTelemetryQuery,
    UnknownSignalName,
)
from indexer.queries import signal_ids
from protocol.vss import CATALOG

__all__ = [
    "as_problem",
    "battery_params",
    "check_known",
    "check_window",
    "parse_json_params",
    "unique",
]


def check_known(conn: Connection, names: Sequence[str]) -> None:
    """Raises `UnknownSignalName` for names neither in the catalog nor ever loaded."""
    extra = [n for n in names if n not in CATALOG]
    if extra:
        loaded = signal_ids(conn, extra)
        unknown = [n for n in extra if n not in loaded]
        if unknown:
            raise UnknownSignalName(unknown)


def check_window(start: int, end: int) -> None:
    """Raises the 400 problem for an empty range `[start, end)`."""
    if end <= start:
        raise BadTelemetryQuery("start/end", f"[{start}, {end}) is empty; end must be after start")


@contextmanager
def as_problem() -> Iterator[None]:
    """Turns a query's `InvalidTelemetryQuery` into the 400 problem."""
    try:
        yield
    except InvalidTelemetryQuery as err:
        raise BadTelemetryQuery(err.argument, err.reason) from err


def unique(names: Sequence[str]) -> list[str]:
    """`names` without repeats, in their first order."""
    return list(dict.fromkeys(names))


def parse_json_params(text: str | None) -> dict[str, Any]:
    """The `params` query (a JSON object) as a dict; empty when absent.

    Raises:
        AppParameterInvalid: not a JSON object (400).
    """
    if text is None:
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise AppParameterInvalid("params", f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise AppParameterInvalid("params", "must be a JSON object")
    return data


def battery_params(facts: battery.VehicleFacts, raw: str | None) -> battery.BatteryParams:
    """Default parameters for the vehicle's model, overridden by the caller's JSON.

    Raises:
        AppParameterInvalid: bad JSON, an unknown name, a value out of range, or a model
            without a catalogued nominal energy and no `nominal_kwh` given.
    """
    given: dict[str, Any] = {}
    if raw:
        try:
            given = json.loads(raw)
        except ValueError as exc:
            raise AppParameterInvalid("params", f"not JSON: {exc}") from exc
        if not isinstance(given, dict) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in given.values()
        ):
            raise AppParameterInvalid("params", "a JSON object of numbers")
    nominal = given.get("nominal_kwh", battery.nominal_kwh_of(facts.make, facts.model))
    if nominal is None:
        raise AppParameterInvalid(
            "nominal_kwh", f"no catalogued pack energy for {facts.make} {facts.model}; pass it"
        )
    try:
        return battery.BatteryParams.from_dict({**given, "nominal_kwh": nominal})
    except (TypeError, ValidationError) as exc:
        raise AppParameterInvalid("params", str(exc)) from exc
