"""Vehicle credentials: W3C Verifiable Credentials the oracle quorum signs with EIP-712, and
their offline verification with eth-account.

A credential is a VC Data Model 2.0 document about one vehicle, its subject the vehicle's DID
(`did:erc721:<chainId>:<VehicleId>:<tokenId>`). What the oracles sign is the EIP-712 struct
`VehicleCredential(uint256 vehicleId, uint8 kind, uint64 issuedAt, uint64 validFrom,
uint64 validUntil, bytes32 documentHash)` under the VehicleCredentials contract's domain, where
`documentHash` is keccak256 of the document's canonical JSON (keys sorted, no spaces, ASCII)
without its `proof`, and `issuedAt` is the proof's `created` time. The proof carries the
signatures, 65 bytes each, concatenated in ascending signer order, as
`VehicleCredentials.verifyCredential` takes them.

`verify_offline` checks a document with no server and no contract call: the struct rebuilt
from the document, the digest computed by eth-account's `encode_typed_data`, each signer
recovered and matched against the oracle set, the threshold, the validity window, and the
revocation and supersession status the caller read from the chain (`CredentialStatus`).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from eth_account import Account
from eth_account.messages import encode_typed_data

from protocol.crypto import checksum_address, keccak256
from protocol.eip712 import EIP712_DOMAIN_FIELDS, Eip712Domain, type_hash
from protocol.exceptions import ProtocolError

__all__ = [
    "CREDENTIAL_TYPE",
    "PROOF_TYPE",
    "VC_CONTEXT",
    "Credential",
    "CredentialInvalid",
    "CredentialKind",
    "CredentialStatus",
    "canonical_json",
    "document_hash",
    "iso_ms",
    "ms_of_iso",
    "sign_document",
    "struct_of",
    "typed_data",
    "vehicle_did",
    "verify_offline",
]

#: The EIP-712 struct the oracles sign.
CREDENTIAL_TYPE: Final = (
    "VehicleCredential(uint256 vehicleId,uint8 kind,uint64 issuedAt,uint64 validFrom,"
    "uint64 validUntil,bytes32 documentHash)"
)
_TYPEHASH: Final = type_hash(CREDENTIAL_TYPE)
_FIELDS: Final = (
    {"name": "vehicleId", "type": "uint256"},
    {"name": "kind", "type": "uint8"},
    {"name": "issuedAt", "type": "uint64"},
    {"name": "validFrom", "type": "uint64"},
    {"name": "validUntil", "type": "uint64"},
    {"name": "documentHash", "type": "bytes32"},
)
#: The VC Data Model 2.0 context.
VC_CONTEXT: Final = "https://www.w3.org/ns/credentials/v2"
#: Our proof type: an M-of-N EIP-712 quorum signature, checkable by `verifyCredential`.
PROOF_TYPE: Final = "DimoOracleQuorumEip712"


class CredentialKind(enum.IntEnum):
    """The credential kinds, as the contract numbers them, with their VC type names."""

    VIN = 1
    ODOMETER = 2
    HEALTH = 3
    POSITION = 4

    @property
    def vc_type(self) -> str:
        """The document's specific `type` entry."""
        return _VC_TYPES[self]

    @classmethod
    def of_vc_type(cls, name: str) -> CredentialKind:
        """The kind whose `vc_type` is `name`.

        Raises:
            CredentialInvalid: no kind has it.
        """
        for kind, vc_type in _VC_TYPES.items():
            if vc_type == name:
                return kind
        raise CredentialInvalid(f"no credential kind has the type {name!r}")


_VC_TYPES: Final = {
    CredentialKind.VIN: "VehicleVinCredential",
    CredentialKind.ODOMETER: "VehicleOdometerStatement",
    CredentialKind.HEALTH: "VehicleHealthCredential",
    CredentialKind.POSITION: "VehiclePositionCredential",
}


class CredentialInvalid(ProtocolError, ValueError):
    """A credential fails verification: malformed, tampered, under-signed, revoked,
    superseded or expired. `error` names the contract error that matches, when one does."""

    def __init__(self, reason: str, error: str | None = None) -> None:
        self.reason = reason
        self.error = error
        super().__init__(f"the credential does not verify: {reason}")


# --------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------


def canonical_json(doc: Mapping[str, Any]) -> bytes:
    """The canonical JSON of a document: keys sorted, no spaces, ASCII."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def iso_ms(ms: int) -> str:
    """Unix ms as RFC 3339 UTC with milliseconds, e.g. `2026-12-06T10:24:40.123Z`."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{ms % 1000:03d}Z"
    )


def ms_of_iso(text: str) -> int:
    """Unix ms of an RFC 3339 time (a zone is required).

    Raises:
        ValueError: not an RFC 3339 time with a zone.
    """
    at = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if at.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone (RFC 3339 needs one, e.g. Z)")
    return int(at.timestamp() * 1000 + (0.5 if at.timestamp() >= 0 else -0.5))


def vehicle_did(chain_id: int, vehicle_contract: str, token_id: int) -> str:
    """The vehicle's DID, `did:erc721:<chainId>:<VehicleId address>:<tokenId>`."""
    return f"did:erc721:{chain_id}:{checksum_address(vehicle_contract)}:{token_id}"


def document_hash(document: Mapping[str, Any]) -> bytes:
    """keccak256 of the document's canonical JSON without its `proof`."""
    return keccak256(canonical_json({k: v for k, v in document.items() if k != "proof"}))


@dataclass(frozen=True)
class Credential:
    """The signed struct (`IVehicleCredentials.Credential`)."""

    vehicle_id: int
    kind: CredentialKind
    issued_at: int
    valid_from: int
    valid_until: int
    document_hash: bytes

    def as_tuple(self) -> tuple[int, int, int, int, int, bytes]:
        """The struct as web3 and Ape take it."""
        return (
            self.vehicle_id,
            int(self.kind),
            self.issued_at,
            self.valid_from,
            self.valid_until,
            self.document_hash,
        )

    def message(self) -> dict[str, Any]:
        """The struct as the `message` of `eth_signTypedData_v4` JSON."""
        return {
            "vehicleId": self.vehicle_id,
            "kind": int(self.kind),
            "issuedAt": self.issued_at,
            "validFrom": self.valid_from,
            "validUntil": self.valid_until,
            "documentHash": "0x" + self.document_hash.hex(),
        }

    def digest(self, domain: Eip712Domain) -> bytes:
        """The EIP-712 digest the oracles sign (domain: the VehicleCredentials contract)."""
        return domain.digest(
            keccak256(
                _TYPEHASH
                + b"".join(
                    v.to_bytes(32, "big")
                    for v in (
                        self.vehicle_id,
                        int(self.kind),
                        self.issued_at,
                        self.valid_from,
                        self.valid_until,
                    )
                )
                + self.document_hash
            )
        )


def typed_data(credential: Credential, domain: Eip712Domain) -> dict[str, Any]:
    """The credential as `eth_signTypedData_v4` JSON (what a wallet or eth-account signs)."""
    return {
        "types": {
            "EIP712Domain": [dict(f) for f in EIP712_DOMAIN_FIELDS],
            "VehicleCredential": [dict(f) for f in _FIELDS],
        },
        "primaryType": "VehicleCredential",
        "domain": domain.as_dict(),
        "message": credential.message(),
    }


def _subject_token_id(document: Mapping[str, Any]) -> int:
    subject = document["credentialSubject"]
    did = str(subject["id"])
    parts = did.split(":")
    if len(parts) != 5 or parts[:2] != ["did", "erc721"]:
        raise CredentialInvalid(f"the subject {did!r} is not a vehicle DID")
    return int(parts[4])


def struct_of(document: Mapping[str, Any]) -> Credential:
    """The struct a document's proof must carry signatures of, rebuilt from the document.

    Raises:
        CredentialInvalid: a field the struct needs is missing or malformed.
    """
    try:
        types = list(document["type"])
        specific = [t for t in types if t != "VerifiableCredential"]
        if "VerifiableCredential" not in types or len(specific) != 1:
            raise CredentialInvalid(f"type {types} is not [VerifiableCredential, <kind>]")
        until = document.get("validUntil")
        return Credential(
            vehicle_id=_subject_token_id(document),
            kind=CredentialKind.of_vc_type(specific[0]),
            issued_at=ms_of_iso(str(document["proof"]["created"])),
            valid_from=ms_of_iso(str(document["validFrom"])),
            valid_until=0 if until is None else ms_of_iso(str(until)),
            document_hash=document_hash(document),
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, CredentialInvalid):
            raise
        raise CredentialInvalid(f"malformed credential document: {exc!r}") from None


# --------------------------------------------------------------------------------------------
# Signing and verifying
# --------------------------------------------------------------------------------------------


def sign_document(
    unsigned: Mapping[str, Any],
    issued_at: int,
    domain: Eip712Domain,
    signatures: Sequence[tuple[str, bytes]],
) -> dict[str, Any]:
    """The document with its quorum proof.

    Args:
        unsigned: The document without `proof`.
        issued_at: The issue time, unix ms (the proof's `created`).
        domain: The VehicleCredentials domain.
        signatures: (signer, 65-byte signature) pairs of the struct's digest.
    """
    ordered = sorted(signatures, key=lambda pair: int(pair[0], 16))
    document = dict(unsigned)
    document["proof"] = {
        "type": PROOF_TYPE,
        "created": iso_ms(issued_at),
        "proofPurpose": "assertionMethod",
        "verificationMethod": (
            f"eip155:{domain.chain_id}:{domain.verifying_contract}#verifyCredential"
        ),
        "signers": [checksum_address(w) for w, _ in ordered],
        "signatures": "0x" + b"".join(s for _, s in ordered).hex(),
    }
    return document


def proof_signatures(document: Mapping[str, Any]) -> bytes:
    """The concatenated signatures of a document's proof.

    Raises:
        CredentialInvalid: no proof, or its signatures are not hex.
    """
    try:
        return bytes.fromhex(str(document["proof"]["signatures"]).removeprefix("0x"))
    except (KeyError, TypeError, ValueError) as exc:
        raise CredentialInvalid(f"the proof carries no signatures: {exc!r}") from None


@dataclass(frozen=True)
class CredentialStatus:
    """What the chain says of a credential's kind and vehicle, as `verify_offline` needs it.

    Attributes:
        revoked: Digests of revoked credentials (`VehicleCredentials.isRevoked`).
        latest_issued_at: Per (vehicle, kind), the issue time of the latest credential
            relayed on-chain (`latestIssuedAt`); credentials issued before it are superseded.
        now_ms: The time validity is judged at.
    """

    now_ms: int
    revoked: Collection[bytes] = frozenset()
    latest_issued_at: Mapping[tuple[int, int], int] = field(default_factory=dict)


def verify_offline(
    document: Mapping[str, Any],
    domain: Eip712Domain,
    oracles: Sequence[str],
    threshold: int,
    status: CredentialStatus,
) -> list[str]:
    """Verifies a credential document without a contract call, with eth-account.

    The checks mirror `VehicleCredentials.verifyCredential`, in its order.

    Args:
        document: The credential with its proof.
        domain: The VehicleCredentials domain (chain id and address).
        oracles: The current oracle set.
        threshold: How many of them must sign.
        status: Revocations and supersessions read from the chain, and the time.

    Returns:
        The signers, ascending.

    Raises:
        CredentialInvalid: it does not verify; `error` names the contract error that matches.
    """
    credential = struct_of(document)
    if credential.valid_until and credential.valid_until < credential.valid_from:
        raise CredentialInvalid("it ends before it starts", "VehicleCredentialsInvalidWindow")
    signable = encode_typed_data(full_message=typed_data(credential, domain))
    digest = credential.digest(domain)
    signatures = proof_signatures(document)
    if len(signatures) % 65:
        raise CredentialInvalid(
            f"{len(signatures)} bytes of signatures is not a multiple of 65",
            "OracleRegistryMalformedSignatures",
        )
    count = len(signatures) // 65
    if count < threshold:
        raise CredentialInvalid(
            f"{count} signatures where the quorum needs {threshold}",
            "OracleRegistryQuorumNotReached",
        )
    members = {checksum_address(a) for a in oracles}
    signers: list[str] = []
    for i in range(count):
        sig = signatures[65 * i : 65 * i + 65]
        try:
            who = checksum_address(Account.recover_message(signable, signature=sig))
        except Exception as exc:  # eth-keys raises several types for a bad signature
            raise CredentialInvalid(
                f"signature {i} does not recover: {exc}", "ECDSAInvalidSignature"
            ) from None
        if signers and int(who, 16) <= int(signers[-1], 16):
            raise CredentialInvalid(
                f"signer {who} after {signers[-1]}: not ascending",
                "OracleRegistryUnsortedSigners",
            )
        if who not in members:
            raise CredentialInvalid(
                f"{who} is not a current oracle (a forged signature, or the document was "
                "changed after signing)",
                "OracleRegistryUnknownSigner",
            )
        signers.append(who)
    if digest in set(status.revoked):
        raise CredentialInvalid("the quorum revoked it", "VehicleCredentialsRevoked")
    latest = status.latest_issued_at.get((credential.vehicle_id, int(credential.kind)), 0)
    if credential.issued_at < latest:
        raise CredentialInvalid(
            f"a credential issued at {iso_ms(latest)} superseded it",
            "VehicleCredentialsSuperseded",
        )
    if credential.valid_until and status.now_ms > credential.valid_until:
        raise CredentialInvalid(
            f"it expired at {iso_ms(credential.valid_until)}", "VehicleCredentialsExpired"
        )
    return signers
