"""Dependencies of the API's routes, as `Annotated` aliases: `DbConn`, `Caller`, `Settings`,
`Access` (the caller's rights on the path's vehicle), `VehicleId`, `Start`, `End`, ...

The ones that do no I/O are `async def`, so FastAPI runs them on the event loop instead of
hopping to a worker thread for each (a request pays those hops, not just its queries)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Annotated, Any, Final, TypeGuard, cast

import anyio
from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import DBAPIError

from indexer.api.auth import TokenCache, TokenClaims
from indexer.config import IndexerSettings
from indexer.exceptions import (
    InvalidToken,
    TokenRejected,
    VehicleTokenExpired,
    VehicleTokenOtherVehicle,
)
from indexer.rights import Coverage, RightsCache
from protocol.deployment import Deployment
from protocol.jwt import JwtError, JwtExpired, verify_vehicle_token
from protocol.privileges import ALL_PRIVILEGES, DIMO_PRIVILEGES, Privilege, scopes_of_dimo_ids

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="SiweJwt",
    bearerFormat="JWT",
    description="Access token from POST /auth/login (Sign-In with Ethereum).",
)


async def get_settings(request: Request) -> IndexerSettings:
    """The settings the app was created with."""
    return cast(IndexerSettings, request.app.state.settings)


async def get_engine(request: Request) -> Engine:
    """The app's database engine."""
    return cast(Engine, request.app.state.engine)


async def get_clock(request: Request) -> Callable[[], float]:
    """The app's clock (unix seconds); tests may give the app their own."""
    return cast("Callable[[], float]", request.app.state.clock)


def get_engine_of(request: Request) -> Engine:
    """The app's database engine (a plain function, for routes that run their own thread)."""
    return cast(Engine, request.app.state.engine)


def get_read_engine_of(request: Request) -> Engine:
    """The app's engine in autocommit, for routes that only read: each statement is its own
    transaction, so no BEGIN and ROLLBACK round trips (under PostgreSQL's default READ
    COMMITTED each statement sees its own snapshot inside a transaction as well)."""
    state = request.app.state
    found = getattr(state, "read_engine", None)
    if found is None:
        found = cast(Engine, state.engine).execution_options(isolation_level="AUTOCOMMIT")
        state.read_engine = found
    return cast(Engine, found)


#: Limiters by name, made on first use (an anyio limiter needs the running event loop).
_limiters: dict[str, anyio.CapacityLimiter] = {}


def _limiter(name: str, tokens: int) -> anyio.CapacityLimiter:
    found = _limiters.get(name)
    if found is None:
        found = _limiters[name] = anyio.CapacityLimiter(tokens)
    return found


def db_limiter() -> anyio.CapacityLimiter:
    """Threads that may hold a connection at once (`DB_CONCURRENCY`), for routes that run
    their database work in one `anyio.to_thread.run_sync(..., limiter=db_limiter())`."""
    return _limiter("db", DB_CONCURRENCY)


def telemetry_db_limiter() -> anyio.CapacityLimiter:
    """Threads of this process that may run a Telemetry GraphQL query's database work at once
    (`TELEMETRY_DB_CONCURRENCY`)."""
    return _limiter("telemetry", TELEMETRY_DB_CONCURRENCY)


class LoopConnections:
    """One connection for each event loop's own use, for database work small enough to run in
    the loop's thread (the Telemetry GraphQL's small queries, `INLINE_COST`).

    The loop never waits on the shared pool for it: it is checked out by a worker thread the
    first time (a full pool's holders may need the loop to give their connections back), then
    kept, one pool slot a loop, and checked out again only if it broke. The work runs one job at
    a time (synchronously, in the loop's thread), each ended by a rollback, which in autocommit
    costs no round trip. `engine.dispose()` closes them all.

    Args:
        engine: The engine to check out from (e.g. the autocommit read engine).
        owner: The engine whose `dispose()` closes them (the app's engine).
    """

    def __init__(self, engine: Engine, owner: Engine) -> None:
        self._engine = engine
        self._held: dict[int, Connection] = {}
        self._lock = threading.Lock()
        event.listen(owner, "engine_disposed", lambda _engine: self.close())

    async def run(self, fn: Callable[[Connection], Any]) -> Any:
        """`fn(conn)` in the calling (event loop's) thread, with this loop's connection."""
        key = threading.get_ident()
        conn = self._held.get(key)
        if not _usable(conn):
            conn = await self._connect(key)
        try:
            return fn(conn)
        finally:
            try:
                conn.rollback()
            except DBAPIError:  # the connection broke: the next job checks out another
                conn.invalidate()

    async def _connect(self, key: int) -> Connection:
        fresh = await anyio.to_thread.run_sync(self._engine.connect)
        with self._lock:
            held = self._held.get(key)
            unused: Connection | None
            if _usable(held):  # another job of this loop checked one out meanwhile
                kept, unused = held, fresh
            else:
                kept, unused = fresh, held
                self._held[key] = fresh
        if unused is not None:
            with contextlib.suppress(DBAPIError):  # a broken one has nothing to give back
                unused.close()
        return kept

    def close(self) -> None:
        """Closes every loop's connection (a later job checks out a new one)."""
        with self._lock:
            held, self._held = list(self._held.values()), {}
        for conn in held:
            with contextlib.suppress(DBAPIError):  # a broken one has nothing to give back
                conn.close()


def _usable(conn: Connection | None) -> TypeGuard[Connection]:
    """Whether `conn` is there and can still serve (not closed, not invalidated)."""
    return conn is not None and not conn.closed and not conn.invalidated


def loop_connections(request: Request) -> LoopConnections:
    """The app's `LoopConnections`, over its autocommit read engine, made on first use."""
    state = request.app.state
    found = getattr(state, "loop_connections", None)
    if found is None:
        found = state.loop_connections = LoopConnections(
            get_read_engine_of(request), cast(Engine, state.engine)
        )
    return cast(LoopConnections, found)


def get_conn(engine: Annotated[Engine, Depends(get_engine)]) -> Iterator[Connection]:
    """A connection for the request; a route that writes calls `conn.commit()`."""
    with engine.connect() as conn:
        yield conn


async def optional_claims(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> TokenClaims | None:
    """The caller's checked token claims, or None for an anonymous request.

    Raises:
        InvalidToken, TokenExpired: a token was sent but is not good (never anonymous then).
    """
    if credentials is None:
        return None
    state = request.app.state
    return token_cache(state).verify(
        credentials.credentials,
        state.jwt_key,
        cast(IndexerSettings, state.settings).siwe_domain,
        cast("Callable[[], float]", state.clock)(),
    )


def token_cache(state: Any) -> TokenCache:
    """The app's cache of verified tokens (made on first use, on the event loop)."""
    found = getattr(state, "token_cache", None)
    if found is None:
        found = TokenCache()
        state.token_cache = found
    return cast(TokenCache, found)


async def current_claims(
    claims: Annotated[TokenClaims | None, Depends(optional_claims)],
) -> TokenClaims:
    """The caller's checked token claims.

    Raises:
        TokenRejected: no bearer token was sent.
    """
    if claims is None:
        raise TokenRejected()
    return claims


async def current_caller(claims: Annotated[TokenClaims, Depends(current_claims)]) -> str:
    """The checksummed wallet address that signed in."""
    return claims.address


async def optional_caller(
    claims: Annotated[TokenClaims | None, Depends(optional_claims)],
) -> str | None:
    """The signed-in wallet address, or None where anonymous callers are allowed."""
    return None if claims is None else claims.address


async def signed_in_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """`current_caller` in one dependency instead of three (the same checks, errors and
    OpenAPI security), for the hottest routes: FastAPI pays for each dependency it solves.

    Raises:
        TokenRejected: no bearer token was sent.
        InvalidToken, TokenExpired: the token is not good.
    """
    if credentials is None:
        raise TokenRejected()
    state = request.app.state
    return (
        token_cache(state)
        .verify(
            credentials.credentials,
            state.jwt_key,
            cast(IndexerSettings, state.settings).siwe_domain,
            cast("Callable[[], float]", state.clock)(),
        )
        .address
    )


#: The settings the app runs with.
Settings = Annotated[IndexerSettings, Depends(get_settings)]
#: Requests that may hold a connection at once: the engine's default pool (5 + 10 overflow).
#: Past it a request waits without a worker thread; blocking threads in the pool's checkout
#: would starve the holders of threads to finish on (a deadlock until the pool timeout).
DB_CONCURRENCY: Final = 15
#: The Telemetry GraphQL's bound. Its database work is mostly Python (aggregating, building
#: proofs) under one GIL: more threads only take turns at it, and their hand-offs cost CPU,
#: which is what runs out first. Server CPU per proof query at 300 queries a second on 2 cores
#: (docs/performance.md): 7.1 ms with 15 threads, 5.5-5.7 with 3, 4.9-5.1 with 2, 4.5-4.7
#: with 1. The event loop still reads, plans and answers other queries meanwhile. A small
#: query (`INLINE_COST` in indexer/api/graphql/telemetry.py) skips the thread altogether.
TELEMETRY_DB_CONCURRENCY: Final = 1
#: A database connection for this request (commit explicitly to write).
DbConn = Annotated[Connection, Depends(get_conn, max_concurrency=DB_CONCURRENCY)]
#: The authenticated wallet address (checksummed); 401 problem without a good token.
Caller = Annotated[str, Depends(current_caller)]
#: `Caller` solved as one dependency (for the hottest routes).
SignedIn = Annotated[str, Depends(signed_in_caller)]
#: The authenticated wallet address, or None for an anonymous caller.
OptionalCaller = Annotated[str | None, Depends(optional_caller)]
#: The authenticated caller's whole token (address, issue, expiry and sign-in times).
Claims = Annotated[TokenClaims, Depends(current_claims)]
#: The app's clock in unix seconds.
Clock = Annotated[Callable[[], float], Depends(get_clock)]

# -------------------------------------------------------------------------------------------
# path and query parameters
# -------------------------------------------------------------------------------------------

#: Largest id of a vehicle (the index stores ids as 64-bit integers).
INT64_MAX: Final = (1 << 63) - 1
#: Largest time accepted, unix ms (the largest integer a JSON number holds exactly).
MAX_MS: Final = (1 << 53) - 1

#: A vehicle's token id in the path.
VehicleId = Annotated[int, Path(ge=0, le=INT64_MAX, description="Vehicle token id")]
#: A signal's COVESA VSS name in the path.
SignalName = Annotated[
    str,
    Path(
        min_length=1,
        max_length=256,
        pattern=r"^[A-Za-z0-9_.]+$",
        description="COVESA VSS name, e.g. Vehicle.Speed (labels and units: the telemetry "
        "section's table)",
        examples=["Vehicle.Speed"],
    ),
]
#: Start of a telemetry range, unix ms, inclusive.
Start = Annotated[int, Query(ge=0, le=MAX_MS, description="Range start, unix ms, inclusive")]
#: End of a telemetry range, unix ms, exclusive.
End = Annotated[int, Query(ge=1, le=MAX_MS, description="Range end, unix ms, exclusive")]
#: Start of an application's window, unix ms, inclusive.
WindowStart = Annotated[int, Query(ge=0, le=MAX_MS, description="Window start, unix ms, inclusive")]
#: End of an application's window, unix ms, exclusive.
WindowEnd = Annotated[int, Query(ge=1, le=MAX_MS, description="Window end, unix ms, exclusive")]

# -------------------------------------------------------------------------------------------
# rights and deployment
# -------------------------------------------------------------------------------------------

_cache_lock = threading.Lock()


def get_rights_cache(request: Request) -> RightsCache:
    """The app's cache of rights facts (made on first use)."""
    state = request.app.state
    cache = getattr(state, "rights_cache", None)
    if cache is None:
        with _cache_lock:
            cache = getattr(state, "rights_cache", None)
            if cache is None:
                settings = state.settings
                cache = RightsCache(checkpoint_ttl_s=settings.rights_checkpoint_ttl_s)
                state.rights_cache = cache
    assert isinstance(cache, RightsCache)
    return cache


async def _rights_cache(request: Request) -> RightsCache:
    """`get_rights_cache` as a dependency run on the event loop (it does no I/O)."""
    return get_rights_cache(request)


#: The app's cache of rights facts.
Rights = Annotated[RightsCache, Depends(_rights_cache)]


@dataclass(frozen=True, slots=True)
class Bearer:
    """Whose rights a request's token speaks for: a signed-in wallet, or a developer licence
    through a vehicle JWT of DIMO's token exchange (one vehicle, its privileges only).

    Attributes:
        address: The wallet, or the licence's client id, whose rights count.
        scopes: The scopes the token lets it use (all, for a wallet token).
        vehicle: The vehicle JWT's vehicle; None for a wallet token.
        asset: The vehicle JWT's `asset` DID; "" for a wallet token.
    """

    address: str
    scopes: Privilege
    vehicle: int | None = None
    asset: str = ""


async def bearer(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Bearer:
    """The request's wallet access token, or else its vehicle JWT (`POST /v1/tokens/exchange`).

    A vehicle JWT proves only what held when it was issued: `coverage_for` asks the rights
    engine again on every request, so a sale or an expired grant ends access at once.

    Raises:
        TokenRejected: no bearer token was sent.
        InvalidToken, TokenExpired: neither a good wallet token nor a vehicle JWT.
        VehicleTokenExpired: a vehicle JWT of this API whose `exp` has passed.
    """
    if credentials is None:
        raise TokenRejected()
    state = request.app.state
    settings = cast(IndexerSettings, state.settings)
    token, now = credentials.credentials, cast("Callable[[], float]", state.clock)()
    try:
        claims = token_cache(state).verify(token, state.jwt_key, settings.siwe_domain, now)
    except InvalidToken as refused:
        try:
            vehicle = verify_vehicle_token(token, state.jwt_key, settings.siwe_uri, now)
        except JwtExpired as exc:
            raise VehicleTokenExpired(exc.expired_at) from None
        except JwtError:
            raise refused from None
        known = [i for i in vehicle.privileges if i in DIMO_PRIVILEGES]
        return Bearer(
            vehicle.client_id, scopes_of_dimo_ids(known), vehicle.vehicle_id, vehicle.asset
        )
    return Bearer(claims.address, ALL_PRIVILEGES)


#: The request's wallet token or vehicle JWT (401 problem without a good one).
BearerDep = Annotated[Bearer, Depends(bearer)]


def coverage_for(
    cache: RightsCache, conn: Connection, vehicle_id: int, who: Bearer, now_ms: int
) -> Coverage:
    """`who`'s rights on `vehicle_id` at `now_ms`, narrowed to its token's scopes.

    Raises:
        VehicleTokenOtherVehicle: a vehicle JWT of another vehicle (403).
        VehicleNotFound: no such vehicle is indexed (404).
    """
    if who.vehicle is not None and who.vehicle != vehicle_id:
        raise VehicleTokenOtherVehicle(who.asset, vehicle_id)
    coverage = cache.coverage(conn, vehicle_id, who.address, now_ms)
    if who.scopes == ALL_PRIVILEGES:
        return coverage
    narrowed = {p: spans for p, spans in coverage.by_privilege.items() if p & who.scopes}
    return replace(coverage, by_privilege=narrowed, is_owner=False)


def vehicle_coverage(
    vehicle_id: VehicleId,
    who: BearerDep,
    conn: DbConn,
    clock: Clock,
    cache: Rights,
) -> Coverage:
    """The caller's rights on the path's vehicle now (a wallet token, or a vehicle JWT of that
    vehicle narrowed to its privileges).

    Raises:
        TokenRejected: no signed-in caller (401).
        VehicleTokenOtherVehicle: a vehicle JWT of another vehicle (403).
        VehicleNotFound: no such vehicle is indexed (404).
    """
    return coverage_for(cache, conn, vehicle_id, who, int(clock() * 1000))


#: The caller's coverage of the path's vehicle.
Access = Annotated[Coverage, Depends(vehicle_coverage)]

_deployment_lock = threading.Lock()


def deployment_of(request: Request, settings: IndexerSettings) -> Deployment:
    """The deployment record the indexer runs with (loaded once)."""
    state = request.app.state
    with _deployment_lock:
        found = getattr(state, "deployment", None)
        if found is None:
            found = Deployment.load(settings.deployment)
            state.deployment = found
    assert isinstance(found, Deployment)
    return found
