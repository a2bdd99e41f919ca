"""`/auth`: Sign-In with Ethereum (EIP-4361) nonces and logins, token refresh, who am I."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from indexer.api.auth import iso_utc, issue_nonce, issue_token, verify_login
from indexer.api.deps import Claims, Clock, DbConn, Settings
from indexer.api.problems import problem_responses
from indexer.exceptions import SessionTooOld

router = APIRouter(prefix="/auth", tags=["auth"])


class NonceOut(BaseModel):
    """A single-use nonce and what the message to sign must say besides it."""

    nonce: str = Field(description="Put this in the message's `Nonce:` line; usable once")
    issued_at: str = Field(description="RFC 3339 time the nonce was issued")
    expires_at: str = Field(description="RFC 3339 time past which the nonce is refused")
    domain: str = Field(description="The message's domain (first line)")
    uri: str = Field(description="The message's `URI:`")
    chain_id: int = Field(description="The message's `Chain ID:`")


class LoginIn(BaseModel):
    """An EIP-4361 message and its `personal_sign` signature."""

    message: str = Field(
        min_length=1, max_length=8192, description="The exact EIP-4361 text the wallet signed"
    )
    signature: str = Field(
        pattern=r"^0x[0-9a-fA-F]{130}$",
        description="65-byte EIP-191 signature, 0x-prefixed hex (r, s, v)",
    )


class TokenOut(BaseModel):
    """A short-lived access token (OAuth 2.0 token response shape)."""

    access_token: str = Field(description="Send as `Authorization: Bearer <token>`")
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int = Field(description="Seconds the token is valid")
    address: str = Field(description="The checksummed address that signed in")


class MeOut(BaseModel):
    """The caller behind the token."""

    address: str = Field(description="The checksummed address that signed in")
    signed_in_at: str = Field(description="RFC 3339 time of the Sign-In with Ethereum login")
    expires_at: str = Field(description="RFC 3339 time the token expires")


@router.get("/nonce", response_model=NonceOut, summary="Get a single-use login nonce")
def get_nonce(conn: DbConn, settings: Settings, clock: Clock, response: Response) -> NonceOut:
    """Issue a fresh nonce for one Sign-In with Ethereum message."""
    issued = issue_nonce(conn, clock(), settings.nonce_ttl_s)
    conn.commit()
    response.headers["Cache-Control"] = "no-store"
    return NonceOut(
        nonce=issued.nonce,
        issued_at=iso_utc(issued.issued_at),
        expires_at=iso_utc(issued.expires_at),
        domain=settings.siwe_domain,
        uri=settings.siwe_uri,
        chain_id=settings.siwe_chain_id,
    )


@router.post(
    "/login",
    response_model=TokenOut,
    summary="Sign in with Ethereum",
    responses=problem_responses(400, 401),
)
def login(
    body: LoginIn, conn: DbConn, settings: Settings, clock: Clock, request: Request
) -> TokenOut:
    """Check the message (domain, URI, chain, times, nonce once) and signature; issue a JWT."""
    now = clock()
    msg = verify_login(conn, settings, body.message, bytes.fromhex(body.signature[2:]), now)
    conn.commit()
    token, _ = issue_token(
        msg.address, request.app.state.jwt_key, settings.siwe_domain, now, settings.jwt_ttl_s
    )
    return TokenOut(access_token=token, expires_in=settings.jwt_ttl_s, address=msg.address)


@router.post(
    "/refresh",
    response_model=TokenOut,
    summary="Trade a valid token for a fresh one",
    responses=problem_responses(401),
)
def refresh(claims: Claims, settings: Settings, clock: Clock, request: Request) -> TokenOut:
    """A new token for the same sign-in, while the session is younger than `session_max_s`."""
    now = clock()
    if now - claims.auth_time > settings.session_max_s:
        raise SessionTooOld(claims.auth_time, settings.session_max_s)
    token, _ = issue_token(
        claims.address,
        request.app.state.jwt_key,
        settings.siwe_domain,
        now,
        settings.jwt_ttl_s,
        auth_time=claims.auth_time,
    )
    return TokenOut(access_token=token, expires_in=settings.jwt_ttl_s, address=claims.address)


@router.get(
    "/me", response_model=MeOut, summary="Who the token is for", responses=problem_responses(401)
)
def me(claims: Claims) -> MeOut:
    """The address behind the bearer token."""
    return MeOut(
        address=claims.address,
        signed_in_at=iso_utc(claims.auth_time),
        expires_at=iso_utc(claims.expires_at),
    )
