"""The map between DIMO's telemetry names and our VSS catalog."""

from __future__ import annotations

import re

import pytest

from protocol.dimo_signals import (
    ALL_TIME_LOCATION,
    LOCATION_BRANCH,
    NON_LOCATION_DATA,
    SIGNALS,
    UnknownDimoSignalError,
    catalog_privilege,
    dimo_value,
    name_for,
    vss_for,
)
from protocol.privileges import Privilege
from protocol.vss import CATALOG

CARRIED = sorted(n for n, s in SIGNALS.items() if s.vss is not None)


def test_the_table_covers_dimos_current_signal_list() -> None:
    assert len(SIGNALS) >= 110
    assert all(re.fullmatch(r"[a-z][A-Za-z0-9]*", name) for name in SIGNALS)


@pytest.mark.parametrize("name", CARRIED)
def test_every_carried_signal_round_trips_through_its_vss_path(name: str) -> None:
    assert name_for(vss_for(name)) == name


@pytest.mark.parametrize("name", CARRIED)
def test_every_carried_signal_points_into_our_catalog(name: str) -> None:
    vss = vss_for(name)
    assert vss == LOCATION_BRANCH or vss in CATALOG


def test_the_odometer_location_and_ignition_exceptions_are_written_out() -> None:
    assert vss_for("powertrainTransmissionTravelledDistance") == "Vehicle.TraveledDistance"
    assert vss_for("isIgnitionOn") == "Vehicle.LowVoltageSystemState"
    assert vss_for("currentLocationCoordinates") == LOCATION_BRANCH
    assert name_for("Vehicle.CurrentLocation.Latitude") == "currentLocationCoordinates"
    assert name_for("Vehicle.CurrentLocation.Longitude") == "currentLocationCoordinates"
    assert SIGNALS["currentLocationCoordinates"].kind == "location"


def test_location_signals_need_the_location_privilege_and_the_others_do_not() -> None:
    assert SIGNALS["currentLocationCoordinates"].privilege == ALL_TIME_LOCATION
    assert SIGNALS["speed"].privilege == NON_LOCATION_DATA
    assert catalog_privilege("currentLocationCoordinates") is Privilege.LOCATION
    assert catalog_privilege("currentLocationHeading") is Privilege.LOCATION
    assert catalog_privilege("speed") is Privilege.DRIVING


def test_an_unknown_name_is_a_typed_lookup_error() -> None:
    with pytest.raises(UnknownDimoSignalError, match="not a DIMO signal"):
        vss_for("Speed")
    with pytest.raises(LookupError):
        name_for("Vehicle.Nothing")


def test_a_dimo_signal_the_platform_does_not_carry_is_refused_by_vss_for() -> None:
    assert SIGNALS["obdDTCList"].vss is None
    with pytest.raises(UnknownDimoSignalError, match="does not carry"):
        vss_for("obdDTCList")


def test_dimo_values_convert_ignition_and_units() -> None:
    assert dimo_value("isIgnitionOn", "START") == 1.0
    assert dimo_value("isIgnitionOn", "OFF") == 0.0
    assert dimo_value("powertrainRange", 250_000) == 250.0
    assert dimo_value("speed", 88.0) == 88.0
