"""`/vehicles/{id}/trips` and `/vehicles/{id}/charging-sessions`: segments of telemetry.

Each needs its required signals covered at a common time (else a 403 problem); optional signals
the caller may not read only leave their fields null and are listed under `withheld`.
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from indexer.api.access import compose
from indexer.api.deps import Access, DbConn, End, Start, VehicleId
from indexer.api.models import COVERED_DOC, WithheldOut
from indexer.api.params import as_problem, check_window
from indexer.api.problems import problem_responses
from indexer.queries import (
    CHARGE_POWER,
    IGNITION,
    IS_CHARGING,
    ODOMETER,
    SOC,
    SPEED,
    charging_sessions,
    trips,
)

router = APIRouter(prefix="/vehicles", tags=["telemetry"])

_RESPONSES: Final = problem_responses(400, 401, 403, 404)


class TripOut(BaseModel):
    """A drive: activity without a long gap or an ignition-off."""

    start: int = Field(description="First active reading, unix ms")
    end: int = Field(description="Last active reading, unix ms")
    duration_s: float = Field(description="Seconds from start to end")
    max_speed_kmh: float | None = Field(description="Highest speed, km/h")
    avg_speed_kmh: float | None = Field(description="Mean of the speed readings, km/h")
    distance_km: float | None = Field(
        description="Odometer difference, km; null without odometer readings or rights"
    )


class TripsOut(BaseModel):
    """A vehicle's trips over a time range, within the caller's rights."""

    vehicle_id: int = Field(description="The vehicle")
    start: int = Field(description="Range start, unix ms")
    end: int = Field(description="Range end, unix ms")
    gap_s: float = Field(description="Longest pause inside a trip, s")
    min_s: float = Field(description="Shortest trip kept, s")
    covered: list[tuple[int, int]] = Field(description=COVERED_DOC)
    trips: list[TripOut] = Field(description="Trips, oldest first")
    withheld: list[WithheldOut] = Field(description="Signals left out (their fields are null)")


class ChargingSessionOut(BaseModel):
    """A run of charging readings."""

    start: int = Field(description="First charging reading, unix ms")
    end: int = Field(description="Last charging reading, unix ms")
    duration_s: float = Field(description="Seconds from start to end")
    soc_start: float | None = Field(description="State of charge at the start, percent")
    soc_end: float | None = Field(description="State of charge at the end, percent")
    soc_added: float | None = Field(description="Percentage points added")
    max_power_kw: float | None = Field(description="Highest charging power, kW")


class ChargingSessionsOut(BaseModel):
    """A vehicle's charging sessions over a time range, within the caller's rights."""

    vehicle_id: int = Field(description="The vehicle")
    start: int = Field(description="Range start, unix ms")
    end: int = Field(description="Range end, unix ms")
    gap_s: float = Field(description="Longest pause inside a session, s")
    min_s: float = Field(description="Shortest session kept, s")
    covered: list[tuple[int, int]] = Field(description=COVERED_DOC)
    sessions: list[ChargingSessionOut] = Field(description="Sessions, oldest first")
    withheld: list[WithheldOut] = Field(description="Signals left out (their fields are null)")


GapS = Annotated[
    float, Query(gt=0, le=86_400, description="Longest pause inside a trip or session, seconds")
]
MinS = Annotated[float, Query(ge=0, le=86_400 * 7, description="Shortest one kept, seconds")]


@router.get(
    "/{vehicle_id}/trips",
    response_model=TripsOut,
    summary="Trips: segments by ignition and speed",
    responses=_RESPONSES,
)
def get_trips(
    vehicle_id: VehicleId,
    coverage: Access,
    conn: DbConn,
    start: Start,
    end: End,
    gap_s: GapS = 300,
    min_s: MinS = 240,
) -> TripsOut:
    """Trips in `[start, end)`: speed > 0 or ignition on, split by gaps and ignition-off.

    Needs the privilege of speed and ignition state (DRIVING) for the times served; the
    odometer (ODOMETER) only fills `distance_km`.
    """
    check_window(start, end)
    base, within, withheld = compose(coverage, [SPEED, IGNITION], [ODOMETER], start, end)
    with as_problem():
        found = trips(
            conn, vehicle_id, start, end, gap_s=gap_s, min_duration_s=min_s, within=within
        )
    return TripsOut(
        vehicle_id=vehicle_id,
        start=start,
        end=end,
        gap_s=gap_s,
        min_s=min_s,
        covered=list(base),
        trips=[
            TripOut(
                start=t.start_ms,
                end=t.end_ms,
                duration_s=t.duration_s,
                max_speed_kmh=t.max_speed_kmh,
                avg_speed_kmh=t.avg_speed_kmh,
                distance_km=t.distance_km,
            )
            for t in found
        ],
        withheld=withheld,
    )


@router.get(
    "/{vehicle_id}/charging-sessions",
    response_model=ChargingSessionsOut,
    summary="Charging sessions",
    responses=_RESPONSES,
)
def get_charging_sessions(
    vehicle_id: VehicleId,
    coverage: Access,
    conn: DbConn,
    start: Start,
    end: End,
    gap_s: GapS = 300,
    min_s: MinS = 60,
) -> ChargingSessionsOut:
    """Charging sessions in `[start, end)`: runs of `Charging.IsCharging` true.

    Needs CHARGING for the times served; state of charge (BATTERY) and charging power
    (CHARGING) only fill their fields.
    """
    check_window(start, end)
    base, within, withheld = compose(coverage, [IS_CHARGING], [SOC, CHARGE_POWER], start, end)
    with as_problem():
        found = charging_sessions(
            conn, vehicle_id, start, end, gap_s=gap_s, min_duration_s=min_s, within=within
        )
    return ChargingSessionsOut(
        vehicle_id=vehicle_id,
        start=start,
        end=end,
        gap_s=gap_s,
        min_s=min_s,
        covered=list(base),
        sessions=[
            ChargingSessionOut(
                start=c.start_ms,
                end=c.end_ms,
                duration_s=(c.end_ms - c.start_ms) / 1000,
                soc_start=c.soc_start,
                soc_end=c.soc_end,
                soc_added=c.soc_added,
                max_power_kw=c.max_power_kw,
            )
            for c in found
        ],
        withheld=withheld,
    )
