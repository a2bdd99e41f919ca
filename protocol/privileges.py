"""Data privileges: the scopes a grant or licence carries, as bits of one uint256."""

from __future__ import annotations

import enum
from collections.abc import Iterable

from protocol.exceptions import ProtocolError

__all__ = [
    "ALL_PRIVILEGES",
    "Privilege",
    "UnknownPrivilegeError",
    "format_privileges",
    "parse_privileges",
    "privilege_names",
]

UINT256_MAX = (1 << 256) - 1


class UnknownPrivilegeError(ProtocolError, ValueError):
    """A privilege name or bit that the catalog does not define."""

    def __init__(self, value: str | int) -> None:
        self.value = value
        known = ", ".join(privilege_names())
        super().__init__(
            f"unknown privilege {value!r}; use one of {known} (names are case-insensitive, "
            "bits must be defined in protocol/privileges.py)"
        )


class Privilege(enum.IntFlag):
    """Scopes a data grant can hold; a grant is the OR of its scopes, stored as a uint256.

    | bit | name      | covers                                                         |
    |-----|-----------|----------------------------------------------------------------|
    | 0   | BATTERY   | traction battery state, health, temperatures, voltage, current |
    | 1   | CHARGING  | charging state, power, cable, limits                           |
    | 2   | ODOMETER  | distance travelled                                              |
    | 3   | DRIVING   | speed, acceleration, braking, gear, pedals; never position     |
    | 4   | LOCATION  | latitude, longitude, heading (its own privilege)               |
    | 5   | VIN       | vehicle identification number                                  |
    | 6   | RAW       | raw CAN frames                                                 |
    | 7   | COMMANDS  | sending commands to the vehicle                                |
    """

    BATTERY = 1 << 0
    CHARGING = 1 << 1
    ODOMETER = 1 << 2
    DRIVING = 1 << 3
    LOCATION = 1 << 4
    VIN = 1 << 5
    RAW = 1 << 6
    COMMANDS = 1 << 7


ALL_PRIVILEGES = Privilege(sum(p.value for p in Privilege))


def privilege_names() -> list[str]:
    """Return the names of all defined privileges, lowest bit first."""
    return [p.name for p in Privilege if p.name is not None]


def parse_privileges(value: str | int | Iterable[str]) -> Privilege:
    """Parse privileges from a uint256, a `"BATTERY|CHARGING"` string or a list of names.

    Args:
        value: an integer bit set, a string of names separated by `|` or `,`, or names.

    Returns:
        The combined `Privilege` flags.

    Raises:
        UnknownPrivilegeError: a name is not defined, or the integer sets an undefined bit
            or does not fit a uint256.
    """
    if isinstance(value, int):
        if value < 0 or value > UINT256_MAX or value & ~ALL_PRIVILEGES.value:
            raise UnknownPrivilegeError(value)
        return Privilege(value)
    names = value.replace(",", "|").split("|") if isinstance(value, str) else list(value)
    result = Privilege(0)
    for raw in names:
        name = raw.strip().upper()
        if not name:
            continue
        try:
            result |= Privilege[name]
        except KeyError:
            raise UnknownPrivilegeError(raw) from None
    return result


def format_privileges(value: Privilege | int) -> str:
    """Format privileges as `"BATTERY|DRIVING"` (lowest bit first, `""` for none).

    Args:
        value: a `Privilege` or an integer bit set.

    Returns:
        The names joined with `|`.

    Raises:
        UnknownPrivilegeError: the integer sets an undefined bit.
    """
    flags = parse_privileges(int(value))
    return "|".join(p.name for p in Privilege if p in flags and p.name is not None)
