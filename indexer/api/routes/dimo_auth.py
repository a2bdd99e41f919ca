"""DIMO's Auth API at the root: `/auth/web3/generate_challenge` and `/submit_challenge`.

Apps log in with a developer licence's client id and a signer's key and get a developer JWT,
as DIMO's SDKs expect (form bodies; the npm SDK sends the challenge request as a query string).
"""

from __future__ import annotations

import re
from typing import Annotated, Final
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from indexer.api.deps import Clock, DbConn, Settings
from indexer.api.devauth import generate_challenge, submit_challenge
from indexer.api.problems import problem_responses
from indexer.exceptions import DeveloperRequestMalformed
from protocol.crypto import checksum_address
from protocol.jwt import issue_developer_token

router = APIRouter(prefix="/auth/web3", tags=["dimo-auth"])

_ADDRESS_RE: Final = re.compile(r"0x[0-9a-fA-F]{40}")
_SIGNATURE_RE: Final = re.compile(r"0x[0-9a-fA-F]{130}")
#: Largest form body read, in bytes.
MAX_FORM_BYTES: Final = 16_384


async def form_fields(request: Request) -> dict[str, str]:
    """The request's fields: its query string, then its url-encoded form body over it.

    Raises:
        DeveloperRequestMalformed: a body too large, not url-encoded, or a field twice.
    """
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise DeveloperRequestMalformed("body", f"larger than {MAX_FORM_BYTES} bytes")
    pairs = list(request.query_params.multi_items())
    if body:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            raise DeveloperRequestMalformed("body", "send application/x-www-form-urlencoded fields")
        try:
            pairs += parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=True)
        except (UnicodeDecodeError, ValueError) as exc:
            raise DeveloperRequestMalformed("body", "not url-encoded form fields") from exc
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields and fields[name] != value:
            raise DeveloperRequestMalformed(name, "given twice with different values")
        fields[name] = value
    return fields


Form = Annotated[dict[str, str], Depends(form_fields)]


def _required(fields: dict[str, str], name: str, max_length: int = 2048) -> str:
    value = fields.get(name, "")
    if not value:
        raise DeveloperRequestMalformed(name, "required")
    if len(value) > max_length:
        raise DeveloperRequestMalformed(name, f"longer than {max_length} characters")
    return value


def _address(fields: dict[str, str], name: str) -> str:
    value = _required(fields, name, 42)
    if _ADDRESS_RE.fullmatch(value) is None:
        raise DeveloperRequestMalformed(name, "not a 0x-prefixed 20-byte address")
    return checksum_address(value)


class ChallengeOut(BaseModel):
    """A challenge: sign `challenge` with personal_sign, submit it with `state`."""

    state: str = Field(description="Send back with the signature; usable once")
    challenge: str = Field(description="The EIP-4361 message to sign")


class DeveloperTokenOut(BaseModel):
    """An OAuth 2.0 token response carrying the developer JWT."""

    access_token: str = Field(description="The developer JWT; send as Authorization: Bearer")
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds the token is valid")
    id_token: str = Field(description="The same identity as an OpenID id token")


@router.post(
    "/generate_challenge",
    response_model=ChallengeOut,
    summary="Get a login challenge for a developer licence",
    responses=problem_responses(400),
)
def generate(
    fields: Form, conn: DbConn, settings: Settings, clock: Clock, response: Response
) -> ChallengeOut:
    """Fields `client_id`, `domain` (an enabled redirect URI), `scope=openid email`,
    `response_type=code`, `address` (who signs; the client id by default)."""
    client_id = _address(fields, "client_id")
    domain = _required(fields, "domain")
    address = _address(fields, "address") if fields.get("address") else client_id
    if fields.get("response_type", "code") != "code":
        raise DeveloperRequestMalformed("response_type", "only 'code' is supported")
    if "openid" not in fields.get("scope", "openid").split():
        raise DeveloperRequestMalformed("scope", "must include 'openid'")
    issued = generate_challenge(conn, settings, client_id, domain, address, clock())
    conn.commit()
    response.headers["Cache-Control"] = "no-store"
    return ChallengeOut(state=issued.state, challenge=issued.message)


@router.post(
    "/submit_challenge",
    response_model=DeveloperTokenOut,
    summary="Submit a signed challenge for a developer JWT",
    responses=problem_responses(400, 401),
)
def submit(
    fields: Form, conn: DbConn, settings: Settings, clock: Clock, request: Request
) -> DeveloperTokenOut:
    """Fields `client_id`, `domain`, `state`, `signature` (65 bytes, 0x hex),
    `grant_type=authorization_code`."""
    client_id = _address(fields, "client_id")
    domain = _required(fields, "domain")
    state = _required(fields, "state", 64)
    signature = _required(fields, "signature", 132)
    if _SIGNATURE_RE.fullmatch(signature) is None:
        raise DeveloperRequestMalformed("signature", "not a 65-byte 0x-prefixed hex signature")
    if fields.get("grant_type", "authorization_code") != "authorization_code":
        raise DeveloperRequestMalformed("grant_type", "only 'authorization_code' is supported")
    now = clock()
    signer = submit_challenge(
        conn, settings, client_id, domain, state, bytes.fromhex(signature[2:]), now
    )
    conn.commit()
    key: bytes = request.app.state.jwt_key
    ttl = settings.developer_jwt_ttl_s
    token = issue_developer_token(client_id, signer, key, settings.siwe_uri, now, ttl)
    id_token = issue_developer_token(client_id, signer, key, settings.siwe_uri, now, ttl, use="id")
    return DeveloperTokenOut(access_token=token, expires_in=ttl, id_token=id_token)
