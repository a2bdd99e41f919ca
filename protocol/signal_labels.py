"""Plain labels and shown units of the catalog's VSS signals: the one table that the dApp
(through `/dapp/config.json`) and the API docs (the OpenAPI telemetry section) show them with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from protocol.vss import CATALOG, VssDatatype

__all__ = ["LABELS", "SignalLabel", "label_of", "markdown_table"]


@dataclass(frozen=True, slots=True)
class SignalLabel:
    """How people read one signal.

    Attributes:
        path: the VSS path, e.g. `Vehicle.Powertrain.Range`.
        label: plain words for it, e.g. `Range`.
        unit: the unit its values are shown in (`km`, `%`, `°C`), `""` for none.
        factor: shown value = VSS value x factor (the catalog's `m` of range shown in km: 0.001).
        values: names of coded values by the value as text (gear `126` -> `P (park)`,
            `true` -> `yes`); empty when the value is shown as it is.
    """

    path: str
    label: str
    unit: str
    factor: float = 1.0
    values: Mapping[str, str] = field(default_factory=dict)


#: The catalog's units -> the unit shown and the factor to it (others are shown as they are).
_SHOWN: Final[Mapping[str, tuple[str, float]]] = MappingProxyType(
    {
        "percent": ("%", 1.0),
        "celsius": ("°C", 1.0),
        "degrees": ("°", 1.0),
        "degrees/s": ("°/s", 1.0),
        "m/s^2": ("m/s²", 1.0),
        "W": ("kW", 0.001),
        "m": ("km", 0.001),
    }
)
#: Gear codes of VSS 4.0 with names: 126 park, 127 drive, -1 reverse, 0 neutral.
_GEARS: Final = MappingProxyType(
    {"126": "P (park)", "127": "D (drive)", "-1": "R (reverse)", "0": "N (neutral)"}
)
_YES_NO: Final = MappingProxyType({"true": "yes", "false": "no"})

_TB = "Vehicle.Powertrain.TractionBattery"
#: VSS path -> label, and the shown unit where the catalog's unit is not the one to show.
_ROWS: Final[tuple[tuple[str, str, tuple[str, float] | None], ...]] = (
    ("Vehicle.Speed", "Speed", None),
    ("Vehicle.Acceleration.Longitudinal", "Acceleration (forward)", None),
    ("Vehicle.Acceleration.Lateral", "Acceleration (sideways)", None),
    ("Vehicle.AngularVelocity.Yaw", "Yaw rate", None),
    ("Vehicle.Chassis.Accelerator.PedalPosition", "Accelerator pedal", None),
    ("Vehicle.Chassis.Brake.PedalPosition", "Brake pedal", None),
    ("Vehicle.Chassis.Brake.IsPedalPressed", "Brake pressed", None),
    ("Vehicle.Chassis.Brake.IsDriverEmergencyBrakingDetected", "Emergency braking", None),
    ("Vehicle.Chassis.ParkingBrake.IsEngaged", "Parking brake on", None),
    ("Vehicle.Chassis.SteeringWheel.Angle", "Steering angle", None),
    ("Vehicle.Powertrain.Transmission.SelectedGear", "Selected gear", None),
    ("Vehicle.Powertrain.Transmission.CurrentGear", "Current gear", None),
    ("Vehicle.LowVoltageSystemState", "Ignition", None),
    ("Vehicle.OBD.EngineSpeed", "Engine speed (OBD)", None),
    ("Vehicle.OBD.CoolantTemperature", "Coolant temperature (OBD)", None),
    ("Vehicle.Powertrain.CombustionEngine.Speed", "Engine speed", None),
    ("Vehicle.Powertrain.CombustionEngine.ECT", "Engine coolant temperature", None),
    ("Vehicle.Powertrain.ElectricMotor.Speed", "Motor speed", None),
    ("Vehicle.Powertrain.ElectricMotor.CoolantTemperature", "Motor coolant temperature", None),
    ("Vehicle.Exterior.AirTemperature", "Outside temperature", None),
    ("Vehicle.TraveledDistance", "Odometer", None),
    (f"{_TB}.StateOfCharge.Current", "Battery charge", None),
    (f"{_TB}.StateOfCharge.Displayed", "Battery charge (shown)", None),
    (f"{_TB}.StateOfHealth", "Battery health", None),
    (f"{_TB}.CurrentVoltage", "Battery voltage", None),
    (f"{_TB}.CurrentCurrent", "Battery current", None),
    (f"{_TB}.CellVoltage.Min", "Lowest cell voltage", None),
    (f"{_TB}.CellVoltage.Max", "Highest cell voltage", None),
    (f"{_TB}.GrossCapacity", "Battery capacity (gross)", None),
    (f"{_TB}.NetCapacity", "Battery capacity (net)", None),
    (f"{_TB}.StateOfCharge.CurrentEnergy", "Energy in battery", None),
    (f"{_TB}.MaxChargePower", "Charge power limit", None),
    (f"{_TB}.MaxDischargePower", "Discharge power limit", None),
    (f"{_TB}.MaxDischargeCurrent", "Discharge current limit", None),
    (f"{_TB}.CurrentPower", "Battery power", None),
    (f"{_TB}.Temperature.Average", "Battery temperature", None),
    (f"{_TB}.Temperature.Min", "Lowest battery temperature", None),
    (f"{_TB}.Temperature.Max", "Highest battery temperature", None),
    ("Vehicle.Powertrain.Range", "Range", None),
    ("Vehicle.Powertrain.FuelSystem.RelativeLevel", "Fuel level", None),
    ("Vehicle.LowVoltageBattery.CurrentVoltage", "12 V battery voltage", None),
    ("Vehicle.LowVoltageBattery.CurrentCurrent", "12 V battery current", None),
    (f"{_TB}.Charging.IsCharging", "Charging", None),
    (f"{_TB}.Charging.IsChargingCableConnected", "Cable plugged in", None),
    (f"{_TB}.Charging.ChargeRate", "Range gained per hour", None),
    (f"{_TB}.Charging.Power", "Charging power", None),
    (f"{_TB}.Charging.ChargeLimit", "Charge limit", None),
    (f"{_TB}.Charging.ChargeCurrent.DC", "DC charging current", None),
    (f"{_TB}.Charging.MaximumChargingCurrent.DC", "DC charging current limit", None),
    (f"{_TB}.Charging.ChargeCurrent.Phase1", "AC charging current", None),
    (f"{_TB}.Charging.ChargeVoltage.DC", "DC charging voltage", None),
    (f"{_TB}.Charging.ChargeVoltage.Phase1", "AC charging voltage", None),
    (f"{_TB}.Charging.TimeToComplete", "Time to full", ("min", 1 / 60)),
    ("Vehicle.CurrentLocation.Latitude", "Latitude", None),
    ("Vehicle.CurrentLocation.Longitude", "Longitude", None),
    ("Vehicle.CurrentLocation.Heading", "Heading", None),
    ("Vehicle.CurrentLocation.Altitude", "Altitude", ("m", 1.0)),
    ("Vehicle.VehicleIdentification.VIN", "VIN", None),
)


def _label(path: str, label: str, shown: tuple[str, float] | None) -> SignalLabel:
    signal = CATALOG[path]
    unit, factor = shown or _SHOWN.get(signal.unit, (signal.unit, 1.0))
    values: Mapping[str, str] = {}
    if signal.datatype is VssDatatype.BOOLEAN:
        values = _YES_NO
    elif path.endswith("Gear"):
        values = _GEARS
    return SignalLabel(path, label, unit, factor, values)


#: Every catalog signal's label and shown unit, by VSS path, in the catalog's order.
LABELS: Mapping[str, SignalLabel] = MappingProxyType(
    {path: _label(path, label, shown) for path, label, shown in _ROWS}
)


def label_of(path: str) -> SignalLabel:
    """The label of `path`; a signal outside the catalog is labelled with its path.

    Args:
        path: A VSS path.

    Returns:
        How to show it: the table's row, else the path itself with the unit unknown.
    """
    return LABELS.get(path) or SignalLabel(path, path, "")


def markdown_table() -> str:
    """The table as Markdown (the API docs' list of signals): path, label, unit, privilege."""
    lines = [
        "| signal | label | shown in | VSS unit | privilege |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in LABELS.values():
        signal = CATALOG[row.path]
        privilege = signal.privilege.name or str(int(signal.privilege))
        lines.append(
            f"| `{row.path}` | {row.label} | {row.unit or '-'} | {signal.unit or '-'} "
            f"| {privilege} |"
        )
    return "\n".join(lines)
