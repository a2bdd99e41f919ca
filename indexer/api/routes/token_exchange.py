"""DIMO's Token Exchange API at the root: `POST /v1/tokens/exchange` for a vehicle JWT.

A licence gets a vehicle JWT only for DIMO privilege ids it holds on the vehicle now, by the
rights engine (`indexer.rights`); whoever accepts the token checks the rights again on each
request, so a sale or an expired grant ends access inside the token's life too.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from sqlalchemy import select

from indexer import schema as s
from indexer.api.deps import INT64_MAX, Clock, DbConn, Rights, Settings, deployment_of
from indexer.api.problems import problem_responses
from indexer.exceptions import (
    DeveloperTokenRejected,
    DimoPrivilegeUnknown,
    NftContractUnknown,
    PrivilegesNotHeld,
    VehicleNotFound,
)
from indexer.rights import PRIVILEGES, contains
from protocol.crypto import checksum_address
from protocol.jwt import (
    DeveloperToken,
    JwtError,
    issue_vehicle_token,
    verify_developer_token,
)
from protocol.privileges import (
    DIMO_PRIVILEGES,
    Privilege,
    UnknownDimoPrivilegeError,
    dimo_ids_of,
    scopes_of_dimo_ids,
)

router = APIRouter(prefix="/v1/tokens", tags=["dimo-token-exchange"])

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="DeveloperJwt",
    bearerFormat="JWT",
    description="Developer JWT from POST /auth/web3/submit_challenge.",
)


async def developer_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> DeveloperToken:
    """The caller's checked developer JWT.

    Raises:
        DeveloperTokenRejected: none sent, or not a good developer token.
    """
    if credentials is None:
        raise DeveloperTokenRejected(
            "send Authorization: Bearer <developer JWT> from /auth/web3/submit_challenge"
        )
    settings = request.app.state.settings
    try:
        return verify_developer_token(
            credentials.credentials,
            request.app.state.jwt_key,
            settings.siwe_uri,
            request.app.state.clock(),
        )
    except JwtError as exc:
        raise DeveloperTokenRejected(
            f"{exc.reason}; log in again with /auth/web3/submit_challenge"
        ) from exc


#: The caller's checked developer JWT (401 problem without a good one).
Developer = Annotated[DeveloperToken, Depends(developer_token)]


class ExchangeIn(BaseModel):
    """What DIMO's SDKs send to exchange a developer JWT for a vehicle JWT."""

    nftContractAddress: str = Field(  # noqa: N815 (DIMO's field name)
        pattern=r"^0x[0-9a-fA-F]{40}$", description="The vehicle NFT contract"
    )
    privileges: list[Annotated[int, Field(ge=0, le=255)]] = Field(
        min_length=1, max_length=32, description="DIMO privilege ids (1 to 8 mean something)"
    )
    tokenId: int = Field(ge=0, le=INT64_MAX, description="The vehicle's token id")  # noqa: N815


class ExchangeOut(BaseModel):
    """The vehicle JWT."""

    token: str = Field(description="Vehicle JWT; send as Authorization: Bearer")


def held_now(cov_by: dict[Privilege, tuple[tuple[int, int], ...]], now_ms: int) -> Privilege:
    """The scopes a coverage computed for `now_ms + 1` holds at `now_ms` (a grant made in
    this very millisecond's block counts)."""
    held = Privilege(0)
    for p in PRIVILEGES:
        if contains(cov_by.get(p, ()), now_ms):
            held |= p
    return held


@router.post(
    "/exchange",
    response_model=ExchangeOut,
    summary="Exchange a developer JWT for a vehicle JWT",
    responses=problem_responses(400, 401, 403, 404),
)
def exchange(
    body: ExchangeIn,
    developer: Developer,
    conn: DbConn,
    settings: Settings,
    clock: Clock,
    cache: Rights,
    request: Request,
) -> ExchangeOut:
    """A vehicle JWT for the privileges asked, if the licence holds all of them now."""
    deployment = deployment_of(request, settings)
    vehicle_nft = checksum_address(deployment.contract("VehicleId").address)
    accepted = {vehicle_nft.lower(), *(a.lower() for a in settings.vehicle_nft_aliases)}
    if body.nftContractAddress.lower() not in accepted:
        raise NftContractUnknown(body.nftContractAddress, [vehicle_nft])
    try:
        wanted = scopes_of_dimo_ids(body.privileges)
    except UnknownDimoPrivilegeError as exc:
        raise DimoPrivilegeUnknown(str(exc)) from exc
    v = s.vehicles.c
    if conn.execute(select(v.id).where(v.id == body.tokenId)).first() is None:
        raise VehicleNotFound(body.tokenId)
    now = clock()
    now_ms = int(now * 1000)
    coverage = cache.coverage(conn, body.tokenId, developer.client_id.lower(), now_ms + 1)
    held = held_now(dict(coverage.by_privilege), now_ms)
    if wanted & ~held:
        holds = set(dimo_ids_of(held))
        missing = sorted({i for i in body.privileges if i not in holds})
        raise PrivilegesNotHeld(developer.client_id, body.tokenId, missing)
    ids = sorted(set(body.privileges))
    token = issue_vehicle_token(
        developer.client_id,
        body.tokenId,
        vehicle_nft,
        deployment.chain_id,
        ids,
        [DIMO_PRIVILEGES[i][0] for i in ids],
        request.app.state.jwt_key,
        settings.siwe_uri,
        now,
        settings.vehicle_jwt_ttl_s,
    )
    return ExchangeOut(token=token)
