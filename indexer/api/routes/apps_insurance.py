"""`/apps/insurance/...`: the driving score, its method, the driver's export, a trip chart.

An insurer reads scores through a licence or a direct grant with the DRIVING scope (speed and
ignition state); location is never read. Every answer lists the inputs (batch, leaf) whose
proofs `POST /apps/proofs` serves, so `dimo apps insurance --audit` recomputes it.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from apps import insurance as method
from apps.insurance import SIGNALS, VERSION, ScoreParams, score
from indexer.api.access import rights_for
from indexer.api.deps import (
    Access,
    DbConn,
    Settings,
    VehicleId,
    WindowEnd,
    WindowStart,
    deployment_of,
)
from indexer.api.models import envelope
from indexer.api.params import check_window, parse_json_params
from indexer.api.problems import problem_responses
from indexer.apps import insurance
from indexer.exceptions import AppParameterInvalid
from indexer.queries import SPEED

router = APIRouter(prefix="/apps/insurance", tags=["apps: insurance"])

_RESPONSES: Final = problem_responses(400, 401, 403, 404)
#: Longest window one chart draws (its speed trace is read whole).
MAX_CHART_MS: Final = 86_400_000

Params = Annotated[
    str | None,
    Query(
        max_length=4000,
        description="Parameters as a JSON object (names of GET /apps/insurance/method's "
        "`defaults`); omitted ones keep their defaults",
        examples=['{"timezone": "Europe/Berlin", "braking_weight": 4}'],
    ),
]


class MethodOut(BaseModel):
    """The published method: version, formula and default parameters."""

    version: str = Field(description="Method version; results carry it")
    signals: list[str] = Field(description="The signals read (DRIVING)")
    formula: str = Field(description="The method, as documented in indexer/apps/insurance.py")
    defaults: dict[str, Any] = Field(description="Default parameters")


@router.get("/method", response_model=MethodOut, summary="The score's formula and parameters")
def get_method() -> MethodOut:
    """The formula, its weights and thresholds: what every score is computed with."""
    return MethodOut(
        version=VERSION,
        signals=list(SIGNALS),
        formula=method.__doc__ or "",
        defaults=ScoreParams().as_dict(),
    )


def parse_params(text: str | None) -> ScoreParams:
    """`ScoreParams` from the `params` query.

    Raises:
        AppParameterInvalid: not a JSON object, an unknown name or a bad value (400).
    """
    try:
        return ScoreParams.from_dict(parse_json_params(text))
    except TypeError as exc:
        raise AppParameterInvalid("params", str(exc)) from None


def _json(body: dict[str, Any]) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":"), allow_nan=False), media_type="application/json"
    )


@router.get(
    "/{vehicle_id}/score",
    summary="The driving score over a window, per trip and event, with its inputs",
    responses=_RESPONSES,
)
def get_score(
    vehicle_id: VehicleId,
    coverage: Access,
    conn: DbConn,
    start: WindowStart,
    end: WindowEnd,
    params: Params = None,
) -> Response:
    """The score (0-100, higher is safer) from the readings your DRIVING rights cover.

    The answer is the applications' envelope: `context.params` and `context.version` are what
    the pure function took, `covered` the times per signal, `inputs` every bundle read, and
    `result` the score with penalties, exposure, trips and events (each with its readings).
    """
    check_window(start, end)
    p = parse_params(params)
    within, withheld = rights_for(coverage, list(SIGNALS), [], start, end)
    result = insurance.score_vehicle(conn, vehicle_id, start, end, within=within[SPEED], params=p)
    body = result.to_dict()
    return _json(
        envelope(
            "insurance",
            vehicle_id,
            start,
            end,
            {"version": VERSION, "vehicle_id": vehicle_id, "params": p.as_dict()},
            within,
            withheld,
            [(b, leaf) for b, leaf in result.inputs],
            body,
        )
    )


@router.get(
    "/{vehicle_id}/export",
    summary="The signed readings and proofs of a window, as a file that verifies offline",
    responses=_RESPONSES,
)
def get_export(
    vehicle_id: VehicleId,
    coverage: Access,
    conn: DbConn,
    request: Request,
    settings: Settings,
    start: WindowStart,
    end: WindowEnd,
    params: Params = None,
) -> Response:
    """Every input bundle with its Merkle path, its batch's root, CID and anchoring
    transaction, the chain id and anchor address, and the score computed from them.
    `dimo apps insurance --verify FILE` checks it with no server.

    A schema-2 bundle goes in by the openings of the score's two signals alone (its other
    signals as names and commitments), so the file discloses nothing else of the vehicle. A
    schema-1 bundle is exported only whole, so it must hold only readings your rights cover
    (e.g. no position without LOCATION). Otherwise a 403 `bundle-not-disclosable` problem
    names the signals you may not read.
    """
    check_window(start, end)
    p = parse_params(params)
    within, _ = rights_for(coverage, list(SIGNALS), [], start, end)
    deployment = deployment_of(request, settings)
    doc = insurance.build_export(
        conn,
        vehicle_id,
        start,
        end,
        chain_id=deployment.chain_id,
        anchor=deployment.contract("AttestationAnchor").address,
        within=within[SPEED],
        coverage=coverage,
        params=p,
    )
    return Response(
        json.dumps(doc, separators=(",", ":"), allow_nan=False),
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="insurance-{vehicle_id}-{start}-{end}'
            '.json"'
        },
    )


@router.get(
    "/{vehicle_id}/chart.png",
    summary="Speed trace with the driving events marked, as PNG",
    responses={**_RESPONSES, 200: {"content": {"image/png": {}}}},
    response_class=Response,
)
def get_chart(
    vehicle_id: VehicleId,
    coverage: Access,
    conn: DbConn,
    start: WindowStart,
    end: WindowEnd,
    params: Params = None,
) -> Response:
    """The speed readings of `[start, end)` (at most a day) with each event of the score
    marked on them: harsh braking, harsh acceleration, high speed, night."""
    check_window(start, end)
    if end - start > MAX_CHART_MS:
        raise AppParameterInvalid("start/end", f"a chart spans at most {MAX_CHART_MS} ms")
    p = parse_params(params)
    within, _ = rights_for(coverage, list(SIGNALS), [], start, end)
    speed, ignition = insurance.read_inputs(conn, vehicle_id, start, end, within[SPEED])
    result = score(vehicle_id, start, end, speed, ignition, p)
    return Response(insurance.trip_chart(result, speed), media_type="image/png")
