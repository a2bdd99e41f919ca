"""VINs: the North American check digit (49 CFR 565.15) on known VINs and on made ones."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.vin import (
    MODEL_YEAR_CODES,
    VIN_CHARACTERS,
    InvalidVin,
    check_digit,
    check_digit_ok,
    make_vin,
    parse_vin,
)

ALLOWED = "".join(sorted(VIN_CHARACTERS))


@pytest.mark.parametrize(
    ("vin", "digit"),
    [
        ("1M8GDM9AXKP042788", "X"),  # the check digit's textbook example
        ("11111111111111111", "1"),
        ("1HGCM82633A004352", "3"),
    ],
)
def test_known_vins_have_the_check_digit_they_carry(vin: str, digit: str) -> None:
    assert check_digit(vin) == digit
    assert check_digit_ok(vin)


def test_one_changed_character_breaks_the_check_digit() -> None:
    assert not check_digit_ok("1M8GDM9AXKP042789")


@pytest.mark.parametrize(
    ("vin", "why"),
    [("1M8GDM9AXKP04278", "16 characters"), ("1M8GDM9AXKP04278O", "'O'")],
)
def test_a_vin_of_the_wrong_length_or_with_i_o_q_is_refused(vin: str, why: str) -> None:
    with pytest.raises(InvalidVin, match=why):
        parse_vin(vin)


@given(
    descriptor=st.text(ALLOWED, min_size=8, max_size=8),
    year=st.sampled_from(sorted(MODEL_YEAR_CODES)),
    plant=st.sampled_from(ALLOWED),
    serial=st.text(ALLOWED, min_size=6, max_size=6),
)
def test_a_made_vin_carries_its_parts_and_a_check_digit_that_holds(
    descriptor: str, year: int, plant: str, serial: str
) -> None:
    vin = make_vin(descriptor, year, plant, serial)
    assert len(vin) == 17
    assert (vin[:8], vin[9], vin[10], vin[11:]) == (
        descriptor,
        MODEL_YEAR_CODES[year],
        plant,
        serial,
    )
    assert check_digit_ok(vin)
