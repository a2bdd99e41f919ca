"""The index of vehicle credentials: quorum-signed W3C credentials (`protocol.credentials`)
that `POST /credentials` takes from anyone once `VehicleCredentials.verifyCredential` accepts
them, and that the Telemetry GraphQL's `vinVCLatest` reads back, rights checked.

The attestation host submits each credential it issues; a credential is kept once, by the CID
of its canonical JSON (the CID the host stored it under), so submitting again changes
nothing. Nothing here trusts the submitter: the subject must be a vehicle of this deployment's
VehicleId and the quorum's signatures must verify on-chain now (not revoked, not superseded,
not expired). The answer is checked again on the chain when it is read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import requests
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    SmallInteger,
    String,
    Table,
    Text,
    select,
)
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError, Web3Exception

from indexer.db import metadata
from indexer.exceptions import CredentialCheckUnavailable, CredentialRejected
from indexer.rights import Coverage, contains
from protocol.cid import compute_cid
from protocol.credentials import (
    Credential,
    CredentialInvalid,
    CredentialKind,
    canonical_json,
    ms_of_iso,
    proof_signatures,
    struct_of,
    vehicle_did,
)
from protocol.deployment import Deployment
from protocol.privileges import Privilege
from protocol.reverts import CustomErrors

__all__ = [
    "IndexedCredential",
    "OnChainCredentials",
    "VinCredentialView",
    "latest_credential",
    "latest_vin",
    "may_read_vin",
    "parse_credential",
    "store_credential",
    "vehicle_credentials",
]

#: The CID version the attestation host's content store names credentials with.
CID_VERSION: Final = 1

#: Credentials that verified when submitted, one row per document.
vehicle_credentials = Table(
    "api_vehicle_credentials",
    metadata,
    Column("cid", String(128), primary_key=True),
    Column("vehicle_id", BigInteger, nullable=False),
    Column("kind", SmallInteger, nullable=False),
    Column("issued_at_ms", BigInteger, nullable=False),
    Column("valid_from_ms", BigInteger, nullable=False),
    Column("valid_until_ms", BigInteger, nullable=False),  # 0: no expiry
    Column("document", Text, nullable=False),  # canonical JSON, proof included
    Index("ix_api_vehicle_credentials_latest", "vehicle_id", "kind", "issued_at_ms"),
)


@dataclass(frozen=True, slots=True)
class IndexedCredential:
    """A credential of the index: its CID, the signed struct and the document."""

    cid: str
    credential: Credential
    document: dict[str, Any]


class OnChainCredentials:
    """`VehicleCredentials.verifyCredential` of one deployment, through web3."""

    def __init__(self, rpc_url: str, deployment: Deployment) -> None:
        self.deployment = deployment
        self.w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 15}))
        record = deployment.contract("VehicleCredentials")
        self.contract = self.w3.eth.contract(
            address=Web3.to_checksum_address(record.address), abi=record.abi
        )
        self.vehicle_contract = deployment.contract("VehicleId").address
        self._errors = CustomErrors(r.abi for r in deployment.contracts.values())

    def check(self, document: Mapping[str, Any]) -> IndexedCredential:
        """The document as the index keeps it, once it verifies on-chain now.

        Raises:
            CredentialRejected: malformed, of another platform, or refused by the contract.
            CredentialCheckUnavailable: the chain node did not answer.
        """
        credential, signatures = parse_credential(document)
        subject = document.get("credentialSubject")
        did = subject.get("id") if isinstance(subject, Mapping) else None
        ours = vehicle_did(self.deployment.chain_id, self.vehicle_contract, credential.vehicle_id)
        if did != ours:
            raise CredentialRejected(f"its subject {did!r} is not {ours}")
        fn = self.contract.functions.verifyCredential(credential.as_tuple(), signatures)
        try:
            fn.call()
        except (ContractCustomError, ContractLogicError) as exc:
            found = self._errors.decode(exc.data)
            raise CredentialRejected(
                f"verifyCredential reverted with {found if found is not None else exc}"
            ) from None
        except (Web3Exception, OSError, requests.RequestException) as exc:
            raise CredentialCheckUnavailable(type(exc).__name__) from None
        canonical = canonical_json(document)
        return IndexedCredential(
            compute_cid(canonical, cid_version=CID_VERSION), credential, dict(document)
        )


def parse_credential(document: Mapping[str, Any]) -> tuple[Credential, bytes]:
    """The signed struct a document's proof must carry, and the proof's signatures.

    Raises:
        CredentialRejected: a field the struct needs is missing or malformed.
    """
    try:
        return struct_of(document), proof_signatures(document)
    except CredentialInvalid as exc:
        raise CredentialRejected(exc.reason) from None


def store_credential(conn: Connection, found: IndexedCredential) -> bool:
    """Keeps a checked credential (once per CID); whether it was new. The caller commits."""
    t = vehicle_credentials
    if conn.execute(select(t.c.cid).where(t.c.cid == found.cid)).first() is not None:
        return False
    c = found.credential
    conn.execute(
        t.insert().values(
            cid=found.cid,
            vehicle_id=c.vehicle_id,
            kind=int(c.kind),
            issued_at_ms=c.issued_at,
            valid_from_ms=c.valid_from,
            valid_until_ms=c.valid_until,
            document=canonical_json(found.document).decode(),
        )
    )
    return True


def latest_credential(
    conn: Connection, vehicle_id: int, kind: CredentialKind
) -> tuple[str, dict[str, Any]] | None:
    """The CID and document of the vehicle's latest indexed credential of `kind`, if any."""
    t = vehicle_credentials.c
    row = conn.execute(
        select(t.cid, t.document)
        .where(t.vehicle_id == vehicle_id, t.kind == int(kind))
        .order_by(t.issued_at_ms.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    document: dict[str, Any] = json.loads(row.document)
    return str(row.cid), document


@dataclass(frozen=True, slots=True)
class VinCredentialView:
    """A VIN credential as DIMO's `vinVCLatest` answers it (times unix ms)."""

    cid: str
    vehicle_token_id: int
    vin: str | None
    recorded_by: str | None
    recorded_at_ms: int | None
    vehicle_contract_address: str | None
    valid_from_ms: int
    valid_to_ms: int | None
    raw_vc: str


def may_read_vin(coverage: Coverage, now_ms: int) -> bool:
    """Whether a coverage computed at `now_ms` holds the VIN scope now."""
    return contains(coverage.of(Privilege.VIN), now_ms - 1)


def latest_vin(conn: Connection, vehicle_id: int) -> VinCredentialView | None:
    """The vehicle's latest indexed VIN credential, as `vinVCLatest` answers it."""
    found = latest_credential(conn, vehicle_id, CredentialKind.VIN)
    if found is None:
        return None
    cid, document = found
    credential = struct_of(document)
    subject = document.get("credentialSubject") or {}
    recorded = subject.get("recordedAt")
    contract = str(subject.get("id", "")).split(":")
    return VinCredentialView(
        cid=cid,
        vehicle_token_id=credential.vehicle_id,
        vin=subject.get("vehicleIdentificationNumber"),
        recorded_by=subject.get("recordedBy"),
        recorded_at_ms=None if recorded is None else ms_of_iso(str(recorded)),
        vehicle_contract_address=contract[3] if len(contract) == 5 else None,
        valid_from_ms=credential.valid_from,
        valid_to_ms=credential.valid_until or None,
        raw_vc=canonical_json(document).decode(),
    )
