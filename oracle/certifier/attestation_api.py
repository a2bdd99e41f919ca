"""The attestation host: DIMO's `POST /v2/attestation/...` routes, answering as DIMO's SDKs
expect, each issuing a credential signed by the oracle quorum (`attestations.py`).

Routes (bodies JSON, times RFC 3339):

- `POST /v2/attestation/vin/{tokenId}` `{salt?}`: the VIN credential. The owner reveals the
  salt of the vehicle's VIN commitment once (`salt`, 32 bytes hex); the service keeps a salt
  that opened the commitment, so later calls, such as the SDKs' with no body, need none;
- `POST /v2/attestation/odometer-statement/{tokenId}` `{timestamp?}`;
- `POST /v2/attestation/vehicle-health/{tokenId}` `{startTime, endTime}`;
- `POST /v2/attestation/vehicle-position/{tokenId}` `{timestamp}`, for a caller with the
  location privilege;
- `GET /v2/attestation/credentials/{cid}`: a stored credential.

Each answers `{message, cid, credential, ...}`; the VIN route adds `vcUrl` and `vcQuery`, and
its message is the one the Python SDK compares. Errors are RFC 9457 problems; nothing is
signed or stored for a refused request.

Authorisation lives in one dependency, `caller`: today the indexer's wallet JWT, passed on to
the indexer, whose rights engine answers for every reading; the vehicle JWT of DIMO's token
exchange replaces it there.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Annotated, Any, Final, TypeVar

from fastapi import Depends, FastAPI, Header, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from oracle.certifier.attestations import (
    Caller,
    CredentialIssuer,
    StatementBuilder,
    StatementRequest,
    state,
)
from oracle.certifier.battery import BatteryChecker
from oracle.certifier.chain import CertifierChain
from oracle.certifier.config import AttestationSettings
from oracle.certifier.exceptions import (
    AttestationError,
    AttestationRequestInvalid,
    AttestationUnauthenticated,
)
from oracle.certify import CheckerUnavailable, StatementRefused
from oracle.exceptions import OracleConfigError
from oracle.quorum import problem_json
from protocol.blobstore import BlobStore, BlobStoreError, LocalCidStore
from protocol.cid import InvalidCid
from protocol.credentials import CredentialKind, ms_of_iso
from protocol.deployment import Deployment

__all__ = [
    "VIN_MESSAGE",
    "SaltBook",
    "build_attestation_app",
    "caller",
    "create_attestation_app",
    "statement_builder",
]

log = logging.getLogger(__name__)

#: The VIN route's success message, compared verbatim by `dimo-python-sdk`'s `get_vin`.
VIN_MESSAGE: Final = (
    "VC generated successfully. Retrieve using the provided GQL URL and query parameter."
)
_VIN_QUERY: Final = (
    "query { vinVCLatest(tokenId: %d) { vin recordedBy recordedAt countryCode "
    "vehicleContractAddress validFrom validTo rawVC } }"
)
#: The largest token id a path accepts (DIMO's GraphQL `Int` is 32 bits).
MAX_TOKEN_ID: Final = 2**31 - 1
T = TypeVar("T")

TokenId = Annotated[int, PathParam(ge=1, le=MAX_TOKEN_ID, description="Vehicle token id")]
# DIMO's path parameter is `tokenId`; the routes take it by that name.


def caller(authorization: Annotated[str | None, Header()] = None) -> Caller:
    """The one authorisation dependency of every attestation route.

    Raises:
        AttestationUnauthenticated: no bearer token.
    """
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AttestationUnauthenticated("no bearer token in `Authorization`")
    return Caller(token.strip())


CallerDep = Annotated[Caller, Depends(caller)]


class SaltBook:
    """Salts that opened a vehicle's VIN commitment, kept in one JSON file (0600)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def get(self, vehicle_id: int) -> bytes | None:
        """The salt kept for a vehicle, if any."""
        with self._lock:
            found = self._load().get(str(vehicle_id))
        return None if found is None else bytes.fromhex(found)

    def put(self, vehicle_id: int, salt: bytes) -> None:
        """Keeps a salt that opened the vehicle's commitment."""
        with self._lock:
            book = self._load()
            book[str(vehicle_id)] = salt.hex()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(book, sort_keys=True))
            tmp.chmod(0o600)
            tmp.replace(self.path)

    def _load(self) -> dict[str, str]:
        if not self.path.exists():
            return {}
        loaded: dict[str, str] = json.loads(self.path.read_text())
        return loaded


# --------------------------------------------------------------------------------------------
# Bodies
# --------------------------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VinBody(_Body):
    salt: str | None = Field(
        default=None, description="The VIN commitment's salt, 32 bytes hex (once, by the owner)"
    )


class OdometerBody(_Body):
    timestamp: str | None = Field(default=None, description="RFC 3339; default: now")


class HealthBody(_Body):
    startTime: str = Field(description="RFC 3339")  # noqa: N815 (DIMO's name)
    endTime: str = Field(description="RFC 3339")  # noqa: N815 (DIMO's name)


class PositionBody(_Body):
    timestamp: str = Field(description="RFC 3339")


B = TypeVar("B", bound=_Body)


async def _body(request: Request, model: type[B]) -> B:
    raw = await request.body()
    try:
        data = json.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        raise AttestationRequestInvalid(f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise AttestationRequestInvalid("the body is not a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise AttestationRequestInvalid(errors) from None


def _ms(name: str, text: str) -> int:
    try:
        ms = ms_of_iso(text)
    except ValueError as exc:
        raise AttestationRequestInvalid(f"{name} {text!r} is not an RFC 3339 time: {exc}") from None
    if ms < 0:
        raise AttestationRequestInvalid(f"{name} {text!r} is before 1970")
    return ms


# --------------------------------------------------------------------------------------------
# The app
# --------------------------------------------------------------------------------------------


def create_attestation_app(
    builder: StatementBuilder,
    issuer: CredentialIssuer,
    store: BlobStore,
    salts: SaltBook,
    *,
    telemetry_url: str,
) -> FastAPI:
    """The attestation host.

    Args:
        builder: States credentials from verified data.
        issuer: Signs, stores and relays them.
        store: The blob store credentials are read back from.
        salts: Revealed VIN salts.
        telemetry_url: Base URL of the telemetry GraphQL host (the VIN answer's `vcUrl`).
    """
    app = FastAPI(title="DIMO attestations", version="2")

    @app.exception_handler(AttestationError)
    async def _refused(_: Request, exc: AttestationError) -> JSONResponse:
        return problem_json(exc.status, exc.slug, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return problem_json(422, "invalid-request", f"invalid attestation request: {errors}")

    @app.exception_handler(StatementRefused)
    async def _statement(_: Request, exc: StatementRefused) -> JSONResponse:
        return problem_json(422, "statement-refused", str(exc), refusal=exc.reason)

    @app.exception_handler(CheckerUnavailable)
    async def _down(_: Request, exc: CheckerUnavailable) -> JSONResponse:
        log.warning("attestation could not be checked: %s", exc.reason)
        return problem_json(503, "checker-unavailable", str(exc))

    async def issued(
        who: Caller, asked: StatementRequest, message: str, **extra: Any
    ) -> dict[str, Any]:
        def work() -> dict[str, Any]:
            done = issuer.issue(state(builder, who, asked), asked, who)
            if asked.kind is CredentialKind.VIN:
                salts.put(asked.vehicle_id, asked.salt)
            return {
                "message": message,
                **extra,
                "cid": done.cid,
                "credential": done.document,
                "supersedingTx": done.superseding_tx,
            }

        return await run_in_threadpool(work)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "signers": [s.address for s in issuer.signers]}

    @app.post("/v2/attestation/vin/{tokenId}", summary="Attest the vehicle's VIN")
    async def vin(tokenId: TokenId, request: Request, who: CallerDep) -> Any:  # noqa: N803
        token_id = tokenId
        body = await _body(request, VinBody)
        if body.salt is not None:
            try:
                salt = bytes.fromhex(body.salt.removeprefix("0x"))
            except ValueError:
                raise AttestationRequestInvalid("salt is not hex") from None
        else:
            kept = salts.get(token_id)
            if kept is None:
                raise AttestationRequestInvalid(
                    f"no salt for vehicle {token_id}'s VIN commitment was revealed yet; the "
                    "owner sends it once as `salt`"
                )
            salt = kept

        return await issued(
            who,
            StatementRequest(CredentialKind.VIN, token_id, salt=salt),
            VIN_MESSAGE,
            vcUrl=telemetry_url.rstrip("/") + "/query",
            vcQuery=_VIN_QUERY % token_id,
        )

    @app.post("/v2/attestation/odometer-statement/{tokenId}", summary="Attest the odometer")
    async def odometer(tokenId: TokenId, request: Request, who: CallerDep) -> Any:  # noqa: N803
        token_id = tokenId
        body = await _body(request, OdometerBody)
        at = builder.now_ms() if body.timestamp is None else _ms("timestamp", body.timestamp)
        return await issued(
            who,
            StatementRequest(CredentialKind.ODOMETER, token_id, at_ms=at),
            "Odometer statement VC generated successfully.",
        )

    @app.post("/v2/attestation/vehicle-health/{tokenId}", summary="Attest the vehicle's health")
    async def health(tokenId: TokenId, request: Request, who: CallerDep) -> Any:  # noqa: N803
        token_id = tokenId
        body = await _body(request, HealthBody)
        start, end = _ms("startTime", body.startTime), _ms("endTime", body.endTime)
        if end <= start:
            raise AttestationRequestInvalid(
                f"endTime {body.endTime} is not after startTime {body.startTime}"
            )
        return await issued(
            who,
            StatementRequest(CredentialKind.HEALTH, token_id, start_ms=start, end_ms=end),
            "Vehicle health VC generated successfully.",
        )

    @app.post("/v2/attestation/vehicle-position/{tokenId}", summary="Attest the vehicle's position")
    async def position(tokenId: TokenId, request: Request, who: CallerDep) -> Any:  # noqa: N803
        token_id = tokenId
        body = await _body(request, PositionBody)
        at = _ms("timestamp", body.timestamp)
        # The location privilege is checked here, before anything is read or signed.
        await run_in_threadpool(builder.require_location, who, token_id, at)
        return await issued(
            who,
            StatementRequest(CredentialKind.POSITION, token_id, at_ms=at),
            "Vehicle position VC generated successfully.",
        )

    @app.get("/v2/attestation/credentials/{cid}", summary="A stored credential by CID")
    def stored(cid: str) -> Any:
        try:
            return json.loads(store.get(cid))
        except (BlobStoreError, InvalidCid, ValueError) as exc:
            return problem_json(404, "unknown-credential", f"no credential {cid}: {exc}")

    return app


def statement_builder(settings: AttestationSettings, deployment: Deployment) -> StatementBuilder:
    """The statement builder the settings describe (the host's and each certifier's)."""
    return StatementBuilder(
        settings.api_url,
        CertifierChain(settings.rpc_url, deployment),
        BatteryChecker(settings.api_url, settings.rpc_url, deployment),
        vin_valid_ms=settings.vin_valid_days * 86_400_000,
        odometer_window_ms=settings.odometer_window_days * 86_400_000,
        position_max_age_ms=settings.position_max_age_s * 1000,
    )


def build_attestation_app(settings: AttestationSettings) -> FastAPI:
    """The attestation host as the settings describe it (`dimo certify attestations`).

    Raises:
        DeploymentError: the deployment record is missing or incomplete.
        OracleConfigError: no oracle key.
    """
    keys = [k.get_secret_value() for k in settings.keys]
    if not keys:
        raise OracleConfigError("DIMO_ATTEST_KEYS", "the attestation service needs oracle keys")
    deployment = Deployment.load(settings.deployment)
    builder = statement_builder(settings, deployment)
    store = LocalCidStore(settings.blob_dir)
    relayer = settings.relayer_key.get_secret_value() if settings.relayer_key else keys[0]
    issuer = CredentialIssuer(
        builder.chain, keys, store, relayer_key=relayer, certifier_urls=settings.certifier_urls
    )
    salts = SaltBook(settings.blob_dir.parent / "attestation-salts.json")
    return create_attestation_app(
        builder, issuer, store, salts, telemetry_url=settings.telemetry_url
    )
