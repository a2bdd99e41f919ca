"""Finding reading values in API responses: as JSON numbers, as text, and inside hex blobs
(a signed bundle's CBOR wire carries a float as its IEEE 754 bytes, a text as its UTF-8)."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Iterator
from typing import Any

#: Distinctive positions (Sydney): no other field of an answer falls near them.
LAT = "Vehicle.CurrentLocation.Latitude"
LON = "Vehicle.CurrentLocation.Longitude"
LAT_RANGE = (-33.90, -33.80)
LON_RANGE = (151.17, 151.27)


def latitude(i: int) -> float:
    return -33.8568 - i * 1.3e-5


def longitude(i: int) -> float:
    return 151.2153 + i * 1.7e-5


def _needles(value: float | str) -> set[str]:
    if isinstance(value, str):
        return {value.lower(), value.encode().hex()}
    f = float(value)
    out = {repr(f), struct.pack(">d", f).hex()}
    single = struct.pack(">f", f)
    if struct.unpack(">f", single)[0] == f:
        out.add(single.hex())
    return out


def values_found(text: str, values: Iterable[Any]) -> list[Any]:
    """The values of `values` that appear in a response body `text` in any of their forms.

    Booleans are skipped (0/1 and true/false appear everywhere); use distinctive numbers and
    texts.
    """
    lowered = text.lower()
    return [v for v in values if not isinstance(v, bool) and any(n in lowered for n in _needles(v))]


def _numbers(node: Any) -> Iterator[float]:
    if isinstance(node, bool):
        return
    if isinstance(node, int | float):
        yield float(node)
    elif isinstance(node, dict):
        for v in node.values():
            yield from _numbers(v)
    elif isinstance(node, list):
        for v in node:
            yield from _numbers(v)


def numbers_within(text: str, low: float, high: float) -> list[float]:
    """Every JSON number of the body `text` inside `[low, high]` (e.g. any position, even an
    average or a rounded one); none for a body that is not JSON."""
    try:
        doc = json.loads(text)
    except ValueError:
        return []
    return [x for x in _numbers(doc) if low <= x <= high]


def position_found(text: str, lats: Iterable[float], lons: Iterable[float]) -> list[float]:
    """Positions in a body: the exact values in any form, or any JSON number in their area."""
    return [
        *values_found(text, [*lats, *lons]),
        *numbers_within(text, *LAT_RANGE),
        *numbers_within(text, *LON_RANGE),
    ]
