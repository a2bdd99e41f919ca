"""Data privileges: the scopes a grant or licence carries, as bits of one uint256."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Final

from protocol.exceptions import ProtocolError

__all__ = [
    "ALL_PRIVILEGES",
    "DIMO_PRIVILEGES",
    "NON_LOCATION",
    "Privilege",
    "UnknownDimoPrivilegeError",
    "UnknownPrivilegeError",
    "dimo_ids_of",
    "dimo_permissions_hex",
    "format_privileges",
    "parse_privileges",
    "privilege_names",
    "scopes_of_dimo_ids",
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


# --------------------------------------------------------------------------------------------
# DIMO's privilege ids (token exchange, SACD `permissions`) <-> our scope bits: the one map
# ---------------------------------------------------------------------------------------------

#: The scopes of every signal that is not a position.
NON_LOCATION: Final = (
    Privilege.BATTERY | Privilege.CHARGING | Privilege.ODOMETER | Privilege.DRIVING
)

#: DIMO's privilege id -> (DIMO's permission name, the scopes of ours that make it up). An id
#: is held when every one of its scopes is; ids are coarser than our scopes, so a grant of
#: BATTERY alone holds no id (it is still served by our own REST routes).
DIMO_PRIVILEGES: Final[dict[int, tuple[str, Privilege]]] = {
    1: ("GetNonLocationHistory", NON_LOCATION),
    2: ("ExecuteCommands", Privilege.COMMANDS),
    3: ("GetCurrentLocation", Privilege.LOCATION),
    4: ("GetLocationHistory", Privilege.LOCATION),
    5: ("GetVINCredential", Privilege.VIN),
    6: ("GetLiveData", NON_LOCATION),
    7: ("GetRawData", Privilege.RAW),
    8: ("GetApproximateLocation", Privilege.LOCATION),
}


class UnknownDimoPrivilegeError(ProtocolError, ValueError):
    """A DIMO privilege id with no scope of ours."""

    def __init__(self, value: object) -> None:
        self.value = value
        known = ", ".join(f"{i} {name}" for i, (name, _) in DIMO_PRIVILEGES.items())
        super().__init__(
            f"DIMO privilege id {value!r} has no scope on this platform; use one of {known} "
            "(docs/privileges.md)"
        )


def scopes_of_dimo_ids(ids: Iterable[int]) -> Privilege:
    """The scopes a set of DIMO privilege ids needs (the OR of each id's scopes).

    Raises:
        UnknownDimoPrivilegeError: an id is not in `DIMO_PRIVILEGES` (or not an integer).
    """
    result = Privilege(0)
    for raw in ids:
        entry = DIMO_PRIVILEGES.get(raw) if type(raw) is int else None
        if entry is None:
            raise UnknownDimoPrivilegeError(raw)
        result |= entry[1]
    return result


def dimo_ids_of(scopes: Privilege | int) -> list[int]:
    """The DIMO privilege ids a scope mask holds, ascending (each id whose scopes it all has)."""
    mask = int(scopes)
    return [i for i, (_, need) in DIMO_PRIVILEGES.items() if mask & need.value == need.value]


def dimo_permissions_hex(scopes: Privilege | int) -> str:
    """A scope mask as DIMO's SACD `permissions`: two set bits (0b11) per held privilege id,
    id `i` at bits `2i` and `2i + 1`, as `0x` hex (`"0x0"` when none)."""
    value = 0
    for i in dimo_ids_of(scopes):
        value |= 0b11 << (2 * i)
    return hex(value)
