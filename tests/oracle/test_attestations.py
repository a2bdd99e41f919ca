"""Vehicle credentials issued for real: a paired vehicle's device-signed bundles (VIN, odometer,
position) anchored on anvil and synced into an index served by uvicorn, the attestation host
with the oracle quorum's keys on 127.0.0.1, each credential checked by
`VehicleCredentials.verifyCredential` on-chain and by `verify_offline` with eth-account."""

# The fixtures come from the indexer tests; their names are parameters here by design.
# ruff: noqa: F811

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ape
import httpx
import pytest

from oracle.certifier.attestation_api import VIN_MESSAGE, SaltBook, create_attestation_app
from oracle.certifier.attestations import (
    LATITUDE,
    LONGITUDE,
    VIN,
    CredentialChecker,
    CredentialIssuer,
    StatementBuilder,
    StatementRequest,
)
from oracle.certifier.battery import BatteryChecker, create_certifier_app
from oracle.certifier.chain import CertifierChain
from protocol.credentials import (
    CredentialInvalid,
    CredentialKind,
    CredentialStatus,
    iso_ms,
    proof_signatures,
    struct_of,
    verify_offline,
)
from protocol.deployment import Deployment
from protocol.eip712 import dimo_domain
from protocol.privileges import Privilege
from tests.apps.sim import shift_for, sign_windows, simulated
from tests.conftest import FAR_FUTURE, TERMS_CID, private_key
from tests.indexer.test_api_basics import Served
from tests.indexer.test_api_telemetry import (  # fixtures shared with the telemetry tests
    World,
    world,  # noqa: F401
)
from tests.indexer.test_loader import (  # fixtures shared with the loader tests
    Anchored,
    anchor_bundles,  # noqa: F401
    domain,  # noqa: F401
    fleet,  # noqa: F401
    now_ms,  # noqa: F401
    store,  # noqa: F401
)
from tests.oracle.conftest import readings

PROBLEMS = "https://dimo.local/problems/"
SQLITE_ONLY = pytest.mark.parametrize("world", ["sqlite"], indirect=True)
SALT = b"\x01" * 32  # tests.conftest.vin_commitment's salt
_NUMBERS = itertools.count(83_000, 10)
#: The CID of `{"not": "stored"}`, which no host stores.
UNKNOWN_CID = "bafkreia6y4t7ojw6xx2gsoepxzbcqmvf7csqrokbu3szznlhkgyo3i6vjy"


@dataclass
class Car:
    """A paired vehicle with anchored readings."""

    vehicle: int
    vin: str
    start: int
    end: int


@dataclass
class Host:
    """The attestation host and what it writes to."""

    url: str
    blobs: Path
    issuer: CredentialIssuer


def _car(
    world: World,
    paired_vehicle: Callable[[int], tuple[int, Any]],
    make_signed: Callable[..., Any],
    anchor_bundles: Callable[..., Anchored],
    now_ms: Callable[[], int],
    *,
    with_vin: bool = True,
    odometer_km: tuple[float, float, float] = (1000.0, 1000.2, 1000.4),
    schema: int = 1,
) -> Car:
    n = next(_NUMBERS)
    vehicle, key = paired_vehicle(n)
    vin = f"KMHK381GFKU{n:06d}"
    t0 = now_ms() + 1000
    bundles = []
    for i in range(3):
        start = t0 + 10_000 * i
        data = readings(start, odometer_km=odometer_km[i])
        data[LATITUDE] = [(start + 5_000, 52.52 + 0.001 * i)]
        data[LONGITUDE] = [(start + 5_000, 13.40 + 0.001 * i)]
        if with_vin and i == 0:
            data[VIN] = [(start + 1_000, vin)]
        bundles.append(make_signed(key, vehicle, i, start, data=data, schema=schema))
    anchor_bundles(bundles)
    world.sync()
    end = t0 + 30_000
    world.at(end + 60_000)
    return Car(vehicle, vin, t0, end)


@pytest.fixture
def make_car(
    world: World,
    paired_vehicle: Callable[[int], tuple[int, Any]],
    make_signed: Callable[..., Any],
    anchor_bundles: Callable[..., Anchored],
    now_ms: Callable[[], int],
) -> Callable[..., Car]:
    """Makes a paired vehicle with anchored readings (options as `_car`'s)."""
    return lambda **options: _car(
        world, paired_vehicle, make_signed, anchor_bundles, now_ms, **options
    )


@pytest.fixture
def car(make_car: Callable[..., Car]) -> Car:
    return make_car()


def _builder(world: World, rpc_url: str, deployment: Deployment) -> StatementBuilder:
    return StatementBuilder(
        world.base_url,
        CertifierChain(rpc_url, deployment),
        BatteryChecker(world.base_url, rpc_url, deployment),
        vin_valid_ms=30 * 86_400_000,
        odometer_window_ms=30 * 86_400_000,
        position_max_age_ms=300_000,
        clock=lambda: world.clock.now,
    )


@pytest.fixture
def make_host(
    world: World,
    rpc_url: str,
    deployment: Deployment,
    oracle_signers: list[Any],
    tmp_path: Path,
) -> Iterator[Callable[..., Host]]:
    """Starts attestation hosts on the world's index and clock (all three oracle keys by
    default)."""
    from protocol.blobstore import LocalCidStore

    hosts = itertools.count()
    with contextlib.ExitStack() as stack:

        def _make(keys: list[str] | None = None, certifiers: tuple[str, ...] = ()) -> Host:
            keys = keys if keys is not None else [private_key(s) for s in oracle_signers]
            builder = _builder(world, rpc_url, deployment)
            stack.callback(builder.close)
            blobs = tmp_path / f"attest-blobs-{next(hosts)}"
            store = LocalCidStore(blobs)
            issuer = CredentialIssuer(
                builder.chain,
                keys,
                store,
                relayer_key=private_key(oracle_signers[0]),
                certifier_urls=certifiers,
                clock=lambda: world.clock.now,
            )
            app = create_attestation_app(
                builder, issuer, store, SaltBook(blobs / "salts.json"), telemetry_url="http://t"
            )
            served = stack.enter_context(Served(app))
            return Host(served.url, blobs, issuer)

        yield _make


@pytest.fixture
def host(make_host: Callable[..., Host]) -> Host:
    return make_host()


def _token(world: World, account: Any) -> str:
    with world.client(account) as c:
        return str(c.headers["Authorization"]).removeprefix("Bearer ")


def _post(host: Host, path: str, token: str | None, body: Any = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{host.url}{path}", json=body, headers=headers, timeout=120)


def _status(platform: Any, document: dict[str, Any], now_ms: int) -> CredentialStatus:
    contract = platform["VehicleCredentials"]
    c = struct_of(document)
    digest = c.digest(dimo_domain(31337, contract.address))
    revoked = {digest} if contract.isRevoked(digest) else set()
    latest = int(contract.latestIssuedAt(c.vehicle_id, int(c.kind)))
    return CredentialStatus(now_ms, revoked, {(c.vehicle_id, int(c.kind)): latest})


def _verify_both(platform: Any, document: dict[str, Any], now_ms: int) -> list[str]:
    """Verifies on-chain and offline; returns the signers."""
    contract = platform["VehicleCredentials"]
    c = struct_of(document)
    assert contract.verifyCredential(c.as_tuple(), proof_signatures(document)) is True
    return _verify_offline(platform, document, now_ms)


def _verify_offline(platform: Any, document: dict[str, Any], now_ms: int) -> list[str]:
    """Verifies with eth-account and the chain's status views; returns the signers."""
    contract = platform["VehicleCredentials"]
    signers, threshold, _ = platform["AttestationAnchor"].oracles()
    return verify_offline(
        document,
        dimo_domain(31337, contract.address),
        [str(s) for s in signers],
        int(threshold),
        _status(platform, document, now_ms),
    )


@SQLITE_ONLY
def test_vin_odometer_and_position_credentials_verify_on_chain_and_offline(
    world: World, car: Car, host: Host, owner: Any, platform: Any, oracle_signers: list[Any]
) -> None:
    token = _token(world, owner)
    now = int(world.clock.now * 1000)
    vin = _post(host, f"/v2/attestation/vin/{car.vehicle}", token, {"salt": "0x" + SALT.hex()})
    assert vin.status_code == 200, vin.text
    assert vin.json()["message"] == VIN_MESSAGE
    assert f"tokenId: {car.vehicle}" in vin.json()["vcQuery"]
    doc = vin.json()["credential"]
    subject = doc["credentialSubject"]
    vehicle_id_address = platform["VehicleId"].address
    assert subject["id"] == f"did:erc721:31337:{vehicle_id_address}:{car.vehicle}"
    assert subject["vehicleIdentificationNumber"] == car.vin
    # The SDKs call with no body: the salt revealed once is kept.
    again = _post(host, f"/v2/attestation/vin/{car.vehicle}", token)
    assert again.status_code == 200, again.text

    odo = _post(
        host,
        f"/v2/attestation/odometer-statement/{car.vehicle}",
        token,
        {"timestamp": iso_ms(car.end)},
    )
    assert odo.status_code == 200, odo.text
    stated = odo.json()["credential"]["credentialSubject"]
    assert stated["odometer"] == {"value": pytest.approx(1000.4 + 0.014 * 9), "unit": "km"}
    assert stated["tamperCheck"]["flags"] == []

    pos = _post(
        host,
        f"/v2/attestation/vehicle-position/{car.vehicle}",
        token,
        {"timestamp": iso_ms(car.end)},
    )
    assert pos.status_code == 200, pos.text
    assert pos.json()["credential"]["credentialSubject"]["location"] == {
        "latitude": pytest.approx(52.522),
        "longitude": pytest.approx(13.402),
    }
    quorum = [s.address for s in oracle_signers]
    for answer in (vin, odo, pos):
        document = answer.json()["credential"]
        assert _verify_both(platform, document, now) == quorum
        # Stored by CID, byte for byte what was answered.
        path = f"{host.url}/v2/attestation/credentials/{answer.json()['cid']}"
        stored = httpx.get(path, headers={"Authorization": f"Bearer {token}"}, timeout=120)
        assert stored.status_code == 200, stored.text
        assert stored.json() == document
        # A credential states readings: no token, no credential.
        anonymous = httpx.get(path, timeout=120)
        assert anonymous.status_code == 401
        assert anonymous.json()["type"] == PROBLEMS + "unauthenticated"


@SQLITE_ONLY
def test_a_tampered_or_under_signed_issued_credential_fails_on_chain_and_offline(
    world: World, car: Car, host: Host, owner: Any, platform: Any
) -> None:
    token = _token(world, owner)
    body = {"timestamp": iso_ms(car.end)}
    doc = _post(host, f"/v2/attestation/odometer-statement/{car.vehicle}", token, body).json()[
        "credential"
    ]
    now = int(world.clock.now * 1000)
    contract = platform["VehicleCredentials"]
    anchor = platform["AttestationAnchor"]
    tampered = json.loads(json.dumps(doc))
    tampered["credentialSubject"]["odometer"]["value"] = 900.0
    one = json.loads(json.dumps(doc))
    one["proof"]["signatures"] = doc["proof"]["signatures"][: 2 + 130]
    for document, error in (
        (tampered, "OracleRegistryUnknownSigner"),
        (one, "OracleRegistryQuorumNotReached"),
    ):
        with pytest.raises(CredentialInvalid) as failed:
            _verify_offline(platform, document, now)
        assert failed.value.error == error
        with ape.reverts(getattr(anchor, error)):
            contract.verifyCredential(struct_of(document).as_tuple(), proof_signatures(document))


@SQLITE_ONLY
def test_a_later_odometer_statement_supersedes_the_earlier_one(
    world: World, car: Car, host: Host, owner: Any, platform: Any
) -> None:
    token = _token(world, owner)
    path = f"/v2/attestation/odometer-statement/{car.vehicle}"
    first = _post(host, path, token, {"timestamp": iso_ms(car.start + 15_000)}).json()
    world.at(int(world.clock.now * 1000) + 1_000)
    later = _post(host, path, token, {"timestamp": iso_ms(car.end)}).json()
    assert first["supersedingTx"]
    assert later["supersedingTx"]
    now = int(world.clock.now * 1000)
    _verify_both(platform, later["credential"], now)
    with pytest.raises(CredentialInvalid) as failed:
        _verify_offline(platform, first["credential"], now)
    assert failed.value.error == "VehicleCredentialsSuperseded"
    contract = platform["VehicleCredentials"]
    with ape.reverts(contract.VehicleCredentialsSuperseded):
        contract.verifyCredential(
            struct_of(first["credential"]).as_tuple(), proof_signatures(first["credential"])
        )


@SQLITE_ONLY
def test_a_revoked_credential_fails_on_chain_and_offline(
    world: World, car: Car, host: Host, owner: Any, platform: Any
) -> None:
    token = _token(world, owner)
    r = _post(host, f"/v2/attestation/vin/{car.vehicle}", token, {"salt": "0x" + SALT.hex()})
    document = r.json()["credential"]
    now = int(world.clock.now * 1000)
    _verify_both(platform, document, now)
    host.issuer.revoke(document)
    with pytest.raises(CredentialInvalid) as failed:
        _verify_offline(platform, document, now)
    assert failed.value.error == "VehicleCredentialsRevoked"
    contract = platform["VehicleCredentials"]
    with ape.reverts(contract.VehicleCredentialsRevoked):
        contract.verifyCredential(struct_of(document).as_tuple(), proof_signatures(document))


@SQLITE_ONLY
def test_the_health_credential_states_the_battery_health_the_readings_give(
    world: World,
    host: Host,
    owner: Any,
    stranger: Any,
    vehicle_rights: Any,
    platform: Any,
    anchor_bundles: Callable[..., Anchored],
    domain: Any,
    fleet: tuple[list[tuple[int, Any]], int],
) -> None:
    (vehicle, key), _ = fleet[0]
    windows, _ = simulated(3, 92.0, 3)
    shift = shift_for(fleet[1])
    anchor_bundles(sign_windows(windows, key, vehicle, domain, shift))
    world.sync()
    start, end = windows[0].start + shift, windows[-1].end + shift
    world.at(end + 60_000)
    r = _post(
        host,
        f"/v2/attestation/vehicle-health/{vehicle}",
        _token(world, owner),
        {"startTime": iso_ms(start), "endTime": iso_ms(end)},
    )
    assert r.status_code == 200, r.text
    document = r.json()["credential"]
    health = document["credentialSubject"]["batteryStateOfHealth"]
    # The simulated pack's true health (92 %) lies inside the stated interval.
    assert health["lower95Percent"] <= 92.0 <= health["upper95Percent"]
    assert health["method"] == "battery-soh/1"
    assert document["credentialSubject"]["faultCodes"]["available"] is False
    _verify_both(platform, document, int(world.clock.now * 1000))

    # Read back by the rights that cover the battery signals over the whole window, now.
    def read(token: str, cid: str = r.json()["cid"]) -> httpx.Response:
        url = f"{host.url}/v2/attestation/credentials/{cid}"
        return httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=120)

    assert read(_token(world, owner)).json() == document
    theirs = _token(world, stranger)
    unknown = read(theirs, UNKNOWN_CID)
    assert unknown.status_code == 404
    assert unknown.json()["type"] == PROBLEMS + "unknown-credential"
    for scopes in (0, int(Privilege.DRIVING | Privilege.LOCATION)):
        if scopes:
            vehicle_rights.grant(vehicle, stranger, scopes, FAR_FUTURE, TERMS_CID, sender=owner)
            world.sync()
        refused = read(theirs)
        assert refused.status_code == 404
        assert refused.json() == json.loads(
            json.dumps(unknown.json()).replace(UNKNOWN_CID, r.json()["cid"])
        )
    vehicle_rights.grant(
        vehicle, stranger, int(Privilege.BATTERY), FAR_FUTURE, TERMS_CID, sender=owner
    )
    world.sync()
    assert read(theirs).json() == document


@SQLITE_ONLY
def test_an_odometer_history_that_goes_back_gets_no_statement(
    world: World,
    host: Host,
    owner: Any,
    platform: Any,
    make_car: Callable[..., Car],
) -> None:
    rolled = make_car(odometer_km=(1000.0, 1000.2, 900.0))
    r = _post(
        host,
        f"/v2/attestation/odometer-statement/{rolled.vehicle}",
        _token(world, owner),
        {"timestamp": iso_ms(rolled.end)},
    )
    assert r.status_code == 422, r.text
    assert r.json()["type"] == PROBLEMS + "statement-refused"
    assert "decrease" in r.json()["refusal"]
    assert _blobs(host) == []
    assert int(platform["VehicleCredentials"].latestIssuedAt(rolled.vehicle, 2)) == 0


def _blobs(host: Host) -> list[Path]:
    """The credentials stored (the salt book aside)."""
    if not host.blobs.exists():
        return []
    return sorted(p for p in host.blobs.rglob("*") if p.is_file() and p.suffix != ".json")


@SQLITE_ONLY
def test_bad_requests_get_problems_and_issue_nothing(
    world: World,
    car: Car,
    host: Host,
    owner: Any,
    stranger: Any,
    platform: Any,
    make_car: Callable[..., Car],
) -> None:
    no_vin = make_car(with_vin=False)
    token = _token(world, owner)
    other = _token(world, stranger)
    contract = platform["VehicleCredentials"]
    before = (_blobs(host), int(contract.latestIssuedAt(car.vehicle, 2)))
    at = iso_ms(car.end)
    salt = {"salt": "0x" + SALT.hex()}
    cases = [
        ("unknown vehicle", f"/v2/attestation/vin/{2**31 - 2}", token, salt, 404,
         "unknown-vehicle"),
        ("no VIN reading", f"/v2/attestation/vin/{no_vin.vehicle}", token, salt, 404,
         "no-verified-reading"),
        ("salt mismatch", f"/v2/attestation/vin/{car.vehicle}", token,
         {"salt": "0x" + "02" * 32}, 422, "vin-commitment-mismatch"),
        ("no salt yet", f"/v2/attestation/vin/{car.vehicle}", token, None, 422,
         "invalid-request"),
        ("times reversed", f"/v2/attestation/vehicle-health/{car.vehicle}", token,
         {"startTime": iso_ms(car.end), "endTime": iso_ms(car.start)}, 422, "invalid-request"),
        ("not a time", f"/v2/attestation/odometer-statement/{car.vehicle}", token,
         {"timestamp": "yesterday"}, 422, "invalid-request"),
        ("position without the privilege", f"/v2/attestation/vehicle-position/{car.vehicle}",
         other, {"timestamp": at}, 403, "privilege-missing"),
        ("odometer without the privilege", f"/v2/attestation/odometer-statement/{car.vehicle}",
         other, {"timestamp": at}, 403, "privilege-missing"),
        ("no token", f"/v2/attestation/odometer-statement/{car.vehicle}", None, {}, 401,
         "unauthenticated"),
        ("token id beyond 32 bits", f"/v2/attestation/vin/{2**32}", token, salt, 422,
         "invalid-request"),
    ]  # fmt: skip
    for name, path, who, body, status, slug in cases:
        r = _post(host, path, who, body)
        assert r.status_code == status, (name, r.text)
        assert r.headers["content-type"].startswith("application/problem+json"), name
        assert r.json()["type"] == PROBLEMS + slug, (name, r.json())
    assert (_blobs(host), int(contract.latestIssuedAt(car.vehicle, 2))) == before


@SQLITE_ONLY
def test_certifiers_recompute_the_statement_and_give_the_signatures_the_host_lacks(
    world: World,
    car: Car,
    make_host: Callable[..., Host],
    owner: Any,
    platform: Any,
    rpc_url: str,
    deployment: Deployment,
    oracle_signers: list[Any],
) -> None:
    keys = [private_key(s) for s in oracle_signers]
    checker = CredentialChecker(_builder(world, rpc_url, deployment))
    app = create_certifier_app(
        keys[1:], BatteryChecker(world.base_url, rpc_url, deployment), {"credential": checker}
    )
    with Served(app) as certifier:
        alone = make_host(keys[:1])
        helped = make_host(keys[:1], (certifier.url,))
        token = _token(world, owner)
        path = f"/v2/attestation/odometer-statement/{car.vehicle}"
        body = {"timestamp": iso_ms(car.end)}
        r = _post(alone, path, token, body)
        assert r.status_code == 503, r.text
        assert r.json()["type"] == PROBLEMS + "quorum-not-reached"
        r = _post(helped, path, token, body)
        assert r.status_code == 200, r.text
        document = r.json()["credential"]
        signers = _verify_both(platform, document, int(world.clock.now * 1000))
        assert signers == [s.address for s in oracle_signers]
        # A certifier signs only the credential the verified data give.
        unsigned = {k: v for k, v in document.items() if k != "proof"}
        forged = json.loads(json.dumps(unsigned))
        forged["credentialSubject"]["odometer"]["value"] = 500.0
        ask = {
            "statement": StatementRequest(
                CredentialKind.ODOMETER, car.vehicle, at_ms=car.end
            ).as_json(),
            "issuedAt": struct_of(document).issued_at,
            "document": forged,
            "token": token,
        }
        refused = httpx.post(f"{certifier.url}/v1/certify/credential", json=ask, timeout=120)
        assert refused.status_code == 422, refused.text
        assert "credentialSubject" in refused.json()["refusal"]
