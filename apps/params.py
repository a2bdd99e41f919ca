"""What every application's parameter set shares: range checks, and a round trip through JSON.

An app's parameters are a frozen dataclass of floats deriving from `AppParams`; its
`__post_init__` calls `self.check({name: in_range, ...})`. Results echo `as_dict()`, and an
auditor rebuilds the same parameters with `from_dict`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, fields
from typing import Any, ClassVar, Self

from apps.exceptions import AppParameterInvalid


class AppParams:
    """Mixin of an app's frozen dataclass of float parameters."""

    #: The app's name in error messages ("battery", "finance").
    APP: ClassVar[str] = "app"

    def check(self, ranges: Mapping[str, bool]) -> None:
        """Every field finite, and every named range check true.

        Raises:
            AppParameterInvalid: the first field that is not a number or is out of range.
        """
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if not math.isfinite(value):
                raise AppParameterInvalid(f.name, f"{value} is not a number")
        for name, ok in ranges.items():
            if not ok:
                raise AppParameterInvalid(name, f"{getattr(self, name)} is out of range")

    def as_dict(self) -> dict[str, float]:
        """The parameters as JSON."""
        return asdict(self)  # type: ignore[call-overload, no-any-return]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Parameters from `as_dict` output.

        Raises:
            AppParameterInvalid: an unknown name or a value out of range.
        """
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - names)
        if unknown:
            raise AppParameterInvalid(unknown[0], f"is not a {cls.APP} parameter")
        return cls(**{k: float(v) for k, v in data.items()})
