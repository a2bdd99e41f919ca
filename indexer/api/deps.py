"""Dependencies of the API's routes, as `Annotated` aliases: `DbConn`, `Caller`, `Settings`.

The ones that do no I/O are `async def`, so FastAPI runs them on the event loop instead of
hopping to a worker thread for each (a request pays those hops, not just its queries)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Final, cast

import anyio
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Connection, Engine

from indexer.api.auth import TokenClaims, verify_token
from indexer.config import IndexerSettings
from indexer.exceptions import TokenRejected

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


_limiter: anyio.CapacityLimiter | None = None


def db_limiter() -> anyio.CapacityLimiter:
    """Threads that may hold a connection at once (`DB_CONCURRENCY`), for routes that run
    their database work in one `anyio.to_thread.run_sync(..., limiter=db_limiter())`."""
    global _limiter
    if _limiter is None:
        _limiter = anyio.CapacityLimiter(DB_CONCURRENCY)
    return _limiter


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
    settings = cast(IndexerSettings, request.app.state.settings)
    return verify_token(
        credentials.credentials,
        request.app.state.jwt_key,
        settings.siwe_domain,
        cast("Callable[[], float]", request.app.state.clock)(),
    )


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


#: The settings the app runs with.
Settings = Annotated[IndexerSettings, Depends(get_settings)]
#: Requests that may hold a connection at once: the engine's default pool (5 + 10 overflow).
#: Past it a request waits without a worker thread; blocking threads in the pool's checkout
#: would starve the holders of threads to finish on (a deadlock until the pool timeout).
DB_CONCURRENCY: Final = 15
#: A database connection for this request (commit explicitly to write).
DbConn = Annotated[Connection, Depends(get_conn, max_concurrency=DB_CONCURRENCY)]
#: The authenticated wallet address (checksummed); 401 problem without a good token.
Caller = Annotated[str, Depends(current_caller)]
#: The authenticated wallet address, or None for an anonymous caller.
OptionalCaller = Annotated[str | None, Depends(optional_caller)]
#: The authenticated caller's whole token (address, issue, expiry and sign-in times).
Claims = Annotated[TokenClaims, Depends(current_claims)]
#: The app's clock in unix seconds.
Clock = Annotated[Callable[[], float], Depends(get_clock)]
