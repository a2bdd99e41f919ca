"""Vehicle credentials issued by the oracle quorum: what each credential states, recomputed
from verified data, and the issuer that signs, stores and supersedes them.

`StatementBuilder` states each kind from data it verifies itself, read from the indexer with
the caller's own token (so the indexer's rights engine decides what the caller may have
attested), every reading's bundle checked against its device signature and the root
`AttestationAnchor` holds (`apps.audit.fetch_and_verify_inputs`):

- VIN: the latest `Vehicle.VehicleIdentification.VIN` reading (the bridge's OBD-II Mode 09
  read, device-signed), which with the owner's revealed salt must give the commitment the
  vehicle was minted with (`VehicleMinted`, checked by `VehicleId.vehicleOfVinCommitment`);
- odometer statement: the latest `Vehicle.TraveledDistance` reading at or before the time asked,
  after the finance app's tamper checks (`apps.finance.odometer_history`) over the readings
  before it; a decrease or an implausible jump refuses the statement;
- vehicle health: the battery state of health of `battery-soh/1`, recomputed as the battery
  certifier does (`BatteryChecker.recompute`); fault codes are stated as unavailable, the VSS
  catalog carrying no trouble-code signal;
- vehicle position: the latest latitude and longitude at or before the time asked, no older
  than `position_max_age_ms`; the route checks the location privilege first.

`CredentialIssuer` turns a statement into a W3C credential (`protocol.credentials`), has the
local oracle keys sign its EIP-712 digest under `VehicleCredentials`, refuses below the
on-chain threshold, stores the document by CID, and relays every odometer statement to
`VehicleCredentials.supersede` so that earlier ones stop verifying. `revoke` has the keys sign
a revocation and relays it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
from eth_account import Account
from web3.exceptions import ContractCustomError, ContractLogicError

from apps import battery, finance
from apps.audit import AppInputs, fetch_and_verify_inputs
from apps.exceptions import ChainUnavailableError as AuditChainUnavailable
from apps.exceptions import InputProofInvalid
from oracle.certifier.battery import BatteryChecker, collect_signatures, covers
from oracle.certifier.chain import CertifierChain
from oracle.certifier.exceptions import (
    AttestationError,
    AttestationNoReading,
    AttestationPrivilegeMissing,
    AttestationQuorumNotReached,
    AttestationRequestInvalid,
    AttestationSaltMismatch,
    AttestationUnauthenticated,
    AttestationUnknownVehicle,
)
from oracle.certify import CheckerUnavailable, StatementMalformed, StatementRefused
from oracle.quorum import OracleSigner
from protocol.blobstore import BlobStore
from protocol.credentials import (
    VC_CONTEXT,
    Credential,
    CredentialKind,
    canonical_json,
    iso_ms,
    ms_of_iso,
    sign_document,
    struct_of,
    vehicle_did,
)
from protocol.crypto import keccak256
from protocol.readings import ODOMETER

__all__ = [
    "CREDENTIAL_KIND",
    "LATITUDE",
    "LONGITUDE",
    "ODOMETER",
    "SUPERSEDING",
    "VIN",
    "Caller",
    "CredentialChecker",
    "CredentialDocuments",
    "CredentialIssuer",
    "IssuedCredential",
    "Statement",
    "StatementBuilder",
    "StatementRequest",
    "state",
]

log = logging.getLogger(__name__)

VIN: Final = "Vehicle.VehicleIdentification.VIN"
LATITUDE: Final = "Vehicle.CurrentLocation.Latitude"
LONGITUDE: Final = "Vehicle.CurrentLocation.Longitude"
#: Readings asked per page of the indexer's readings route (its most).
_PAGE: Final = 100
#: Unix ms the chain's timestamps cannot reach; bounds a time given by a caller.
MAX_MS: Final = 2**63 - 1


@dataclass(frozen=True)
class Caller:
    """Who asks, as the indexer knows them: the bearer token it issued, a wallet access token
    or a vehicle JWT of DIMO's token exchange (`attestation_api.caller` reads it).

    Every reading is read from the indexer with `token`, so its rights engine decides, on
    each request, what the caller may have attested (a vehicle JWT: its licence's rights now,
    narrowed to the token's privileges).

    Attributes:
        token: The bearer token, passed on to the indexer.
        vehicle: A vehicle JWT's vehicle; None for a wallet token.
        privileges: A vehicle JWT's DIMO privilege ids.
    """

    token: str
    vehicle: int | None = None
    privileges: tuple[int, ...] = ()


@dataclass(frozen=True)
class Statement:
    """What a credential states, before it is signed.

    Attributes:
        kind: The credential kind.
        vehicle_id: The subject vehicle.
        claims: The subject's claims (the `credentialSubject` without its `id`).
        evidence: The anchored readings it rests on.
        valid_for_ms: How long it stays valid after issue; 0 for no expiry.
    """

    kind: CredentialKind
    vehicle_id: int
    claims: dict[str, Any]
    evidence: list[dict[str, Any]] = field(default_factory=list)
    valid_for_ms: int = 0


@dataclass(frozen=True)
class _Minted:
    owner: str
    vin_commitment: bytes
    minted_ms: int


#: The signals whose readings each kind states, which a stored credential's reader must hold.
_STATED: Final = {
    CredentialKind.VIN: frozenset({VIN}),
    CredentialKind.ODOMETER: frozenset({ODOMETER}),
    CredentialKind.HEALTH: frozenset(battery.REQUIRED),
    CredentialKind.POSITION: frozenset({LATITUDE, LONGITUDE}),
}


# --------------------------------------------------------------------------------------------
# Statements from verified data
# --------------------------------------------------------------------------------------------


class StatementBuilder:
    """States each credential kind from readings it verifies against the chain."""

    def __init__(
        self,
        api_url: str,
        chain: CertifierChain,
        battery_checker: BatteryChecker,
        *,
        vin_valid_ms: int,
        odometer_window_ms: int,
        position_max_age_ms: int,
        timeout_s: float = 120.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Binds the builder to its indexer and chain.

        Args:
            api_url: Base URL of the indexer API (read with the caller's token).
            chain: The chain and deployment.
            battery_checker: Recomputes battery health (the battery certifier's).
            vin_valid_ms: How long a VIN credential stays valid.
            odometer_window_ms: How far before the statement's time tamper checks look.
            position_max_age_ms: Oldest position reading a position credential may state.
            timeout_s: HTTP timeout towards the indexer.
            clock: Seconds since the epoch.
        """
        self.api_url = api_url.rstrip("/")
        self.chain = chain
        self.battery = battery_checker
        self.vin_valid_ms = vin_valid_ms
        self.odometer_window_ms = odometer_window_ms
        self.position_max_age_ms = position_max_age_ms
        self.anchor_address = chain.deployment.contract("AttestationAnchor").address
        self.clock = clock
        self._http = httpx.Client(timeout=timeout_s)
        self._minted: dict[int, _Minted] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        """Closes the HTTP client."""
        self._http.close()

    def now_ms(self) -> int:
        """The builder's clock, unix ms."""
        return int(self.clock() * 1000)

    # -- the kinds ---------------------------------------------------------------------------

    def vin(self, caller: Caller, vehicle_id: int, salt: bytes) -> Statement:
        """The VIN the device read, if the salt opens the vehicle's commitment with it.

        Raises:
            AttestationUnknownVehicle, AttestationNoReading, AttestationPrivilegeMissing,
            AttestationSaltMismatch, StatementRefused, CheckerUnavailable.
        """
        minted = self.minted(vehicle_id)
        now = self.now_ms()
        items, covered = self._readings(caller, vehicle_id, VIN, minted.minted_ms, now + 1)
        if not items:
            raise AttestationNoReading(vehicle_id, VIN, "since its mint")
        last = items[-1]
        reading, device = self._verified_one(caller, vehicle_id, VIN, last, covered)
        vin = str(reading)
        if len(salt) != 32:
            raise AttestationSaltMismatch(vehicle_id, f"the salt is {len(salt)} bytes, not 32")
        commitment = keccak256(salt + vin.encode())
        if commitment != minted.vin_commitment:
            raise AttestationSaltMismatch(
                vehicle_id,
                "the salt and the VIN the device read do not give the commitment the vehicle "
                "was minted with",
            )
        fn = self.chain.contract("VehicleId").functions.vehicleOfVinCommitment(
            commitment, minted.owner
        )
        on_chain = self.chain.call("vehicleOfVinCommitment", fn.call, self._unavailable)
        if int(on_chain) != vehicle_id:
            raise AttestationSaltMismatch(
                vehicle_id, f"VehicleId maps the commitment to vehicle {on_chain}"
            )
        return Statement(
            CredentialKind.VIN,
            vehicle_id,
            {
                "vehicleIdentificationNumber": vin,
                "vinCommitment": "0x" + commitment.hex(),
                "recordedAt": iso_ms(int(last["t"])),
                "recordedBy": device,
                "source": "OBD-II Mode 09 PID 02, device-signed",
            },
            [self._evidence(VIN, last, device)],
            self.vin_valid_ms,
        )

    def odometer(self, caller: Caller, vehicle_id: int, at_ms: int | None) -> Statement:
        """The odometer at `at_ms` (default now), after the finance app's tamper checks.

        Raises:
            AttestationUnknownVehicle, AttestationNoReading, AttestationPrivilegeMissing,
            AttestationRequestInvalid, StatementRefused, CheckerUnavailable.
        """
        minted = self.minted(vehicle_id)
        now = self.now_ms()
        at = now if at_ms is None else at_ms
        if at > now:
            raise AttestationRequestInvalid(f"timestamp {iso_ms(at)} is in the future")
        start = max(minted.minted_ms, at - self.odometer_window_ms)
        items, covered = self._readings(caller, vehicle_id, ODOMETER, start, at + 1)
        if not items:
            raise AttestationNoReading(vehicle_id, ODOMETER, f"in [{iso_ms(start)}, {iso_ms(at)}]")
        inputs = self._verified(caller, vehicle_id, [ODOMETER], items, start, at + 1, covered)
        readings = inputs.get(ODOMETER)
        history = finance.odometer_history(
            readings, inputs.devices, finance.FinanceParams(), minted.minted_ms, at + 1
        )
        if history["tampered"]:
            flagged = [s for s in history["signals"] if s["kind"] != "gap"]
            raise StatementRefused(
                "odometer",
                f"{finance.METHOD} flags the odometer history: "
                + ", ".join(f"{s['kind']} at {iso_ms(int(s['to_ts']))}" for s in flagged),
            )
        last = items[-1]
        device = inputs.devices[(int(last["batch_id"]), int(last["leaf_index"]))]
        return Statement(
            CredentialKind.ODOMETER,
            vehicle_id,
            {
                "odometer": {"value": history["latest"]["km"], "unit": "km"},
                "recordedAt": iso_ms(int(history["latest"]["ts"])),
                "statementTime": iso_ms(at),
                "tamperCheck": {
                    "method": finance.METHOD,
                    "from": iso_ms(start),
                    "readings": history["readings"],
                    "signedKm": history["signed_km"],
                    "flags": history["flags"],
                },
            },
            [self._evidence(ODOMETER, last, device)],
        )

    def health(self, caller: Caller, vehicle_id: int, start: int, end: int) -> Statement:
        """The battery state of health over `[start, end)` (`battery-soh/1`).

        Raises:
            AttestationUnknownVehicle, AttestationRequestInvalid, StatementRefused,
            CheckerUnavailable.
        """
        self.minted(vehicle_id)
        if end <= start:
            raise AttestationRequestInvalid(
                f"endTime {iso_ms(end)} is not after startTime {iso_ms(start)}"
            )
        if end > self.now_ms():
            raise AttestationRequestInvalid(f"endTime {iso_ms(end)} is in the future")
        cert = self.battery.recompute(vehicle_id, start, end, caller.token)
        return Statement(
            CredentialKind.HEALTH,
            vehicle_id,
            {
                "window": {"startTime": iso_ms(start), "endTime": iso_ms(end)},
                "batteryStateOfHealth": {
                    "percent": cert.soh_bps / 100,
                    "lower95Percent": cert.lower_bps / 100,
                    "upper95Percent": cert.upper_bps / 100,
                    "method": f"battery-soh/{cert.method_version}",
                    "inputsRoot": "0x" + cert.inputs_root.hex(),
                },
                "faultCodes": {
                    "available": False,
                    "reason": "the VSS catalog carries no diagnostic trouble code signal",
                },
            },
        )

    def position(self, caller: Caller, vehicle_id: int, at_ms: int) -> Statement:
        """Where the vehicle was at `at_ms`: its latest position no older than the limit.

        The caller's location privilege is the route's to check (`require_location`).

        Raises:
            AttestationUnknownVehicle, AttestationNoReading, AttestationRequestInvalid,
            StatementRefused, CheckerUnavailable.
        """
        self.minted(vehicle_id)
        if at_ms > self.now_ms():
            raise AttestationRequestInvalid(f"timestamp {iso_ms(at_ms)} is in the future")
        start = max(0, at_ms - self.position_max_age_ms)
        found: dict[str, dict[str, Any]] = {}
        spans: dict[str, list[tuple[int, int]]] = {}
        for name in (LATITUDE, LONGITUDE):
            items, covered = self._readings(caller, vehicle_id, name, start, at_ms + 1)
            if not items:
                raise AttestationNoReading(
                    vehicle_id, name, f"in [{iso_ms(start)}, {iso_ms(at_ms)}]"
                )
            found[name], spans[name] = items[-1], covered
        values: dict[str, float] = {}
        evidence = []
        for name, item in found.items():
            value, device = self._verified_one(caller, vehicle_id, name, item, spans[name])
            values[name] = float(value)
            evidence.append(self._evidence(name, item, device))
        return Statement(
            CredentialKind.POSITION,
            vehicle_id,
            {
                "location": {"latitude": values[LATITUDE], "longitude": values[LONGITUDE]},
                "recordedAt": iso_ms(max(int(i["t"]) for i in found.values())),
                "statementTime": iso_ms(at_ms),
            },
            evidence,
        )

    def require_location(self, caller: Caller, vehicle_id: int, at_ms: int) -> None:
        """Refuses a caller whose rights do not cover the position at `at_ms`.

        Raises:
            AttestationPrivilegeMissing: no LOCATION right at that time.
        """
        self.minted(vehicle_id)
        start = max(0, at_ms - self.position_max_age_ms)
        for name in (LATITUDE, LONGITUDE):
            _, covered = self._readings(caller, vehicle_id, name, start, at_ms + 1, limit=1)
            if not any(a <= at_ms < b for a, b in covered):
                raise AttestationPrivilegeMissing(
                    vehicle_id, "LOCATION", f"{name} is not covered at {iso_ms(at_ms)}"
                )

    def require_stated(
        self,
        caller: Caller,
        vehicle_id: int,
        kind: CredentialKind,
        document: Mapping[str, Any],
    ) -> None:
        """Refuses a caller whose rights do not cover now what a stored credential states.

        Each reading its evidence names must be covered at its time, and a health
        credential's window over the battery method's required signals, as the issuing routes
        ask; the indexer's rights engine answers with the caller's token, so a sale or an
        expired grant ends access. A document naming other readings than its kind states is
        refused too.

        Raises:
            AttestationPrivilegeMissing: the rights do not cover it, or the document names no
                reading of its kind.
            AttestationUnknownVehicle, AttestationUnauthenticated, StatementRefused,
            CheckerUnavailable.
        """
        self.minted(vehicle_id)
        try:
            spans = [
                (str(e["signal"]), ms_of_iso(str(e["time"])), ms_of_iso(str(e["time"])) + 1)
                for e in document.get("evidence", [])
            ]
            if kind is CredentialKind.HEALTH:
                window = document["credentialSubject"]["window"]
                start, end = ms_of_iso(window["startTime"]), ms_of_iso(window["endTime"])
                spans += [(name, start, end) for name in battery.REQUIRED]
        except (KeyError, TypeError, ValueError) as exc:
            raise AttestationPrivilegeMissing(
                vehicle_id, kind.name, f"the credential names no checkable reading: {exc!r}"
            ) from None
        if {name for name, _, _ in spans} != _STATED[kind] or any(a >= b for _, a, b in spans):
            raise AttestationPrivilegeMissing(
                vehicle_id, kind.name, "the credential names other readings than its kind states"
            )
        for name, start, end in spans:
            _, covered = self._readings(caller, vehicle_id, name, start, end, limit=1)
            if not covers(covered, start, end):
                raise AttestationPrivilegeMissing(
                    vehicle_id, name, f"not covered over [{iso_ms(start)}, {iso_ms(end)})"
                )

    # -- chain facts ------------------------------------------------------------------------

    def minted(self, vehicle_id: int) -> _Minted:
        """The vehicle's mint, from its `VehicleMinted` event.

        Raises:
            AttestationUnknownVehicle: none was minted with this id.
        """
        with self._lock:
            known = self._minted.get(vehicle_id)
        if known is not None:
            return known
        if not 0 < vehicle_id < 2**256:
            raise AttestationUnknownVehicle(vehicle_id)
        event = self.chain.contract("VehicleId").events.VehicleMinted
        logs = self.chain.call(
            "VehicleMinted logs",
            lambda: event.get_logs(argument_filters={"vehicleId": vehicle_id}, from_block=0),
            self._unavailable,
        )
        if not logs:
            raise AttestationUnknownVehicle(vehicle_id)
        log_ = logs[0]
        block = self.chain.call(
            "the mint's block",
            lambda: self.chain.w3.eth.get_block(log_["blockNumber"]),
            self._unavailable,
        )
        minted = _Minted(
            str(log_["args"]["owner"]),
            bytes(log_["args"]["vinCommitment"]),
            int(block["timestamp"]) * 1000,
        )
        with self._lock:
            self._minted[vehicle_id] = minted
        return minted

    # -- the indexer -------------------------------------------------------------------------

    def _get(
        self, caller: Caller, vehicle_id: int, path: str, params: Mapping[str, Any]
    ) -> dict[str, Any]:
        try:
            r = self._http.get(
                self.api_url + path,
                params=dict(params),
                headers={"Authorization": f"Bearer {caller.token}"},
            )
        except httpx.HTTPError as exc:
            raise self._unavailable(f"indexer {self.api_url}: {exc}") from None
        if r.status_code == 401:
            raise AttestationUnauthenticated(f"the indexer refused the token: {_text(r)}")
        if r.status_code >= 500:
            raise self._unavailable(f"indexer {self.api_url}{path}: HTTP {r.status_code}")
        if r.status_code == 403:
            raise AttestationPrivilegeMissing(
                vehicle_id, str(params.get("signal", "the privilege")), _text(r)
            )
        if r.status_code != 200:
            raise StatementRefused("attestation", f"the indexer refused the caller: {_text(r)}")
        body: dict[str, Any] = r.json()
        return body

    def _readings(
        self,
        caller: Caller,
        vehicle_id: int,
        signal: str,
        start: int,
        end: int,
        *,
        limit: int | None = None,
    ) -> tuple[list[dict[str, Any]], list[tuple[int, int]]]:
        """The signal's verified readings in `[start, end)` the caller's rights cover, oldest
        first, and the covered spans. No coverage at all is a missing privilege."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        covered: list[tuple[int, int]] = []
        privilege = "?"
        while True:
            params: dict[str, Any] = {
                "signal": signal,
                "start": start,
                "end": end,
                "limit": min(_PAGE, limit or _PAGE),
            }
            if cursor is not None:
                params["cursor"] = cursor
            page = self._get(caller, vehicle_id, f"/vehicles/{vehicle_id}/readings", params)
            covered = [(int(a), int(b)) for a, b in page["covered"]]
            privilege = str(page["privilege"])
            items += page["items"]
            cursor = page.get("next_cursor")
            if cursor is None or (limit is not None and len(items) >= limit):
                break
        if not covered:
            raise AttestationPrivilegeMissing(
                vehicle_id, privilege, f"{signal} is not covered in the window asked"
            )
        return items, covered

    def _verified(
        self,
        caller: Caller,
        vehicle_id: int,
        signals: Sequence[str],
        items: Sequence[Mapping[str, Any]],
        start: int,
        end: int,
        covered: Sequence[tuple[int, int]],
    ) -> AppInputs:
        refs = sorted({(int(i["batch_id"]), int(i["leaf_index"])) for i in items})
        try:
            inputs = fetch_and_verify_inputs(
                self.api_url,
                caller.token,
                vehicle_id,
                refs,
                self.chain.rpc_url,
                self.anchor_address,
                signal_names=list(signals),
                start_ms=start,
                end_ms=end,
                covered={s: list(covered) for s in signals},
                client=self._http,
            )
        except InputProofInvalid as exc:
            raise StatementRefused("attestation", str(exc)) from None
        except AuditChainUnavailable as exc:
            raise self._unavailable(str(exc)) from None
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code >= 500:
                raise self._unavailable(f"indexer proofs: {exc}") from None
            raise StatementRefused(
                "attestation", f"the indexer withheld the proofs: {_text(exc.response)}"
            ) from None
        except httpx.HTTPError as exc:
            raise self._unavailable(f"indexer proofs: {exc}") from None
        served = [(int(i["t"]), i["value"]) for i in items]
        mine = [(r.ts, r.value) for s in signals for r in inputs.get(s)]
        if sorted(mine, key=lambda p: p[0]) != sorted(served, key=lambda p: p[0]):
            raise StatementRefused(
                "attestation", "the indexer served readings its bundles do not carry"
            )
        return inputs

    def _verified_one(
        self,
        caller: Caller,
        vehicle_id: int,
        signal: str,
        item: Mapping[str, Any],
        covered: Sequence[tuple[int, int]],
    ) -> tuple[float | str, str]:
        """One served reading, checked against its verified bundle: (value, device)."""
        t = int(item["t"])
        inputs = self._verified(caller, vehicle_id, [signal], [item], t, t + 1, covered)
        ref = (int(item["batch_id"]), int(item["leaf_index"]))
        return inputs.get(signal)[-1].value, inputs.devices[ref]

    @staticmethod
    def _evidence(signal: str, item: Mapping[str, Any], device: str) -> dict[str, Any]:
        return {
            "type": ["DimoAnchoredReading"],
            "signal": signal,
            "time": iso_ms(int(item["t"])),
            "batchId": int(item["batch_id"]),
            "leafIndex": int(item["leaf_index"]),
            "device": device,
        }

    @staticmethod
    def _unavailable(reason: str) -> CheckerUnavailable:
        return CheckerUnavailable("attestation", reason)


def _text(r: httpx.Response) -> str:
    try:
        body = r.json()
        return f"{r.status_code} {body.get('title')}: {body.get('detail')}"
    except ValueError:
        return f"{r.status_code} {r.text[:300]}"


# --------------------------------------------------------------------------------------------
# Issuing
# --------------------------------------------------------------------------------------------


#: Kinds whose every new credential supersedes the earlier ones on-chain.
SUPERSEDING: Final = frozenset({CredentialKind.ODOMETER})
#: The statement kind of credentials at the certifiers (`POST /v1/certify/credential`).
CREDENTIAL_KIND: Final = "credential"


class CredentialDocuments:
    """Writes a statement as its W3C credential; what the issuer and every certifier write
    alike, from the deployment alone."""

    def __init__(self, chain: CertifierChain) -> None:
        deployment = chain.deployment
        self.chain_id = deployment.chain_id
        self.domain = chain.domain_of("VehicleCredentials")
        self.issuer = (
            f"did:ethr:{deployment.chain_id}:{deployment.contract('AttestationAnchor').address}"
        )
        self.vehicle_contract = deployment.contract("VehicleId").address
        self.status_id = f"eip155:{deployment.chain_id}:{self.domain.verifying_contract}"

    def document(self, statement: Statement, issued_at: int) -> dict[str, Any]:
        """The unsigned W3C credential of a statement issued at `issued_at`."""
        chain_id = self.chain_id
        kind = statement.kind
        doc: dict[str, Any] = {
            "@context": [VC_CONTEXT],
            "id": (
                f"urn:dimo:credential:{chain_id}:{kind.name.lower()}:"
                f"{statement.vehicle_id}:{issued_at}"
            ),
            "type": ["VerifiableCredential", kind.vc_type],
            "issuer": self.issuer,
            "validFrom": iso_ms(issued_at),
            "credentialSubject": {
                "id": vehicle_did(chain_id, self.vehicle_contract, statement.vehicle_id),
                "vehicleTokenId": statement.vehicle_id,
                **statement.claims,
            },
            "credentialStatus": {
                "id": f"{self.status_id}#verifyCredential",
                "type": "DimoOnChainCredentialStatus",
                "supersededByLater": kind in SUPERSEDING,
            },
        }
        if statement.valid_for_ms:
            doc["validUntil"] = iso_ms(issued_at + statement.valid_for_ms)
        if statement.evidence:
            doc["evidence"] = statement.evidence
        return doc


@dataclass(frozen=True)
class IssuedCredential:
    """A signed credential and where it is.

    Attributes:
        document: The W3C credential with its quorum proof.
        cid: Its CID in the blob store (canonical JSON).
        credential: The struct `verifyCredential` takes.
        signatures: The signatures, concatenated in ascending signer order.
        superseding_tx: The `supersede` transaction of an odometer statement, else None.
    """

    document: dict[str, Any]
    cid: str
    credential: Credential
    signatures: bytes
    superseding_tx: str | None = None


class CredentialIssuer:
    """Signs statements into credentials with the local oracle keys, stores and relays them."""

    def __init__(
        self,
        chain: CertifierChain,
        keys: Sequence[str],
        store: BlobStore,
        *,
        relayer_key: str,
        certifier_urls: Sequence[str] = (),
        timeout_s: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Holds the keys.

        Args:
            chain: The chain and deployment.
            keys: The oracle keys (hex) that sign here.
            store: Where credentials are stored by CID.
            relayer_key: The funded key that sends `supersede` and `revoke` transactions.
            certifier_urls: Certifiers (`dimo certify serve`) asked for the signatures the
                local keys lack; each recomputes the statement before its keys sign.
            timeout_s: HTTP timeout towards the certifiers.
            clock: Seconds since the epoch.
        """
        self.chain = chain
        self.domain = chain.domain_of("VehicleCredentials")
        self.signers = sorted(
            (OracleSigner(k, self.domain) for k in keys), key=lambda s: int(s.address, 16)
        )
        self.store = store
        self.clock = clock
        self._relayer = Account.from_key(relayer_key)
        self._send_lock = threading.Lock()
        self._last_issued: dict[tuple[int, int], int] = {}
        self.documents = CredentialDocuments(chain)
        self.certifier_urls = list(certifier_urls)
        self._http = httpx.Client(timeout=timeout_s)

    def quorum(self) -> tuple[set[str], int]:
        """The current oracle set and threshold, from the chain."""
        fn = self.chain.contract("AttestationAnchor").functions.oracles()
        signers, threshold, _ = self.chain.call("oracles", fn.call, _chain_down)
        return {str(s) for s in signers}, int(threshold)

    def issue(
        self,
        statement: Statement,
        request: StatementRequest | None = None,
        caller: Caller | None = None,
    ) -> IssuedCredential:
        """Signs, stores and (for odometer statements) relays a statement's credential.

        The local keys sign first; when they are fewer than the threshold, the certifiers are
        asked with `request` and the caller's token, and each recomputes the statement.

        Raises:
            AttestationQuorumNotReached: fewer signatures than the threshold.
            CheckerUnavailable: the chain did not answer.
        """
        members, threshold = self.quorum()
        signers = [s for s in self.signers if s.address in members]
        issued_at = self._issue_time(statement)
        unsigned = self.documents.document(statement, issued_at)
        credential = struct_of(sign_document(unsigned, issued_at, self.domain, []))
        digest = credential.digest(self.domain)
        signed = {s.address: s.sign_checked(digest) for s in signers}
        if len(signed) < threshold and self.certifier_urls and request and caller:
            ask = {
                "statement": request.as_json(),
                "issuedAt": issued_at,
                "document": unsigned,
                "token": caller.token,
            }
            _, _, problems = collect_signatures(
                self.certifier_urls,
                ask,
                digest,
                sorted(members),
                client=self._http,
                kind=CREDENTIAL_KIND,
                into=signed,
            )
            for problem in problems:
                log.warning("a certifier did not sign a credential: %s", problem)
        if len(signed) < threshold:
            raise AttestationQuorumNotReached(len(signed), threshold)
        pairs = sorted(signed.items(), key=lambda pair: int(pair[0], 16))
        document = sign_document(unsigned, issued_at, self.domain, pairs)
        signatures = b"".join(sig for _, sig in pairs)
        tx = None
        if statement.kind in SUPERSEDING:
            # Relayed first: a statement the chain refuses is neither stored nor answered.
            tx = self._send("supersede", credential.as_tuple(), signatures)
        cid = self.store.put(canonical_json(document))
        log.info(
            "issued %s credential %s for vehicle %d",
            statement.kind.name,
            cid,
            credential.vehicle_id,
        )
        return IssuedCredential(document, cid, credential, signatures, tx)

    def _issue_time(self, statement: Statement) -> int:
        """Now in ms, but later than this issuer's last credential of the same vehicle and
        kind: a later statement must supersede, and `supersede` wants a strictly later time."""
        key = (statement.vehicle_id, int(statement.kind))
        with self._send_lock:
            at = max(int(self.clock() * 1000), self._last_issued.get(key, -1) + 1)
            self._last_issued[key] = at
        return at

    def revoke(self, document: Mapping[str, Any]) -> str:
        """Has the local keys sign the revocation of a credential and relays it.

        Returns:
            The transaction hash.

        Raises:
            AttestationQuorumNotReached: the local keys are fewer than the threshold.
        """
        members, threshold = self.quorum()
        signers = [s for s in self.signers if s.address in members]
        if len(signers) < threshold:
            raise AttestationQuorumNotReached(len(signers), threshold)
        credential = struct_of(document)
        fn = self.chain.contract("VehicleCredentials").functions.revocationDigest(
            credential.digest(self.domain)
        )
        revocation = bytes(self.chain.call("revocationDigest", fn.call, _chain_down))
        signatures = b"".join(s.sign_checked(revocation) for s in signers)
        return self._send("revoke", credential.as_tuple(), signatures)

    def _send(self, function: str, *args: Any) -> str:
        """Sends a VehicleCredentials transaction from the relayer and waits for it."""
        w3 = self.chain.w3
        fn = getattr(self.chain.contract("VehicleCredentials").functions, function)(*args)
        with self._send_lock:
            try:
                tx = fn.build_transaction(
                    {
                        "from": self._relayer.address,
                        "nonce": w3.eth.get_transaction_count(self._relayer.address, "pending"),
                    }
                )
                signed = self._relayer.sign_transaction(tx)
                tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
                receipt = w3.eth.wait_for_transaction_receipt(
                    tx_hash, timeout=60, poll_latency=0.01
                )
            except (ContractCustomError, ContractLogicError) as exc:
                _, why = self.chain.decode(exc)
                raise StatementRefused("attestation", f"{function} reverted: {why}") from None
        if int(receipt["status"]) != 1:
            raise _chain_down(f"{function} transaction {tx_hash.hex()} failed")
        return "0x" + bytes(tx_hash).hex().removeprefix("0x")


# --------------------------------------------------------------------------------------------
# Requests, and the certifiers' check
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatementRequest:
    """What a route asks to be stated, every default resolved, so that each certifier
    recomputes the same statement.

    Attributes:
        kind: The credential kind.
        vehicle_id: The vehicle.
        salt: VIN: the commitment's salt.
        at_ms: Odometer and position: the statement's time, unix ms.
        start_ms: Health: the window's start, unix ms.
        end_ms: Health: the window's end, unix ms.
    """

    kind: CredentialKind
    vehicle_id: int
    salt: bytes = b""
    at_ms: int = 0
    start_ms: int = 0
    end_ms: int = 0

    def as_json(self) -> dict[str, Any]:
        """The request as JSON (the certifiers' `statement` field)."""
        return {
            "kind": int(self.kind),
            "vehicleId": self.vehicle_id,
            "salt": "0x" + self.salt.hex(),
            "at": self.at_ms,
            "start": self.start_ms,
            "end": self.end_ms,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> StatementRequest:
        """Parses `as_json`'s form.

        Raises:
            StatementMalformed: a field is missing or malformed.
        """
        try:
            return cls(
                CredentialKind(int(raw["kind"])),
                int(raw["vehicleId"]),
                bytes.fromhex(str(raw["salt"]).removeprefix("0x")),
                int(raw["at"]),
                int(raw["start"]),
                int(raw["end"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StatementMalformed(CREDENTIAL_KIND, f"malformed statement: {exc!r}") from None


def state(builder: StatementBuilder, caller: Caller, request: StatementRequest) -> Statement:
    """The statement a request asks for, from verified data (rights checked first).

    Raises:
        AttestationError: see each `StatementBuilder` method.
        StatementRefused, CheckerUnavailable: likewise.
    """
    vehicle = request.vehicle_id
    if request.kind is CredentialKind.VIN:
        return builder.vin(caller, vehicle, request.salt)
    if request.kind is CredentialKind.ODOMETER:
        return builder.odometer(caller, vehicle, request.at_ms)
    if request.kind is CredentialKind.HEALTH:
        return builder.health(caller, vehicle, request.start_ms, request.end_ms)
    builder.require_location(caller, vehicle, request.at_ms)
    return builder.position(caller, vehicle, request.at_ms)


class CredentialChecker:
    """Recomputes a credential before a certifier's keys sign it (a
    `oracle.certify.StatementChecker` for kind `credential`).

    A request is `{statement, issuedAt, document, token}`: the `StatementRequest`, the issue
    time, the unsigned document the host wrote, and the caller's token at this certifier's
    indexer. The certifier states the request again from its own verified reading of the
    data, writes the document, and signs only if it is the very one asked, issued within
    `max_skew_ms` of its clock.
    """

    def __init__(
        self,
        builder: StatementBuilder,
        *,
        max_skew_ms: int = 300_000,
    ) -> None:
        self.builder = builder
        self.documents = CredentialDocuments(builder.chain)
        self.max_skew_ms = max_skew_ms

    def __call__(self, request: Mapping[str, Any], /) -> bytes:
        """The credential's EIP-712 digest, once recomputed.

        Raises:
            StatementMalformed, StatementRefused, CheckerUnavailable.
        """
        try:
            asked = dict(request["document"])
            issued_at = int(request["issuedAt"])
            token = str(request["token"])
            wanted = StatementRequest.from_json(request["statement"])
        except (KeyError, TypeError, ValueError) as exc:
            raise StatementMalformed(
                CREDENTIAL_KIND, f"expected {{statement, issuedAt, document, token}}: {exc!r}"
            ) from None
        skew = abs(issued_at - self.builder.now_ms())
        if skew > self.max_skew_ms:
            raise StatementRefused(
                CREDENTIAL_KIND, f"issued {skew} ms away from this certifier's clock"
            )
        try:
            statement = state(self.builder, Caller(token), wanted)
        except AttestationError as exc:
            raise StatementRefused(CREDENTIAL_KIND, str(exc)) from None
        mine = self.documents.document(statement, issued_at)
        if canonical_json(mine) != canonical_json(asked):
            differ = sorted(k for k in set(mine) | set(asked) if mine.get(k) != asked.get(k))
            raise StatementRefused(
                CREDENTIAL_KIND,
                f"the verified data give another credential (fields {', '.join(differ)})",
            )
        domain = self.documents.domain
        return struct_of(sign_document(mine, issued_at, domain, [])).digest(domain)


def _chain_down(reason: str) -> CheckerUnavailable:
    return CheckerUnavailable("attestation", reason)
