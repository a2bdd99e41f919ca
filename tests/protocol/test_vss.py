"""Tests of the VSS catalog and the privilege bits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.privileges import (
    ALL_PRIVILEGES,
    Privilege,
    UnknownPrivilegeError,
    format_privileges,
    parse_privileges,
)
from protocol.vss import (
    CATALOG,
    ImplausibleValueError,
    UnknownSignalError,
    get_signal,
    is_plausible,
    signals_for,
    validate,
)


def test_privilege_bits_are_the_documented_ones() -> None:
    assert [p.value for p in Privilege] == [1 << i for i in range(8)]
    assert Privilege.LOCATION == 1 << 4


@given(st.integers(min_value=0, max_value=ALL_PRIVILEGES.value))
def test_privileges_format_then_parse_gives_the_same_bits(bits: int) -> None:
    assert parse_privileges(format_privileges(bits)) == bits


def test_privileges_parse_from_names_is_case_insensitive() -> None:
    assert parse_privileges("battery|Charging") == Privilege.BATTERY | Privilege.CHARGING
    assert parse_privileges(["VIN", "RAW"]) == Privilege.VIN | Privilege.RAW


@pytest.mark.parametrize("value", ["SPEED", 1 << 8, -1, 1 << 256])
def test_unknown_privileges_are_rejected(value: str | int) -> None:
    with pytest.raises(UnknownPrivilegeError):
        parse_privileges(value)


def test_catalog_gives_unit_datatype_and_privilege() -> None:
    soc = get_signal("Vehicle.Powertrain.TractionBattery.StateOfCharge.Current")
    assert (soc.unit, soc.datatype.value, soc.privilege) == ("percent", "float", Privilege.BATTERY)
    assert get_signal("Vehicle.Speed").unit == "km/h"
    assert get_signal("Vehicle.CurrentLocation.Latitude").privilege is Privilege.LOCATION
    assert get_signal("Vehicle.VehicleIdentification.VIN").privilege is Privilege.VIN


def test_unknown_signal_raises_a_lookup_error() -> None:
    with pytest.raises(UnknownSignalError) as info:
        get_signal("Vehicle.Sped")
    assert isinstance(info.value, LookupError)
    assert "Vehicle.Sped" in str(info.value)


@pytest.mark.parametrize(
    ("path", "value", "ok"),
    [
        ("Vehicle.Powertrain.TractionBattery.StateOfCharge.Current", 36.5, True),
        ("Vehicle.Powertrain.TractionBattery.StateOfCharge.Current", 100.5, False),
        ("Vehicle.Speed", 401.0, False),
        ("Vehicle.Speed", float("nan"), False),
        ("Vehicle.Powertrain.Transmission.SelectedGear", 126, True),
        ("Vehicle.Powertrain.Transmission.SelectedGear", 100, False),
        ("Vehicle.LowVoltageSystemState", "ON", True),
        ("Vehicle.LowVoltageSystemState", "RUNNING", False),
        ("Vehicle.Powertrain.TractionBattery.Charging.IsCharging", True, True),
        ("Vehicle.Powertrain.TractionBattery.Charging.IsCharging", 1, False),
        ("Vehicle.Chassis.Accelerator.PedalPosition", 12.5, False),
    ],
)
def test_plausibility_follows_type_and_range(path: str, value: object, ok: bool) -> None:
    assert is_plausible(path, value) is ok


def test_validate_raises_with_the_reason() -> None:
    with pytest.raises(ImplausibleValueError, match="maximum"):
        validate("Vehicle.Powertrain.TractionBattery.StateOfCharge.Current", 120.0)


def test_driving_privilege_never_reveals_location() -> None:
    paths = {s.path for s in signals_for(Privilege.DRIVING)}
    assert "Vehicle.Speed" in paths
    assert not any(p.startswith("Vehicle.CurrentLocation") for p in paths)
    assert len(signals_for(ALL_PRIVILEGES)) == len(CATALOG)


@given(
    st.sampled_from(sorted(CATALOG)),
    st.lists(
        st.one_of(
            st.floats(allow_nan=True, allow_infinity=True),
            st.integers(min_value=-(2**70), max_value=2**70),
            st.booleans(),
            st.text(max_size=3),
        ),
        min_size=1,
        max_size=8,
    ),
)
def test_the_one_pass_check_agrees_with_checking_each_value(
    path: str, values: list[object]
) -> None:
    signal = CATALOG[path]
    assert signal.all_plausible(values) == all(signal.plausibility_error(v) is None for v in values)
