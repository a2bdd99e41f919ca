"""Driving, charging and odometer events over a vehicle's samples as they arrive, for triggers.

Pure functions over one vehicle's new samples and a small state carried from its previous
ones (JSON-able), so a service can detect events bundle by bundle and resume after a crash.

- `behavior.harshBraking` / `behavior.harshAcceleration`: a step between two consecutive
  `Vehicle.Speed` samples at most `max_step_s` apart whose mean rate passes the insurance
  score's threshold (`apps.insurance.harsh_steps`, default 7 mph/s), so the score and the
  trigger agree. A run of such steps is one event (as the score counts it), reported at its
  first step with that step's rate in mph/s. Needs DRIVING.
- `behavior.harshCornering`: `|Vehicle.Acceleration.Lateral|` at or above
  `harsh_cornering_mps2` (default 4 m/s^2, about 0.41 g); a run of samples is one event.
  Needs DRIVING.
- `charging.started` / `charging.stopped`: `Vehicle.Powertrain.TractionBattery.Charging.
  IsCharging` turns true / false. Needs CHARGING.
- `odometer.rollbackSuspected`: `Vehicle.TraveledDistance` falls more than
  `rollback_tolerance_km` below the highest reading seen; reported once per fall, with the
  fall in km. Needs ODOMETER.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from apps.insurance import KMH_PER_S_PER_MPHPS, ScoreParams, harsh_steps
from protocol.privileges import Privilege
from protocol.readings import IS_CHARGING, ODOMETER, SPEED

__all__ = ["EVENTS", "AppEvent", "DetectorState", "EventParams", "detect"]

LATERAL: Final = "Vehicle.Acceleration.Lateral"
HARSH_BRAKING: Final = "behavior.harshBraking"
HARSH_ACCELERATION: Final = "behavior.harshAcceleration"
HARSH_CORNERING: Final = "behavior.harshCornering"
CHARGING_STARTED: Final = "charging.started"
CHARGING_STOPPED: Final = "charging.stopped"
ODOMETER_ROLLBACK: Final = "odometer.rollbackSuspected"

#: Each event name and the privilege that reads it.
EVENTS: Final[Mapping[str, Privilege]] = {
    HARSH_BRAKING: Privilege.DRIVING,
    HARSH_ACCELERATION: Privilege.DRIVING,
    HARSH_CORNERING: Privilege.DRIVING,
    CHARGING_STARTED: Privilege.CHARGING,
    CHARGING_STOPPED: Privilege.CHARGING,
    ODOMETER_ROLLBACK: Privilege.ODOMETER,
}
#: The signals the detectors read.
INPUTS: Final = frozenset({SPEED, LATERAL, IS_CHARGING, ODOMETER})


@dataclass(frozen=True)
class EventParams:
    """The detectors' parameters.

    Attributes:
        score: The insurance score's parameters (harsh thresholds, `max_step_s`).
        harsh_cornering_mps2: Lateral acceleration that makes a harsh cornering, m/s^2.
        rollback_tolerance_km: Fall below the highest odometer reading tolerated, km.
    """

    score: ScoreParams = field(default_factory=ScoreParams)
    harsh_cornering_mps2: float = 4.0
    rollback_tolerance_km: float = 0.1


@dataclass(frozen=True)
class AppEvent:
    """One detected event.

    Attributes:
        name: One of `EVENTS`.
        ts: Time of the sample that completes it, unix ms.
        value: Its measure (mph/s, m/s^2, km; 1.0 for charging).
        duration_ms: Time it spans so far (the step for harsh events), ms.
        privilege: The privilege that reads it.
    """

    name: str
    ts: int
    value: float
    duration_ms: int
    privilege: Privilege


@dataclass
class DetectorState:
    """What the detectors remember of a vehicle between calls (JSON-able via `as_dict`)."""

    speed: tuple[int, float] | None = None
    braking_run: bool = False
    accelerating_run: bool = False
    cornering_run: bool = False
    charging: bool | None = None
    odometer_max: float | None = None
    rolled_back: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The state as JSON-able data."""
        return {
            "speed": None if self.speed is None else list(self.speed),
            "braking_run": self.braking_run,
            "accelerating_run": self.accelerating_run,
            "cornering_run": self.cornering_run,
            "charging": self.charging,
            "odometer_max": self.odometer_max,
            "rolled_back": self.rolled_back,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DetectorState:
        """The state `as_dict` wrote."""
        speed = data.get("speed")
        return cls(
            None if speed is None else (int(speed[0]), float(speed[1])),
            bool(data.get("braking_run")),
            bool(data.get("accelerating_run")),
            bool(data.get("cornering_run")),
            data.get("charging"),
            data.get("odometer_max"),
            bool(data.get("rolled_back")),
        )


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return None


def detect(
    samples: Mapping[str, Sequence[tuple[int, object]]],
    state: DetectorState,
    params: EventParams | None = None,
) -> list[AppEvent]:
    """Events in a vehicle's new samples (each signal's in time order), updating `state`.

    Samples at or before the last one seen of a signal are ignored (a replay changes nothing).
    """
    p = params or EventParams()
    out: list[AppEvent] = []
    max_step_ms = p.score.max_step_s * 1000
    for ts, raw in samples.get(SPEED, ()):
        kmh = _number(raw)
        if kmh is None or (state.speed is not None and ts <= state.speed[0]):
            continue
        if state.speed is not None and 0 < ts - state.speed[0] <= max_step_ms:
            t0, v0 = state.speed
            rate = (kmh - v0) / ((ts - t0) / 1000)
            braking, accelerating = harsh_steps(rate, p.score)
            if braking and not state.braking_run:
                mphps = -rate / KMH_PER_S_PER_MPHPS
                out.append(AppEvent(HARSH_BRAKING, ts, round(mphps, 6), ts - t0, Privilege.DRIVING))
            if accelerating and not state.accelerating_run:
                mphps = rate / KMH_PER_S_PER_MPHPS
                out.append(
                    AppEvent(HARSH_ACCELERATION, ts, round(mphps, 6), ts - t0, Privilege.DRIVING)
                )
            state.braking_run, state.accelerating_run = bool(braking), bool(accelerating)
        else:
            state.braking_run = state.accelerating_run = False
        state.speed = (ts, kmh)
    for ts, raw in samples.get(LATERAL, ()):
        lateral = _number(raw)
        if lateral is None:
            continue
        harsh = abs(lateral) >= p.harsh_cornering_mps2
        if harsh and not state.cornering_run:
            out.append(AppEvent(HARSH_CORNERING, ts, abs(lateral), 0, Privilege.DRIVING))
        state.cornering_run = harsh
    for ts, raw in samples.get(IS_CHARGING, ()):
        on = _number(raw)
        if on is None:
            continue
        charging = on >= 0.5
        if state.charging is not None and charging != state.charging:
            name = CHARGING_STARTED if charging else CHARGING_STOPPED
            out.append(AppEvent(name, ts, 1.0 if charging else 0.0, 0, Privilege.CHARGING))
        state.charging = charging
    for ts, raw in samples.get(ODOMETER, ()):
        km = _number(raw)
        if km is None:
            continue
        top = state.odometer_max
        if top is not None and km < top - p.rollback_tolerance_km:
            if not state.rolled_back:
                out.append(
                    AppEvent(ODOMETER_ROLLBACK, ts, round(top - km, 6), 0, Privilege.ODOMETER)
                )
            state.rolled_back = True
        else:
            state.rolled_back = False
        state.odometer_max = km if top is None else max(top, km)
    out.sort(key=lambda e: e.ts)
    return out
