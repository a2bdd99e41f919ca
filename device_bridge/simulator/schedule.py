"""Weekly habits of a driver: commutes, errands and weekend trips, planned day by day."""

from __future__ import annotations

import random
from dataclasses import dataclass

from device_bridge.simulator.drive import Leg

__all__ = ["DriverProfile", "PlannedTrip", "draw_profile", "plan_days"]

DAY = 86_400


@dataclass(frozen=True, slots=True)
class DriverProfile:
    """Habits drawn once per vehicle.

    Attributes:
        commute_km: one-way commute length.
        commute_highway: share of the commute on the highway.
        leave_hour: usual departure to work (local hours).
        work_hours: hours at work.
        home_charger_kw: the home wallbox (7.4 or 11 kW).
        charge_below: plug in at home in the evening when SoC is below this (percent).
        charge_target: home charging stops at this SoC (percent).
        night_start_hour: off-peak hour the home charging starts at (None = on arrival).
        dc_probability: chance per trip away from home of a fast-charging top-up.
        harsh_probability: chance that a stop is a harsh braking.
        climate_mean: mean ambient temperature (Celsius).
    """

    commute_km: float
    commute_highway: float
    leave_hour: float
    work_hours: float
    home_charger_kw: float
    charge_below: float
    charge_target: float
    night_start_hour: float | None
    dc_probability: float
    harsh_probability: float
    climate_mean: float


@dataclass(frozen=True, slots=True)
class PlannedTrip:
    """A trip the driver means to make.

    Attributes:
        depart: planned departure, epoch microseconds.
        legs: the route.
        purpose: `commute`, `errand` or `weekend`.
        to_home: the trip ends at home (where the wallbox is).
    """

    depart: int
    legs: tuple[Leg, ...]
    purpose: str
    to_home: bool

    @property
    def km(self) -> float:
        """Planned route length."""
        return sum(leg.km for leg in self.legs)


def draw_profile(rng: random.Random) -> DriverProfile:
    """Draw a driver's habits."""
    return DriverProfile(
        commute_km=rng.uniform(6.0, 35.0),
        commute_highway=rng.choice((0.0, 0.3, 0.5, 0.7)),
        leave_hour=rng.uniform(6.5, 9.0),
        work_hours=rng.uniform(8.0, 9.5),
        home_charger_kw=rng.choice((7.4, 11.0)),
        charge_below=rng.uniform(60.0, 80.0),
        charge_target=rng.choice((80.0, 90.0, 100.0)),
        night_start_hour=rng.choice((None, 22.0, 23.0)),
        dc_probability=rng.uniform(0.03, 0.12),
        harsh_probability=rng.uniform(0.002, 0.012),
        climate_mean=rng.uniform(4.0, 24.0),
    )


def _route(km: float, highway: float, reverse: bool = False) -> tuple[Leg, ...]:
    if highway <= 0.0 or km < 8.0:
        return (Leg("urban", km),)
    town = km * (1.0 - highway) / 2.0
    legs = (Leg("urban", town), Leg("highway", km * highway), Leg("urban", town))
    return tuple(reversed(legs)) if reverse else legs


def _at(day_start: int, hour: float) -> int:
    return day_start + round(hour * 3600.0) * 1_000_000


def plan_days(
    rng: random.Random, profile: DriverProfile, start: int, days: int, first_weekday: int
) -> list[PlannedTrip]:
    """Plan every trip of `days` days from `start` (epoch microseconds at a midnight).

    Args:
        rng: the vehicle's random source.
        profile: the driver's habits.
        start: midnight of the first day, epoch microseconds.
        days: number of days.
        first_weekday: weekday of the first day (0 = Monday).

    Returns:
        Trips in departure order.
    """
    trips: list[PlannedTrip] = []
    for day in range(days):
        day_start = start + day * DAY * 1_000_000
        if (first_weekday + day) % 7 < 5:
            leave = profile.leave_hour + rng.gauss(0.0, 0.2)
            km = profile.commute_km * rng.uniform(0.97, 1.05)
            trips.append(
                PlannedTrip(
                    _at(day_start, leave), _route(km, profile.commute_highway), "commute", False
                )
            )
            if rng.random() < 0.3:
                lunch = rng.uniform(12.0, 12.8)
                short = rng.uniform(1.5, 5.0)
                trips.append(
                    PlannedTrip(_at(day_start, lunch), _route(short, 0.0), "errand", False)
                )
                trips.append(
                    PlannedTrip(
                        _at(day_start, lunch + rng.uniform(0.4, 0.8)),
                        _route(short, 0.0),
                        "errand",
                        False,
                    )
                )
            back = leave + profile.work_hours + rng.gauss(0.0, 0.3)
            trips.append(
                PlannedTrip(
                    _at(day_start, back),
                    _route(km, profile.commute_highway, reverse=True),
                    "commute",
                    True,
                )
            )
            if rng.random() < 0.4:
                out = rng.uniform(max(back + 1.2, 18.5), 20.5)
                errand = rng.uniform(2.0, 12.0)
                trips.append(PlannedTrip(_at(day_start, out), _route(errand, 0.0), "errand", False))
                trips.append(
                    PlannedTrip(
                        _at(day_start, out + rng.uniform(0.3, 1.0)),
                        _route(errand, 0.0),
                        "errand",
                        True,
                    )
                )
        else:
            end_hour = 9.0
            if rng.random() < 0.45:
                leave = rng.uniform(9.0, 11.0)
                km = rng.uniform(50.0, 180.0)
                stay = rng.uniform(2.0, 5.0)
                trips.append(PlannedTrip(_at(day_start, leave), _route(km, 0.8), "weekend", False))
                back = leave + km / 90.0 + stay
                trips.append(
                    PlannedTrip(
                        _at(day_start, back), _route(km, 0.8, reverse=True), "weekend", True
                    )
                )
                end_hour = back + km / 90.0 + 0.5
            if rng.random() < 0.7 and end_hour < 17.0:
                out = rng.uniform(max(end_hour, 10.0), 17.5)
                errand = rng.uniform(3.0, 15.0)
                trips.append(PlannedTrip(_at(day_start, out), _route(errand, 0.0), "errand", False))
                trips.append(
                    PlannedTrip(
                        _at(day_start, out + rng.uniform(0.4, 1.5)),
                        _route(errand, 0.0),
                        "errand",
                        True,
                    )
                )
    trips.sort(key=lambda trip: trip.depart)
    return trips
