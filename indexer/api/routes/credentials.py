"""`POST /credentials`: the index of vehicle credentials the Telemetry GraphQL's `vinVCLatest`
reads (`indexer.api.credentials`). Anyone may submit; only what verifies on-chain is kept."""

from __future__ import annotations

import threading
from typing import Any

from fastapi import APIRouter, Body, Request
from pydantic import BaseModel, Field

from indexer.api.credentials import OnChainCredentials, parse_credential, store_credential
from indexer.api.deps import DbConn, Settings, deployment_of
from indexer.api.problems import problem_responses
from indexer.config import IndexerSettings
from indexer.exceptions import CredentialCheckUnavailable
from protocol.deployment import DeploymentError

router = APIRouter(prefix="/credentials", tags=["credentials"])

_lock = threading.Lock()


class CredentialIndexedOut(BaseModel):
    """Where the index keeps a submitted credential."""

    cid: str = Field(description="CID of the credential's canonical JSON (CIDv1)")
    vehicle_id: int = Field(description="The subject vehicle")
    kind: int = Field(description="1 VIN, 2 odometer, 3 health, 4 position")
    new: bool = Field(description="False when the index held it already")


def on_chain_credentials(request: Request, settings: IndexerSettings) -> OnChainCredentials:
    """The app's `verifyCredential` client (made on first use)."""
    state = request.app.state
    with _lock:
        found = getattr(state, "on_chain_credentials", None)
        if found is None:
            try:
                found = OnChainCredentials(settings.rpc_url, deployment_of(request, settings))
            except DeploymentError as exc:
                raise CredentialCheckUnavailable(f"no deployment record: {exc}") from None
            state.on_chain_credentials = found
    assert isinstance(found, OnChainCredentials)
    return found


@router.post(
    "",
    response_model=CredentialIndexedOut,
    summary="Index a vehicle credential the oracle quorum signed",
    responses=problem_responses(400, 503),
)
def post_credential(
    request: Request,
    settings: Settings,
    conn: DbConn,
    document: dict[str, Any] = Body(description="The W3C credential with its quorum proof"),  # noqa: B008
) -> CredentialIndexedOut:
    """Keeps a credential once `VehicleCredentials.verifyCredential` accepts it now and its
    subject is a vehicle of this platform; submitting it again changes nothing. The attestation
    host submits each credential it issues."""
    parse_credential(document)  # a malformed document is a 400 before the chain is asked
    found = on_chain_credentials(request, settings).check(document)
    new = store_credential(conn, found)
    conn.commit()
    c = found.credential
    return CredentialIndexedOut(cid=found.cid, vehicle_id=c.vehicle_id, kind=int(c.kind), new=new)
