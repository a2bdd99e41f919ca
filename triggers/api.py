"""The registration API, compatible with DIMO's vehicle-triggers-api as its SDKs call it
(`VehicleTriggers`): webhooks under `/v1/webhooks`, with list, update, delete, test, vehicle
subscriptions (one, a list, all the caller may read), secret rotation and dead letters.

Callers authenticate with the platform's wallet access token (`Authorization: Bearer`, checked
by `protocol.jwt`). Every refusal is a typed RFC 9457 problem and changes nothing.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from typing import Annotated, Any, Final, Literal, cast

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine, delete, insert, select, update
from starlette.exceptions import HTTPException as StarletteHTTPException

from apps.events import EVENTS
from protocol.dimo_signals import SIGNALS, catalog_privilege
from protocol.jwt import (
    DEVELOPER_TOKEN_USE,
    JwtError,
    JwtExpired,
    access_claims,
    decode_jwt,
    verify_developer_token,
)
from protocol.privileges import Privilege
from protocol.problems import PROBLEM_JSON, problem_details
from triggers.conditions import compile_condition
from triggers.config import TriggersSettings
from triggers.evaluator import asset_did
from triggers.exceptions import (
    CooldownOutOfRange,
    InvalidField,
    RightsUnavailable,
    TriggersProblem,
    Unauthenticated,
    UnknownMetric,
    VehicleNotReadable,
    WebhookNotFound,
)
from triggers.rights import IndexerRights
from triggers.signing import new_message_id, new_secret
from triggers.tables import DeliveryState, deliveries, subscriptions, webhooks
from triggers.targets import TargetPolicy, check_target, origin
from triggers.verification import verify_target

__all__ = ["create_app"]

_DID_RE: Final = re.compile(r"did:(?:erc721|nft):(\d+):(0x[0-9a-fA-F]{40})[:_](\d{1,19})")
_bearer = HTTPBearer(auto_error=False, scheme_name="WalletJwt", bearerFormat="JWT")
SERVICES: Final = ("signals", "events")
STATUSES: Final = ("enabled", "disabled")


# -------------------------------------------------------------------------------------------
# request and response models (DIMO's names)
# -------------------------------------------------------------------------------------------


class RegisterWebhookRequest(BaseModel):
    """A new webhook (DIMO's `RegisterWebhookRequest`, plus `latency`)."""

    model_config = ConfigDict(extra="ignore")

    service: str = Field(description='"signals" or "events"')
    metric_name: str = Field(
        alias="metricName", description="DIMO signal name (e.g. speed) or event name"
    )
    condition: str = Field(description="CEL condition, e.g. `value > 100`")
    cool_down_period: int = Field(
        alias="coolDownPeriod", description="Least seconds between two firings"
    )
    target_url: str = Field(
        alias="targetURL", description="https endpoint that receives the webhooks"
    )
    verification_token: str = Field(alias="verificationToken", min_length=1, max_length=512)
    description: str = Field(default="", max_length=2000)
    display_name: str = Field(alias="displayName", default="", max_length=256)
    status: str = Field(default="enabled")
    latency: Literal["journaled", "anchored"] = Field(
        default="journaled",
        description="journaled: from the oracle's journal, fast; anchored: after the batch is "
        "anchored, with the reading's proof reference",
    )


class UpdateWebhookRequest(BaseModel):
    """Fields to change (DIMO's `UpdateWebhookRequest`); absent ones are kept."""

    model_config = ConfigDict(extra="ignore")

    condition: str | None = None
    cool_down_period: int | None = Field(alias="coolDownPeriod", default=None)
    target_url: str | None = Field(alias="targetURL", default=None)
    status: str | None = None
    description: str | None = Field(default=None, max_length=2000)
    display_name: str | None = Field(alias="displayName", default=None, max_length=256)


class VehicleListRequest(BaseModel):
    """Vehicles to subscribe (DIMO's `VehicleListRequest`)."""

    asset_dids: list[str] = Field(alias="assetDIDs", max_length=10_000)


class ReplayRequest(BaseModel):
    """Dead letters to deliver again (all of the webhook's when `ids` is absent)."""

    ids: list[str] | None = None


# -------------------------------------------------------------------------------------------
# problems
# -------------------------------------------------------------------------------------------


def _problem(request: Request, body: dict[str, Any]) -> JSONResponse:
    body.setdefault("instance", request.url.path)
    return JSONResponse(body, status_code=int(body["status"]), media_type=PROBLEM_JSON)


def _install_problems(app: FastAPI) -> None:
    @app.exception_handler(TriggersProblem)
    async def _typed(request: Request, exc: TriggersProblem) -> JSONResponse:
        return _problem(request, exc.problem())

    @app.exception_handler(RightsUnavailable)
    async def _no_rights(request: Request, exc: RightsUnavailable) -> JSONResponse:
        return _problem(
            request,
            problem_details(
                "rights-unavailable",
                "Rights cannot be checked now",
                503,
                f"{exc}; nothing was changed, try again",
            ),
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))} for e in exc.errors()
        ]
        return _problem(
            request,
            problem_details(
                "validation-error",
                "Request is not valid",
                422,
                "the request does not match the schema; see errors",
                errors=errors,
            ),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "bad-request")
        return _problem(
            request, problem_details(slug, str(exc.detail), exc.status_code, str(exc.detail))
        )


# -------------------------------------------------------------------------------------------
# dependencies
# -------------------------------------------------------------------------------------------


def _state(request: Request) -> Any:
    return request.app.state


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The account (lowercase) the request acts for: the signed-in wallet of a wallet access
    token, or the licence's client id of a developer JWT (what DIMO's SDKs send).

    Raises:
        Unauthenticated: no token, or one that does not check or has expired.
    """
    if credentials is None:
        raise Unauthenticated("this route needs `Authorization: Bearer <access token>`")
    s = cast(TriggersSettings, request.app.state.settings)
    token, key = credentials.credentials, s.jwt_secret.get_secret_value().encode()
    now = request.app.state.clock()
    try:
        if decode_jwt(token, key).get("token_use") == DEVELOPER_TOKEN_USE:
            developer = verify_developer_token(token, key, s.developer_jwt_issuer, now)
            return developer.client_id.lower()
        return access_claims(token, key, s.jwt_issuer, now).address.lower()
    except JwtExpired as exc:
        raise Unauthenticated(f"{exc}; sign in again") from exc
    except JwtError as exc:
        raise Unauthenticated(f"{exc.reason}; sign in again") from exc


Caller = Annotated[str, Depends(caller)]


def parse_vehicle(token_did: str) -> int:
    """The vehicle token id of a DIMO DID (`did:erc721:<chain>:<contract>:<id>`) or a bare id.

    Raises:
        InvalidField: neither.
    """
    if token_did.isdigit() and len(token_did) <= 19:
        return int(token_did)
    m = _DID_RE.fullmatch(token_did)
    if m is None:
        raise InvalidField(
            "tokenDID", f"{token_did[:120]!r} is not did:erc721:<chain>:<contract>:<token id>"
        )
    return int(m.group(3))


# -------------------------------------------------------------------------------------------
# the routes
# -------------------------------------------------------------------------------------------

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


def _now_ms(request: Request) -> int:
    return int(request.app.state.clock() * 1000)


def _own(engine: Engine, owner: str, webhook_id: str) -> Any:
    with engine.connect() as conn:
        row = conn.execute(
            select(webhooks).where(webhooks.c.id == webhook_id, webhooks.c.owner == owner)
        ).first()
    if row is None:
        raise WebhookNotFound(webhook_id)
    return row


def _view(r: Any) -> dict[str, Any]:
    return {
        "id": r.id,
        "service": r.service,
        "metricName": r.metric_name,
        "condition": r.condition,
        "targetURL": r.target_url,
        "coolDownPeriod": r.cooldown_s,
        "status": r.status,
        "description": r.description,
        "createdAt": _iso(r.created_ms),
        "updatedAt": _iso(r.updated_ms),
        "failureCount": r.failure_count,
        "displayName": r.display_name,
        "latency": r.latency,
        "allVehicles": bool(r.all_vehicles),
    }


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def _kind(
    service: str, metric: str
) -> tuple[Literal["float", "string", "location", "event"], Privilege]:
    if service == "events":
        if metric not in EVENTS:
            raise UnknownMetric(service, metric)
        return "event", EVENTS[metric]
    if service != "signals":
        raise InvalidField("service", f'{service!r} must be "signals" or "events"')
    spec = SIGNALS.get(metric)
    if spec is None or spec.vss is None:
        raise UnknownMetric(service, metric)
    return spec.kind, catalog_privilege(metric)


def _cooldown(value: int, s: TriggersSettings) -> int:
    if isinstance(value, bool) or not s.min_cooldown_s <= value <= s.max_cooldown_s:
        raise CooldownOutOfRange(value, s.min_cooldown_s, s.max_cooldown_s)
    return value


def _status(value: str) -> str:
    status = value.lower()
    if status not in STATUSES:
        raise InvalidField("status", f'{value!r} must be "enabled" or "disabled"')
    return status


@router.get("", summary="List your webhooks")
def list_webhooks(request: Request, owner: Caller) -> list[dict[str, Any]]:
    """Every webhook the caller registered."""
    with _state(request).engine.connect() as conn:
        rows = conn.execute(
            select(webhooks).where(webhooks.c.owner == owner).order_by(webhooks.c.created_ms)
        ).all()
    return [_view(r) for r in rows]


@router.post("", status_code=201, summary="Register a webhook")
def register_webhook(
    request: Request, owner: Caller, body: RegisterWebhookRequest
) -> dict[str, Any]:
    """Checks everything, verifies the target (it must echo the verification token), then
    stores the webhook. The answer carries the webhook's signing secret."""
    st = _state(request)
    s: TriggersSettings = st.settings
    kind, _ = _kind(body.service, body.metric_name)
    compile_condition(body.condition, kind, s.max_condition_cost)
    cooldown = _cooldown(body.cool_down_period, s)
    status = _status(body.status)
    check_target(body.target_url, st.policy)
    verify_target(body.target_url, body.verification_token, st.policy, s)
    webhook_id = str(uuid.uuid4())
    secret = new_secret()
    now = _now_ms(request)
    with st.engine.begin() as conn:
        conn.execute(
            insert(webhooks).values(
                id=webhook_id,
                owner=owner,
                service=body.service,
                metric_name=body.metric_name,
                condition=body.condition,
                cooldown_s=cooldown,
                target_url=body.target_url,
                status=status,
                description=body.description,
                display_name=body.display_name or webhook_id,
                latency=body.latency,
                all_vehicles=False,
                secret=secret,
                previous_secret=None,
                previous_secret_until_ms=None,
                failure_count=0,
                created_ms=now,
                updated_ms=now,
            )
        )
    return {"id": webhook_id, "message": "Webhook registered successfully", "secret": secret}


@router.get("/signals", summary="Signals a webhook may watch")
def webhook_signals(_: Caller) -> list[dict[str, Any]]:
    """DIMO's signal names the platform carries, with unit, value type and privilege."""
    return [
        {
            "name": sig.name,
            "unit": sig.unit or "",
            "valueType": {"float": "float64", "string": "string", "location": "location"}[sig.kind],
            "permissions": [
                "privilege:GetLocationHistory"
                if sig.privilege >= 3
                else "privilege:GetNonLocationHistory"
            ],
            "description": sig.vss or "",
        }
        for sig in SIGNALS.values()
        if sig.vss is not None
    ]


@router.get("/events", summary="Events a webhook may watch")
def webhook_events(_: Caller) -> list[dict[str, Any]]:
    """The app detectors' events and the privilege each needs."""
    return [{"name": n, "privilege": str(p.name)} for n, p in EVENTS.items()]


@router.get("/vehicles/{token_did}", summary="Your webhooks a vehicle is subscribed to")
def vehicle_subscriptions(request: Request, owner: Caller, token_did: str) -> list[dict[str, Any]]:
    """The caller's webhooks that watch the vehicle (one by one, or through `all`)."""
    vehicle = parse_vehicle(token_did)
    st = _state(request)
    w, sb = webhooks.c, subscriptions.c
    with st.engine.connect() as conn:
        rows = conn.execute(
            select(w.id, w.description, w.all_vehicles, w.created_ms, sb.created_ms.label("at"))
            .select_from(
                webhooks.outerjoin(
                    subscriptions, (sb.webhook_id == w.id) & (sb.vehicle_id == vehicle)
                )
            )
            .where(w.owner == owner, (sb.vehicle_id == vehicle) | w.all_vehicles)
        ).all()
    did = asset_did(st.settings.chain_id, st.settings.vehicle_contract, vehicle)
    return [
        {
            "webhookId": r.id,
            "assetDid": did,
            "createdAt": _iso(r.at if r.at is not None else r.created_ms),
            "description": r.description,
        }
        for r in rows
    ]


@router.get("/{webhook_id}", summary="Vehicles subscribed to a webhook")
def subscribed_vehicles(request: Request, owner: Caller, webhook_id: str) -> list[str]:
    """The DIDs of the vehicles subscribed one by one (`all` is shown in the webhook)."""
    st = _state(request)
    _own(st.engine, owner, webhook_id)
    with st.engine.connect() as conn:
        ids = conn.execute(
            select(subscriptions.c.vehicle_id)
            .where(subscriptions.c.webhook_id == webhook_id)
            .order_by(subscriptions.c.vehicle_id)
        ).scalars()
        return [asset_did(st.settings.chain_id, st.settings.vehicle_contract, int(v)) for v in ids]


@router.put("/{webhook_id}", summary="Update a webhook")
def update_webhook(
    request: Request, owner: Caller, webhook_id: str, body: UpdateWebhookRequest
) -> dict[str, Any]:
    """Changes the given fields; service and metric stay. A new target is checked again."""
    st = _state(request)
    s: TriggersSettings = st.settings
    row = _own(st.engine, owner, webhook_id)
    values: dict[str, Any] = {}
    if body.condition is not None:
        kind, _ = _kind(row.service, row.metric_name)
        compile_condition(body.condition, kind, s.max_condition_cost)
        values["condition"] = body.condition
    if body.cool_down_period is not None:
        values["cooldown_s"] = _cooldown(body.cool_down_period, s)
    if body.target_url is not None:
        check_target(body.target_url, st.policy)
        values["target_url"] = body.target_url
    if body.status is not None:
        values["status"] = _status(body.status)
    if body.description is not None:
        values["description"] = body.description
    if body.display_name is not None:
        values["display_name"] = body.display_name
    values["updated_ms"] = _now_ms(request)
    with st.engine.begin() as conn:
        conn.execute(update(webhooks).where(webhooks.c.id == webhook_id).values(**values))
    return {"id": webhook_id, "message": "Webhook updated successfully"}


@router.delete("/{webhook_id}", summary="Delete a webhook")
def delete_webhook(request: Request, owner: Caller, webhook_id: str) -> dict[str, str]:
    """Deletes the webhook, its subscriptions and its pending deliveries."""
    st = _state(request)
    _own(st.engine, owner, webhook_id)
    with st.engine.begin() as conn:
        conn.execute(delete(subscriptions).where(subscriptions.c.webhook_id == webhook_id))
        conn.execute(delete(deliveries).where(deliveries.c.webhook_id == webhook_id))
        conn.execute(delete(webhooks).where(webhooks.c.id == webhook_id))
    return {"message": "Webhook deleted successfully"}


def _check_readable(request: Request, owner: str, row: Any, vehicle: int) -> None:
    _, privilege = _kind(row.service, row.metric_name)
    rights: IndexerRights = _state(request).rights
    if not rights.access(owner, vehicle).live(privilege):
        raise VehicleNotReadable(vehicle, str(privilege.name))


def _subscribe(request: Request, webhook_id: str, vehicles: list[int]) -> None:
    st = _state(request)
    now = _now_ms(request)
    sb = subscriptions.c
    with st.engine.begin() as conn:
        have = set(
            conn.execute(
                select(sb.vehicle_id).where(
                    sb.webhook_id == webhook_id, sb.vehicle_id.in_(vehicles)
                )
            ).scalars()
        )
        new = [
            {"webhook_id": webhook_id, "vehicle_id": v, "created_ms": now}
            for v in vehicles
            if v not in have
        ]
        if new:
            conn.execute(insert(subscriptions), new)


@router.post("/{webhook_id}/subscribe/all", summary="Subscribe every vehicle you may read")
def subscribe_all(request: Request, owner: Caller, webhook_id: str) -> dict[str, str]:
    """The webhook watches every vehicle whose signal the caller may read, now and later;
    each firing checks the rights of that moment."""
    st = _state(request)
    _own(st.engine, owner, webhook_id)
    with st.engine.begin() as conn:
        conn.execute(update(webhooks).where(webhooks.c.id == webhook_id).values(all_vehicles=True))
    return {"message": "Subscribed all vehicles you may read"}


@router.post("/{webhook_id}/subscribe/list", summary="Subscribe a list of vehicles")
def subscribe_list(
    request: Request, owner: Caller, webhook_id: str, body: VehicleListRequest
) -> dict[str, Any]:
    """Subscribes every vehicle of the list, or none: one the caller may not read refuses
    the whole list."""
    row = _own(_state(request).engine, owner, webhook_id)
    vehicles = [parse_vehicle(d) for d in body.asset_dids]
    for vehicle in vehicles:
        _check_readable(request, owner, row, vehicle)
    _subscribe(request, webhook_id, sorted(set(vehicles)))
    return {"message": f"Subscribed {len(set(vehicles))} vehicles", "failedSubscriptions": []}


@router.post("/{webhook_id}/subscribe/{token_did}", summary="Subscribe one vehicle")
def subscribe_vehicle(
    request: Request, owner: Caller, webhook_id: str, token_did: str
) -> dict[str, str]:
    """Subscribes a vehicle whose watched signal or event the caller may read now."""
    row = _own(_state(request).engine, owner, webhook_id)
    vehicle = parse_vehicle(token_did)
    _check_readable(request, owner, row, vehicle)
    _subscribe(request, webhook_id, [vehicle])
    return {"message": "Vehicle subscribed successfully"}


@router.delete("/{webhook_id}/unsubscribe/all", summary="Unsubscribe every vehicle")
def unsubscribe_all(request: Request, owner: Caller, webhook_id: str) -> dict[str, str]:
    """Removes every subscription of the webhook, and its `all`."""
    st = _state(request)
    _own(st.engine, owner, webhook_id)
    with st.engine.begin() as conn:
        conn.execute(delete(subscriptions).where(subscriptions.c.webhook_id == webhook_id))
        conn.execute(update(webhooks).where(webhooks.c.id == webhook_id).values(all_vehicles=False))
    return {"message": "Unsubscribed all vehicles"}


@router.delete("/{webhook_id}/unsubscribe/{token_did}", summary="Unsubscribe one vehicle")
def unsubscribe_vehicle(
    request: Request, owner: Caller, webhook_id: str, token_did: str
) -> dict[str, str]:
    """Removes one vehicle's subscription."""
    st = _state(request)
    _own(st.engine, owner, webhook_id)
    vehicle = parse_vehicle(token_did)
    with st.engine.begin() as conn:
        conn.execute(
            delete(subscriptions).where(
                subscriptions.c.webhook_id == webhook_id, subscriptions.c.vehicle_id == vehicle
            )
        )
    return {"message": "Vehicle unsubscribed successfully"}


@router.post("/{webhook_id}/test", summary="Send a test delivery")
def test_webhook(request: Request, owner: Caller, webhook_id: str) -> dict[str, str]:
    """Queues a signed test delivery (`"test": true`, no vehicle data) through the outbox."""
    st = _state(request)
    row = _own(st.engine, owner, webhook_id)
    now = _now_ms(request)
    message_id = new_message_id()
    body = {
        "id": message_id,
        "test": True,
        "service": row.service,
        "metricName": row.metric_name,
        "webhookId": row.id,
        "webhookName": row.display_name,
        "condition": row.condition,
    }
    with st.engine.begin() as conn:
        conn.execute(
            insert(deliveries).values(
                id=message_id,
                webhook_id=row.id,
                vehicle_id=-1,
                privilege=0,
                reading_ms=now,
                target=origin(row.target_url),
                payload=json.dumps(body, separators=(",", ":")),
                state=DeliveryState.PENDING.value,
                attempts=0,
                next_attempt_ms=now,
                lease_until_ms=0,
                created_ms=now,
                received_ms=now,
            )
        )
    return {"id": message_id, "message": "Test delivery queued"}


@router.post("/{webhook_id}/secret", summary="Rotate the signing secret")
def rotate_secret(request: Request, owner: Caller, webhook_id: str) -> dict[str, Any]:
    """A new secret signs from now on; the previous one signs too for `secret_overlap_s`."""
    st = _state(request)
    row = _own(st.engine, owner, webhook_id)
    now = _now_ms(request)
    secret = new_secret()
    until = now + st.settings.secret_overlap_s * 1000
    with st.engine.begin() as conn:
        conn.execute(
            update(webhooks)
            .where(webhooks.c.id == webhook_id)
            .values(
                secret=secret,
                previous_secret=row.secret,
                previous_secret_until_ms=until,
                updated_ms=now,
            )
        )
    return {"id": webhook_id, "secret": secret, "previousSecretValidUntil": _iso(until)}


@router.get("/{webhook_id}/dead-letters", summary="Deliveries that ran out of retries")
def dead_letters(request: Request, owner: Caller, webhook_id: str) -> list[dict[str, Any]]:
    """The webhook's dead-lettered deliveries, oldest first, with their payload."""
    st = _state(request)
    _own(st.engine, owner, webhook_id)
    d = deliveries.c
    with st.engine.connect() as conn:
        rows = conn.execute(
            select(deliveries)
            .where(d.webhook_id == webhook_id, d.state == DeliveryState.DEAD.value)
            .order_by(d.created_ms)
        ).all()
    return [
        {
            "id": r.id,
            "attempts": r.attempts,
            "createdAt": _iso(r.created_ms),
            "lastError": r.last_error,
            "payload": json.loads(r.payload),
        }
        for r in rows
    ]


@router.post("/{webhook_id}/dead-letters/replay", summary="Deliver dead letters again")
def replay_dead_letters(
    request: Request, owner: Caller, webhook_id: str, body: ReplayRequest | None = None
) -> dict[str, Any]:
    """Puts dead letters back in the outbox with a fresh retry window (same `webhook-id`)."""
    st = _state(request)
    _own(st.engine, owner, webhook_id)
    now = _now_ms(request)
    d = deliveries.c
    query = update(deliveries).where(
        d.webhook_id == webhook_id, d.state == DeliveryState.DEAD.value
    )
    if body is not None and body.ids is not None:
        query = query.where(d.id.in_(body.ids))
    with st.engine.begin() as conn:
        done = conn.execute(
            query.values(
                state=DeliveryState.PENDING.value,
                attempts=0,
                next_attempt_ms=now,
                lease_until_ms=0,
                created_ms=now,
            )
        )
    return {"replayed": done.rowcount}


# -------------------------------------------------------------------------------------------
# the app
# -------------------------------------------------------------------------------------------


def create_app(
    settings: TriggersSettings,
    engine: Engine,
    rights: IndexerRights,
    *,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """The registration API over the triggers store `engine`."""
    app = FastAPI(
        title="Vehicle triggers",
        version="1.0",
        description="Webhooks on vehicle signals and events, compatible with DIMO's "
        "vehicle-triggers-api; signed with Standard Webhooks.",
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.rights = rights
    app.state.clock = clock
    app.state.policy = TargetPolicy(settings.network == "live", settings.allow_loopback)
    _install_problems(app)
    app.include_router(router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
