"""DIMO's SDKs, unchanged, register and list webhooks on our triggers service.

The SDKs send their `developer_jwt` as a bearer token: a developer JWT as the indexer's
`/auth/web3/submit_challenge` issues it, for a licence's client id that the owner granted
DRIVING on the vehicle."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from protocol.jwt import issue_developer_token
from protocol.privileges import Privilege
from tests.triggers.conftest import ISSUER, JWT_SECRET, OWNER, VEHICLE, Index, Receiver, Triggers

CLIENT_ID = "0x" + "e5" * 20


@pytest.fixture
def developer_jwt(index: Index) -> str:
    """A developer JWT of licence CLIENT_ID, which may read DRIVING of VEHICLE for an hour."""
    index.grant(VEHICLE, CLIENT_ID, Privilege.DRIVING, int(time.time()) + 3600)
    return issue_developer_token(
        CLIENT_ID, OWNER, JWT_SECRET.encode(), "http://" + ISSUER, time.time(), 600
    )


ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def dimo_sdk() -> object:
    from dimo import DIMO  # type: ignore[import-untyped]  # the `sdk` group of make install

    return DIMO


def test_the_python_sdk_registers_lists_subscribes_and_deletes(
    triggers: Triggers, receiver: Receiver, dimo_sdk: object, developer_jwt: str
) -> None:
    dimo = dimo_sdk("Production")  # type: ignore[operator]
    dimo.urls = {**dimo.urls, "VehicleTriggers": str(triggers.api.base_url)}
    jwt = developer_jwt
    sdk = dimo.vehicle_triggers
    created = sdk.register_webhook(
        developer_jwt=jwt,
        request={
            "service": "signals",
            "metricName": "speed",
            "condition": "value > 55",
            "coolDownPeriod": 30,
            "description": "speeding",
            "targetURL": receiver.url,
            "status": "enabled",
            "verificationToken": receiver.token,
        },
    )
    hook = created["id"]
    assert [w["id"] for w in sdk.list_all_webhooks(developer_jwt=jwt)] == [hook]
    assert "speed" in {s["name"] for s in sdk.webhook_signals(developer_jwt=jwt)}
    did = f"did:erc721:31337:0x{'00' * 20}:{VEHICLE}"
    sdk.subscribe_vehicle(developer_jwt=jwt, token_did=did, webhook_id=hook)
    assert sdk.list_vehicle_subscriptions_by_trigger(developer_jwt=jwt, webhook_id=hook) == [did]
    subs = sdk.list_vehicle_subscriptions(developer_jwt=jwt, token_did=did)
    assert [s["webhookId"] for s in subs] == [hook]
    sdk.update_webhook(developer_jwt=jwt, webhook_id=hook, request={"coolDownPeriod": 60})
    assert sdk.list_all_webhooks(developer_jwt=jwt)[0]["coolDownPeriod"] == 60
    sdk.delete_webhook(developer_jwt=jwt, webhook_id=hook)
    assert sdk.list_all_webhooks(developer_jwt=jwt) == []


JS = """
import { VehicleTriggers } from '@dimo-network/data-sdk';
const [url, jwt, target, token] = process.argv.slice(1);
const sdk = new VehicleTriggers(url, 'Production');
const headers = { Authorization: `Bearer ${jwt}` };
const created = await sdk.createWebhook({
  headers, service: 'signals', metricName: 'speed', condition: 'value > 55',
  coolDownPeriod: 30, description: 'speeding', targetURL: target, status: 'enabled',
  verificationToken: token, displayName: 'Speeding',
});
const listed = await sdk.listWebhooks({ headers });
console.log(JSON.stringify({ created, listed }));
"""


def test_the_js_sdk_registers_and_lists_webhooks(
    triggers: Triggers, receiver: Receiver, developer_jwt: str
) -> None:
    node = shutil.which("node")
    assert node is not None, "node is needed (make install)"
    out = subprocess.run(
        [
            node,
            "--input-type=module",
            "-e",
            JS,
            str(triggers.api.base_url),
            developer_jwt,
            receiver.url,
            receiver.token,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert [w["id"] for w in result["listed"]] == [result["created"]["id"]]
    assert result["listed"][0]["displayName"] == "Speeding"
