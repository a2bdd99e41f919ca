"""Registration: DIMO's routes and shapes, and every bad input a typed problem that changes
nothing."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from protocol.jwt import issue_developer_token
from protocol.privileges import Privilege
from tests.triggers.conftest import (
    ISSUER,
    JWT_SECRET,
    OTHER_VEHICLE,
    OWNER,
    STRANGER,
    VEHICLE,
    Index,
    Receiver,
    Triggers,
    problem_of,
)


def register(triggers: Triggers, receiver: Receiver, **fields: Any) -> httpx.Response:
    body = {
        "service": "signals",
        "metricName": "speed",
        "condition": "value > 100",
        "coolDownPeriod": 30,
        "targetURL": receiver.url,
        "verificationToken": receiver.token,
        **fields,
    }
    return triggers.api.post("/v1/webhooks", json=body, headers=triggers.as_(OWNER))


def listed(triggers: Triggers) -> list[dict[str, Any]]:
    r = triggers.api.get("/v1/webhooks", headers=triggers.as_(OWNER))
    assert r.status_code == 200
    return list(r.json())


def test_a_registered_webhook_is_listed_with_dimos_fields(
    triggers: Triggers, receiver: Receiver
) -> None:
    r = register(triggers, receiver, description="too fast", displayName="Speed alert")
    assert r.status_code == 201
    assert r.json()["message"]
    assert r.json()["secret"].startswith("whsec_")
    [view] = listed(triggers)
    assert view["id"] == r.json()["id"]
    for key in ("service", "metricName", "condition", "targetURL", "coolDownPeriod", "status"):
        assert key in view
    assert (view["displayName"], view["coolDownPeriod"], view["status"]) == (
        "Speed alert",
        30,
        "enabled",
    )


BAD = [
    ({"metricName": "warpSpeed"}, 400, "trigger-unknown-metric"),
    ({"metricName": "obdDTCList"}, 400, "trigger-unknown-metric"),  # DIMO's, not carried
    ({"service": "events", "metricName": "behavior.teleport"}, 400, "trigger-unknown-metric"),
    ({"condition": "value >"}, 400, "trigger-condition-invalid"),
    ({"condition": "speedo > 3"}, 400, "trigger-condition-invalid"),
    ({"condition": "value + 1.0"}, 400, "trigger-condition-invalid"),
    (
        {"condition": " && ".join(f"[1,2,3].all(x{i}, x{i} < value)" for i in range(6))},
        400,
        "trigger-condition-too-costly",
    ),
    ({"coolDownPeriod": -1}, 400, "trigger-cooldown-out-of-range"),
    ({"coolDownPeriod": 10**9}, 400, "trigger-cooldown-out-of-range"),
    ({"targetURL": "ftp://example.com/x"}, 400, "trigger-target-refused"),
    ({"targetURL": "http://10.0.0.7/hook"}, 400, "trigger-target-refused"),
    ({"targetURL": "https://user:pw@127.0.0.1/hook"}, 400, "trigger-target-refused"),
    ({"verificationToken": "not-what-it-echoes"}, 400, "trigger-verification-failed"),
    ({"status": "sometimes"}, 400, "trigger-invalid-field"),
]


@pytest.mark.parametrize(("fields", "status", "slug"), BAD)
def test_a_bad_registration_is_a_typed_problem_that_changes_nothing(
    triggers: Triggers, receiver: Receiver, fields: dict[str, Any], status: int, slug: str
) -> None:
    problem_of(register(triggers, receiver, **fields), status, slug)
    assert listed(triggers) == []


def test_a_compile_error_carries_the_compilers_message(
    triggers: Triggers, receiver: Receiver
) -> None:
    body = problem_of(
        register(triggers, receiver, condition="value >"), 400, "trigger-condition-invalid"
    )
    assert "Syntax error" in body["detail"]


def test_a_receiver_that_is_down_fails_verification(triggers: Triggers, receiver: Receiver) -> None:
    receiver.stop()
    problem_of(register(triggers, receiver), 400, "trigger-verification-failed")
    receiver.start()
    assert listed(triggers) == []


def test_live_network_refuses_loopback_and_http(triggers: Triggers, receiver: Receiver) -> None:
    from triggers.exceptions import TargetRefused
    from triggers.targets import TargetPolicy, check_target

    live = TargetPolicy(live=True, allow_loopback=True)
    for url in (receiver.url, "https://127.0.0.1/x", "https://[::1]/x", "https://169.254.1.1/x"):
        with pytest.raises(TargetRefused):
            check_target(url, live)


def test_subscribing_a_vehicle_the_caller_may_not_read_is_refused(
    triggers: Triggers, receiver: Receiver
) -> None:
    r = triggers.api.post(
        "/v1/webhooks",
        json={
            "service": "signals",
            "metricName": "speed",
            "condition": "true",
            "coolDownPeriod": 0,
            "targetURL": receiver.url,
            "verificationToken": receiver.token,
        },
        headers=triggers.as_(STRANGER),
    )
    hook = r.json()["id"]
    problem_of(
        triggers.subscribe(hook, VEHICLE, owner=STRANGER), 403, "trigger-vehicle-not-readable"
    )
    did = f"did:erc721:31337:0x{'00' * 20}:{VEHICLE}"
    r = triggers.api.post(
        f"/v1/webhooks/{hook}/subscribe/list",
        json={"assetDIDs": [did]},
        headers=triggers.as_(STRANGER),
    )
    problem_of(r, 403, "trigger-vehicle-not-readable")
    assert triggers.api.get(f"/v1/webhooks/{hook}", headers=triggers.as_(STRANGER)).json() == []


def test_subscriptions_by_vehicle_and_by_webhook_use_dimos_dids(
    triggers: Triggers, receiver: Receiver
) -> None:
    hook = triggers.register(receiver)
    did = f"did:erc721:31337:0x{'00' * 20}:{VEHICLE}"
    assert (
        triggers.api.post(
            f"/v1/webhooks/{hook}/subscribe/{did}", headers=triggers.as_(OWNER)
        ).status_code
        == 200
    )
    assert triggers.api.get(f"/v1/webhooks/{hook}", headers=triggers.as_(OWNER)).json() == [did]
    subs = triggers.api.get(f"/v1/webhooks/vehicles/{did}", headers=triggers.as_(OWNER)).json()
    assert [s["webhookId"] for s in subs] == [hook]
    triggers.api.delete(f"/v1/webhooks/{hook}/unsubscribe/{did}", headers=triggers.as_(OWNER))
    assert triggers.api.get(f"/v1/webhooks/{hook}", headers=triggers.as_(OWNER)).json() == []


def test_an_update_changes_the_given_fields_and_a_bad_one_changes_nothing(
    triggers: Triggers, receiver: Receiver
) -> None:
    hook = triggers.register(receiver)
    url = f"/v1/webhooks/{hook}"
    r = triggers.api.put(url, json={"coolDownPeriod": 60}, headers=triggers.as_(OWNER))
    assert r.status_code == 200
    problem_of(
        triggers.api.put(url, json={"condition": "value >>"}, headers=triggers.as_(OWNER)),
        400,
        "trigger-condition-invalid",
    )
    [view] = listed(triggers)
    assert (view["coolDownPeriod"], view["condition"]) == (60, "value > 100")


def test_another_callers_webhook_is_not_found(triggers: Triggers, receiver: Receiver) -> None:
    hook = triggers.register(receiver)
    r = triggers.api.delete(f"/v1/webhooks/{hook}", headers=triggers.as_(STRANGER))
    problem_of(r, 404, "trigger-webhook-not-found")
    assert len(listed(triggers)) == 1


def test_a_request_without_a_token_is_a_401_problem(triggers: Triggers) -> None:
    problem_of(triggers.api.get("/v1/webhooks"), 401, "token-invalid")
    bad = {"Authorization": "Bearer not.a.token"}
    problem_of(triggers.api.get("/v1/webhooks", headers=bad), 401, "token-invalid")


def test_the_signal_list_names_dimos_signals_we_carry(triggers: Triggers) -> None:
    names = {
        s["name"]
        for s in triggers.api.get("/v1/webhooks/signals", headers=triggers.as_(OWNER)).json()
    }
    assert {"speed", "currentLocationCoordinates", "isIgnitionOn"} <= names
    assert "obdDTCList" not in names


def developer_headers(client_id: str, issuer: str = "http://" + ISSUER) -> dict[str, str]:
    """A developer JWT of licence `client_id` as the indexer's submit_challenge issues it."""
    token = issue_developer_token(client_id, OWNER, JWT_SECRET.encode(), issuer, time.time(), 600)
    return {"Authorization": f"Bearer {token}"}


def test_a_developer_jwt_acts_for_its_licence_and_reads_what_the_licence_was_granted(
    triggers: Triggers, receiver: Receiver, index: Index
) -> None:
    client_id = "0x" + "e5" * 20
    index.grant(VEHICLE, client_id, Privilege.DRIVING, int(time.time()) + 3600)
    headers = developer_headers(client_id)
    body = {
        "service": "signals",
        "metricName": "speed",
        "condition": "value > 100",
        "coolDownPeriod": 30,
        "targetURL": receiver.url,
        "verificationToken": receiver.token,
    }
    hook = triggers.api.post("/v1/webhooks", json=body, headers=headers).json()["id"]
    assert triggers.api.post(f"/v1/webhooks/{hook}/subscribe/{VEHICLE}", headers=headers).is_success
    problem_of(
        triggers.api.post(f"/v1/webhooks/{hook}/subscribe/{OTHER_VEHICLE}", headers=headers),
        403,
        "trigger-vehicle-not-readable",
    )
    assert [w["id"] for w in triggers.api.get("/v1/webhooks", headers=headers).json()] == [hook]
    assert triggers.api.get("/v1/webhooks", headers=triggers.as_(OWNER)).json() == []


def test_a_developer_jwt_of_another_issuer_or_an_id_token_is_a_401_problem(
    triggers: Triggers,
) -> None:
    client_id = "0x" + "e5" * 20
    other = developer_headers(client_id, issuer="http://elsewhere:8700")
    problem_of(triggers.api.get("/v1/webhooks", headers=other), 401, "token-invalid")
    id_token = issue_developer_token(
        client_id, OWNER, JWT_SECRET.encode(), "http://" + ISSUER, time.time(), 600, use="id"
    )
    bad = {"Authorization": f"Bearer {id_token}"}
    problem_of(triggers.api.get("/v1/webhooks", headers=bad), 401, "token-invalid")
