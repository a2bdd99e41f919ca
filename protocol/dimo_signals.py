"""DIMO's telemetry signal names and our VSS catalog paths: the one map between the two.

DIMO names a signal by its VSS path without `Vehicle.`, its branches run together in lower
camel case (`Vehicle.Powertrain.TractionBattery.StateOfCharge.Current` is
`powertrainTractionBatteryStateOfChargeCurrent`). The table below lists DIMO's current
signals with their kind, unit and the DIMO privilege that reads them, and the path of our
catalog (`protocol.vss`) each one comes from, or None where the platform carries no such
signal. Three break the naming rule and are written out:

- **odometer**: DIMO's `powertrainTransmissionTravelledDistance` is our
  `Vehicle.TraveledDistance` (VSS 4.0 moved the odometer to the vehicle's root);
- **location**: DIMO's `currentLocationCoordinates` is one value (latitude, longitude, hdop)
  made from our two leaves `Vehicle.CurrentLocation.Latitude` and `.Longitude`; its `vss` is
  the branch `Vehicle.CurrentLocation`, and `name_for` maps either leaf to it;
- **ignition**: DIMO's `isIgnitionOn` (1 or 0) is our `Vehicle.LowVoltageSystemState`
  (text: ON and START mean on), converted by `dimo_value`.

Units follow DIMO's; where ours differ (`Vehicle.Powertrain.Range` is in m, DIMO's
`powertrainRange` in km) `dimo_value` converts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

from protocol.exceptions import ProtocolError
from protocol.privileges import Privilege
from protocol.readings import IGNITION_ON
from protocol.vss import CATALOG

__all__ = [
    "ALL_TIME_LOCATION",
    "CURRENT_LOCATION",
    "LOCATION_BRANCH",
    "NON_LOCATION_DATA",
    "SIGNALS",
    "DimoSignal",
    "UnknownDimoSignalError",
    "catalog_privilege",
    "dimo_value",
    "name_for",
    "vss_for",
]

#: DIMO privilege ids (its `SACD` permission numbers).
NON_LOCATION_DATA: Final = 1
COMMANDS: Final = 2
CURRENT_LOCATION: Final = 3
ALL_TIME_LOCATION: Final = 4
VIN_CREDENTIAL: Final = 5

#: The VSS branch DIMO's `currentLocationCoordinates` stands for.
LOCATION_BRANCH: Final = "Vehicle.CurrentLocation"
_LOCATION_LEAVES: Final = (LOCATION_BRANCH + ".Latitude", LOCATION_BRANCH + ".Longitude")

Kind = Literal["float", "string", "location"]


class UnknownDimoSignalError(ProtocolError, LookupError):
    """A DIMO signal name or VSS path that the map does not carry."""

    def __init__(self, value: str, reason: str) -> None:
        self.value = value
        super().__init__(f"{value!r}: {reason}; see protocol.dimo_signals.SIGNALS for the names")


@dataclass(frozen=True, slots=True)
class DimoSignal:
    """One of DIMO's telemetry signals.

    Attributes:
        name: DIMO's name, e.g. `speed`.
        kind: `float` (numbers and booleans as 1/0), `string`, or `location`.
        unit: DIMO's unit, e.g. `km/h`; None for unitless values.
        vss: Our catalog path it comes from, or None where the platform has no such signal.
        privilege: The DIMO privilege id that reads it (1 non-location data, 4 location).
    """

    name: str
    kind: Kind
    unit: str | None
    vss: str | None
    privilege: int


def _f(
    name: str, unit: str | None = None, vss: str | None = None, *, privilege: int = 1
) -> DimoSignal:
    return DimoSignal(name, "float", unit, vss, privilege)


def _t(name: str, vss: str | None = None) -> DimoSignal:
    return DimoSignal(name, "string", None, vss, NON_LOCATION_DATA)


def _loc(name: str, vss: str | None = None, *, privilege: int = ALL_TIME_LOCATION) -> DimoSignal:
    return DimoSignal(name, "location", None, vss, privilege)


_TABLE: Final = (
    _f("angularVelocityYaw", "degrees/s", "Vehicle.AngularVelocity.Yaw"),
    _f("bodyLightsIsAirbagWarningOn"),
    _f("bodyLockIsLocked"),
    _f("bodyTrunkFrontIsOpen"),
    _f("bodyTrunkRearIsOpen"),
    _f("cabinDoorRow1DriverSideIsOpen"),
    _f("cabinDoorRow1DriverSideWindowIsOpen"),
    _f("cabinDoorRow1PassengerSideIsOpen"),
    _f("cabinDoorRow1PassengerSideWindowIsOpen"),
    _f("cabinDoorRow2DriverSideIsOpen"),
    _f("cabinDoorRow2DriverSideWindowIsOpen"),
    _f("cabinDoorRow2PassengerSideIsOpen"),
    _f("cabinDoorRow2PassengerSideWindowIsOpen"),
    _f("cabinSeatRow1DriverSideIsBelted"),
    _f("cabinSeatRow1PassengerSideIsBelted"),
    _f("cabinSeatRow2DriverSideIsBelted"),
    _f("cabinSeatRow2MiddleIsBelted"),
    _f("cabinSeatRow2PassengerSideIsBelted"),
    _f("cabinSeatRow3DriverSideIsBelted"),
    _f("cabinSeatRow3PassengerSideIsBelted"),
    _f("chassisAxleRow1WheelLeftSpeed", "km/h"),
    _f("chassisAxleRow1WheelLeftTirePressure", "kPa"),
    _f("chassisAxleRow1WheelRightSpeed", "km/h"),
    _f("chassisAxleRow1WheelRightTirePressure", "kPa"),
    _f("chassisAxleRow2WheelLeftTirePressure", "kPa"),
    _f("chassisAxleRow2WheelRightTirePressure", "kPa"),
    _f("chassisAxleRow3Weight", "kg"),
    _f("chassisAxleRow4Weight", "kg"),
    _f("chassisAxleRow5Weight", "kg"),
    _f("chassisBrakeABSIsWarningOn"),
    _f("chassisBrakeCircuit1PressurePrimary", "kPa"),
    _f("chassisBrakeCircuit2PressurePrimary", "kPa"),
    _f("chassisBrakeIsPedalPressed", None, "Vehicle.Chassis.Brake.IsPedalPressed"),
    _f("chassisBrakePedalPosition", "percent", "Vehicle.Chassis.Brake.PedalPosition"),
    _f("chassisParkingBrakeIsEngaged", None, "Vehicle.Chassis.ParkingBrake.IsEngaged"),
    _f("chassisTireSystemIsWarningOn"),
    _f("connectivityCellularIsJammingDetected"),
    _f(
        "currentLocationAltitude",
        "m",
        "Vehicle.CurrentLocation.Altitude",
        privilege=ALL_TIME_LOCATION,
    ),
    _loc("currentLocationCoordinates", vss="Vehicle.CurrentLocation", privilege=ALL_TIME_LOCATION),
    _f(
        "currentLocationHeading",
        "degrees",
        "Vehicle.CurrentLocation.Heading",
        privilege=ALL_TIME_LOCATION,
    ),
    _f("exteriorAirTemperature", "celsius", "Vehicle.Exterior.AirTemperature"),
    _f("isIgnitionOn", None, "Vehicle.LowVoltageSystemState"),
    _f("lowVoltageBatteryCurrentVoltage", "V", "Vehicle.LowVoltageBattery.CurrentVoltage"),
    _f("obdBarometricPressure", "kPa"),
    _f("obdCommandedEGR", "percent"),
    _f("obdCommandedEVAP", "percent"),
    _t("obdDTCList"),
    _f("obdDistanceSinceDTCClear", "km"),
    _f("obdDistanceWithMIL", "km"),
    _f("obdEngineLoad", "percent"),
    _f("obdEthanolPercent", "percent"),
    _f("obdFuelPressure", "kPa"),
    _f("obdFuelRailPressure", "kPa"),
    _f("obdFuelRate", "l/h"),
    _t("obdFuelTypeName"),
    _f("obdIntakeTemp", "celsius"),
    _f("obdIsEngineBlocked"),
    _f("obdIsPTOActive"),
    _f("obdIsPluggedIn"),
    _f("obdLongTermFuelTrim1", "percent"),
    _f("obdLongTermFuelTrim2", "percent"),
    _f("obdMAP", "kPa"),
    _f("obdMaxMAF", "g/s"),
    _f("obdO2WRSensor1Voltage", "V"),
    _f("obdO2WRSensor2Voltage", "V"),
    _f("obdOilTemperature", "celsius"),
    _f("obdRunTime", "s"),
    _f("obdShortTermFuelTrim1", "percent"),
    _f("obdStatusDTCCount"),
    _f("obdThrottlePosition", "percent"),
    _f("obdWarmupsSinceDTCClear"),
    _f("powertrainCombustionEngineDieselExhaustFluidCapacity", "l"),
    _f("powertrainCombustionEngineDieselExhaustFluidLevel", "percent"),
    _f("powertrainCombustionEngineECT", "celsius", "Vehicle.Powertrain.CombustionEngine.ECT"),
    _f("powertrainCombustionEngineEOP", "kPa"),
    _f("powertrainCombustionEngineEOT", "celsius"),
    _t("powertrainCombustionEngineEngineOilLevel"),
    _f("powertrainCombustionEngineEngineOilRelativeLevel", "percent"),
    _f("powertrainCombustionEngineMAF", "g/s"),
    _f("powertrainCombustionEngineSpeed", "rpm", "Vehicle.Powertrain.CombustionEngine.Speed"),
    _f("powertrainCombustionEngineTPS", "percent"),
    _f("powertrainCombustionEngineTorque", "Nm"),
    _f("powertrainCombustionEngineTorquePercent", "percent"),
    _f("powertrainFuelSystemAbsoluteLevel", "l"),
    _f("powertrainFuelSystemAccumulatedConsumption", "l"),
    _f(
        "powertrainFuelSystemRelativeLevel",
        "percent",
        "Vehicle.Powertrain.FuelSystem.RelativeLevel",
    ),
    _t("powertrainFuelSystemSupportedFuelTypes"),
    _f("powertrainRange", "km", "Vehicle.Powertrain.Range"),
    _f("powertrainTractionBatteryChargingAddedEnergy", "kWh"),
    _f("powertrainTractionBatteryChargingChargeCurrentAC", "A"),
    _f(
        "powertrainTractionBatteryChargingChargeLimit",
        "percent",
        "Vehicle.Powertrain.TractionBattery.Charging.ChargeLimit",
    ),
    _f("powertrainTractionBatteryChargingChargeVoltageUnknownType", "V"),
    _f(
        "powertrainTractionBatteryChargingIsCharging",
        None,
        "Vehicle.Powertrain.TractionBattery.Charging.IsCharging",
    ),
    _f(
        "powertrainTractionBatteryChargingIsChargingCableConnected",
        None,
        "Vehicle.Powertrain.TractionBattery.Charging.IsChargingCableConnected",
    ),
    _f(
        "powertrainTractionBatteryChargingPower",
        "kW",
        "Vehicle.Powertrain.TractionBattery.Charging.Power",
    ),
    _f(
        "powertrainTractionBatteryCurrentPower",
        "W",
        "Vehicle.Powertrain.TractionBattery.CurrentPower",
    ),
    _f(
        "powertrainTractionBatteryCurrentVoltage",
        "V",
        "Vehicle.Powertrain.TractionBattery.CurrentVoltage",
    ),
    _f(
        "powertrainTractionBatteryGrossCapacity",
        "kWh",
        "Vehicle.Powertrain.TractionBattery.GrossCapacity",
    ),
    _f("powertrainTractionBatteryRange", "km"),
    _f(
        "powertrainTractionBatteryStateOfChargeCurrent",
        "percent",
        "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current",
    ),
    _f(
        "powertrainTractionBatteryStateOfChargeCurrentEnergy",
        "kWh",
        "Vehicle.Powertrain.TractionBattery.StateOfCharge.CurrentEnergy",
    ),
    _f(
        "powertrainTractionBatteryStateOfHealth",
        "percent",
        "Vehicle.Powertrain.TractionBattery.StateOfHealth",
    ),
    _f(
        "powertrainTractionBatteryTemperatureAverage",
        "celsius",
        "Vehicle.Powertrain.TractionBattery.Temperature.Average",
    ),
    _f("powertrainTransmissionActualGear"),
    _f("powertrainTransmissionActualGearRatio"),
    _f("powertrainTransmissionCurrentGear", None, "Vehicle.Powertrain.Transmission.CurrentGear"),
    _f("powertrainTransmissionIsClutchSwitchOperated"),
    _f("powertrainTransmissionRetarderActualTorque", "percent"),
    _t("powertrainTransmissionRetarderTorqueMode"),
    _f("powertrainTransmissionSelectedGear", None, "Vehicle.Powertrain.Transmission.SelectedGear"),
    _f("powertrainTransmissionTemperature", "celsius"),
    _f("powertrainTransmissionTravelledDistance", "km", "Vehicle.TraveledDistance"),
    _t("powertrainType"),
    _f("serviceDistanceToService", "km"),
    _f("serviceTimeToService", "s"),
    _f("speed", "km/h", "Vehicle.Speed"),
)

#: DIMO's signals by name.
SIGNALS: Mapping[str, DimoSignal] = MappingProxyType({s.name: s for s in _TABLE})
_BY_VSS: Final = MappingProxyType(
    {
        **{s.vss: s.name for s in _TABLE if s.vss is not None},
        **dict.fromkeys(_LOCATION_LEAVES, "currentLocationCoordinates"),
    }
)
#: DIMO value = ours * factor, where units differ.
_SCALE: Final = MappingProxyType({"powertrainRange": 0.001})


def vss_for(name: str) -> str:
    """Our catalog path of DIMO signal `name`.

    Raises:
        UnknownDimoSignalError: DIMO has no such signal, or the platform does not carry it.
    """
    signal = SIGNALS.get(name)
    if signal is None:
        raise UnknownDimoSignalError(name, "not a DIMO signal name")
    if signal.vss is None:
        raise UnknownDimoSignalError(name, "a DIMO signal the platform does not carry")
    return signal.vss


def name_for(vss: str) -> str:
    """DIMO's name of our catalog path `vss`.

    Raises:
        UnknownDimoSignalError: DIMO has no signal for that path.
    """
    name = _BY_VSS.get(vss)
    if name is None:
        raise UnknownDimoSignalError(vss, "no DIMO signal reads this VSS path")
    return name


def catalog_privilege(name: str) -> Privilege:
    """Our privilege (`protocol.privileges`) that reads DIMO signal `name`.

    Raises:
        UnknownDimoSignalError: as `vss_for`.
    """
    vss = vss_for(name)
    if vss == LOCATION_BRANCH:
        return Privilege.LOCATION
    return CATALOG[vss].privilege


def dimo_value(name: str, value: float | str) -> float | str:
    """A reading of our catalog in DIMO's form for signal `name` (units, ignition as 1/0)."""
    if name == "isIgnitionOn":
        return 1.0 if str(value).upper() in IGNITION_ON else 0.0
    factor = _SCALE.get(name)
    if factor is not None and isinstance(value, int | float):
        return float(value) * factor
    return value
