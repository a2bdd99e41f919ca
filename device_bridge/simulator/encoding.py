"""Vehicle state to CAN frames with the real DBCs (cantools), at each message's own rate."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, NamedTuple

import can
from cantools.database.can import Database, Message

from device_bridge.mapping import load_databases, load_mapping
from device_bridge.simulator.exceptions import SimulationError
from device_bridge.simulator.models import get_model
from device_bridge.simulator.vehicle import (
    CHARGE_AC,
    CHARGE_DC,
    IGNITION_ACC,
    IGNITION_OFF,
    Segment,
    VehicleTrace,
)

__all__ = [
    "BUS_CHANNELS",
    "MESSAGES",
    "Frame",
    "FrameEncoder",
    "MessageSpec",
    "frames_to_messages",
    "write_candump",
]

Values = dict[str, float]
ValueFn = Callable[[Segment, int, float], Values]
DRIVE = frozenset({"drive"})
ALWAYS = frozenset({"drive", "charge"})


class Frame(NamedTuple):
    """One CAN frame: time (epoch microseconds), channel, id, extended flag, payload, FD flag."""

    t_us: int
    channel: str
    arbitration_id: int
    is_extended_id: bool
    data: bytes
    is_fd: bool


@dataclass(frozen=True, slots=True)
class MessageSpec:
    """A message the simulator sends.

    Attributes:
        bus: the mapping's bus the message belongs to.
        name: the DBC message name.
        period_s: nominal period at rate scale 1 (from recordings where there are any).
        when: segment kinds it is sent in (`drive`, `charge`).
        values: physical signal values for sample `k` of a segment (and the usable kWh).
    """

    bus: str
    name: str
    period_s: float
    when: frozenset[str]
    values: ValueFn


_HYUNDAI_GEAR = {"P": 0, "D": 5, "N": 6, "R": 7}
_TESLA_GEAR = {"P": 1, "R": 2, "N": 3, "D": 4}
_LEAF_GEAR = {"P": 1, "R": 2, "N": 3, "D": 4}


def _motor_rpm(seg: Segment, k: int, model: str) -> float:
    spec = get_model(model)
    wheel_rps = seg.speed_kmh[k] / 3.6 / (2 * math.pi * spec.wheel_radius_m)
    return wheel_rps * spec.gear_ratio * 60.0


def _kona_range_km(seg: Segment, k: int, usable_kwh: float) -> float:
    return min(510.0, seg.soc[k] / 100.0 * usable_kwh / 0.155)


# Hyundai Kona Electric 2019 (P-CAN pcan.dbc, C-CAN opendbc hyundai_kia_generic.dbc)


def _kona_bms(seg: Segment, k: int, usable: float) -> Values:
    return {"SocDisp": seg.soc[k]}


def _kona_hv(seg: Segment, k: int, usable: float) -> Values:
    charging = seg.charging[k]
    return {
        "VBatt": seg.voltage[k],
        "IBatt": -seg.current[k],
        "ACChargerDetected": float(charging == CHARGE_AC),
        "DCFastChargerDetected": float(charging == CHARGE_DC),
        "PrechargeRelay": 1.0,
    }


def _kona_battery(seg: Segment, k: int, usable: float) -> Values:
    temp = seg.battery_temp[k]
    remaining = 0.0
    if seg.charging[k] and seg.power_kw[k] > 0:
        remaining = (100.0 - seg.soc[k]) / 100.0 * usable / seg.power_kw[k] * 60.0
    return {
        "Voltage_12V": seg.low_voltage[k],
        "uwe596_6_TAkkuL": max(0.0, round(temp - 1.0)),
        "uwe596_7_TAkkuH": max(0.0, round(temp + 1.0)),
        "uwe596_2_remainingChTAC": min(65534.0, remaining) if seg.charging[k] == CHARGE_AC else 0,
        "uwe596_4_remainingChTDC": min(254.0, remaining) if seg.charging[k] == CHARGE_DC else 0,
    }


def _kona_ac(seg: Segment, k: int, usable: float) -> Values:
    if seg.charging[k] != CHARGE_AC:
        return {"Power_AC": 0.0, "V_AC": 0.0, "I_AC": 0.0}
    power = seg.grid_kw[k] * 1000.0
    phases = 3 if power > 7500 else 1
    return {"Power_AC": power, "V_AC": 230.0, "I_AC": power / 230.0 / phases}


def _kona_vcu200(seg: Segment, k: int, usable: float) -> Values:
    return {
        "Range": _kona_range_km(seg, k, usable),
        "CURRENT_GEAR": _HYUNDAI_GEAR[seg.gear[k]],
        "Accel_Pedal_Pos2": round(seg.pedal[k] * 2.54),
    }


def _kona_vcu291(seg: Segment, k: int, usable: float) -> Values:
    return {"Speed_signed": round(_motor_rpm(seg, k, "hyundai_kona_ev_2019"))}


def _kona_inverter(seg: Segment, k: int, usable: float) -> Values:
    return {"TempIn": round(seg.coolant_temp[k]), "CoolingPump": 40.0}


def _kona_steering(seg: Segment, k: int, usable: float) -> Values:
    # a gentle weave: the simulator models no route geometry
    return {"Angle": round(4.0 * math.sin(k / 90.0), 1) if seg.speed_kmh[k] > 0 else 0.0}


def _kona_esc(seg: Segment, k: int, usable: float) -> Values:
    return {"LONG_ACCEL": max(-10.2, min(10.2, seg.accel[k])), "LAT_ACCEL": 0.0, "YAW_RATE": 0.0}


def _kona_tcs(seg: Segment, k: int, usable: float) -> Values:
    brake = float(seg.brake[k])
    return {"DriverBraking": brake, "BrakeLight": brake, "StandStill": float(seg.speed_kmh[k] == 0)}


def _kona_body(seg: Segment, k: int, usable: float) -> Values:
    ignition = seg.ignition[k]
    return {
        "IgnitionSw": ignition,
        "Ign1": float(ignition != IGNITION_OFF),
        "Ign2": float(ignition not in (IGNITION_OFF, IGNITION_ACC)),
    }


def _kona_clu11(seg: Segment, k: int, usable: float) -> Values:
    return {"CF_Clu_Vanz": min(255.0, seg.speed_kmh[k]), "CF_Clu_SPEED_UNIT": 0.0}


def _kona_clu12(seg: Segment, k: int, usable: float) -> Values:
    # the cluster shows completed tenths of a kilometre
    return {"CF_Clu_Odometer": math.floor(seg.odometer_km[k] * 10.0 + 1e-9) / 10.0}


# Tesla Model 3 (opendbc tesla_model3_party.dbc, tesla_model3_vehicle.dbc)


def _tesla_speed(seg: Segment, k: int, usable: float) -> Values:
    speed = seg.speed_kmh[k]
    return {"DI_vehicleSpeed": speed, "DI_uiSpeed": min(254, round(speed)), "DI_uiSpeedUnits": 1}


def _tesla_status(seg: Segment, k: int, usable: float) -> Values:
    return {
        "DI_gear": _TESLA_GEAR[seg.gear[k]],
        "DI_brakePedalState": float(seg.brake[k]),
        "DI_accelPedalPos": seg.pedal[k],
        "DI_systemState": 5.0 if seg.ignition[k] != IGNITION_OFF else 2.0,
        "DI_immobilizerState": 3.0,
    }


def _tesla_torque(seg: Segment, k: int, usable: float) -> Values:
    spec = get_model("tesla_model3")
    rpm = _motor_rpm(seg, k, "tesla_model3")
    power = -seg.power_kw[k] * 1000.0 * 0.9
    torque = power / (rpm * 2 * math.pi / 60.0) if rpm > 50 else 0.0
    torque = max(-7000.0, min(7000.0, torque))
    return {
        "DI_axleSpeed": rpm / spec.gear_ratio,
        "DI_torqueActual": torque,
        "DI_torqueCommand": torque,
    }


def _tesla_power_state(seg: Segment, k: int, usable: float) -> Values:
    ignition = seg.ignition[k]
    state = 0 if ignition == IGNITION_OFF else 2 if ignition == IGNITION_ACC else 3
    return {"VCFRONT_LVPowerStateIndex": 0, "VCFRONT_vehiclePowerState": state}


def _tesla_switches(seg: Segment, k: int, usable: float) -> Values:
    return {
        "VCLEFT_switchStatusIndex": 0,
        "VCLEFT_brakePressed": float(seg.brake[k]),
        "VCLEFT_driverPresent": 1.0,
    }


# Nissan Leaf 2018 (opendbc nissan_leaf_2018.dbc)


def _leaf_wheels(seg: Segment, k: int, usable: float) -> Values:
    speed = seg.speed_kmh[k]
    return {"WHEEL_SPEED_FR": speed, "WHEEL_SPEED_FL": speed}


def _leaf_throttle(seg: Segment, k: int, usable: float) -> Values:
    raw = round(seg.pedal[k] * 2.55)
    return {
        "GAS_PEDAL": raw,
        "GAS_PEDAL_INVERTED": 255 - raw,
        "USER_BRAKE_PRESSED": float(seg.brake[k]),
        "NO_BUTTON_PRESSED": 1.0,
    }


def _leaf_brake(seg: Segment, k: int, usable: float) -> Values:
    decel = -seg.accel[k] if seg.brake[k] else 0.0
    return {"BRAKE_PEDAL": min(255, max(0, round(decel * 40.0)))}


def _leaf_gear(seg: Segment, k: int, usable: float) -> Values:
    return {"GEAR_SHIFTER": _LEAF_GEAR[seg.gear[k]]}


# Hyundai/Kia CAN-FD (opendbc hyundai_canfd.dbc)


def _canfd_wheels(seg: Segment, k: int, usable: float) -> Values:
    speed = min(511.0, seg.speed_kmh[k])
    moving = float(speed > 0)
    return {
        "WHL_SpdFLVal": speed,
        "WHL_SpdFRVal": speed,
        "WHL_SpdRLVal": speed,
        "WHL_SpdRRVal": speed,
        "MOVING_FORWARD": moving,
        "MOVING_FORWARD2": moving,
    }


def _canfd_accelerator(seg: Segment, k: int, usable: float) -> Values:
    return {"ACCELERATOR_PEDAL": round(seg.pedal[k] * 2.55), "GEAR": _HYUNDAI_GEAR[seg.gear[k]]}


def _canfd_brake(seg: Segment, k: int, usable: float) -> Values:
    return {"BRAKE_PRESSED": float(seg.brake[k])}


MESSAGES: Mapping[str, tuple[MessageSpec, ...]] = {
    "hyundai_kona_ev_2019": (
        MessageSpec("pcan", "VCU_200", 0.01, DRIVE, _kona_vcu200),
        MessageSpec("pcan", "VCU_291", 0.01, DRIVE, _kona_vcu291),
        MessageSpec("pcan", "Steering", 0.0125, DRIVE, _kona_steering),
        MessageSpec("pcan", "StabilityControl", 0.02, DRIVE, _kona_esc),
        MessageSpec("pcan", "TractionControlMed", 0.03, DRIVE, _kona_tcs),
        MessageSpec("pcan", "InverterTemp", 0.01, DRIVE, _kona_inverter),
        MessageSpec("pcan", "BodyState", 0.1, ALWAYS, _kona_body),
        MessageSpec("pcan", "BMS_542", 0.15, ALWAYS, _kona_bms),
        MessageSpec("pcan", "Batt_HV_Status", 0.15, ALWAYS, _kona_hv),
        MessageSpec("pcan", "BatteryCharging", 0.15, ALWAYS, _kona_battery),
        MessageSpec("pcan", "ACChargeStatus", 0.15, ALWAYS, _kona_ac),
        MessageSpec("ccan", "CLU11", 0.025, DRIVE, _kona_clu11),
        MessageSpec("ccan", "CLU12", 1.2, DRIVE, _kona_clu12),
    ),
    "tesla_model3": (
        MessageSpec("party", "DI_torque", 0.01, DRIVE, _tesla_torque),
        MessageSpec("party", "DI_systemStatus", 0.01, DRIVE, _tesla_status),
        MessageSpec("party", "DI_speed", 0.02, DRIVE, _tesla_speed),
        MessageSpec("party", "VCFRONT_LVPowerState", 0.1, DRIVE, _tesla_power_state),
        MessageSpec("vehicle", "VCLEFT_switchStatus", 0.1, DRIVE, _tesla_switches),
    ),
    "nissan_leaf_2018": (
        MessageSpec("car", "WHEEL_SPEEDS_FRONT", 0.02, DRIVE, _leaf_wheels),
        MessageSpec("car", "CRUISE_THROTTLE", 0.02, DRIVE, _leaf_throttle),
        MessageSpec("car", "BRAKE_PEDAL", 0.02, DRIVE, _leaf_brake),
        MessageSpec("car", "GEARBOX", 0.1, DRIVE, _leaf_gear),
    ),
    "hyundai_canfd": (
        MessageSpec("ecan", "WHEEL_SPEEDS", 0.01, DRIVE, _canfd_wheels),
        MessageSpec("ecan", "ACCELERATOR", 0.01, DRIVE, _canfd_accelerator),
        MessageSpec("ecan", "BRAKE", 0.01, DRIVE, _canfd_brake),
    ),
}

# candump channel of each bus (the mappings' `channels`; one bus per car for Leaf and CAN-FD).
BUS_CHANNELS: Mapping[str, Mapping[str, str]] = {
    "hyundai_kona_ev_2019": {"pcan": "can0", "ccan": "can1"},
    "tesla_model3": {"party": "can0", "vehicle": "can1"},
    "nissan_leaf_2018": {"car": "can0"},
    "hyundai_canfd": {"ecan": "can0"},
}


class _Compiled(NamedTuple):
    spec: MessageSpec
    message: Message
    template: dict[str, int]
    raw: dict[str, tuple[float, float, int, int]]
    channel: str
    is_fd: bool
    prefix: str
    cache: dict[tuple[int, ...], bytes]


_CACHE_LIMIT = 65_536


class FrameEncoder:
    """Encodes a model's vehicle state into frames with `Message.encode` of its real DBCs.

    Physical values are quantized to the DBC's raw integers (clamped to the signal's bits)
    and encoded by cantools without scaling; payloads are cached by their raw values.
    """

    def __init__(
        self,
        model: str,
        *,
        dbc_dir: Path | None = None,
        databases: Mapping[str, Database] | None = None,
    ) -> None:
        """Load the model's mapping and DBCs.

        Args:
            model: the model (mapping) name.
            dbc_dir: directory of DBCs named by bare file names (the Kona `pcan.dbc`).
            databases: already loaded databases by bus name (instead of loading).

        Raises:
            SimulationError: the simulator has no message table for the model.
            DbcNotFoundError, DbcLoadError, MappingError: as the loaders raise them.
        """
        if model not in MESSAGES:
            raise SimulationError("model", model, f"the simulator knows {sorted(MESSAGES)}")
        self.model = model
        mapping = load_mapping(model)
        if databases is None:
            loaded = load_databases(mapping, dbc_dir=dbc_dir)
            databases = {name: db for name, (db, _) in loaded.items()}
        self.databases = dict(databases)
        self._compiled = tuple(self._compile(spec) for spec in MESSAGES[model])

    def _compile(self, spec: MessageSpec) -> _Compiled:
        message = self.databases[spec.bus].get_message_by_name(spec.name)
        template: dict[str, int] = {}
        raw: dict[str, tuple[float, float, int, int]] = {}
        for signal in message.signals:
            if signal.multiplexer_ids is not None and 0 not in signal.multiplexer_ids:
                continue
            low = -(1 << (signal.length - 1)) if signal.is_signed else 0
            high = low + (1 << signal.length) - 1
            raw[signal.name] = (float(signal.scale), float(signal.offset), low, high)
            template[signal.name] = min(high, max(low, round(-signal.offset / signal.scale)))
        channel = BUS_CHANNELS[self.model][spec.bus]
        is_fd = message.length > 8
        ident = (
            f"{message.frame_id:08X}" if message.is_extended_frame else f"{message.frame_id:03X}"
        )
        prefix = f") {channel} {ident}{'##0' if is_fd else '#'}"
        return _Compiled(spec, message, template, raw, channel, is_fd, prefix, {})

    def encode(self, index: int, seg: Segment, k: int, usable_kwh: float) -> bytes:
        """Encode message `index` of the model's table for sample `k` of `seg`."""
        compiled = self._compiled[index]
        raw = compiled.raw
        values = compiled.spec.values(seg, k, usable_kwh)
        key = []
        for name, value in values.items():
            scale, offset, low, high = raw[name]
            key.append(min(high, max(low, round((value - offset) / scale))))
        cache_key = tuple(key)
        payload = compiled.cache.get(cache_key)
        if payload is None:
            data = dict(compiled.template)
            data.update(zip(values, cache_key, strict=True))
            payload = bytes(compiled.message.encode(data, scaling=False, strict=False))
            if len(compiled.cache) >= _CACHE_LIMIT:
                compiled.cache.clear()
            compiled.cache[cache_key] = payload
        return payload

    def _rows(
        self, trace: VehicleTrace, seg: Segment, rate_scale: float
    ) -> list[tuple[int, int, bytes]]:
        rows: list[tuple[int, int, bytes]] = []
        append = rows.append
        usable = trace.config.usable_kwh
        t0, dt, end = seg.t0, seg.dt_us, seg.end
        for order, compiled in enumerate(self._compiled):
            if seg.kind not in compiled.spec.when:
                continue
            period = max(1_000, round(compiled.spec.period_s * 1_000_000 / rate_scale))
            phase = (compiled.message.frame_id * 7_919 + order * 1_237) % period
            last_k = -1
            payload = b""
            for t in range(t0 + phase, end, period):
                k = (t - t0) // dt
                if k != last_k:
                    payload = self.encode(order, seg, k, usable)
                    last_k = k
                append((t, order, payload))
        rows.sort()
        return rows

    def segment_frames(self, trace: VehicleTrace, seg: Segment, rate_scale: float) -> list[Frame]:
        """Return the frames of one awake segment in time order.

        Each message is sent every `period_s / rate_scale` seconds from a fixed phase; the
        payload carries the state sample in force at the frame's time.
        """
        compiled = self._compiled
        return [
            Frame(
                t,
                compiled[order].channel,
                compiled[order].message.frame_id,
                compiled[order].message.is_extended_frame,
                payload,
                compiled[order].is_fd,
            )
            for t, order, payload in self._rows(trace, seg, rate_scale)
        ]

    def frames(self, trace: VehicleTrace, rate_scale: float = 1.0) -> Iterator[Frame]:
        """Yield a vehicle's frames in time order, segment by segment."""
        _check_rate(rate_scale)
        for seg in trace.segments:
            yield from self.segment_frames(trace, seg, rate_scale)

    def write_candump(self, trace: VehicleTrace, file: IO[str], rate_scale: float = 1.0) -> int:
        """Write a vehicle's frames as a `candump -L` log; the same bytes as `write_candump`.

        Returns:
            The number of frames written.
        """
        _check_rate(rate_scale)
        prefixes = [c.prefix for c in self._compiled]
        hexes: dict[bytes, str] = {}
        count = 0
        for seg in trace.segments:
            lines = []
            for t, order, payload in self._rows(trace, seg, rate_scale):
                text = hexes.get(payload)
                if text is None:
                    if len(hexes) >= _CACHE_LIMIT:
                        hexes.clear()
                    text = hexes[payload] = payload.hex().upper() + "\n"
                seconds, micros = divmod(t, 1_000_000)
                lines.append(f"({seconds}.{micros:06d}{prefixes[order]}{text}")
            file.writelines(lines)
            count += len(lines)
        return count


def _check_rate(rate_scale: float) -> None:
    if not rate_scale > 0:
        raise SimulationError("rate_scale", rate_scale, "must be a positive factor")


def frames_to_messages(frames: Iterable[Frame]) -> Iterator[can.Message]:
    """Turn frames into `can.Message` objects (timestamps in epoch seconds)."""
    for f in frames:
        yield can.Message(
            timestamp=f.t_us / 1_000_000,
            arbitration_id=f.arbitration_id,
            is_extended_id=f.is_extended_id,
            data=f.data,
            dlc=len(f.data),
            is_fd=f.is_fd,
            channel=f.channel,
        )


def write_candump(frames: Iterable[Frame], file: IO[str]) -> int:
    """Write frames as a `candump -L` log (the format `can.CanutilsLogReader` reads).

    Args:
        frames: frames in time order.
        file: a text file open for writing.

    Returns:
        The number of frames written.
    """
    count = 0
    lines: list[str] = []
    for t_us, channel, arbitration_id, extended, data, is_fd in frames:
        seconds, micros = divmod(t_us, 1_000_000)
        ident = f"{arbitration_id:08X}" if extended else f"{arbitration_id:03X}"
        sep = "##0" if is_fd else "#"
        lines.append(f"({seconds}.{micros:06d}) {channel} {ident}{sep}{data.hex().upper()}\n")
        count += 1
        if len(lines) >= 50_000:
            file.writelines(lines)
            lines.clear()
    file.writelines(lines)
    return count
