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
- `GET /v2/attestation/credentials/{cid}`: a stored credential, only to a caller whose rights
  cover now what it states (below).

Each answers `{message, cid, credential, ...}`; the VIN route adds `vcUrl` and `vcQuery`, and
its message is the one the Python SDK compares. Errors are RFC 9457 problems; nothing is
signed or stored for a refused request.

Issuing authorisation lives in one dependency, `caller`: the indexer's wallet JWT or the 10-minute
vehicle JWT of DIMO's token exchange (`POST /v1/tokens/exchange`), passed on to the indexer,
whose rights engine answers for every reading, on every request (a sale or an expired grant
ends access inside the token's life). With the indexer's token key (`VehicleTokens`) the host
also checks a vehicle JWT itself first: its MAC, expiry and vehicle, and that its privileges
name one the route needs (VIN: GetVINCredential; odometer and health: GetNonLocationHistory
or GetLiveData; position: a location privilege). Problems carry DIMO's `code` and `message`
besides RFC 9457's members, which DIMO's SDKs show.

A stored credential states readings (a VIN, an odometer, battery health, a position), so it
is served by the same rights as its issue, checked again on every read (`reader`, then
`StatementBuilder.require_stated`): the host reads the document, takes its subject vehicle and
kind from it (`struct_of`, the subject DID of this deployment's VehicleId), and asks the
indexer, with the caller's token, whether its rights cover now each reading the evidence
names at its time (a health credential: the battery method's required signals over its
window). A vehicle JWT must also be for that vehicle and hold a privilege the kind's route
needs (`KIND_ROUTES`, `ROUTE_SCOPES`; a position: the location privilege). A missing token, or
one the host refuses itself before reading the store, is a 401; every other refusal, and an
unknown CID, is one and the same 404 `unknown-credential` problem, so that a caller without
rights cannot learn that a CID exists.

Each credential issued is also submitted to the indexer's index of credentials
(`POST /credentials`), which the Telemetry GraphQL's `vinVCLatest` reads.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, TypeVar

import httpx
from fastapi import Depends, FastAPI, Header, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from oracle.certifier.attestations import (
    Caller,
    CredentialDocuments,
    CredentialIssuer,
    StatementBuilder,
    StatementRequest,
    state,
)
from oracle.certifier.battery import BatteryChecker
from oracle.certifier.chain import CertifierChain
from oracle.certifier.config import AttestationSettings
from oracle.certifier.exceptions import (
    AttestationCredentialUnknown,
    AttestationError,
    AttestationNotIndexed,
    AttestationPrivilegeMissing,
    AttestationRequestInvalid,
    AttestationTokenExpired,
    AttestationTokenOtherVehicle,
    AttestationUnauthenticated,
    AttestationUnknownVehicle,
)
from oracle.certify import CheckerUnavailable, StatementRefused
from oracle.exceptions import OracleConfigError
from oracle.quorum import problem_json
from protocol.blobstore import BlobStore, BlobStoreError, LocalCidStore
from protocol.cid import InvalidCid
from protocol.credentials import CredentialKind, ms_of_iso, struct_of, vehicle_did
from protocol.deployment import Deployment
from protocol.jwt import (
    VEHICLE_TOKEN_USE,
    JwtError,
    JwtExpired,
    VehicleToken,
    decode_jwt,
    verify_vehicle_token,
)
from protocol.privileges import DIMO_PRIVILEGES, Privilege, scopes_of_dimo_ids

__all__ = [
    "KIND_ROUTES",
    "VIN_MESSAGE",
    "CredentialIndex",
    "SaltBook",
    "VehicleTokens",
    "build_attestation_app",
    "caller",
    "create_attestation_app",
    "readable",
    "reader",
    "salt_book_path",
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


@dataclass(frozen=True)
class VehicleTokens:
    """How the host checks vehicle JWTs itself: the indexer's HS256 token key and the issuer
    its vehicle JWTs name (the indexer's `DIMO_INDEXER_JWT_SECRET` and `SIWE_URI`)."""

    key: bytes
    issuer: str


#: The scope each route's credential needs, by route, for the early check of a vehicle JWT.
ROUTE_SCOPES: Final = {
    "vin": Privilege.VIN,
    "odometer-statement": Privilege.ODOMETER,
    "vehicle-health": Privilege.BATTERY,
    "vehicle-position": Privilege.LOCATION,
}


#: The route of each kind, whose `ROUTE_SCOPES` entry a reader of its credentials needs too.
KIND_ROUTES: Final = {
    CredentialKind.VIN: "vin",
    CredentialKind.ODOMETER: "odometer-statement",
    CredentialKind.HEALTH: "vehicle-health",
    CredentialKind.POSITION: "vehicle-position",
}


def _bearer_token(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AttestationUnauthenticated("no bearer token in `Authorization`")
    return token


def _vehicle_jwt(request: Request, token: str, *, strict: bool) -> VehicleToken | None:
    """The vehicle JWT `token` is, checked here; None for another token, or any token when the
    host has no `VehicleTokens`. `strict`: a token whose MAC does not check under the key, or
    a wallet token past its `exp`, is refused here rather than left to the indexer.

    Raises:
        AttestationUnauthenticated, AttestationTokenExpired.
    """
    tokens: VehicleTokens | None = request.app.state.vehicle_tokens
    if tokens is None:
        return None
    now = request.app.state.now()
    try:
        claims = decode_jwt(token, tokens.key)
    except JwtError as exc:
        if strict:
            raise AttestationUnauthenticated(f"the token is refused: {exc.reason}") from None
        return None  # not one of the indexer's: the indexer refuses it
    if claims.get("token_use") != VEHICLE_TOKEN_USE:
        exp = claims.get("exp")
        if strict and type(exp) is int and now >= exp:
            raise AttestationTokenExpired(exp)
        return None
    try:
        return verify_vehicle_token(token, tokens.key, tokens.issuer, now)
    except JwtExpired as exc:
        raise AttestationTokenExpired(exc.expired_at) from None
    except JwtError as exc:
        raise AttestationUnauthenticated(f"the vehicle JWT is refused: {exc.reason}") from None


def _privilege_refusal(
    checked: VehicleToken, vehicle_id: int, route: str
) -> AttestationPrivilegeMissing | None:
    """The refusal of a vehicle JWT none of whose privileges the route's credential needs."""
    need = ROUTE_SCOPES.get(route)
    held = scopes_of_dimo_ids(i for i in checked.privileges if i in DIMO_PRIVILEGES)
    if need is None or held & need:
        return None
    granting = [f"{i} {name}" for i, (name, scopes) in DIMO_PRIVILEGES.items() if scopes & need]
    return AttestationPrivilegeMissing(
        vehicle_id,
        " or ".join(granting),
        f"the vehicle JWT holds privileges {sorted(checked.privileges)}; exchange one with "
        f"privilege {' or '.join(g.split()[0] for g in granting)} for the {route} credential",
    )


def caller(
    request: Request,
    tokenId: TokenId,  # noqa: N803 (DIMO's path parameter)
    authorization: Annotated[str | None, Header()] = None,
) -> Caller:
    """The one authorisation dependency of every issuing route.

    A wallet access token, or any token when the host has no `VehicleTokens`, goes to the
    indexer as it is. A vehicle JWT is checked here first: MAC, issuer, expiry, its vehicle
    against the path's, and its privileges against what the route states.

    Raises:
        AttestationUnauthenticated: no bearer token, or a vehicle JWT that does not check.
        AttestationTokenExpired: a vehicle JWT past its `exp`.
        AttestationTokenOtherVehicle: a vehicle JWT of another vehicle.
        AttestationPrivilegeMissing: a vehicle JWT without a privilege the route needs.
    """
    token = _bearer_token(authorization)
    checked = _vehicle_jwt(request, token, strict=False)
    if checked is None:
        return Caller(token)
    if checked.vehicle_id != tokenId:
        raise AttestationTokenOtherVehicle(checked.asset, tokenId)
    refusal = _privilege_refusal(checked, tokenId, request.url.path.rstrip("/").split("/")[-2])
    if refusal is not None:
        raise refusal
    return Caller(token, checked.vehicle_id, checked.privileges)


def reader(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> tuple[Caller, VehicleToken | None]:
    """The authorisation dependency of `GET /v2/attestation/credentials/{cid}`, which has no
    vehicle in its path: the caller and its checked vehicle JWT, if it sent one.

    Whatever the host can check itself is checked before the store is read, so that a 401
    says nothing about the CID: with `VehicleTokens`, a token whose MAC does not check, and a
    wallet or vehicle token past its `exp`.

    Raises:
        AttestationUnauthenticated: no bearer token, or one refused here.
        AttestationTokenExpired: a token past its `exp`.
    """
    token = _bearer_token(authorization)
    checked = _vehicle_jwt(request, token, strict=True)
    if checked is None:
        return Caller(token), None
    return Caller(token, checked.vehicle_id, checked.privileges), checked


CallerDep = Annotated[Caller, Depends(caller)]
ReaderDep = Annotated[tuple[Caller, VehicleToken | None], Depends(reader)]


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


class CredentialIndex:
    """The indexer's index of credentials (`POST /credentials`), which the Telemetry
    GraphQL's `vinVCLatest` reads; the indexer keeps a credential only once it verifies."""

    def __init__(self, api_url: str, *, timeout_s: float = 60.0) -> None:
        self.url = api_url.rstrip("/") + "/credentials"
        self._http = httpx.Client(timeout=timeout_s)

    def submit(self, cid: str, document: dict[str, Any]) -> None:
        """Submits an issued credential.

        Raises:
            AttestationNotIndexed: the indexer did not answer, or refused it.
        """
        try:
            r = self._http.post(self.url, json=document)
        except httpx.HTTPError as exc:
            raise AttestationNotIndexed(cid, f"{self.url}: {exc}") from None
        if r.status_code != 200:
            raise AttestationNotIndexed(cid, f"{self.url} answered {r.status_code}: {r.text[:300]}")

    def close(self) -> None:
        """Closes the HTTP client."""
        self._http.close()


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
    vehicle_tokens: VehicleTokens | None = None,
    index: CredentialIndex | None = None,
) -> FastAPI:
    """The attestation host.

    Args:
        builder: States credentials from verified data.
        issuer: Signs, stores and relays them.
        store: The blob store credentials are read back from.
        salts: Revealed VIN salts.
        telemetry_url: Base URL of the telemetry GraphQL host (the VIN answer's `vcUrl`).
        vehicle_tokens: The indexer's token key, to check vehicle JWTs here too; None: the
            indexer alone checks them.
        index: The indexer's index of credentials each credential is submitted to; None:
            none (`vinVCLatest` then never sees them).
    """
    app = FastAPI(title="DIMO attestations", version="2")
    app.state.vehicle_tokens = vehicle_tokens
    app.state.now = lambda: builder.now_ms() / 1000

    def problem(status: int, slug: str, detail: str, **extra: Any) -> JSONResponse:
        # DIMO's `code` and `message` too: DIMO's SDKs show them.
        return problem_json(status, slug, detail, code=status, message=detail, **extra)

    @app.exception_handler(AttestationError)
    async def _refused(_: Request, exc: AttestationError) -> JSONResponse:
        return problem(exc.status, exc.slug, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return problem(422, "invalid-request", f"invalid attestation request: {errors}")

    @app.exception_handler(StatementRefused)
    async def _statement(_: Request, exc: StatementRefused) -> JSONResponse:
        return problem(422, "statement-refused", str(exc), refusal=exc.reason)

    @app.exception_handler(CheckerUnavailable)
    async def _down(_: Request, exc: CheckerUnavailable) -> JSONResponse:
        log.warning("attestation could not be checked: %s", exc.reason)
        return problem(503, "checker-unavailable", str(exc))

    async def issued(
        who: Caller, asked: StatementRequest, message: str, **extra: Any
    ) -> dict[str, Any]:
        def work() -> dict[str, Any]:
            done = issuer.issue(state(builder, who, asked), asked, who)
            if asked.kind is CredentialKind.VIN:
                salts.put(asked.vehicle_id, asked.salt)
            if index is not None:
                index.submit(done.cid, done.document)
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
    async def stored(cid: str, who: ReaderDep) -> Any:
        return await run_in_threadpool(readable, builder, issuer.documents, store, cid, *who)

    return app


def readable(
    builder: StatementBuilder,
    documents: CredentialDocuments,
    store: BlobStore,
    cid: str,
    asker: Caller,
    checked: VehicleToken | None,
) -> Any:
    """The stored credential `cid`, if the caller's rights cover now what it states.

    Raises:
        AttestationCredentialUnknown: no such credential, or one the caller may not read:
            the one answer for both, so that it does not tell whether the CID exists.
        CheckerUnavailable: the indexer or the chain did not answer.
    """
    unknown = AttestationCredentialUnknown(cid)
    try:
        document = json.loads(store.get(cid))
        struct = struct_of(document)
        subject = document["credentialSubject"]["id"]
    except (BlobStoreError, InvalidCid, KeyError, TypeError, ValueError):
        raise unknown from None
    vehicle, kind = struct.vehicle_id, struct.kind
    if subject != vehicle_did(documents.chain_id, documents.vehicle_contract, vehicle):
        raise unknown
    if checked is not None and (
        checked.vehicle_id != vehicle
        or _privilege_refusal(checked, vehicle, KIND_ROUTES[kind]) is not None
    ):
        raise unknown
    try:
        builder.require_stated(asker, vehicle, kind, document)
    except (
        AttestationPrivilegeMissing,
        AttestationUnknownVehicle,
        AttestationUnauthenticated,
        StatementRefused,
    ):
        raise unknown from None
    return document


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
    salts = SaltBook(salt_book_path(settings.blob_dir))
    secret = settings.jwt_secret
    return create_attestation_app(
        builder,
        issuer,
        store,
        salts,
        telemetry_url=settings.telemetry_url,
        vehicle_tokens=(
            None
            if secret is None
            else VehicleTokens(secret.get_secret_value().encode(), settings.vehicle_jwt_issuer)
        ),
        index=CredentialIndex(settings.api_url) if settings.index_credentials else None,
    )


def salt_book_path(blob_dir: Path) -> Path:
    """Where a host whose content store is `blob_dir` keeps revealed VIN salts (beside it)."""
    return blob_dir.parent / "attestation-salts.json"
