"""One vehicle's life: planned trips and charging integrated into a sampled physical state."""

from __future__ import annotations

import random
from bisect import bisect_right
from dataclasses import dataclass, field

from device_bridge.simulator.drive import DRIVE_DT, speed_trace
from device_bridge.simulator.models import ModelSpec, get_model
from device_bridge.simulator.physics import (
    AC_EFFICIENCY,
    DC_EFFICIENCY,
    HARSH_BRAKING_MPS2,
    MPH_PER_S_IN_MPS2,
    ambient_celsius,
    aux_power_w,
    battery_current,
    dc_power_limit_kw,
    next_temperature,
    traction_battery_power_w,
)
from device_bridge.simulator.schedule import (
    DAY,
    DriverProfile,
    PlannedTrip,
    draw_profile,
    plan_days,
)
from device_bridge.simulator.truth import ChargingSession, GroundTruth, HarshEvent, Rollback, Trip

__all__ = [
    "IGNITION_ACC",
    "IGNITION_OFF",
    "IGNITION_ON",
    "IGNITION_START",
    "Segment",
    "VehicleConfig",
    "VehicleTrace",
    "simulate_vehicle",
]

US = 1_000_000
IGNITION_OFF, IGNITION_ACC, IGNITION_ON, IGNITION_START = 0, 2, 3, 4
CHARGE_NONE, CHARGE_AC, CHARGE_DC = 0, 1, 2
_DRIVE_DT_US = round(DRIVE_DT * US)
_CHARGE_DT_US = US
_WH_PER_KM_PLANNING = 260.0  # pessimistic, so that a trip never empties the pack


@dataclass(frozen=True, slots=True)
class VehicleConfig:
    """What is fixed about one simulated vehicle.

    Attributes:
        index: position in the fleet, 0-based.
        model: model (mapping) name, a key of `models.MODELS`.
        seed: the vehicle's own seed (derived from the fleet seed and the index).
        soh_percent: true state of health of the pack.
        odometer_km: odometer at the start.
        soc: state of charge at the start, percent.
        rollback: inject an odometer rollback half-way through the trips.
    """

    index: int
    model: str
    seed: int
    soh_percent: float
    odometer_km: float
    soc: float
    rollback: bool = False

    @property
    def spec(self) -> ModelSpec:
        """The model's physical figures."""
        return get_model(self.model)

    @property
    def usable_kwh(self) -> float:
        """Usable energy of the pack: nominal times state of health."""
        return self.spec.nominal_kwh * self.soh_percent / 100.0


@dataclass(slots=True)
class Segment:
    """A period in which the vehicle's buses are awake, sampled every `dt_us` microseconds.

    Sample `k` holds the state at `t0 + k * dt_us`; the battery power, current and speed hold
    until the next sample, so `soc[k+1] = soc[k] + power_kw[k] * dt / usable`.

    Attributes:
        kind: `drive` or `charge`.
        t0: time of the first sample, epoch microseconds.
        dt_us: sample spacing.
    """

    kind: str
    t0: int
    dt_us: int
    speed_kmh: list[float] = field(default_factory=list)
    accel: list[float] = field(default_factory=list)
    soc: list[float] = field(default_factory=list)
    odometer_km: list[float] = field(default_factory=list)
    voltage: list[float] = field(default_factory=list)
    current: list[float] = field(default_factory=list)
    power_kw: list[float] = field(default_factory=list)
    grid_kw: list[float] = field(default_factory=list)
    battery_temp: list[float] = field(default_factory=list)
    coolant_temp: list[float] = field(default_factory=list)
    low_voltage: list[float] = field(default_factory=list)
    ignition: list[int] = field(default_factory=list)
    gear: list[str] = field(default_factory=list)
    pedal: list[float] = field(default_factory=list)
    brake: list[bool] = field(default_factory=list)
    charging: list[int] = field(default_factory=list)

    @property
    def n(self) -> int:
        """Number of samples."""
        return len(self.soc)

    @property
    def end(self) -> int:
        """End of the segment (exclusive), epoch microseconds."""
        return self.t0 + self.n * self.dt_us

    def index(self, t_us: int) -> int:
        """Return the sample in force at `t_us` (which must lie in the segment)."""
        return min((t_us - self.t0) // self.dt_us, self.n - 1)


@dataclass(slots=True)
class VehicleTrace:
    """A simulated vehicle: its configuration, awake segments and ground truth."""

    config: VehicleConfig
    segments: list[Segment]
    truth: GroundTruth

    def segment_at(self, t_us: int) -> Segment | None:
        """Return the awake segment holding `t_us`, or None while the buses sleep."""
        starts = [s.t0 for s in self.segments]
        i = bisect_right(starts, t_us) - 1
        if i < 0 or t_us >= self.segments[i].end:
            return None
        return self.segments[i]

    def state_at(self, t_us: int) -> dict[str, float | int | str | bool] | None:
        """Return every state column at `t_us` (None while the buses sleep)."""
        seg = self.segment_at(t_us)
        if seg is None:
            return None
        k = seg.index(t_us)
        return {
            name: getattr(seg, name)[k]
            for name in (
                "speed_kmh",
                "accel",
                "soc",
                "odometer_km",
                "voltage",
                "current",
                "power_kw",
                "grid_kw",
                "battery_temp",
                "coolant_temp",
                "low_voltage",
                "ignition",
                "gear",
                "pedal",
                "brake",
                "charging",
            )
        }


class _Simulation:
    def __init__(self, config: VehicleConfig, start_us: int, end_us: int) -> None:
        self.config = config
        self.spec = config.spec
        self.rng = random.Random(f"dimo-fleet-vehicle:{config.seed}")
        self.profile: DriverProfile = draw_profile(self.rng)
        self.start_us = start_us
        self.end_us = end_us
        self.usable_wh = config.usable_kwh * 1000.0
        self.t = start_us
        self.soc = config.soc
        self.odo = config.odometer_km
        self.temp = self._ambient(start_us)
        self.segments: list[Segment] = []
        self.truth = GroundTruth(
            vehicle=config.index,
            model=config.model,
            seed=config.seed,
            nominal_capacity_kwh=self.spec.nominal_kwh,
            soh_percent=round(config.soh_percent, 4),
            usable_capacity_kwh=round(config.usable_kwh, 6),
            start=start_us / US,
            end=end_us / US,
            odometer_start_km=round(config.odometer_km, 6),
            soc_start=round(config.soc, 6),
        )

    def _ambient(self, t_us: int) -> float:
        return ambient_celsius(self.profile.climate_mean, (t_us // US) % DAY)

    def _rest_until(self, t_us: int) -> None:
        if t_us > self.t:
            dt = (t_us - self.t) / US
            self.temp = next_temperature(self.spec, self.temp, self._ambient(t_us), 0.0, dt, False)
            self.t = t_us

    def _sample(
        self,
        seg: Segment,
        *,
        speed: float,
        accel: float,
        power_w: float,
        grid_w: float,
        ignition: int,
        gear: str,
        pedal: float,
        brake: bool,
        charging: int,
        dt: float,
        ambient: float,
    ) -> None:
        voltage, current = battery_current(self.spec, self.soc, power_w)
        seg.speed_kmh.append(speed * 3.6)
        seg.accel.append(accel)
        seg.soc.append(self.soc)
        seg.odometer_km.append(self.odo)
        seg.voltage.append(voltage)
        seg.current.append(current)
        seg.power_kw.append(power_w / 1000.0)
        seg.grid_kw.append(grid_w / 1000.0)
        seg.battery_temp.append(self.temp)
        seg.coolant_temp.append(self.temp + 4.0 + abs(power_w) / 8000.0)
        seg.low_voltage.append(14.2 if ignition == IGNITION_ON or charging else 12.4)
        seg.ignition.append(ignition)
        seg.gear.append(gear)
        seg.pedal.append(pedal)
        seg.brake.append(brake)
        seg.charging.append(charging)
        self.soc = min(100.0, max(0.0, self.soc + power_w * dt / 3600.0 / self.usable_wh * 100.0))
        self.odo += speed * dt / 1000.0
        self.temp = next_temperature(self.spec, self.temp, ambient, current, dt, True)

    # driving

    def drive(self, plan: PlannedTrip, depart: int) -> None:
        rng = self.rng
        self._rest_until(depart)
        trace = speed_trace(rng, list(plan.legs), self.profile.harsh_probability)
        ambient = self._ambient(depart)
        aux = aux_power_w(ambient)
        seg = Segment("drive", depart, _DRIVE_DT_US)
        pre = round(rng.uniform(12.0, 40.0) / DRIVE_DT)
        for k in range(pre):
            ignition = IGNITION_ACC if k < 10 else IGNITION_START if k < 15 else IGNITION_ON
            gear = "D" if k >= pre - 10 else "P"
            self._sample(
                seg,
                speed=0.0,
                accel=0.0,
                power_w=-aux * (ignition == IGNITION_ON),
                grid_w=0.0,
                ignition=ignition,
                gear=gear,
                pedal=0.0,
                brake=gear == "D",
                charging=CHARGE_NONE,
                dt=DRIVE_DT,
                ambient=ambient,
            )
        first = seg.n
        soc0, odo0 = self.soc, self.odo
        speeds, accels = trace.speed, trace.accel
        motor_w = self.spec.motor_kw * 1000.0
        for k, v in enumerate(speeds):
            a = accels[k + 1] if k + 1 < len(speeds) else 0.0
            wheel, battery = traction_battery_power_w(self.spec, v, a)
            pedal = min(100.0, 100.0 * wheel / motor_w * 2.5) if wheel > 0 else 0.0
            brake = a < -0.8 or (v == 0.0)
            self._sample(
                seg,
                speed=v,
                accel=a,
                power_w=battery - aux,
                grid_w=0.0,
                ignition=IGNITION_ON,
                gear="D",
                pedal=pedal,
                brake=brake,
                charging=CHARGE_NONE,
                dt=DRIVE_DT,
                ambient=ambient,
            )
        last = seg.n
        post = round(rng.uniform(5.0, 15.0) / DRIVE_DT)
        for k in range(post):
            ignition = IGNITION_OFF if k >= post - 10 else IGNITION_ON
            self._sample(
                seg,
                speed=0.0,
                accel=0.0,
                power_w=-aux * (ignition == IGNITION_ON),
                grid_w=0.0,
                ignition=ignition,
                gear="P",
                pedal=0.0,
                brake=False,
                charging=CHARGE_NONE,
                dt=DRIVE_DT,
                ambient=ambient,
            )
        self.segments.append(seg)
        self.t = seg.end
        t_start = (seg.t0 + first * seg.dt_us) / US
        t_end = (seg.t0 + last * seg.dt_us) / US
        distance = self.odo - odo0
        energy = sum(-p for p in seg.power_kw[first:last]) * DRIVE_DT / 3600.0
        self.truth.trips.append(
            Trip(
                start=t_start,
                end=t_end,
                purpose=plan.purpose,
                distance_km=round(distance, 6),
                max_speed_kmh=round(max(seg.speed_kmh[first:last]), 6),
                energy_kwh=round(energy, 6),
                wh_per_km=round(energy * 1000.0 / distance, 3) if distance > 0 else 0.0,
                soc_start=round(soc0, 6),
                soc_end=round(seg.soc[last], 6),
                odometer_start_km=round(odo0, 6),
                odometer_end_km=round(self.odo, 6),
                ambient_c=round(ambient, 3),
            )
        )
        self._find_harsh(seg, first, last)

    def _find_harsh(self, seg: Segment, first: int, last: int) -> None:
        k = first
        while k < last:
            if -seg.accel[k] >= HARSH_BRAKING_MPS2:
                j = k
                while j < last and -seg.accel[j] >= HARSH_BRAKING_MPS2:
                    j += 1
                peak = max(-a for a in seg.accel[k:j])
                self.truth.harsh_events.append(
                    HarshEvent(
                        time=(seg.t0 + k * seg.dt_us) / US,
                        deceleration_mps2=round(peak, 6),
                        deceleration_mphps=round(peak / MPH_PER_S_IN_MPS2, 6),
                        speed_kmh=round(seg.speed_kmh[k], 6),
                    )
                )
                k = j
            else:
                k += 1

    # charging

    def charge(
        self, kind: int, start: int, deadline: int, target: float, charger_kw: float
    ) -> None:
        self._rest_until(start)
        if deadline - self.t < 15 * 60 * US or self.soc >= target - 5.0:
            return
        seg = Segment("charge", self.t, _CHARGE_DT_US)
        ambient = self._ambient(self.t)
        for _ in range(5):
            self._sample(
                seg,
                speed=0.0,
                accel=0.0,
                power_w=0.0,
                grid_w=0.0,
                ignition=IGNITION_OFF,
                gear="P",
                pedal=0.0,
                brake=False,
                charging=kind,
                dt=1.0,
                ambient=ambient,
            )
        first = seg.n
        soc0 = self.soc
        stop = deadline - 10 * US
        while self.soc < target and seg.end < stop:
            if kind == CHARGE_AC:
                grid = min(charger_kw, self.spec.ac_kw) * 1000.0
                if self.soc > 97.0:
                    grid *= max(0.15, (100.0 - self.soc) / 3.0)
                battery = grid * AC_EFFICIENCY
            else:
                battery = min(charger_kw, dc_power_limit_kw(self.spec, self.soc)) * 1000.0
                grid = battery / DC_EFFICIENCY
            if seg.n % 60 == 0:
                ambient = self._ambient(seg.end)
            self._sample(
                seg,
                speed=0.0,
                accel=0.0,
                power_w=battery,
                grid_w=grid,
                ignition=IGNITION_OFF,
                gear="P",
                pedal=0.0,
                brake=False,
                charging=kind,
                dt=1.0,
                ambient=ambient,
            )
        last = seg.n
        for _ in range(5):
            self._sample(
                seg,
                speed=0.0,
                accel=0.0,
                power_w=0.0,
                grid_w=0.0,
                ignition=IGNITION_OFF,
                gear="P",
                pedal=0.0,
                brake=False,
                charging=kind,
                dt=1.0,
                ambient=ambient,
            )
        self.segments.append(seg)
        self.t = seg.end
        if last == first:
            return
        powers = seg.power_kw[first:last]
        energy = sum(powers) / 3600.0
        grid_energy = sum(seg.grid_kw[first:last]) / 3600.0
        self.truth.charging_sessions.append(
            ChargingSession(
                start=(seg.t0 + first * seg.dt_us) / US,
                end=(seg.t0 + last * seg.dt_us) / US,
                kind="AC" if kind == CHARGE_AC else "DC",
                charger_kw=charger_kw,
                max_power_kw=round(max(powers), 6),
                mean_power_kw=round(energy * 3600.0 / len(powers), 6),
                energy_battery_kwh=round(energy, 6),
                energy_grid_kwh=round(grid_energy, 6),
                soc_start=round(soc0, 6),
                soc_end=round(seg.soc[last], 6),
            )
        )

    def fast_charge(self, start: int, deadline: int, target: float) -> None:
        charger = self.rng.choice((50.0, 100.0, 150.0))
        self.charge(CHARGE_DC, start, deadline, target, charger)

    # the whole period

    def run(self, days: int, first_weekday: int) -> VehicleTrace:
        rng = self.rng
        plans = plan_days(rng, self.profile, self.start_us, days, first_weekday)
        rollback_at = len(plans) // 2 if self.config.rollback and plans else None
        for i, plan in enumerate(plans):
            depart = max(plan.depart, self.t + 60 * US)
            if depart + round(plan.km / 25.0 * 3600.0 + 600.0) * US >= self.end_us:
                continue
            need = plan.km * _WH_PER_KM_PLANNING / self.usable_wh * 100.0
            if self.soc - need < 10.0:
                self.fast_charge(depart, depart + 3 * 3600 * US, rng.uniform(80.0, 92.0))
                depart = max(depart, self.t + 60 * US)
            if i == rollback_at:
                self._rollback(depart)
            self.drive(plan, depart)
            following = plans[i + 1].depart if i + 1 < len(plans) else self.end_us
            deadline = min(following, self.end_us)
            if not plan.to_home and rng.random() < self.profile.dc_probability:
                start = self.t + round(rng.uniform(3.0, 10.0) * 60) * US
                self.fast_charge(start, deadline, rng.uniform(80.0, 92.0))
            elif plan.to_home and (self.soc < self.profile.charge_below or rng.random() < 0.15):
                start = self.t + round(rng.uniform(2.0, 6.0) * 60) * US
                if self.profile.night_start_hour is not None:
                    day_start = self.t - self.t % (DAY * US)
                    night = day_start + round(self.profile.night_start_hour * 3600) * US
                    start = max(start, night)
                self.charge(
                    CHARGE_AC,
                    start,
                    deadline - 5 * 60 * US,
                    self.profile.charge_target,
                    self.profile.home_charger_kw,
                )
        self._rest_until(self.end_us)
        self.truth.odometer_end_km = round(self.odo, 6)
        self.truth.soc_end = round(self.soc, 6)
        return VehicleTrace(self.config, self.segments, self.truth)

    def _rollback(self, when: int) -> None:
        amount = min(self.odo * self.rng.uniform(0.15, 0.4), self.odo)
        before = self.odo
        self.odo = max(0.0, self.odo - amount)
        self.truth.rollback = Rollback(
            time=when / US, from_km=round(before, 6), to_km=round(self.odo, 6)
        )


def simulate_vehicle(
    config: VehicleConfig, start_us: int, days: int, first_weekday: int
) -> VehicleTrace:
    """Simulate one vehicle for `days` days.

    Args:
        config: the vehicle.
        start_us: midnight (UTC) of the first day, epoch microseconds.
        days: number of days.
        first_weekday: weekday of the first day (0 = Monday).

    Returns:
        Its awake segments and ground truth.
    """
    sim = _Simulation(config, start_us, start_us + days * DAY * US)
    return sim.run(days, first_weekday)
