"""JSON bodies encoded by msgspec straight from plain values, for the routes whose answers are
large (series of many points): no model per point, no re-validation.

msgspec writes what `json.dumps(..., separators=(",", ":"))` writes, value for value: the same
keys in the same order, integers as integers, floats as the shortest text that reads back to the
same double (`1e+16` is written `1e16`), text as UTF-8 rather than `\\u` escapes. Unlike `json`
it writes NaN and infinities as `null`: callers check the floats they pass (`finite`), so that
such a value is still refused rather than sent.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import msgspec

_encode = msgspec.json.Encoder().encode


def encode_json(body: Any) -> bytes:
    """`body` (dicts, lists, str, int, float, bool, None) as compact JSON.

    Raises:
        TypeError: a value JSON cannot hold (e.g. an integer past 64 bits, an object).
    """
    return _encode(body)


def finite(values: Iterable[float]) -> None:
    """Refuses NaN and infinities, which JSON cannot hold (`json` with `allow_nan=False` would
    refuse them as well).

    Raises:
        ValueError: one of `values` is not finite.
    """
    if not all(map(math.isfinite, values)):
        raise ValueError("Out of range float values are not JSON compliant")
