"""`/apps/energy/...` charging control (COMMANDS), behind a governance feature flag."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from indexer.api.apps_energy_common import (
    FEATURE_COMMANDS,
    require_feature,
)
from indexer.api.deps import (
    Access,
    DbConn,
    VehicleId,
)
from indexer.api.problems import problem_response, problem_responses
from indexer.exceptions import PrivilegeMissing
from indexer.rights import contains
from protocol.privileges import Privilege
from protocol.problems import PROBLEM_BASE

router = APIRouter(prefix="/apps/energy", tags=["apps: energy"])


# -------------------------------------------------------------------------------------------
# charging control (COMMANDS)
# -------------------------------------------------------------------------------------------


class ChargingControlIn(BaseModel):
    """A request to pause or limit a vehicle's charging."""

    action: str = Field(pattern="^(pause|resume|limit)$", description="pause, resume or limit")
    limit_kw: float | None = Field(None, ge=0, description="For `limit`: the most power, kW")


@router.post(
    "/{vehicle_id}/charging-control",
    summary="Charging control (COMMANDS): behind the governance feature flag",
    responses=problem_responses(400, 401, 403, 404, 501),
)
def post_charging_control(
    vehicle_id: VehicleId, body: ChargingControlIn, coverage: Access, conn: DbConn
) -> Response:
    """403 `feature-disabled` while `FEATURE_COMMANDS_SCOPE` is off. With it on, a caller
    without the COMMANDS privilege gets 403; with it, 501: no command channel reaches the
    devices yet (the bridge only sends data)."""
    del body
    require_feature(conn, FEATURE_COMMANDS)
    if not contains(coverage.of(Privilege.COMMANDS), coverage.now_ms - 1):
        raise PrivilegeMissing(vehicle_id, {"COMMANDS": ["charging-control"]})
    return problem_response(
        {
            "type": PROBLEM_BASE + "command-channel-unavailable",
            "title": "No command channel",
            "status": 501,
            "detail": "devices receive no commands yet: the bridge only uploads data",
        }
    )
