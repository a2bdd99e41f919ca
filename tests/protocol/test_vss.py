"""Tests of the VSS catalog and the privilege bits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
    VSS_VERSION,
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


SPEC_FILE = Path(__file__).resolve().parents[2] / "protocol" / "vss_spec_4.0.json"


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(SPEC_FILE.read_text(encoding="utf-8"))
    assert document["source"]["release"] == f"v{VSS_VERSION}"
    return document


def test_every_catalog_signal_has_the_spec_name_datatype_and_unit(spec: dict[str, Any]) -> None:
    facts = spec["signals"]
    for signal in CATALOG.values():
        if signal.extension:
            continue
        assert signal.path in facts, f"{signal.path} is not a COVESA VSS {VSS_VERSION} name"
        fact = facts[signal.path]
        assert signal.datatype.value == fact["datatype"], signal.path
        assert signal.unit == fact.get("unit", ""), signal.path


def test_catalog_ranges_stay_inside_the_spec_ranges(spec: dict[str, Any]) -> None:
    for path, fact in spec["signals"].items():
        signal = CATALOG[path]
        if "min" in fact:
            assert signal.min is not None, path
            assert signal.min >= fact["min"], path
        if "max" in fact:
            assert signal.max is not None, path
            assert signal.max <= fact["max"], path
        if "allowed" in fact:
            assert set(signal.allowed) <= set(fact["allowed"]), path


def test_extensions_are_exactly_the_names_the_spec_lacks(spec: dict[str, Any]) -> None:
    extensions = {s.path for s in CATALOG.values() if s.extension}
    assert extensions == set(spec["absent"])
    assert not extensions & set(spec["signals"])


@pytest.mark.parametrize(
    "path",
    [
        "Vehicle.Powertrain.TractionBattery.CellVoltage.Min",
        "Vehicle.Powertrain.TractionBattery.CellVoltage.Max",
        "Vehicle.Powertrain.TractionBattery.NetCapacity",
        "Vehicle.Powertrain.TractionBattery.GrossCapacity",
        "Vehicle.Powertrain.TractionBattery.StateOfCharge.CurrentEnergy",
        "Vehicle.Powertrain.TractionBattery.Charging.MaximumChargingCurrent.DC",
        "Vehicle.Powertrain.TractionBattery.MaxChargePower",
        "Vehicle.Powertrain.TractionBattery.MaxDischargePower",
        "Vehicle.Powertrain.TractionBattery.MaxDischargeCurrent",
    ],
)
def test_battery_apps_find_limits_energy_capacity_and_cell_voltages(path: str) -> None:
    signal = get_signal(path)
    assert signal.privilege in (Privilege.BATTERY, Privilege.CHARGING)
    assert signal.min is not None
    assert signal.max is not None


def test_cell_voltages_reject_a_pack_voltage_or_millivolts() -> None:
    assert is_plausible("Vehicle.Powertrain.TractionBattery.CellVoltage.Max", 4.15)
    assert not is_plausible("Vehicle.Powertrain.TractionBattery.CellVoltage.Max", 4150.0)
    assert not is_plausible("Vehicle.Powertrain.TractionBattery.CellVoltage.Min", 355.0)


def test_unknown_signal_error_suggests_names_and_not_editing_the_package() -> None:
    with pytest.raises(UnknownSignalError) as info:
        get_signal("Vehicle.Powertrain.TractionBattery.CellVoltage.Maximum")
    message = str(info.value)
    assert "protocol/vss.py" not in message
    assert "Vehicle.Powertrain.TractionBattery.CellVoltage.Max" in message
