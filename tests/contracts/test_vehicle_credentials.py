"""VehicleCredentials on anvil: a credential the oracle quorum signed verifies; a forged
signature, a tampered field, too few signers, a revoked or superseded credential, an expired
one and malformed fields revert, each with its error; revocation and supersession need the
quorum; and the offline verifier agrees with the contract on every case."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from typing import Any

import ape
import pytest

from protocol.credentials import (
    Credential,
    CredentialInvalid,
    CredentialKind,
    CredentialStatus,
    iso_ms,
    sign_document,
    struct_of,
    verify_offline,
)
from protocol.crypto import keccak256, sign_digest
from protocol.eip712 import Eip712Domain, dimo_domain
from tests.conftest import private_key

_IDS = itertools.count(9_000_000)


def _sign(digest: bytes, keys: Sequence[str]) -> bytes:
    """Signatures of `digest` by `keys`, concatenated in ascending signer order."""
    from eth_account import Account

    ordered = sorted(keys, key=lambda k: int(Account.from_key(k).address, 16))
    return b"".join(sign_digest(digest, k) for k in ordered)


@pytest.fixture
def credentials(platform: Any) -> Any:
    return platform["VehicleCredentials"]


@pytest.fixture
def anchor(platform: Any) -> Any:
    return platform["AttestationAnchor"]


@pytest.fixture
def cdomain(credentials: Any) -> Eip712Domain:
    return dimo_domain(31337, credentials.address)


@pytest.fixture
def quorum(oracle_signers: list[Any]) -> list[str]:
    return [private_key(s) for s in oracle_signers[:2]]


def _credential(kind: CredentialKind = CredentialKind.ODOMETER, **changes: Any) -> Credential:
    """A fresh credential (its own vehicle, so the session's chain state never collides)."""
    now = int(time.time() * 1000)
    fields: dict[str, Any] = {
        "vehicle_id": next(_IDS),
        "kind": kind,
        "issued_at": now,
        "valid_from": now - 3_600_000,
        "valid_until": 0,
        "document_hash": keccak256(b"a credential document"),
    }
    return Credential(**(fields | changes))


def test_a_credential_signed_by_the_quorum_verifies_and_its_digest_matches_ours(
    credentials: Any, anchor: Any, cdomain: Eip712Domain, quorum: list[str]
) -> None:
    c = _credential()
    assert credentials.credentialDigest(c.as_tuple()) == c.digest(cdomain)
    assert credentials.verifyCredential(c.as_tuple(), _sign(c.digest(cdomain), quorum)) is True
    assert credentials.oracleRegistry() == anchor.address


def test_too_few_signers_a_forged_signature_or_a_tampered_field_revert(
    credentials: Any, anchor: Any, cdomain: Eip712Domain, quorum: list[str], accounts: Any
) -> None:
    c = _credential()
    with ape.reverts(anchor.OracleRegistryQuorumNotReached):
        credentials.verifyCredential(c.as_tuple(), _sign(c.digest(cdomain), quorum[:1]))
    forged = _sign(c.digest(cdomain), [private_key(accounts[0]), private_key(accounts[1])])
    with ape.reverts(anchor.OracleRegistryUnknownSigner):
        credentials.verifyCredential(c.as_tuple(), forged)
    sigs = _sign(c.digest(cdomain), quorum)
    tampered = Credential(**{**c.__dict__, "document_hash": keccak256(b"another document")})
    with ape.reverts(anchor.OracleRegistryUnknownSigner):
        credentials.verifyCredential(tampered.as_tuple(), sigs)


def test_fields_that_do_not_hold_together_revert_with_their_errors(credentials: Any) -> None:
    sigs = b"\x00" * 130
    raw = _credential().as_tuple()
    with ape.reverts(credentials.VehicleCredentialsUnknownKind, kind=0):
        credentials.verifyCredential((raw[0], 0, *raw[2:]), sigs)
    with ape.reverts(credentials.VehicleCredentialsUnknownKind, kind=5):
        credentials.verifyCredential((raw[0], 5, *raw[2:]), sigs)
    with ape.reverts(credentials.VehicleCredentialsInvalidWindow):
        credentials.verifyCredential((*raw[:3], 2_000, 1_000, raw[5]), sigs)
    with ape.reverts(credentials.VehicleCredentialsMissingDocument, vehicleId=raw[0]):
        credentials.verifyCredential((*raw[:5], b"\x00" * 32), sigs)


def test_an_expired_credential_reverts(
    credentials: Any, cdomain: Eip712Domain, quorum: list[str]
) -> None:
    c = _credential(CredentialKind.VIN, valid_from=1_000, valid_until=2_000)
    with ape.reverts(credentials.VehicleCredentialsExpired):
        credentials.verifyCredential(c.as_tuple(), _sign(c.digest(cdomain), quorum))


def test_a_revoked_credential_reverts_and_cannot_be_revoked_twice(
    credentials: Any, anchor: Any, cdomain: Eip712Domain, quorum: list[str], accounts: Any
) -> None:
    c = _credential(CredentialKind.HEALTH)
    sigs = _sign(c.digest(cdomain), quorum)
    digest = c.digest(cdomain)
    revocation = credentials.revocationDigest(digest)
    with ape.reverts(anchor.OracleRegistryQuorumNotReached):
        credentials.revoke(c.as_tuple(), _sign(revocation, quorum[:1]), sender=accounts[3])
    # The credential's own signatures are no revocation.
    with ape.reverts(anchor.OracleRegistryUnknownSigner):
        credentials.revoke(c.as_tuple(), sigs, sender=accounts[3])
    tx = credentials.revoke(c.as_tuple(), _sign(revocation, quorum), sender=accounts[3])
    assert [e.vehicleId for e in tx.events] == [c.vehicle_id]
    assert credentials.isRevoked(digest) is True
    with ape.reverts(credentials.VehicleCredentialsRevoked, digest=digest):
        credentials.verifyCredential(c.as_tuple(), sigs)
    with ape.reverts(credentials.VehicleCredentialsAlreadyRevoked, digest=digest):
        credentials.revoke(c.as_tuple(), _sign(revocation, quorum), sender=accounts[3])


def test_a_later_statement_supersedes_an_earlier_one_and_only_a_later_one_may(
    credentials: Any, anchor: Any, cdomain: Eip712Domain, quorum: list[str], accounts: Any
) -> None:
    first = _credential()
    later = Credential(**{**first.__dict__, "issued_at": first.issued_at + 1_000})
    first_sigs = _sign(first.digest(cdomain), quorum)
    later_sigs = _sign(later.digest(cdomain), quorum)
    with ape.reverts(anchor.OracleRegistryQuorumNotReached):
        credentials.supersede(later.as_tuple(), later_sigs[:65], sender=accounts[3])
    tx = credentials.supersede(later.as_tuple(), later_sigs, sender=accounts[3])
    assert [e.issuedAt for e in tx.events] == [later.issued_at]
    assert credentials.latestIssuedAt(first.vehicle_id, int(first.kind)) == later.issued_at
    assert credentials.verifyCredential(later.as_tuple(), later_sigs) is True
    with ape.reverts(credentials.VehicleCredentialsSuperseded):
        credentials.verifyCredential(first.as_tuple(), first_sigs)
    with ape.reverts(credentials.VehicleCredentialsSuperseded):
        credentials.supersede(first.as_tuple(), first_sigs, sender=accounts[3])
    with ape.reverts(credentials.VehicleCredentialsNotNewer):
        credentials.supersede(later.as_tuple(), later_sigs, sender=accounts[3])


# --------------------------------------------------------------------------------------------
# The offline verifier agrees with the contract
# --------------------------------------------------------------------------------------------


def _document(vehicle: int, kind: CredentialKind, valid_from: int) -> dict[str, Any]:
    return {
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "type": ["VerifiableCredential", kind.vc_type],
        "issuer": "did:ethr:31337:0x0000000000000000000000000000000000000001",
        "validFrom": iso_ms(valid_from),
        "credentialSubject": {
            "id": f"did:erc721:31337:0x0000000000000000000000000000000000000002:{vehicle}",
            "odometerKm": 1234.5,
        },
    }


@pytest.fixture
def signed_document(
    cdomain: Eip712Domain, quorum: list[str]
) -> Callable[..., tuple[dict[str, Any], Credential]]:
    def _make(keys: Sequence[str] | None = None) -> tuple[dict[str, Any], Credential]:
        now = int(time.time() * 1000)
        unsigned = _document(next(_IDS), CredentialKind.ODOMETER, now - 60_000)
        stub = sign_document(unsigned, now, cdomain, [])
        c = struct_of(stub)
        from eth_account import Account

        sigs = [
            (Account.from_key(k).address, sign_digest(c.digest(cdomain), k))
            for k in (quorum if keys is None else keys)
        ]
        return sign_document(unsigned, now, cdomain, sigs), c

    return _make


def _oracles(anchor: Any) -> tuple[list[str], int]:
    signers, threshold, _ = anchor.oracles()
    return [str(s) for s in signers], int(threshold)


def test_a_signed_document_verifies_offline_and_on_chain_alike(
    credentials: Any,
    anchor: Any,
    cdomain: Eip712Domain,
    signed_document: Callable[..., tuple[dict[str, Any], Credential]],
) -> None:
    doc, c = signed_document()
    sigs = bytes.fromhex(doc["proof"]["signatures"][2:])
    assert credentials.verifyCredential(c.as_tuple(), sigs) is True
    oracles, threshold = _oracles(anchor)
    status = CredentialStatus(now_ms=int(time.time() * 1000))
    assert verify_offline(doc, cdomain, oracles, threshold, status) == doc["proof"]["signers"]


def test_offline_verification_fails_where_the_contract_reverts(
    credentials: Any,
    anchor: Any,
    cdomain: Eip712Domain,
    quorum: list[str],
    accounts: Any,
    signed_document: Callable[..., tuple[dict[str, Any], Credential]],
) -> None:
    oracles, threshold = _oracles(anchor)
    now = int(time.time() * 1000)
    doc, c = signed_document()
    tampered = {**doc, "credentialSubject": {**doc["credentialSubject"], "odometerKm": 999.0}}
    few, _ = signed_document(quorum[:1])
    forged, _ = signed_document([private_key(accounts[0]), private_key(accounts[1])])
    cases = {
        "tampered field": (tampered, CredentialStatus(now), "OracleRegistryUnknownSigner"),
        "too few signers": (few, CredentialStatus(now), "OracleRegistryQuorumNotReached"),
        "forged signature": (forged, CredentialStatus(now), "OracleRegistryUnknownSigner"),
        "revoked": (
            doc,
            CredentialStatus(now, revoked={c.digest(cdomain)}),
            "VehicleCredentialsRevoked",
        ),
        "superseded": (
            doc,
            CredentialStatus(now, latest_issued_at={(c.vehicle_id, 2): c.issued_at + 1}),
            "VehicleCredentialsSuperseded",
        ),
    }
    for name, (document, status, error) in cases.items():
        with pytest.raises(CredentialInvalid) as failed:
            verify_offline(document, cdomain, oracles, threshold, status)
        assert failed.value.error == error, name
        rebuilt = struct_of(document)
        sigs = bytes.fromhex(document["proof"]["signatures"][2:])
        if name in {"revoked", "superseded"}:
            continue  # the chain's own state decides these; see the tests above
        with ape.reverts(getattr(anchor, error)):
            credentials.verifyCredential(rebuilt.as_tuple(), sigs)
