"""Dependencies of the API's routes, as `Annotated` aliases: `DbConn`, `Caller`, `Settings`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, cast

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


def get_settings(request: Request) -> IndexerSettings:
    """The settings the app was created with."""
    return cast(IndexerSettings, request.app.state.settings)


def get_engine(request: Request) -> Engine:
    """The app's database engine."""
    return cast(Engine, request.app.state.engine)


def get_clock(request: Request) -> Callable[[], float]:
    """The app's clock (unix seconds); tests may give the app their own."""
    return cast("Callable[[], float]", request.app.state.clock)


def get_conn(engine: Annotated[Engine, Depends(get_engine)]) -> Iterator[Connection]:
    """A connection for the request; a route that writes calls `conn.commit()`."""
    with engine.connect() as conn:
        yield conn


def optional_claims(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> TokenClaims | None:
    """The caller's checked token claims, or None for an anonymous request.

    Raises:
        InvalidToken, TokenExpired: a token was sent but is not good (never anonymous then).
    """
    if credentials is None:
        return None
    settings = get_settings(request)
    return verify_token(
        credentials.credentials,
        request.app.state.jwt_key,
        settings.siwe_domain,
        get_clock(request)(),
    )


def current_claims(
    claims: Annotated[TokenClaims | None, Depends(optional_claims)],
) -> TokenClaims:
    """The caller's checked token claims.

    Raises:
        TokenRejected: no bearer token was sent.
    """
    if claims is None:
        raise TokenRejected()
    return claims


def current_caller(claims: Annotated[TokenClaims, Depends(current_claims)]) -> str:
    """The checksummed wallet address that signed in."""
    return claims.address


def optional_caller(
    claims: Annotated[TokenClaims | None, Depends(optional_claims)],
) -> str | None:
    """The signed-in wallet address, or None where anonymous callers are allowed."""
    return None if claims is None else claims.address


#: The settings the app runs with.
Settings = Annotated[IndexerSettings, Depends(get_settings)]
#: A database connection for this request (commit explicitly to write).
DbConn = Annotated[Connection, Depends(get_conn)]
#: The authenticated wallet address (checksummed); 401 problem without a good token.
Caller = Annotated[str, Depends(current_caller)]
#: The authenticated wallet address, or None for an anonymous caller.
OptionalCaller = Annotated[str | None, Depends(optional_caller)]
#: The authenticated caller's whole token (address, issue, expiry and sign-in times).
Claims = Annotated[TokenClaims, Depends(current_claims)]
#: The app's clock in unix seconds.
Clock = Annotated[Callable[[], float], Depends(get_clock)]
