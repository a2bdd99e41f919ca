"""DIMO's own SDKs (PyPI dimo-python-sdk 1.8.0, npm @dimo-network/data-sdk 1.6.0), unmodified,
against the attestation host with the vehicle JWT of the token exchange: a paired vehicle's
device-signed VIN, odometer and position readings anchored on anvil and synced into an index
served by uvicorn, a developer licence granted on it, the attestation host on 127.0.0.1 with
the oracle quorum's keys, and the SDKs pointed here by their environment tables.

Each SDK fetches a VIN credential and then reads it with the Telemetry GraphQL's
`vinVCLatest`, and gets an odometer statement; it is refused without the privilege and with an
expired vehicle JWT, with the status and message it surfaces. The rights engine decides again
on every request: an expired grant or a sale ends access inside the token's life.
"""

# The fixtures come from the indexer and attestation tests; their names are parameters here.
# ruff: noqa: F811

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account

from indexer.api.credentials import latest_credential
from oracle.certifier.attestation_api import (
    VIN_MESSAGE,
    CredentialIndex,
    SaltBook,
    VehicleTokens,
    create_attestation_app,
)
from oracle.certifier.attestations import CredentialIssuer
from protocol.blobstore import LocalCidStore
from protocol.bundle import SCHEMA_SIGNALS
from protocol.credentials import (
    CredentialKind,
    iso_ms,
    ms_of_iso,
    proof_signatures,
    struct_of,
)
from protocol.deployment import Deployment
from tests.conftest import FAR_FUTURE, TERMS_CID, private_key
from tests.indexer.test_api_basics import Served
from tests.indexer.test_api_telemetry import URI, World, advance, block_ms, served_world
from tests.indexer.test_dimo_sdks import REDIRECT, SDK_ESM
from tests.indexer.test_loader import (  # fixtures shared with the loader tests
    anchor_bundles,  # noqa: F401
    domain,  # noqa: F401
    fleet,  # noqa: F401
    now_ms,  # noqa: F401
    store,  # noqa: F401
)
from tests.oracle.test_attestations import (
    SALT,
    Car,
    _builder,
    _token,
    make_car,  # noqa: F401
)

SECRET = b"t" * 32  # `served_world`'s jwt_secret
ALL_SCOPES = 0xFF
ODOMETER_MESSAGE = "Odometer statement VC generated successfully."


@pytest.fixture
def world(
    tmp_path: Path, store: LocalCidStore, rpc_url: str, deployment_record: Path
) -> Iterator[World]:
    """A SQLite index whose API exchanges tokens and indexes credentials (it knows the chain)."""
    with served_world("sqlite", tmp_path, store, rpc_url, deployment_record, knows_chain=True) as w:
        yield w


@dataclass
class Licence:
    """A developer licence and the key that signs its logins."""

    client_id: str
    signer_key: str


@pytest.fixture
def licence_for(
    world: World, owner: Any, developer: Any, developer_licence: Any, vehicle_rights: Any
) -> Callable[..., Licence]:
    """Mints a licence with a signer and a redirect URI, granted `scopes` on `car` by its owner
    until `expiry`, and syncs the index."""

    def _make(car: int, scopes: int = ALL_SCOPES, expiry: int = FAR_FUTURE) -> Licence:
        minted = developer_licence.mint(sender=developer)
        event = minted.events.filter(developer_licence.LicenceMinted)[0]
        licence_id, client_id = int(event.licenceId), str(event.clientId)
        signer = Account.create()
        developer_licence.addSigner(licence_id, signer.address, sender=developer)
        developer_licence.setRedirectUri(licence_id, REDIRECT, True, sender=developer)
        vehicle_rights.grant(car, client_id, scopes, expiry, TERMS_CID, sender=owner)
        world.sync()
        return Licence(client_id, signer.key.hex())

    return _make


@dataclass
class Host:
    url: str
    blobs: Path
    issuer: CredentialIssuer


@pytest.fixture
def host(
    world: World,
    rpc_url: str,
    deployment: Deployment,
    oracle_signers: list[Any],
    tmp_path: Path,
) -> Iterator[Host]:
    """The attestation host as `dimo stack run` starts it: the indexer's token key, and each
    credential submitted to the indexer's index."""
    builder = _builder(world, rpc_url, deployment)
    blobs = tmp_path / "attest-blobs"
    store = LocalCidStore(blobs)
    issuer = CredentialIssuer(
        builder.chain,
        [private_key(s) for s in oracle_signers],
        store,
        relayer_key=private_key(oracle_signers[0]),
        clock=lambda: world.clock.now,
    )
    index = CredentialIndex(world.base_url)
    app = create_attestation_app(
        builder,
        issuer,
        store,
        SaltBook(blobs / "salts.json"),
        telemetry_url=world.base_url + "/telemetry",
        vehicle_tokens=VehicleTokens(SECRET, URI),
        index=index,
    )
    try:
        with Served(app) as served:
            yield Host(served.url, blobs, issuer)
    finally:
        index.close()
        builder.close()


@pytest.fixture
def revealed(world: World, make_car: Callable[..., Car], host: Host, owner: Any) -> Car:
    """A car whose owner revealed its VIN salt once (with a wallet token, as the issue says).
    Its bundles are schema 2, as the bridge seals them: a proof opens the signals a narrow
    vehicle JWT covers."""
    car = make_car(schema=SCHEMA_SIGNALS)
    r = httpx.post(
        f"{host.url}/v2/attestation/vin/{car.vehicle}",
        json={"salt": "0x" + SALT.hex()},
        headers={"Authorization": f"Bearer {_token(world, owner)}"},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    return car


@contextlib.contextmanager
def python_sdk(world: World, host: Host) -> Iterator[Any]:
    """The Python SDK with its Production table pointed here (the setup `make run` prints)."""
    from dimo import DIMO
    from dimo.environments import dimo_environment

    saved = dict(dimo_environment["Production"])
    api = world.base_url
    dimo_environment["Production"].update(
        Auth=api,
        TokenExchange=api,
        Identity=api + "/query",
        Telemetry=api + "/telemetry/query",
        Attestation=host.url,
    )
    try:
        yield DIMO("Production")
    finally:
        dimo_environment["Production"].clear()
        dimo_environment["Production"].update(saved)


def _vehicle_jwt(sdk: Any, licence: Licence, car: int, privileges: list[int] | None = None) -> str:
    dev = sdk.auth.get_dev_jwt(
        client_id=licence.client_id, domain=REDIRECT, private_key=licence.signer_key
    )
    exchanged = sdk.token_exchange.exchange(
        developer_jwt=dev["access_token"], token_id=car, privileges=privileges
    )
    return str(exchanged["token"])


def _refusal(call: Callable[[], Any]) -> tuple[int, dict[str, Any]]:
    from dimo.errors import HTTPError

    with pytest.raises(HTTPError) as info:
        call()
    return info.value.status, info.value.body


def _stored(host: Host) -> int:
    blocks = host.blobs / "blocks"
    return sum(1 for p in blocks.rglob("*") if p.is_file()) if blocks.exists() else 0


def _problem(body: dict[str, Any], status: int, slug: str) -> str:
    assert body["status"] == status
    assert body["code"] == status
    assert body["type"].endswith("/" + slug), body
    assert body["message"] == body["detail"]
    return str(body["message"])


# --------------------------------------------------------------------------------------------
# The Python SDK
# --------------------------------------------------------------------------------------------


def test_the_python_sdk_gets_a_vin_credential_then_reads_it_with_vin_vc_latest(
    world: World,
    host: Host,
    revealed: Car,
    licence_for: Callable[..., Licence],
    platform: Any,
    deployment: Deployment,
) -> None:
    licence = licence_for(revealed.vehicle)
    with python_sdk(world, host) as sdk:
        token = _vehicle_jwt(sdk, licence, revealed.vehicle)
        answer = sdk.attestation.create_vin_vc(vehicle_jwt=token, token_id=revealed.vehicle)
        vin = sdk.telemetry.get_vin(vehicle_jwt=token, token_id=revealed.vehicle)
        full = sdk.telemetry.query(
            f"{{ vinVCLatest(tokenId: {revealed.vehicle}) {{ vehicleTokenId vin recordedBy "
            "recordedAt vehicleContractAddress validFrom validTo rawVC } }",
            vehicle_jwt=token,
        )
    assert answer["message"] == VIN_MESSAGE
    assert answer["vcUrl"] == world.base_url + "/telemetry/query"
    assert vin == {"data": {"vinVCLatest": {"vin": revealed.vin}}}
    latest = full["data"]["vinVCLatest"]
    assert latest["vehicleTokenId"] == revealed.vehicle
    assert latest["vehicleContractAddress"] == deployment.contract("VehicleId").address
    document = json.loads(latest["rawVC"])
    assert document["credentialSubject"]["vehicleIdentificationNumber"] == revealed.vin
    assert latest["recordedBy"] == document["credentialSubject"]["recordedBy"]
    assert latest["validTo"] is not None
    # The latest is the SDK's own: get_vin issued one after create_vin_vc, and it verifies.
    assert document["proof"]["created"] > answer["credential"]["proof"]["created"]
    contract = platform["VehicleCredentials"]
    assert contract.verifyCredential(struct_of(document).as_tuple(), proof_signatures(document))


def test_the_python_sdk_gets_an_odometer_statement(
    world: World, host: Host, revealed: Car, licence_for: Callable[..., Licence]
) -> None:
    licence = licence_for(revealed.vehicle)
    with python_sdk(world, host) as sdk:
        token = _vehicle_jwt(sdk, licence, revealed.vehicle, [1])
        answer = sdk.attestation.create_odometer_statement(
            vehicle_jwt=token, token_id=revealed.vehicle, timestamp=iso_ms(revealed.end)
        )
    assert answer["message"] == ODOMETER_MESSAGE
    subject = answer["credential"]["credentialSubject"]
    assert subject["odometer"]["unit"] == "km"
    assert subject["statementTime"] == iso_ms(revealed.end)
    with world.engine.connect() as conn:
        indexed = latest_credential(conn, revealed.vehicle, CredentialKind.ODOMETER)
    assert indexed == (answer["cid"], answer["credential"])


def test_the_python_sdk_is_refused_without_the_privilege_and_nothing_is_issued(
    world: World, host: Host, revealed: Car, licence_for: Callable[..., Licence]
) -> None:
    licence = licence_for(revealed.vehicle)
    before = _stored(host)
    with python_sdk(world, host) as sdk:
        token = _vehicle_jwt(sdk, licence, revealed.vehicle, [1])
        vin = _refusal(
            lambda: sdk.attestation.create_vin_vc(vehicle_jwt=token, token_id=revealed.vehicle)
        )
        position = _refusal(
            lambda: sdk.attestation.create_vehicle_position(
                vehicle_jwt=token, token_id=revealed.vehicle, timestamp=iso_ms(revealed.end)
            )
        )
        latest = sdk.telemetry.get_vehicle_vin_vc(vehicle_jwt=token, token_id=revealed.vehicle)
    assert vin[0] == 403
    assert "5 GetVINCredential" in _problem(vin[1], 403, "privilege-missing")
    assert position[0] == 403
    assert "GetCurrentLocation" in _problem(position[1], 403, "privilege-missing")
    assert latest["data"]["vinVCLatest"] is None
    assert latest["errors"][0]["extensions"]["missingPrivilege"] == "VEHICLE_VIN_CREDENTIAL"
    assert _stored(host) == before


def test_the_python_sdk_is_refused_with_an_expired_vehicle_jwt(
    world: World, host: Host, revealed: Car, licence_for: Callable[..., Licence]
) -> None:
    licence = licence_for(revealed.vehicle)
    before = _stored(host)
    with python_sdk(world, host) as sdk:
        token = _vehicle_jwt(sdk, licence, revealed.vehicle)
        world.at(int(world.clock.now * 1000) + 601_000)  # past the token's 10 minutes
        status, body = _refusal(
            lambda: sdk.attestation.create_odometer_statement(
                vehicle_jwt=token, token_id=revealed.vehicle, timestamp=iso_ms(revealed.end)
            )
        )
    assert status == 401
    assert "exchange a new one" in _problem(body, 401, "vehicle-token-expired")
    assert _stored(host) == before


def test_an_expired_grant_ends_access_inside_the_vehicle_jwts_life(
    world: World, host: Host, revealed: Car, licence_for: Callable[..., Licence]
) -> None:
    expiry = int(world.clock.now) + 120
    licence = licence_for(revealed.vehicle, expiry=expiry)
    with python_sdk(world, host) as sdk:
        token = _vehicle_jwt(sdk, licence, revealed.vehicle)
        body = {"timestamp": iso_ms(revealed.end)}
        path = f"{host.url}/v2/attestation/odometer-statement/{revealed.vehicle}"
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.post(path, json=body, headers=headers, timeout=120).status_code == 200
        world.at((expiry + 1) * 1000)  # the token has minutes left; the grant has not
        status, refused = _refusal(
            lambda: sdk.attestation.create_odometer_statement(
                vehicle_jwt=token, token_id=revealed.vehicle, timestamp=iso_ms(revealed.end)
            )
        )
    assert status == 403
    _problem(refused, 403, "privilege-missing")


def test_a_sale_ends_access_inside_the_vehicle_jwts_life(
    world: World,
    host: Host,
    revealed: Car,
    licence_for: Callable[..., Licence],
    vehicle_id: Any,
    owner: Any,
    other_owner: Any,
) -> None:
    licence = licence_for(revealed.vehicle)
    with python_sdk(world, host) as sdk:
        token = _vehicle_jwt(sdk, licence, revealed.vehicle)
        vehicle_id.transferFrom(owner, other_owner, revealed.vehicle, sender=owner)
        world.sync()
        status, body = _refusal(
            lambda: sdk.attestation.create_vin_vc(vehicle_jwt=token, token_id=revealed.vehicle)
        )
    assert status == 403
    _problem(body, 403, "privilege-missing")


def test_a_vehicle_jwt_of_another_vehicle_is_refused(
    world: World,
    host: Host,
    revealed: Car,
    make_car: Callable[..., Car],
    licence_for: Callable[..., Licence],
) -> None:
    other = make_car()
    licence = licence_for(other.vehicle)
    with python_sdk(world, host) as sdk:
        token = _vehicle_jwt(sdk, licence, other.vehicle)
        status, body = _refusal(
            lambda: sdk.attestation.create_vin_vc(vehicle_jwt=token, token_id=revealed.vehicle)
        )
    assert status == 403
    assert f"not vehicle {revealed.vehicle}" in _problem(body, 403, "vehicle-token-other-vehicle")


def test_a_stored_credential_is_served_only_by_the_rights_that_cover_it_now(
    world: World,
    host: Host,
    revealed: Car,
    make_car: Callable[..., Car],
    licence_for: Callable[..., Licence],
    vehicle_id: Any,
    owner: Any,
    other_owner: Any,
    tmp_path: Path,
) -> None:
    owner_token = _token(world, owner)

    def issue(route: str, body: dict[str, Any]) -> str:
        r = httpx.post(
            f"{host.url}/v2/attestation/{route}/{revealed.vehicle}",
            json=body,
            headers={"Authorization": f"Bearer {owner_token}"},
            timeout=120,
        )
        assert r.status_code == 200, r.text
        return str(r.json()["cid"])

    def read(cid: str, token: str | None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        url = f"{host.url}/v2/attestation/credentials/{cid}"
        return httpx.get(url, headers=headers, timeout=120)

    vin = issue("vin", {})
    position = issue("vehicle-position", {"timestamp": iso_ms(revealed.end)})
    odometer = issue("odometer-statement", {"timestamp": iso_ms(revealed.end)})
    # A well-formed CID this host never stored.
    unknown = LocalCidStore(tmp_path / "elsewhere").put(b'{"not": "stored"}')
    refused = read(unknown, owner_token)
    assert refused.status_code == 404
    _problem(refused.json(), 404, "unknown-credential")

    def hidden(cid: str, token: str) -> None:
        """Answered exactly as the unknown CID is, but for the CID itself."""
        r = read(cid, token)
        assert r.status_code == 404, r.text
        assert r.headers["content-type"] == refused.headers["content-type"]
        assert r.json() == json.loads(json.dumps(refused.json()).replace(unknown, cid))

    for cid in (vin, position, odometer):
        anonymous = read(cid, None)
        assert anonymous.status_code == 401
        _problem(anonymous.json(), 401, "unauthenticated")
        assert read(cid, "not-a-token").status_code == 401
        mine = read(cid, owner_token)
        assert mine.status_code == 200, mine.text
        assert struct_of(mine.json()).vehicle_id == revealed.vehicle

    licence = licence_for(revealed.vehicle)
    with python_sdk(world, host) as sdk:
        narrow = _vehicle_jwt(sdk, licence, revealed.vehicle, [1])  # no location, no VIN
        located = _vehicle_jwt(sdk, licence, revealed.vehicle, [1, 3, 5])
        other = make_car()
        elsewhere = _vehicle_jwt(sdk, licence_for(other.vehicle), other.vehicle)
    # A grantee without the kind's privilege: as if the CID did not exist.
    hidden(position, narrow)
    hidden(vin, narrow)
    assert read(odometer, narrow).status_code == 200
    # With the privilege: served.
    for cid in (vin, position, odometer):
        assert read(cid, located).json() == read(cid, owner_token).json()
    # A vehicle JWT of another vehicle.
    for cid in (vin, position, odometer):
        hidden(cid, elsewhere)
    # Sold: the transfer voids the old owner's grant inside the vehicle JWT's life, and the
    # new owner's rights do not reach back before the transfer.
    advance(120)  # the sale comes after every reading stated
    sale = vehicle_id.transferFrom(owner, other_owner, revealed.vehicle, sender=owner)
    world.sync()
    world.at(block_ms(sale) + 1000)
    new_owner = _token(world, other_owner)
    for cid in (vin, position, odometer):
        hidden(cid, located)
        hidden(cid, new_owner)
    # The old owner keeps what the rights engine keeps for it, its own period's readings,
    # and exactly that: the credential is served as the indexer serves the reading itself.
    evidence = read(vin, owner_token).json()["evidence"][0]
    t = ms_of_iso(evidence["time"])
    readings = httpx.get(
        f"{world.base_url}/vehicles/{revealed.vehicle}/readings",
        params={"signal": evidence["signal"], "start": t, "end": t + 1},
        headers={"Authorization": f"Bearer {owner_token}"},
        timeout=60,
    )
    assert readings.status_code == 200, readings.text
    assert [int(i["t"]) for i in readings.json()["items"]] == [t]
    for cid in (vin, position, odometer):
        assert read(cid, owner_token).status_code == 200


def test_a_vehicle_jwt_reads_the_rest_routes_narrowed_to_its_privileges(
    world: World, revealed: Car, licence_for: Callable[..., Licence]
) -> None:
    licence = licence_for(revealed.vehicle)
    with world.anonymous() as client:
        dev = _developer_jwt(world, licence)
        token = client.post(
            "/v1/tokens/exchange",
            headers={"Authorization": f"Bearer {dev}"},
            json={
                "nftContractAddress": _nft(world),
                "privileges": [5],
                "tokenId": revealed.vehicle,
            },
        ).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        window = {"start": revealed.start, "end": revealed.end + 1}
        vin = client.get(
            f"/vehicles/{revealed.vehicle}/readings",
            params={"signal": "Vehicle.VehicleIdentification.VIN", **window},
            headers=headers,
        )
        odometer = client.get(
            f"/vehicles/{revealed.vehicle}/readings",
            params={"signal": "Vehicle.TraveledDistance", **window},
            headers=headers,
        )
    assert vin.status_code == 200, vin.text
    assert [i["value"] for i in vin.json()["items"]] == [revealed.vin]
    assert odometer.status_code == 403, odometer.text
    assert odometer.json()["type"].endswith("/privilege-missing")
    assert odometer.json()["missing_scopes"] == ["ODOMETER"]


def test_a_credential_the_quorum_did_not_sign_is_not_indexed(
    world: World, host: Host, revealed: Car, licence_for: Callable[..., Licence]
) -> None:
    with python_sdk(world, host) as sdk:
        token = _vehicle_jwt(sdk, licence_for(revealed.vehicle), revealed.vehicle)
        issued = sdk.attestation.create_vin_vc(vehicle_jwt=token, token_id=revealed.vehicle)
    forged = json.loads(json.dumps(issued["credential"]))
    forged["credentialSubject"]["vehicleIdentificationNumber"] = "1M8GDM9AXKP042788"
    r = httpx.post(world.base_url + "/credentials", json=forged, timeout=30)
    assert r.status_code == 400, r.text
    assert "OracleRegistryUnknownSigner" in r.json()["detail"]
    again = httpx.post(world.base_url + "/credentials", json=issued["credential"], timeout=30)
    assert again.json() == {
        "cid": issued["cid"],
        "vehicle_id": revealed.vehicle,
        "kind": 1,
        "new": False,
    }
    with world.engine.connect() as conn:
        latest = latest_credential(conn, revealed.vehicle, CredentialKind.VIN)
    assert latest == (issued["cid"], issued["credential"])


def _developer_jwt(world: World, licence: Licence) -> str:
    from dimo import DIMO
    from dimo.environments import dimo_environment

    saved = dict(dimo_environment["Production"])
    dimo_environment["Production"].update(Auth=world.base_url)
    try:
        dev = DIMO("Production").auth.get_dev_jwt(
            client_id=licence.client_id, domain=REDIRECT, private_key=licence.signer_key
        )
    finally:
        dimo_environment["Production"].clear()
        dimo_environment["Production"].update(saved)
    return str(dev["access_token"])


def _nft(world: World) -> str:
    return Deployment.load(world.deployment_record).contract("VehicleId").address


# --------------------------------------------------------------------------------------------
# The npm SDK (ESM, run by node)
# --------------------------------------------------------------------------------------------

NPM_SCRIPT = """
const cfg = JSON.parse(process.argv[2]);
const { DIMO, DimoEnvironment } = await import(cfg.sdk);
// The setup `make run` prints: point the SDK's tables at the local stack.
Object.assign(DimoEnvironment.Production, {
  Auth: cfg.api, TokenExchange: cfg.api, Identity: cfg.api + "/query",
  Telemetry: cfg.api + "/telemetry/query", Attestation: cfg.attestation,
});
const dimo = new DIMO("Production");
const out = {};
async function step(name, fn) {
  try {
    out[name] = { ok: await fn() };
  } catch (e) {
    out[name] = { error: { statusCode: e.statusCode, message: e.message.split("\\n")[0] } };
  }
}
const developerJwt = await dimo.auth.getDeveloperJwt({
  client_id: cfg.client_id, domain: cfg.domain, private_key: cfg.key,
});
const vehicleJwt = await dimo.tokenexchange.getVehicleJwt({ ...developerJwt, tokenId: cfg.car });
const nonLocation = await dimo.tokenexchange.exchange({
  ...developerJwt, privileges: [1], tokenId: cfg.car,
});
await step("getVin", () => dimo.telemetry.getVin({ ...vehicleJwt, tokenId: cfg.car }));
await step("odometer", () => dimo.attestation.createOdometerStatementVC({
  ...vehicleJwt, tokenId: cfg.car, timestamp: cfg.timestamp,
}));
await step("vinWithoutPrivilege", () =>
  dimo.attestation.createVinVC({ ...nonLocation, tokenId: cfg.car }));
await step("expired", () => dimo.attestation.createOdometerStatementVC({
  headers: { Authorization: `Bearer ${cfg.expired}` }, tokenId: cfg.car,
  timestamp: cfg.timestamp,
}));
console.log(JSON.stringify(out));
"""


def test_the_npm_sdk_gets_a_vin_and_an_odometer_statement_and_is_refused_as_it_should(
    world: World,
    host: Host,
    revealed: Car,
    licence_for: Callable[..., Licence],
    tmp_path: Path,
) -> None:
    licence = licence_for(revealed.vehicle)
    with python_sdk(world, host) as sdk:
        expired = _vehicle_jwt(sdk, licence, revealed.vehicle)
    world.at(int(world.clock.now * 1000) + 601_000)  # `expired` is past its 10 minutes
    config = {
        "sdk": SDK_ESM.as_uri(),
        "api": world.base_url,
        "attestation": host.url,
        "client_id": licence.client_id,
        "domain": REDIRECT,
        "key": licence.signer_key.removeprefix("0x"),  # the SDK prefixes 0x itself
        "car": revealed.vehicle,
        "timestamp": iso_ms(revealed.end),
        "expired": expired,
    }
    script = tmp_path / "attestations.mjs"
    script.write_text(NPM_SCRIPT)
    done = subprocess.run(
        ["node", str(script), json.dumps(config)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["getVin"] == {"ok": revealed.vin}
    assert out["odometer"]["ok"]["message"] == ODOMETER_MESSAGE
    refused = out["vinWithoutPrivilege"]["error"]
    assert refused["statusCode"] == 403
    assert refused["message"].startswith("API call error: your rights on vehicle")
    assert "GetVINCredential" in refused["message"]
    expired_error = out["expired"]["error"]
    assert expired_error["statusCode"] == 401
    assert expired_error["message"].startswith("API call error: the vehicle JWT expired")
