"""DIMO's own SDKs (PyPI dimo-python-sdk 1.8.0, npm @dimo-network/data-sdk 1.6.0) against the
platform: a developer licence on anvil, synced by the indexer, its API served by uvicorn.

Each SDK logs in with a signer that is not the client id, lists and reads vehicles through the
Identity API, exchanges a token for privileges it holds, and is refused for one it does not
hold, after a grant expired and after a sale. Bad input to the new routes changes nothing.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak
from sqlalchemy import func, select

from indexer.api.devauth import web3_challenges
from indexer.api.main import create_app
from indexer.config import IndexerSettings
from protocol.jwt import decode_jwt, verify_developer_token
from tests.conftest import (
    CLAIM_TYPES,
    FAR_FUTURE,
    PAIR_TYPES,
    TERMS_CID,
    make_device_key,
    private_key,
    vin_commitment,
)
from tests.indexer.test_api_basics import Clock, Served
from tests.indexer.test_api_identity import fresh_db, syncer_for

REPO = Path(__file__).resolve().parents[2]
SDK_ESM = REPO / "node_modules" / "@dimo-network" / "data-sdk" / "dist" / "esm" / "index.js"
REDIRECT = "http://localhost:3000"
SECRET = "s" * 32
ALL = 0xFF
DIMO_MAINNET_NFT = "0xbA5738a18d83D41847dfFbDC6101d37C69c9B0cF"


@dataclass
class Scene:
    client_id: str
    signer_key: str
    owner: str
    stranger_key: str
    held: int  # vehicle with a grant of every scope
    expiring: int  # vehicle whose grant expires at `expiry`
    sold: int  # vehicle granted, then sold
    battery_only: int  # vehicle with a BATTERY grant
    expiry: int
    head_time: int
    device: str


@pytest.fixture(scope="module")
def scene(
    platform: dict[str, Any],
    admin: Any,
    owner: Any,
    other_owner: Any,
    manufacturer: Any,
    developer: Any,
    sign: Callable[..., bytes],
    chain: Any,
) -> Scene:
    vehicles, devices = platform["VehicleId"], platform["DeviceId"]
    rights, licences = platform["VehicleRights"], platform["DeveloperLicence"]
    tx = licences.mint(sender=developer)
    event = tx.events.filter(licences.LicenceMinted)[0]
    licence_id, client_id = int(event.licenceId), str(event.clientId)
    signer = Account.create()
    licences.addSigner(licence_id, signer.address, sender=developer)
    licences.setRedirectUri(licence_id, REDIRECT, True, sender=developer)

    def mint(n: int) -> int:
        commitment = vin_commitment(f"SDK{n:014d}")
        return int(vehicles.mint("Tesla", "Model Y", 2023, commitment, sender=owner).return_value)

    held, expiring, sold, battery_only = (mint(n) for n in range(4))
    key = make_device_key(91_000)
    devices.mintDevices([key.address], [keccak(key.address.encode())], sender=manufacturer)
    msg = {"device": key.address, "user": owner.address, "deadline": FAR_FUTURE}
    devices.claim(
        key.address,
        owner,
        FAR_FUTURE,
        sign(private_key(owner), devices, "ClaimDevice", CLAIM_TYPES, msg),
        sign(key.key, devices, "ClaimDevice", CLAIM_TYPES, msg),
        sender=owner,
    )
    pair = {"vehicleId": held, "device": key.address, "nonce": 0, "deadline": FAR_FUTURE}
    devices.pair(
        held,
        key.address,
        FAR_FUTURE,
        sign(private_key(owner), devices, "PairDevice", PAIR_TYPES, pair),
        sign(key.key, devices, "PairDevice", PAIR_TYPES, pair),
        sender=owner,
    )
    now = int(chain.blocks.head.timestamp)
    expiry = now + 5_000
    rights.grant(held, client_id, ALL, FAR_FUTURE, TERMS_CID, sender=owner)
    rights.grant(expiring, client_id, ALL, expiry, TERMS_CID, sender=owner)
    rights.grant(sold, client_id, ALL, FAR_FUTURE, TERMS_CID, sender=owner)
    rights.grant(battery_only, client_id, 0b1, FAR_FUTURE, TERMS_CID, sender=owner)
    vehicles.transferFrom(owner, other_owner, sold, sender=owner)
    return Scene(
        client_id=client_id,
        signer_key=signer.key.hex(),
        owner=owner.address,
        stranger_key=Account.create().key.hex(),
        held=held,
        expiring=expiring,
        sold=sold,
        battery_only=battery_only,
        expiry=expiry,
        head_time=int(chain.blocks.head.timestamp),
        device=key.address,
    )


@dataclass
class Platform:
    url: str
    clock: Clock
    engine: Any


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(
    request: pytest.FixtureRequest,
    scene: Scene,
    rpc_url: str,
    deployment_record: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Platform]:
    url, drop = fresh_db(str(request.param), tmp_path_factory.mktemp("dimo-sdks"))
    syncer = syncer_for(url, rpc_url, deployment_record)
    try:
        syncer.backfill()
    finally:
        syncer.close()
    clock = Clock()
    clock.now = scene.head_time
    settings = IndexerSettings(
        siwe_domain="127.0.0.1:8700",
        siwe_uri="http://127.0.0.1:8700",
        siwe_chain_id=31337,
        jwt_secret=SECRET,
        rate_limit_per_minute=0,
        rpc_url=rpc_url,
        deployment=deployment_record,
    )
    try:
        with Served(create_app(settings, syncer.engine, clock=clock)) as server:
            yield Platform(server.url, clock, syncer.engine)
    finally:
        syncer.engine.dispose()
        drop()


@pytest.fixture
def platform_now(served: Platform, scene: Scene) -> Iterator[Platform]:
    served.clock.now = scene.head_time
    yield served
    served.clock.now = scene.head_time


# --------------------------------------------------------------------------------------------
# The Python SDK
# --------------------------------------------------------------------------------------------


@pytest.fixture
def py_sdk(platform_now: Platform) -> Iterator[Any]:
    """The Python SDK pointed at the platform by updating its tables (the README's setup)."""
    from dimo import DIMO
    from dimo.environments import dimo_environment

    saved = dict(dimo_environment["Production"])
    dimo_environment["Production"].update(
        Auth=platform_now.url,
        TokenExchange=platform_now.url,
        Identity=platform_now.url + "/query",
    )
    yield DIMO("Production")
    dimo_environment["Production"].clear()
    dimo_environment["Production"].update(saved)


def test_python_sdk_gets_a_developer_jwt_with_a_signer_that_is_not_the_client_id(
    py_sdk: Any, scene: Scene, platform_now: Platform
) -> None:
    auth = py_sdk.auth.get_dev_jwt(
        client_id=scene.client_id, domain=REDIRECT, private_key=scene.signer_key
    )
    token = verify_developer_token(
        auth["access_token"], SECRET.encode(), "http://127.0.0.1:8700", platform_now.clock()
    )
    assert token.client_id == scene.client_id
    assert token.signer == Account.from_key(scene.signer_key).address
    assert auth["expires_in"] == 14 * 86_400
    assert decode_jwt(auth["access_token"], SECRET.encode())["ethereum_address"] == scene.client_id


def test_python_sdk_three_step_login_from_its_readme(py_sdk: Any, scene: Scene) -> None:
    challenge = py_sdk.auth.generate_challenge(
        client_id=scene.client_id,
        domain=REDIRECT,
        address=Account.from_key(scene.signer_key).address,
    )
    signature = py_sdk.auth.sign_challenge(
        message=challenge["challenge"], private_key=scene.signer_key
    )
    tokens = py_sdk.auth.submit_challenge(
        client_id=scene.client_id, domain=REDIRECT, state=challenge["state"], signature=signature
    )
    assert tokens["token_type"] == "bearer"
    assert tokens["access_token"]


def test_python_sdk_lists_privileged_and_owned_vehicles(py_sdk: Any, scene: Scene) -> None:
    granted = py_sdk.identity.list_token_ids_granted_to_dev_by_owner(
        dev_address=scene.client_id, owner_address=scene.owner, limit=10
    )
    ids = {n["tokenId"] for n in granted["data"]["vehicles"]["nodes"]}
    assert {scene.held, scene.expiring, scene.battery_only} <= ids
    assert scene.sold not in ids  # sold: the grant died with the transfer
    listed = py_sdk.identity.list_vehicle_definitions_per_address(address=scene.owner, limit=50)
    devices = [n["aftermarketDevice"] for n in listed["data"]["vehicles"]["nodes"]]
    assert {"tokenId": str(int(scene.device, 16)), "address": scene.device} in devices
    owned = py_sdk.identity.mmy_by_owner(address=scene.owner, limit=50)
    assert all(n["definition"]["make"] for n in owned["data"]["vehicles"]["nodes"])
    count = py_sdk.identity.count_dimo_vehicles()
    assert count["data"]["vehicles"]["totalCount"] >= 4


def test_python_sdk_reads_a_vehicle_with_device_definition_and_sacd_permissions(
    py_sdk: Any, scene: Scene
) -> None:
    one = py_sdk.identity.mmy_by_token_id(token_id=scene.held)["data"]["vehicle"]
    assert one["aftermarketDevice"]["address"] == scene.device
    assert one["definition"] == {"make": "Tesla", "model": "Model Y", "year": 2023}
    assert one["syntheticDevice"] is None
    sacds = py_sdk.identity.check_vehicle_privileges(token_id=scene.held)
    nodes = sacds["data"]["vehicle"]["sacds"]["nodes"]
    assert nodes == [{"permissions": "0x3fffc", "grantee": scene.client_id}]
    dcn = py_sdk.identity.dcn_by_owner(address=scene.owner, limit=5)
    assert all(n["dcn"] is None for n in dcn["data"]["vehicles"]["nodes"])
    rewards = py_sdk.identity.rewards_by_owner(address=scene.owner)
    assert rewards["data"]["rewards"]["totalTokens"] == "0"
    history = py_sdk.identity.rewards_history_by_owner(address=scene.owner, limit=5)
    assert "errors" not in history
    privileges = py_sdk.identity.list_token_ids_privileges_by_owner(
        address=scene.owner, vehicle_limit=10, privileges_limit=10
    )
    assert "errors" not in privileges


def _dev_jwt(sdk: Any, scene: Scene) -> str:
    auth = sdk.auth.get_dev_jwt(
        client_id=scene.client_id, domain=REDIRECT, private_key=scene.signer_key
    )
    return str(auth["access_token"])


def test_python_sdk_exchanges_for_privileges_it_holds(py_sdk: Any, scene: Scene) -> None:
    dev_jwt = _dev_jwt(py_sdk, scene)
    streamlined = py_sdk.token_exchange.exchange(developer_jwt=dev_jwt, token_id=scene.held)
    claims = decode_jwt(streamlined["token"], SECRET.encode())
    assert claims["asset"].endswith(f":{scene.held}")
    assert claims["privileges"] == [1, 2, 3, 4, 5, 6, 7, 8]
    verbose = py_sdk.token_exchange.exchange(
        developer_jwt=dev_jwt, privileges=[1, 3, 4, 5], token_id=scene.held
    )
    assert decode_jwt(verbose["token"], SECRET.encode())["permissions"] == [
        "GetNonLocationHistory",
        "GetCurrentLocation",
        "GetLocationHistory",
        "GetVINCredential",
    ]


def _refusal(call: Callable[[], Any]) -> tuple[int, dict[str, Any]]:
    from dimo.errors import HTTPError

    with pytest.raises(HTTPError) as info:
        call()
    return info.value.status, info.value.body


def test_python_sdk_is_refused_a_privilege_it_does_not_hold(py_sdk: Any, scene: Scene) -> None:
    dev_jwt = _dev_jwt(py_sdk, scene)
    status, body = _refusal(
        lambda: py_sdk.token_exchange.exchange(
            developer_jwt=dev_jwt, privileges=[1], token_id=scene.battery_only
        )
    )
    assert status == 403
    assert body["code"] == 403
    assert "does not hold privileges [1]" in body["message"]


def test_python_sdk_is_refused_after_the_grant_expired_and_after_a_sale(
    py_sdk: Any, scene: Scene, platform_now: Platform
) -> None:
    dev_jwt = _dev_jwt(py_sdk, scene)
    status, body = _refusal(
        lambda: py_sdk.token_exchange.exchange(
            developer_jwt=dev_jwt, privileges=[1], token_id=scene.sold
        )
    )
    assert (status, body["type"].rsplit("/", 1)[1]) == (403, "privileges-not-held")
    py_sdk.token_exchange.exchange(developer_jwt=dev_jwt, privileges=[4], token_id=scene.expiring)
    platform_now.clock.now = scene.expiry + 1
    status, body = _refusal(
        lambda: py_sdk.token_exchange.exchange(
            developer_jwt=dev_jwt, privileges=[4], token_id=scene.expiring
        )
    )
    assert status == 403
    assert "[4]" in body["message"]


# --------------------------------------------------------------------------------------------
# The npm SDK (ESM, run by node)
# --------------------------------------------------------------------------------------------

NPM_SCRIPT = Path(__file__).with_name("dimo_sdk.mjs")


def run_npm_sdk(platform: Platform, scene: Scene) -> dict[str, Any]:
    """Runs tests/indexer/dimo_sdk.mjs with node; its steps' results by name."""
    config = {
        "sdk": SDK_ESM.as_uri(),
        "url": platform.url,
        "client_id": scene.client_id,
        "domain": REDIRECT,
        "key": scene.signer_key.removeprefix("0x"),  # the SDK prefixes 0x itself
        "owner": scene.owner,
        "held": scene.held,
        "battery_only": scene.battery_only,
        "sold": scene.sold,
        "expiring": scene.expiring,
    }
    done = subprocess.run(
        ["node", str(NPM_SCRIPT), json.dumps(config)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture
def npm(platform_now: Platform, scene: Scene) -> dict[str, Any]:
    return run_npm_sdk(platform_now, scene)


def test_npm_sdk_gets_a_developer_jwt_with_a_signer_that_is_not_the_client_id(
    npm: dict[str, Any], scene: Scene
) -> None:
    header = npm["login"]["ok"]["headers"]["Authorization"]
    claims = decode_jwt(header.removeprefix("Bearer "), SECRET.encode())
    assert claims["ethereum_address"] == scene.client_id
    assert claims["signer"] == Account.from_key(scene.signer_key).address


def test_npm_sdk_lists_privileged_and_owned_vehicles(npm: dict[str, Any], scene: Scene) -> None:
    privileged = npm["privileged"]["ok"]["data"]["vehicles"]
    assert {n["tokenId"] for n in privileged["nodes"]} >= {scene.held, scene.expiring}
    assert privileged["totalCount"] == len(privileged["nodes"])
    owned = npm["owned"]["ok"]["data"]["vehicles"]["nodes"]
    assert owned
    assert all(n["definition"]["make"] == "Tesla" for n in owned)
    assert npm["count"]["ok"]["data"]["vehicles"]["totalCount"] >= 4


def test_npm_sdk_reads_a_vehicle_with_device_definition_and_sacds(
    npm: dict[str, Any], scene: Scene
) -> None:
    vehicle = npm["vehicle"]["ok"]["data"]["vehicle"]
    assert vehicle["aftermarketDevice"]["address"] == scene.device
    assert vehicle["aftermarketDevice"]["manufacturer"]["name"]
    sacds = npm["sacds"]["ok"]["data"]["vehicle"]["sacds"]
    assert sacds["nodes"] == [{"permissions": "0x3fffc", "grantee": scene.client_id}]
    assert sacds["totalCount"] == 1


def test_npm_sdk_exchanges_for_privileges_it_holds(npm: dict[str, Any], scene: Scene) -> None:
    for step in ("exchange", "exchangeReadme", "getVehicleJwt"):
        header = npm[step]["ok"]["headers"]["Authorization"]
        claims = decode_jwt(header.removeprefix("Bearer "), SECRET.encode())
        assert claims["tokenId"] == scene.held


def test_npm_sdk_is_refused_a_privilege_it_does_not_hold_and_after_a_sale(
    npm: dict[str, Any],
) -> None:
    for step in ("notHeld", "sold"):
        error = npm[step]["error"]
        assert error["statusCode"] == 403
        assert error["message"].startswith("API call error: developer licence")


def test_npm_sdk_is_refused_after_the_grant_expired(
    npm: dict[str, Any], platform_now: Platform, scene: Scene
) -> None:
    assert "ok" in npm["expiring"]
    platform_now.clock.now = scene.expiry + 1
    later = run_npm_sdk(platform_now, scene)
    assert later["expiring"]["error"]["statusCode"] == 403
    assert "does not hold privileges [4]" in later["expiring"]["error"]["message"]


# --------------------------------------------------------------------------------------------
# Bad input: a clear error, nothing changes
# --------------------------------------------------------------------------------------------


def _challenge(base: str, scene: Scene, domain: str = REDIRECT) -> httpx.Response:
    return httpx.post(
        base + "/auth/web3/generate_challenge",
        data={
            "client_id": scene.client_id,
            "domain": domain,
            "scope": "openid email",
            "response_type": "code",
            "address": scene.client_id,
        },
    )


def _sign(message: str, key: str) -> str:
    return "0x" + Account.sign_message(
        encode_defunct(text=message), key
    ).signature.hex().removeprefix("0x")


def _submit(base: str, scene: Scene, state: str, signature: str, domain: str = REDIRECT) -> Any:
    return httpx.post(
        base + "/auth/web3/submit_challenge",
        data={
            "client_id": scene.client_id,
            "domain": domain,
            "state": state,
            "signature": signature,
            "grant_type": "authorization_code",
        },
    )


def _unused(engine: Any) -> int:
    c = web3_challenges.c
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).where(c.used_at_ms.is_(None))).scalar_one())


def test_a_wrong_signer_is_refused_and_the_challenge_stays_usable(
    platform_now: Platform, scene: Scene
) -> None:
    issued = _challenge(platform_now.url, scene).json()
    r = _submit(
        platform_now.url, scene, issued["state"], _sign(issued["challenge"], scene.stranger_key)
    )
    assert r.status_code == 401
    assert r.json()["type"].endswith("/challenge-signer-rejected")
    good = _submit(
        platform_now.url, scene, issued["state"], _sign(issued["challenge"], scene.signer_key)
    )
    assert good.status_code == 200, good.text


def test_a_reused_state_is_refused(platform_now: Platform, scene: Scene) -> None:
    issued = _challenge(platform_now.url, scene).json()
    signature = _sign(issued["challenge"], scene.signer_key)
    assert _submit(platform_now.url, scene, issued["state"], signature).status_code == 200
    again = _submit(platform_now.url, scene, issued["state"], signature)
    assert again.status_code == 401
    assert again.json()["type"].endswith("/challenge-reused")


def test_a_challenge_submitted_for_another_domain_is_refused_and_stays_usable(
    platform_now: Platform, scene: Scene
) -> None:
    issued = _challenge(platform_now.url, scene).json()
    signature = _sign(issued["challenge"], scene.signer_key)
    before = _unused(platform_now.engine)
    r = _submit(platform_now.url, scene, issued["state"], signature, domain="https://evil.example")
    assert r.status_code == 401
    assert r.json()["type"].endswith("/challenge-mismatch")
    assert _unused(platform_now.engine) == before


def test_a_challenge_for_an_unregistered_domain_is_refused(
    platform_now: Platform, scene: Scene
) -> None:
    before = _unused(platform_now.engine)
    r = _challenge(platform_now.url, scene, domain="https://evil.example")
    assert r.status_code == 400
    assert r.json()["type"].endswith("/redirect-uri-unknown")
    assert _unused(platform_now.engine) == before


@pytest.mark.parametrize(
    "form",
    [
        {"domain": REDIRECT},
        {"client_id": "0x1234", "domain": REDIRECT},
        {"client_id": "0x" + "ab" * 20, "domain": REDIRECT, "response_type": "token"},
    ],
)
def test_a_malformed_challenge_form_is_a_400_naming_the_field(
    platform_now: Platform, form: dict[str, str]
) -> None:
    before = _unused(platform_now.engine)
    r = httpx.post(platform_now.url + "/auth/web3/generate_challenge", data=form)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["type"].endswith("/developer-request-malformed")
    assert body["field"]
    assert _unused(platform_now.engine) == before


def test_a_malformed_signature_is_a_400(platform_now: Platform, scene: Scene) -> None:
    issued = _challenge(platform_now.url, scene).json()
    r = _submit(platform_now.url, scene, issued["state"], "0xdead")
    assert r.status_code == 400
    assert r.json()["field"] == "signature"


def test_a_graphql_query_over_the_depth_limit_is_refused_with_a_clear_error(
    platform_now: Platform,
) -> None:
    fits = "{ vehicles { nodes { earnings { history { edges { node { week } } } } } } }"
    assert "errors" not in httpx.post(platform_now.url + "/query", json={"query": fits}).json()
    deeper = fits.replace("{ earnings", "{ dcn { vehicle { earnings").replace("}", "} } }", 1)
    for _ in range(2):  # and again: a cached validation keeps the refusal
        r = httpx.post(platform_now.url + "/query", json={"query": deeper})
        errors = r.json()["errors"]
        assert any("exceeds maximum operation depth of 7" in e["message"] for e in errors), errors
    assert r.json().get("data") is None


def test_a_page_larger_than_100_is_a_graphql_error(platform_now: Platform) -> None:
    r = httpx.post(
        platform_now.url + "/query", json={"query": "{ vehicles(first: 101) { totalCount } }"}
    )
    assert "between 0 and 100" in r.json()["errors"][0]["message"]


def test_an_unknown_privilege_id_is_a_400(py_sdk: Any, scene: Scene) -> None:
    dev_jwt = _dev_jwt(py_sdk, scene)
    status, body = _refusal(
        lambda: py_sdk.token_exchange.exchange(
            developer_jwt=dev_jwt, privileges=[9], token_id=scene.held
        )
    )
    assert status == 400
    assert body["type"].endswith("/privilege-id-unknown")


def test_exchange_for_another_nft_contract_is_a_400(
    platform_now: Platform, py_sdk: Any, scene: Scene
) -> None:
    dev_jwt = _dev_jwt(py_sdk, scene)
    r = httpx.post(
        platform_now.url + "/v1/tokens/exchange",
        headers={"Authorization": f"Bearer {dev_jwt}"},
        json={"nftContractAddress": "0x" + "11" * 20, "privileges": [1], "tokenId": scene.held},
    )
    assert r.status_code == 400
    assert r.json()["type"].endswith("/nft-contract-unknown")


def test_the_sdks_default_nft_address_is_accepted_as_an_alias(
    platform_now: Platform, py_sdk: Any, scene: Scene
) -> None:
    dev_jwt = _dev_jwt(py_sdk, scene)
    r = httpx.post(
        platform_now.url + "/v1/tokens/exchange",
        headers={"Authorization": f"Bearer {dev_jwt}"},
        json={"nftContractAddress": DIMO_MAINNET_NFT, "privileges": [5], "tokenId": scene.held},
    )
    assert r.status_code == 200, r.text


def test_a_wallet_login_token_is_no_developer_token(platform_now: Platform, scene: Scene) -> None:
    r = httpx.post(
        platform_now.url + "/v1/tokens/exchange",
        headers={"Authorization": "Bearer not.a.token"},
        json={"nftContractAddress": DIMO_MAINNET_NFT, "privileges": [5], "tokenId": scene.held},
    )
    assert r.status_code == 401
    assert r.json()["type"].endswith("/developer-token-rejected")


def test_the_indexer_holds_the_licence_its_signer_and_redirect_uri(
    platform_now: Platform, scene: Scene, developer: Any
) -> None:
    from indexer import schema as s

    with platform_now.engine.connect() as conn:
        licence = conn.execute(
            select(s.developer_licences).where(
                s.developer_licences.c.client_id == scene.client_id.lower()
            )
        ).one()
        signers = conn.execute(
            select(s.licence_signers.c.signer).where(s.licence_signers.c.licence_id == licence.id)
        ).scalars()
        uris = conn.execute(
            select(s.licence_redirect_uris.c.uri).where(
                s.licence_redirect_uris.c.licence_id == licence.id
            )
        ).scalars()
        assert licence.owner == developer.address.lower()
        assert list(signers) == [Account.from_key(scene.signer_key).address.lower()]
        assert list(uris) == [REDIRECT]


def test_an_unreachable_chain_node_is_a_503_and_the_challenge_stays_usable(
    served: Platform, scene: Scene, deployment_record: Path
) -> None:
    settings = IndexerSettings(
        siwe_domain="127.0.0.1:8700",
        siwe_uri="http://127.0.0.1:8700",
        jwt_secret=SECRET,
        rate_limit_per_minute=0,
        rpc_url="http://127.0.0.1:9",  # nothing listens on the discard port
        deployment=deployment_record,
    )
    served.clock.now = scene.head_time
    with Served(create_app(settings, served.engine, clock=served.clock)) as offline:
        issued = _challenge(offline.url, scene).json()
        signature = _sign(issued["challenge"], scene.signer_key)
        r = _submit(offline.url, scene, issued["state"], signature)
        assert r.status_code == 503
        assert r.json()["type"].endswith("/signer-check-unavailable")
    assert _submit(served.url, scene, issued["state"], signature).status_code == 200
