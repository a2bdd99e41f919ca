"""RFC 9457 problem types shared by every service: one base URI, one stable type per reason."""

from __future__ import annotations

from typing import Final

#: Base of every problem `type` the platform's APIs return; the reason code follows it.
PROBLEM_BASE: Final = "https://dimo.local/problems/"


def problem_type(reason: str) -> str:
    """The stable `type` URI of a problem with reason code `reason`."""
    return PROBLEM_BASE + reason
