"""The label table: one row for every catalog signal, with the unit people read."""

from __future__ import annotations

import pytest

from protocol.signal_labels import LABELS, label_of, markdown_table
from protocol.vss import CATALOG, VssDatatype


def test_every_catalog_signal_has_one_label_in_the_catalogs_order() -> None:
    assert list(LABELS) == list(CATALOG)
    labels = [row.label for row in LABELS.values()]
    assert len(set(labels)) == len(labels), "two signals read the same"
    assert all(row.label and "Vehicle." not in row.label for row in LABELS.values())


@pytest.mark.parametrize(
    ("path", "unit", "factor"),
    [
        ("Vehicle.Powertrain.Range", "km", 0.001),
        ("Vehicle.CurrentLocation.Altitude", "m", 1.0),
        ("Vehicle.Powertrain.TractionBattery.CurrentPower", "kW", 0.001),
        ("Vehicle.Powertrain.TractionBattery.StateOfCharge.Current", "%", 1.0),
        ("Vehicle.Speed", "km/h", 1.0),
    ],
)
def test_values_are_shown_in_the_unit_people_read(path: str, unit: str, factor: float) -> None:
    assert (label_of(path).unit, label_of(path).factor) == (unit, factor)


def test_booleans_and_gears_have_names() -> None:
    for row in LABELS.values():
        if CATALOG[row.path].datatype is VssDatatype.BOOLEAN:
            assert dict(row.values) == {"true": "yes", "false": "no"}, row.path
    gear = label_of("Vehicle.Powertrain.Transmission.SelectedGear")
    assert gear.values["126"] == "P (park)"
    assert gear.values["-1"] == "R (reverse)"


def test_a_signal_outside_the_catalog_is_labelled_with_its_path() -> None:
    row = label_of("Vehicle.Cabin.Door.Row1.Left.IsOpen")
    assert (row.label, row.unit, row.factor) == ("Vehicle.Cabin.Door.Row1.Left.IsOpen", "", 1.0)


def test_the_markdown_table_has_a_row_per_signal() -> None:
    lines = markdown_table().splitlines()
    assert len(lines) == 2 + len(CATALOG)
    assert "| `Vehicle.Powertrain.Range` | Range | km | m | BATTERY |" in lines
