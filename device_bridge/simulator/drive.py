"""Speed traces of trips: urban stop-and-go and highway cruising under acceleration limits."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["DRIVE_DT", "Leg", "SpeedTrace", "speed_trace", "stop_trace"]

DRIVE_DT = 0.1  # seconds between samples of a trip
_URBAN_ACCEL = (1.2, 2.4)  # m/s^2, drawn per block
_NORMAL_DECEL = (1.3, 2.5)  # m/s^2, below the harsh threshold
_HARSH_DECEL = (3.6, 5.2)  # m/s^2, above 7 mph/s
_HIGHWAY_ACCEL = 1.2


@dataclass(frozen=True, slots=True)
class Leg:
    """A part of a route: `urban` (stop-and-go) or `highway`, with its length in km."""

    kind: str
    km: float


@dataclass(slots=True)
class SpeedTrace:
    """A trip's speed samples every `DRIVE_DT` seconds, starting and ending at standstill.

    Attributes:
        speed: speed in m/s per sample.
        accel: acceleration in m/s^2 that led to the sample (0 for the first).
    """

    speed: list[float]
    accel: list[float]


class _Builder:
    def __init__(self, rng: random.Random, harsh_probability: float) -> None:
        self.rng = rng
        self.harsh = harsh_probability
        self.v = 0.0
        self.speed: list[float] = [0.0]
        self.accel: list[float] = [0.0]

    def _step(self, a: float, floor: float = 0.0) -> float:
        v_new = max(floor, self.v + a * DRIVE_DT)
        self.accel.append((v_new - self.v) / DRIVE_DT)
        self.speed.append(v_new)
        self.v = v_new
        return v_new * DRIVE_DT

    def hold(self, seconds: float) -> None:
        for _ in range(round(seconds / DRIVE_DT)):
            self._step(0.0)

    def block(
        self,
        metres: float,
        target: float,
        v_end: float,
        accel: float,
        decel: float,
        wander: float = 0.0,
    ) -> None:
        """Drive `metres` towards `target` m/s, arriving at `v_end` m/s."""
        s = 0.0
        cruise = target
        steps = 0
        limit = int(metres / max(0.5, min(target, 2.0)) / DRIVE_DT) + 20_000
        while s < metres and steps < limit:
            steps += 1
            remaining = metres - s
            brake_distance = (self.v**2 - v_end**2) / (2 * decel) if self.v > v_end else 0.0
            if wander and steps % 300 == 0:
                cruise = min(
                    target + 8 / 3.6, max(target - 8 / 3.6, cruise + self.rng.uniform(-1.5, 1.5))
                )
            if self.v > v_end and remaining <= brake_distance + self.v * DRIVE_DT:
                s += self._step(-decel, floor=v_end)
                if self.v <= v_end + 1e-9 and v_end == 0.0:
                    break
            elif self.v < cruise - 0.2:
                # acceleration falls off as speed rises (motor power limit)
                a = accel * min(1.0, 12.0 / max(self.v, 12.0))
                s += self._step(min(a, (cruise - self.v) / DRIVE_DT))
            elif self.v > cruise + 0.2:
                s += self._step(max(-0.6, (cruise - self.v) / DRIVE_DT))
            elif remaining < 0.5 and self.v <= 0.5:
                break
            else:
                s += self._step(self.rng.uniform(-0.05, 0.05) if self.v > 1 else 0.0)
        while self.v > v_end + 1e-9:
            self._step(-decel, floor=v_end)

    def _decel(self) -> float:
        if self.rng.random() < self.harsh:
            return self.rng.uniform(*_HARSH_DECEL)
        return self.rng.uniform(*_NORMAL_DECEL)

    def urban(self, km: float, last: bool) -> None:
        left = km * 1000.0
        while left > 1.0:
            block = min(left, self.rng.uniform(150.0, 800.0))
            if left - block < 100.0:
                block = left
            left -= block
            target = self.rng.uniform(30.0, 55.0) / 3.6
            stop = (left <= 1.0 and last) or self.rng.random() < 0.65
            v_end = 0.0 if stop else self.rng.uniform(12.0, 25.0) / 3.6
            self.block(block, target, v_end, self.rng.uniform(*_URBAN_ACCEL), self._decel())
            if stop and left > 1.0:
                self.hold(self.rng.uniform(3.0, 40.0))

    def highway(self, km: float, last: bool) -> None:
        target = self.rng.uniform(110.0, 130.0) / 3.6
        v_end = 0.0 if last else 50.0 / 3.6
        # an occasional hard slow-down in traffic, mid-way
        if self.rng.random() < self.harsh * 2 and km > 4:
            first = km * self.rng.uniform(0.3, 0.7)
            self.block(
                first * 1000.0,
                target,
                80.0 / 3.6,
                _HIGHWAY_ACCEL,
                self.rng.uniform(*_HARSH_DECEL),
                wander=1.0,
            )
            km -= first
        self.block(
            km * 1000.0, target, v_end, _HIGHWAY_ACCEL, self.rng.uniform(*_NORMAL_DECEL), wander=1.0
        )


def speed_trace(rng: random.Random, legs: list[Leg], harsh_probability: float) -> SpeedTrace:
    """Build the speed samples of a trip over `legs`.

    Args:
        rng: the vehicle's random source.
        legs: the route.
        harsh_probability: chance that a stop is a harsh braking (>= 7 mph/s).

    Returns:
        Samples every `DRIVE_DT` s from standstill to standstill.
    """
    builder = _Builder(rng, harsh_probability)
    for i, leg in enumerate(legs):
        last = i == len(legs) - 1
        if leg.kind == "highway":
            builder.highway(leg.km, last)
        else:
            builder.urban(leg.km, last)
    builder.hold(1.0)
    return SpeedTrace(builder.speed, builder.accel)


def stop_trace(cruise_kmh: float, decel_mps2: float, *, seed: int = 0) -> SpeedTrace:
    """A drive that reaches `cruise_kmh`, holds it, and brakes to a stop at `decel_mps2`:
    a braking of known strength, injected for tests of the events that watch for it.

    Args:
        cruise_kmh: speed before the braking, km/h.
        decel_mps2: the braking's constant deceleration, m/s^2 (7 mph/s is 3.129 m/s^2).
        seed: the random source's seed (the acceleration's wander).
    """
    builder = _Builder(random.Random(seed), 0.0)
    builder.block(2000.0, cruise_kmh / 3.6, 0.0, _HIGHWAY_ACCEL, decel_mps2, wander=0.0)
    builder.hold(2.0)
    return SpeedTrace(builder.speed, builder.accel)
