"""Errors of the certifiers: a certificate the quorum did not sign, and a credential the
attestation service did not issue (each with its RFC 9457 status and type)."""

from __future__ import annotations

from oracle.exceptions import OracleError

__all__ = [
    "AttestationCredentialUnknown",
    "AttestationError",
    "AttestationNoReading",
    "AttestationNotIndexed",
    "AttestationPrivilegeMissing",
    "AttestationQuorumNotReached",
    "AttestationRequestInvalid",
    "AttestationSaltMismatch",
    "AttestationTokenExpired",
    "AttestationTokenOtherVehicle",
    "AttestationUnauthenticated",
    "AttestationUnknownVehicle",
    "CertificationFailed",
]


class CertificationFailed(OracleError, RuntimeError):
    """The certifiers did not give a quorum of signatures, or the contract rejected them.

    `error` names the contract's custom error (e.g. `OracleRegistryQuorumNotReached`) when
    `verifyCertificate` reverted with one.
    """

    def __init__(self, reason: str, error: str | None = None) -> None:
        self.reason = reason
        self.error = error
        super().__init__(f"battery certificate not certified: {reason}")


class AttestationError(OracleError):
    """A credential was not issued; `status` and `slug` are its RFC 9457 problem's."""

    status = 422
    slug = "attestation-refused"


class AttestationUnauthenticated(AttestationError, PermissionError):
    """The request carries no bearer token, or the indexer does not accept it."""

    status = 401
    slug = "unauthenticated"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(
            f"{reason}; sign in at the indexer (`dimo indexer login`) and send its token as "
            "`Authorization: Bearer <token>`"
        )


class AttestationPrivilegeMissing(AttestationError, PermissionError):
    """The caller's rights do not cover what the credential states."""

    status = 403
    slug = "privilege-missing"

    def __init__(self, vehicle_id: int, privilege: str, detail: str) -> None:
        self.vehicle_id = vehicle_id
        self.privilege = privilege
        super().__init__(
            f"your rights on vehicle {vehicle_id} do not include {privilege} ({detail}); ask "
            "the owner for a grant with it"
        )


class AttestationUnknownVehicle(AttestationError, LookupError):
    """No vehicle with this token id was minted."""

    status = 404
    slug = "unknown-vehicle"

    def __init__(self, vehicle_id: int) -> None:
        self.vehicle_id = vehicle_id
        super().__init__(f"no vehicle {vehicle_id} was minted on VehicleId")


class AttestationNoReading(AttestationError, LookupError):
    """No verified reading backs the credential asked for."""

    status = 404
    slug = "no-verified-reading"

    def __init__(self, vehicle_id: int, signal: str, window: str) -> None:
        self.vehicle_id = vehicle_id
        self.signal = signal
        super().__init__(
            f"vehicle {vehicle_id} has no verified {signal} reading {window} that your rights "
            "cover; the device must send one and the oracle anchor it first"
        )


class AttestationSaltMismatch(AttestationError, ValueError):
    """The revealed salt and the device's VIN do not give the on-chain VIN commitment."""

    status = 422
    slug = "vin-commitment-mismatch"

    def __init__(self, vehicle_id: int, reason: str) -> None:
        self.vehicle_id = vehicle_id
        self.reason = reason
        super().__init__(
            f"the VIN of vehicle {vehicle_id} is not attested: {reason}; reveal the salt the "
            "vehicle was minted with (`salt`, 32 bytes hex)"
        )


class AttestationRequestInvalid(AttestationError, ValueError):
    """The request's times or fields are malformed or out of order."""

    status = 422
    slug = "invalid-request"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"invalid attestation request: {reason}")


class AttestationQuorumNotReached(AttestationError, RuntimeError):
    """Fewer oracle keys signed than the on-chain threshold."""

    status = 503
    slug = "quorum-not-reached"

    def __init__(self, got: int, threshold: int) -> None:
        self.got = got
        self.threshold = threshold
        super().__init__(
            f"{got} of the {threshold} oracle signatures needed; give the attestation service "
            "more oracle keys (DIMO_ATTEST_KEYS)"
        )


class AttestationTokenExpired(AttestationError, PermissionError):
    """The vehicle JWT's `exp` has passed (DIMO's tokens live 10 minutes)."""

    status = 401
    slug = "vehicle-token-expired"

    def __init__(self, expired_at: int) -> None:
        self.expired_at = expired_at
        super().__init__(
            f"the vehicle JWT expired at unix time {expired_at}; exchange a new one with "
            "POST /v1/tokens/exchange"
        )


class AttestationTokenOtherVehicle(AttestationError, PermissionError):
    """A vehicle JWT sent for another vehicle than its own."""

    status = 403
    slug = "vehicle-token-other-vehicle"

    def __init__(self, asset: str, vehicle_id: int) -> None:
        self.asset = asset
        self.vehicle_id = vehicle_id
        super().__init__(
            f"the vehicle JWT is for {asset}, not vehicle {vehicle_id}; exchange one for it"
        )


class AttestationCredentialUnknown(AttestationError, LookupError):
    """No stored credential the caller's rights cover now has this CID: an unknown CID and a
    credential the caller may not read are answered alike, so that the answer does not tell
    whether the CID exists."""

    status = 404
    slug = "unknown-credential"

    def __init__(self, cid: str) -> None:
        self.cid = cid
        super().__init__(
            f"no credential {cid} that the caller's rights cover now (an unknown CID and a "
            "credential of data the caller may not read are answered alike)"
        )


class AttestationNotIndexed(AttestationError, ConnectionError):
    """The credential was issued and stored, but the indexer did not take it into the index
    `vinVCLatest` reads."""

    status = 503
    slug = "credential-not-indexed"

    def __init__(self, cid: str, reason: str) -> None:
        self.cid = cid
        self.reason = reason
        super().__init__(
            f"credential {cid} was issued and stored (GET /v2/attestation/credentials/{cid}, "
            "with a token whose rights cover it) "
            f"but the indexer did not index it ({reason}); ask again to index it"
        )
