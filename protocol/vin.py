"""Vehicle identification numbers (ISO 3779): 17 characters, and the North American check
digit in position 9 (49 CFR 565.15), which the simulated fleet's VINs carry.

Outside North America the check digit is optional, so a VIN read from a car is never refused
for it; `check_digit_ok` says whether it holds.
"""

from __future__ import annotations

from typing import Final

from protocol.exceptions import ProtocolError

__all__ = [
    "MODEL_YEAR_CODES",
    "InvalidVin",
    "check_digit",
    "check_digit_ok",
    "make_vin",
    "parse_vin",
]

#: The characters a VIN may hold (never I, O or Q).
VIN_CHARACTERS: Final = frozenset("0123456789ABCDEFGHJKLMNPRSTUVWXYZ")
#: Each letter's value in the check digit sum (digits are their own value).
_LETTER_VALUES: Final = dict(
    zip(
        "ABCDEFGHJKLMNPRSTUVWXYZ",
        (1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 7, 9, 2, 3, 4, 5, 6, 7, 8, 9),
        strict=True,
    )
)
#: Each position's weight (position 9, the check digit itself, weighs 0).
_WEIGHTS: Final = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
#: Position 10's model year code, for the years 2010 to 2039.
MODEL_YEAR_CODES: Final = dict(
    zip(range(2010, 2040), "ABCDEFGHJKLMNPRSTVWXY123456789", strict=True)
)


class InvalidVin(ProtocolError, ValueError):
    """Not a 17-character VIN of the allowed characters."""

    def __init__(self, vin: str, reason: str) -> None:
        self.vin = vin
        self.reason = reason
        super().__init__(
            f"{vin!r} is not a VIN: {reason} (ISO 3779: 17 of 0-9 and A-Z but I, O, Q)"
        )


def parse_vin(vin: str) -> str:
    """The VIN, upper case, once it has 17 allowed characters.

    Raises:
        InvalidVin: the length or a character is wrong.
    """
    text = vin.strip().upper()
    if len(text) != 17:
        raise InvalidVin(vin, f"{len(text)} characters")
    bad = sorted(set(text) - VIN_CHARACTERS)
    if bad:
        raise InvalidVin(vin, f"characters {''.join(bad)!r} are not allowed")
    return text


def check_digit(vin: str) -> str:
    """The North American check digit of a VIN (`0`-`9` or `X`), whatever its position 9 holds.

    Raises:
        InvalidVin: not 17 allowed characters.
    """
    text = parse_vin(vin)
    total = sum(
        (int(c) if c.isdigit() else _LETTER_VALUES[c]) * w
        for c, w in zip(text, _WEIGHTS, strict=True)
    )
    rest = total % 11
    return "X" if rest == 10 else str(rest)


def check_digit_ok(vin: str) -> bool:
    """Whether position 9 of a VIN holds its check digit.

    Raises:
        InvalidVin: not 17 allowed characters.
    """
    return parse_vin(vin)[8] == check_digit(vin)


def make_vin(descriptor: str, model_year: int, plant: str, serial: str) -> str:
    """A VIN with its check digit: the 8 characters of the manufacturer's identifier and the
    vehicle descriptor, the model year's code, the plant's code and a 6-character serial.

    Raises:
        InvalidVin: the parts do not make 17 allowed characters.
        KeyError: a model year outside 2010-2039.
    """
    draft = parse_vin(f"{descriptor}0{MODEL_YEAR_CODES[model_year]}{plant}{serial}")
    return draft[:8] + check_digit(draft) + draft[9:]
