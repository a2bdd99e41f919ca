"""The VSS catalog: every signal the platform carries, with type, unit, range and privilege."""

from __future__ import annotations

import difflib
import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import cast

from protocol.exceptions import ProtocolError
from protocol.privileges import Privilege

__all__ = [
    "CATALOG",
    "VSS_VERSION",
    "ImplausibleValueError",
    "UnknownSignalError",
    "VssDatatype",
    "VssSignal",
    "VssValue",
    "get_signal",
    "is_plausible",
    "signals_for",
    "validate",
]

VSS_VERSION = "4.0"

VssValue = bool | int | float | str


class UnknownSignalError(ProtocolError, LookupError):
    """A VSS path that the catalog does not hold."""

    def __init__(self, path: str) -> None:
        self.path = path
        close = difflib.get_close_matches(path, list(CATALOG), n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        super().__init__(
            f"unknown VSS signal {path!r}{hint}; the platform carries the COVESA VSS "
            f"{VSS_VERSION} signals of its catalog (listed in docs/bridge.md, 'Add your car'): "
            "map the DBC signal to one of them or leave it out"
        )


class ImplausibleValueError(ProtocolError, ValueError):
    """A value outside the range or type the catalog allows for its signal."""

    def __init__(self, path: str, value: object, reason: str) -> None:
        self.path = path
        self.value = value
        self.reason = reason
        super().__init__(
            f"implausible value {value!r} for {path}: {reason}; drop the reading or fix the "
            "mapping's conversion"
        )


class VssDatatype(enum.StrEnum):
    """COVESA VSS datatypes used by the catalog."""

    BOOLEAN = "boolean"
    UINT8 = "uint8"
    INT8 = "int8"
    UINT16 = "uint16"
    INT16 = "int16"
    UINT32 = "uint32"
    INT32 = "int32"
    FLOAT = "float"
    DOUBLE = "double"
    STRING = "string"

    @property
    def is_integer(self) -> bool:
        """Whether values of this type are integers."""
        return self in _INTEGER_BOUNDS

    @property
    def is_numeric(self) -> bool:
        """Whether values of this type are numbers (integers or floating point)."""
        return self.is_integer or self in (VssDatatype.FLOAT, VssDatatype.DOUBLE)


_INTEGER_BOUNDS: dict[VssDatatype, tuple[int, int]] = {
    VssDatatype.UINT8: (0, 0xFF),
    VssDatatype.INT8: (-0x80, 0x7F),
    VssDatatype.UINT16: (0, 0xFFFF),
    VssDatatype.INT16: (-0x8000, 0x7FFF),
    VssDatatype.UINT32: (0, 0xFFFF_FFFF),
    VssDatatype.INT32: (-0x8000_0000, 0x7FFF_FFFF),
}


@dataclass(frozen=True, slots=True)
class VssSignal:
    """One catalog entry.

    Attributes:
        path: the VSS name, e.g. `Vehicle.Speed`.
        datatype: the VSS datatype.
        unit: the VSS unit (`km/h`, `percent`, `celsius`, ...), `""` for none.
        privilege: the privilege a reader needs to see the signal.
        description: one line on what the value is.
        min: lowest plausible value (inclusive), or None.
        max: highest plausible value (inclusive), or None.
        allowed: the only values allowed (enumerations), or empty for any.
        extension: True if the name is not in COVESA VSS 4.0 but ours.
    """

    path: str
    datatype: VssDatatype
    unit: str
    privilege: Privilege
    description: str
    min: float | None = None
    max: float | None = None
    allowed: tuple[VssValue, ...] = ()
    extension: bool = False

    def all_plausible(self, values: Sequence[object]) -> bool:
        """Whether every value is plausible: one pass for numbers, for the ingest hot path.

        False means some value is not; `plausibility_error` on each then says which and why.
        """
        dt = self.datatype
        if self.allowed or dt.is_integer or dt in (VssDatatype.BOOLEAN, VssDatatype.STRING):
            return all(self.plausibility_error(v) is None for v in values)
        for v in values:
            if type(v) is not float and type(v) is not int:
                return False
        numbers = cast("Sequence[float]", values)
        # A NaN or an infinity anywhere makes the sum non-finite.
        if not numbers or not math.isfinite(math.fsum(numbers)):
            return False
        if self.min is not None and min(numbers) < self.min:
            return False
        return not (self.max is not None and max(numbers) > self.max)

    def plausibility_error(self, value: object) -> str | None:
        """Return why `value` is implausible for this signal, or None if it is plausible."""
        dt = self.datatype
        if dt is VssDatatype.BOOLEAN:
            return None if isinstance(value, bool) else "expected a boolean"
        if dt is VssDatatype.STRING:
            if not isinstance(value, str):
                return "expected a string"
        elif isinstance(value, bool) or not isinstance(value, int | float):
            return f"expected a number ({dt.value})"
        elif isinstance(value, float) and not math.isfinite(value):
            return "not a finite number"
        else:
            if dt.is_integer and value != int(value):
                return f"expected an integer ({dt.value})"
            bounds = _INTEGER_BOUNDS.get(dt)
            if bounds is not None and not bounds[0] <= value <= bounds[1]:
                return f"outside the {dt.value} range {bounds[0]}..{bounds[1]}"
            if self.min is not None and value < self.min:
                return f"below the minimum {self.min} {self.unit}"
            if self.max is not None and value > self.max:
                return f"above the maximum {self.max} {self.unit}"
        if self.allowed and value not in self.allowed:
            return f"not one of {list(self.allowed)}"
        return None


def _s(
    path: str,
    datatype: str,
    unit: str,
    privilege: Privilege,
    description: str,
    lo: float | None = None,
    hi: float | None = None,
    allowed: Iterable[VssValue] = (),
    *,
    extension: bool = False,
) -> VssSignal:
    return VssSignal(
        path, VssDatatype(datatype), unit, privilege, description, lo, hi, tuple(allowed), extension
    )


_B = Privilege.BATTERY
_C = Privilege.CHARGING
_O = Privilege.ODOMETER
_D = Privilege.DRIVING
_L = Privilege.LOCATION
_V = Privilege.VIN
_TB = "Vehicle.Powertrain.TractionBattery"

# Gears: 0 neutral, 1.. forward, -1.. reverse, 126 park, 127 drive (VSS 4.0).
_GEARS = (*range(-8, 16), 126, 127)

_SIGNALS: tuple[VssSignal, ...] = (
    # driving
    _s("Vehicle.Speed", "float", "km/h", _D, "Vehicle speed", 0, 400),
    _s(
        "Vehicle.Acceleration.Longitudinal",
        "float",
        "m/s^2",
        _D,
        "Longitudinal acceleration",
        -100,
        100,
    ),
    _s("Vehicle.Acceleration.Lateral", "float", "m/s^2", _D, "Lateral acceleration", -100, 100),
    _s("Vehicle.AngularVelocity.Yaw", "float", "degrees/s", _D, "Yaw rate", -360, 360),
    _s(
        "Vehicle.Chassis.Accelerator.PedalPosition",
        "uint8",
        "percent",
        _D,
        "Accelerator pedal travel",
        0,
        100,
    ),
    _s("Vehicle.Chassis.Brake.PedalPosition", "uint8", "percent", _D, "Brake pedal travel", 0, 100),
    _s(
        "Vehicle.Chassis.Brake.IsPedalPressed",
        "boolean",
        "",
        _D,
        "Driver is pressing the brake pedal",
        extension=True,
    ),
    _s(
        "Vehicle.Chassis.Brake.IsDriverEmergencyBrakingDetected",
        "boolean",
        "",
        _D,
        "Emergency braking by the driver",
    ),
    _s("Vehicle.Chassis.ParkingBrake.IsEngaged", "boolean", "", _D, "Parking brake engaged"),
    _s(
        "Vehicle.Chassis.SteeringWheel.Angle",
        "int16",
        "degrees",
        _D,
        "Steering wheel angle, positive left",
        -1080,
        1080,
    ),
    _s(
        "Vehicle.Powertrain.Transmission.SelectedGear",
        "int8",
        "",
        _D,
        "Selected gear: 0 N, >0 forward, <0 reverse, 126 P, 127 D",
        allowed=_GEARS,
    ),
    _s(
        "Vehicle.Powertrain.Transmission.CurrentGear",
        "int8",
        "",
        _D,
        "Engaged gear: 0 N, >0 forward, <0 reverse",
        -8,
        15,
    ),
    _s(
        "Vehicle.LowVoltageSystemState",
        "string",
        "",
        _D,
        "Ignition / low-voltage system state",
        allowed=("UNDEFINED", "LOCK", "OFF", "ACC", "ON", "START"),
    ),
    _s("Vehicle.OBD.EngineSpeed", "float", "rpm", _D, "Engine speed (OBD PID 0C)", 0, 20000),
    _s(
        "Vehicle.OBD.CoolantTemperature",
        "float",
        "celsius",
        _D,
        "Engine coolant temperature (OBD PID 05)",
        -40,
        215,
    ),
    _s("Vehicle.Powertrain.CombustionEngine.Speed", "uint16", "rpm", _D, "Engine speed", 0, 20000),
    _s(
        "Vehicle.Powertrain.CombustionEngine.ECT",
        "int16",
        "celsius",
        _D,
        "Engine coolant temperature",
        -40,
        215,
    ),
    _s(
        "Vehicle.Powertrain.ElectricMotor.Speed",
        "int32",
        "rpm",
        _D,
        "Traction motor speed, negative in reverse",
        -30000,
        30000,
    ),
    _s(
        "Vehicle.Powertrain.ElectricMotor.CoolantTemperature",
        "int16",
        "celsius",
        _D,
        "Motor/inverter coolant temperature",
        -40,
        215,
    ),
    _s(
        "Vehicle.Exterior.AirTemperature",
        "float",
        "celsius",
        _D,
        "Outside air temperature",
        -60,
        80,
    ),
    # odometer
    _s("Vehicle.TraveledDistance", "float", "km", _O, "Odometer reading", 0, 10_000_000),
    # energy stores (traction battery, low-voltage battery, fuel, range)
    _s(f"{_TB}.StateOfCharge.Current", "float", "percent", _B, "Physical state of charge", 0, 100),
    _s(
        f"{_TB}.StateOfCharge.Displayed",
        "float",
        "percent",
        _B,
        "State of charge shown to the driver",
        0,
        100,
    ),
    _s(f"{_TB}.StateOfHealth", "float", "percent", _B, "Battery state of health", 0, 100),
    _s(f"{_TB}.CurrentVoltage", "float", "V", _B, "Pack voltage", 0, 1000),
    _s(
        f"{_TB}.CurrentCurrent",
        "float",
        "A",
        _B,
        "Pack current, positive when charging",
        -2000,
        2000,
    ),
    _s(f"{_TB}.CellVoltage.Min", "float", "V", _B, "Lowest cell voltage", 0, 5),
    _s(f"{_TB}.CellVoltage.Max", "float", "V", _B, "Highest cell voltage", 0, 5),
    _s(f"{_TB}.GrossCapacity", "uint16", "kWh", _B, "Gross capacity of the pack", 1, 500),
    _s(f"{_TB}.NetCapacity", "uint16", "kWh", _B, "Net capacity, considering ageing", 1, 500),
    _s(
        f"{_TB}.StateOfCharge.CurrentEnergy",
        "float",
        "kWh",
        _B,
        "Energy the pack holds now",
        0,
        500,
    ),
    _s(
        f"{_TB}.MaxChargePower",
        "float",
        "kW",
        _B,
        "Charge power the BMS allows now (limit, not flow)",
        0,
        1000,
        extension=True,
    ),
    _s(
        f"{_TB}.MaxDischargePower",
        "float",
        "kW",
        _B,
        "Discharge power the BMS allows now (limit, not flow)",
        0,
        1500,
        extension=True,
    ),
    _s(
        f"{_TB}.MaxDischargeCurrent",
        "float",
        "A",
        _B,
        "Discharge current the BMS allows now (limit)",
        0,
        2000,
        extension=True,
    ),
    _s(
        f"{_TB}.CurrentPower",
        "float",
        "W",
        _B,
        "Pack power, positive when charging",
        -1_000_000,
        1_000_000,
    ),
    _s(f"{_TB}.Temperature.Average", "float", "celsius", _B, "Average cell temperature", -60, 120),
    _s(f"{_TB}.Temperature.Min", "float", "celsius", _B, "Lowest cell temperature", -60, 120),
    _s(f"{_TB}.Temperature.Max", "float", "celsius", _B, "Highest cell temperature", -60, 120),
    _s(
        "Vehicle.Powertrain.Range",
        "uint32",
        "m",
        _B,
        "Remaining range on all energy sources",
        0,
        3_000_000,
    ),
    _s("Vehicle.Powertrain.FuelSystem.RelativeLevel", "uint8", "percent", _B, "Fuel level", 0, 100),
    _s(
        "Vehicle.LowVoltageBattery.CurrentVoltage",
        "float",
        "V",
        _B,
        "12/24 V battery voltage",
        0,
        60,
    ),
    _s(
        "Vehicle.LowVoltageBattery.CurrentCurrent",
        "float",
        "A",
        _B,
        "12/24 V battery current",
        -1000,
        1000,
    ),
    # charging
    _s(f"{_TB}.Charging.IsCharging", "boolean", "", _C, "Battery is charging"),
    _s(f"{_TB}.Charging.IsChargingCableConnected", "boolean", "", _C, "Charging cable plugged in"),
    _s(
        f"{_TB}.Charging.ChargeRate",
        "float",
        "km/h",
        _C,
        "Range gained per hour of charging",
        0,
        5000,
    ),
    _s(
        f"{_TB}.Charging.Power",
        "float",
        "kW",
        _C,
        "Charging power delivered to the car",
        0,
        1000,
        extension=True,
    ),
    _s(f"{_TB}.Charging.ChargeLimit", "uint8", "percent", _C, "Target state of charge", 0, 100),
    _s(f"{_TB}.Charging.ChargeCurrent.DC", "float", "A", _C, "DC charging current", 0, 1000),
    _s(
        f"{_TB}.Charging.MaximumChargingCurrent.DC",
        "float",
        "A",
        _C,
        "DC charging current the car accepts now (limit)",
        0,
        1000,
    ),
    _s(
        f"{_TB}.Charging.ChargeCurrent.Phase1",
        "float",
        "A",
        _C,
        "AC charging current, phase 1",
        0,
        100,
    ),
    _s(f"{_TB}.Charging.ChargeVoltage.DC", "float", "V", _C, "DC charging voltage", 0, 1500),
    _s(
        f"{_TB}.Charging.ChargeVoltage.Phase1",
        "float",
        "V",
        _C,
        "AC charging voltage, phase 1",
        0,
        500,
    ),
    _s(
        f"{_TB}.Charging.TimeToComplete",
        "uint32",
        "s",
        _C,
        "Time until charging completes",
        0,
        604_800,
    ),
    # location and identity
    _s("Vehicle.CurrentLocation.Latitude", "double", "degrees", _L, "WGS 84 latitude", -90, 90),
    _s("Vehicle.CurrentLocation.Longitude", "double", "degrees", _L, "WGS 84 longitude", -180, 180),
    _s("Vehicle.CurrentLocation.Heading", "double", "degrees", _L, "Heading from north", 0, 360),
    _s(
        "Vehicle.CurrentLocation.Altitude",
        "double",
        "m",
        _L,
        "Altitude above sea level",
        -500,
        9000,
    ),
    _s(
        "Vehicle.VehicleIdentification.VIN",
        "string",
        "",
        _V,
        "17-character vehicle identification number",
    ),
)

CATALOG: Mapping[str, VssSignal] = MappingProxyType({s.path: s for s in _SIGNALS})
"""Every catalog entry by VSS path."""


def get_signal(path: str) -> VssSignal:
    """Look up a signal by its VSS path.

    Args:
        path: the VSS name, e.g. `Vehicle.Speed`.

    Returns:
        The catalog entry.

    Raises:
        UnknownSignalError: the catalog has no such signal.
    """
    try:
        return CATALOG[path]
    except KeyError:
        raise UnknownSignalError(path) from None


def is_plausible(path: str, value: object) -> bool:
    """Return whether `value` has the type and range the catalog allows for `path`.

    Raises:
        UnknownSignalError: the catalog has no such signal.
    """
    return get_signal(path).plausibility_error(value) is None


def validate(path: str, value: object) -> None:
    """Check a value against its catalog entry.

    Args:
        path: the VSS name.
        value: the reading's value.

    Raises:
        UnknownSignalError: the catalog has no such signal.
        ImplausibleValueError: the value has the wrong type or lies outside the range.
    """
    reason = get_signal(path).plausibility_error(value)
    if reason is not None:
        raise ImplausibleValueError(path, value, reason)


def signals_for(privileges: Privilege | int) -> list[VssSignal]:
    """Return the signals a holder of `privileges` may read, in catalog order."""
    held = int(privileges)
    return [s for s in _SIGNALS if s.privilege.value & held == s.privilege.value]
