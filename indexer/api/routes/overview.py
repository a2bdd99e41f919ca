"""`/overview`: the signed-in owner's whole fleet in one answer (the dApp's owner view).

Each vehicle comes with what its card shows: the latest value of every signal the owner may
read, live grants, open opt-ins, rewards and licence revenue; and the owner's devices. It is
composed from the same query functions as the per-vehicle routes, so the answers agree.
"""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from indexer.api.deps import Caller, Clock, DbConn, get_rights_cache
from indexer.api.models import DeviceOut, GrantOut, OptInOut, RevenueOut, VehicleOut
from indexer.api.pagination import MAX_LIMIT, PageParams
from indexer.api.problems import problem_responses
from indexer.api.routes.identity import (
    list_devices,
    list_vehicles,
    vehicle_grants,
    vehicle_opt_ins,
    vehicle_revenue,
)
from indexer.api.routes.rewards import AllocationOut, list_vehicle_rewards
from indexer.api.routes.telemetry import LatestValuesOut, get_latest
from indexer.exceptions import PrivilegeMissing
from indexer.queries import known_signals

router = APIRouter(prefix="/overview", tags=["identity"])

#: Most vehicles one overview holds (the first ones by id); an owner with more pages `/vehicles`.
MAX_VEHICLES: Final = 100
_ALL = PageParams(None, MAX_LIMIT)


class VehicleOverviewOut(BaseModel):
    """One vehicle of the owner with everything its card shows."""

    vehicle: VehicleOut = Field(description="The vehicle, as `GET /vehicles/{id}` gives it")
    latest: LatestValuesOut = Field(description="As `GET /vehicles/{id}/latest` gives it")
    grants: list[GrantOut] = Field(description="Live grants, as `/vehicles/{id}/grants`")
    opt_ins: list[OptInOut] = Field(description="Open opt-ins, as `/vehicles/{id}/opt-ins`")
    rewards: list[AllocationOut] = Field(description="As `GET /vehicles/{id}/rewards`")
    revenue: list[RevenueOut] = Field(description="As `GET /vehicles/{id}/revenue`")


class OverviewOut(BaseModel):
    """The signed-in owner's vehicles and devices."""

    owner: str = Field(description="The signed-in caller (EIP-55)")
    vehicles: list[VehicleOverviewOut] = Field(
        description=f"The caller's vehicles by id, at most {MAX_VEHICLES}"
    )
    more: bool = Field(description=f"Whether the caller owns more than {MAX_VEHICLES} vehicles")
    devices: list[DeviceOut] = Field(description="The caller's devices, by address")


@router.get(
    "",
    response_model=OverviewOut,
    summary="Your vehicles, each with its latest values, rights, rewards and revenue",
    responses=problem_responses(401),
)
def get_overview(request: Request, conn: DbConn, caller: Caller, clock: Clock) -> OverviewOut:
    """What the owner view needs in one request: the signed-in caller's vehicles (at most
    100), each with its latest readable values, live grants, open opt-ins, rewards and revenue;
    and the caller's devices."""
    page = list_vehicles(conn, PageParams(None, MAX_VEHICLES + 1), None, clock, owner=caller)
    owned = page.items[:MAX_VEHICLES]
    cache = get_rights_cache(request)
    known = known_signals(conn)
    out = []
    for vehicle in owned:
        coverage = cache.coverage(conn, vehicle.id, caller, int(clock() * 1000))
        try:
            latest = get_latest(vehicle.id, coverage, conn, known)
        except PrivilegeMissing:  # nothing readable (yet): the card says so
            latest = LatestValuesOut(
                vehicle_id=vehicle.id, at=coverage.now_ms, values=[], withheld=[]
            )
        out.append(
            VehicleOverviewOut(
                vehicle=vehicle,
                latest=latest,
                grants=vehicle_grants(conn, _ALL, clock, vehicle.id).items,
                opt_ins=vehicle_opt_ins(conn, _ALL, vehicle.id, active=True).items,
                rewards=list_vehicle_rewards(conn, vehicle.id, _ALL, clock).items,
                revenue=vehicle_revenue(conn, _ALL, vehicle.id).items,
            )
        )
    devices = list_devices(conn, _ALL, owner=caller).items
    return OverviewOut(
        owner=caller, vehicles=out, more=len(page.items) > MAX_VEHICLES, devices=devices
    )
