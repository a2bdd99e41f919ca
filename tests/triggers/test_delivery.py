"""Signed delivery to real receivers: signatures, cooldown, rights, retries, dead letters."""

from __future__ import annotations

import time

from protocol.privileges import Privilege
from tests.triggers.conftest import (
    BUYER,
    OTHER_VEHICLE,
    VEHICLE,
    Index,
    Journal,
    Receiver,
    Triggers,
    problem_of,
)

SPEED = "Vehicle.Speed"
FAR = 2**40


def now_ms() -> int:
    return int(time.time() * 1000)


def test_a_firing_reaches_the_receiver_signed_per_standard_webhooks(
    triggers: Triggers, journal: Journal, receiver: Receiver
) -> None:
    hook = triggers.register(receiver)
    r = triggers.subscribe(hook, VEHICLE)
    assert r.status_code == 200, r.text
    t = now_ms() - 10_000
    journal.put(VEHICLE, {SPEED: [(t, 90.0), (t + 1000, 120.0)]})
    triggers.evaluate()
    triggers.deliver()
    assert receiver.bad_signatures == 0
    [got] = receiver.received
    body = got["body"]
    assert got["id"] == body["id"]
    assert body["webhookId"] == hook
    assert body["metricName"] == "speed"
    assert body["signal"]["value"] == 120.0
    assert body["signal"]["unit"] == "km/h"
    assert body["assetDID"].endswith(f":{VEHICLE}")
    assert body["latency"] == "journaled"


def test_the_condition_sees_the_previous_value(
    triggers: Triggers, journal: Journal, receiver: Receiver
) -> None:
    hook = triggers.register(receiver, condition="value > 100 && previousValue <= 100")
    triggers.subscribe(hook, VEHICLE)
    t = now_ms() - 10_000
    journal.put(VEHICLE, {SPEED: [(t, 90.0), (t + 1000, 120.0), (t + 2000, 130.0)]})
    journal.put(VEHICLE, {SPEED: [(t + 3000, 80.0), (t + 4000, 101.0)]})
    triggers.evaluate()
    triggers.deliver()
    assert sorted(r["body"]["signal"]["value"] for r in receiver.received) == [101.0, 120.0]


def test_the_cooldown_holds_between_firings(
    triggers: Triggers, journal: Journal, receiver: Receiver
) -> None:
    hook = triggers.register(receiver, coolDownPeriod=30)
    triggers.subscribe(hook, VEHICLE)
    t = now_ms() - 120_000
    samples = [(t + i * 5_000, 120.0) for i in range(13)]  # one a 5 s over 60 s
    journal.put(VEHICLE, {SPEED: samples})
    triggers.evaluate()
    triggers.deliver()
    stamps = sorted(r["body"]["signal"]["timestamp"] for r in receiver.received)
    assert len(stamps) == 3  # at 0 s, 30 s and 60 s


def test_a_vehicle_not_subscribed_fires_nothing(
    triggers: Triggers, journal: Journal, receiver: Receiver
) -> None:
    hook = triggers.register(receiver)
    triggers.subscribe(hook, VEHICLE)
    journal.put(OTHER_VEHICLE, {SPEED: [(now_ms() - 1000, 150.0)]})
    triggers.evaluate()
    assert triggers.deliver() == 0
    assert receiver.received == []


def test_revoking_the_grant_stops_delivery_at_once(
    triggers: Triggers, journal: Journal, receiver: Receiver, index: Index
) -> None:
    index.grant(VEHICLE, BUYER, Privilege.DRIVING, FAR)
    hook = triggers.register(receiver, owner=BUYER)
    assert triggers.subscribe(hook, VEHICLE, owner=BUYER).status_code == 200
    t = now_ms() - 5000
    journal.put(VEHICLE, {SPEED: [(t, 150.0)]})
    triggers.evaluate()
    index.revoke(VEHICLE, BUYER)  # after the firing, before its delivery
    journal.put(VEHICLE, {SPEED: [(t + 1000, 160.0)]})
    triggers.evaluate()
    triggers.deliver()
    assert receiver.received == []
    with triggers.store.connect() as conn:
        states = [r.state for r in conn.exec_driver_sql("SELECT state FROM trigger_deliveries")]
    assert states == ["withheld"]  # the first firing; the second never fired


def test_a_sale_stops_delivery(
    triggers: Triggers, journal: Journal, receiver: Receiver, index: Index
) -> None:
    index.grant(VEHICLE, BUYER, Privilege.DRIVING, FAR)
    hook = triggers.register(receiver, owner=BUYER)
    triggers.subscribe(hook, VEHICLE, owner=BUYER)
    t = now_ms() - 5000
    journal.put(VEHICLE, {SPEED: [(t, 150.0)]})
    triggers.evaluate()
    triggers.deliver()
    assert len(receiver.received) == 1
    index.sell(VEHICLE)
    journal.put(VEHICLE, {SPEED: [(t + 1000, 160.0)]})
    triggers.evaluate()
    triggers.deliver()
    assert len(receiver.received) == 1


def test_an_expired_grant_fires_nothing(
    triggers: Triggers, journal: Journal, receiver: Receiver, index: Index
) -> None:
    index.grant(VEHICLE, BUYER, Privilege.DRIVING, int(time.time()) + 3600)
    hook = triggers.register(receiver, owner=BUYER)
    triggers.subscribe(hook, VEHICLE, owner=BUYER)
    index.grant(VEHICLE, BUYER, Privilege.DRIVING, int(time.time()) - 10)
    journal.put(VEHICLE, {SPEED: [(now_ms() - 1000, 150.0)]})
    triggers.evaluate()
    assert triggers.deliver() == 0


def test_location_needs_the_location_privilege(
    triggers: Triggers, receiver: Receiver, index: Index
) -> None:
    index.grant(VEHICLE, BUYER, Privilege.DRIVING, FAR)
    hook = triggers.register(
        receiver, owner=BUYER, metricName="currentLocationCoordinates", condition="true"
    )
    r = triggers.subscribe(hook, VEHICLE, owner=BUYER)
    problem_of(r, 403, "trigger-vehicle-not-readable")
    index.grant(VEHICLE, BUYER, Privilege.DRIVING | Privilege.LOCATION, FAR)
    assert triggers.subscribe(hook, VEHICLE, owner=BUYER).status_code == 200


def test_a_receiver_error_is_retried_with_the_same_webhook_id(
    triggers: Triggers, journal: Journal, receiver: Receiver
) -> None:
    hook = triggers.register(receiver)
    triggers.subscribe(hook, VEHICLE)
    journal.put(VEHICLE, {SPEED: [(now_ms() - 1000, 150.0)]})
    triggers.evaluate()
    receiver.status = 503
    triggers.deliver()
    assert receiver.received == []
    receiver.status = 200
    deadline = time.monotonic() + 10
    while not receiver.received and time.monotonic() < deadline:
        triggers.deliver()
        time.sleep(0.05)
    [got] = receiver.received
    with triggers.store.connect() as conn:
        row = conn.exec_driver_sql("SELECT id, attempts, state FROM trigger_deliveries").one()
    assert (row.id, row.state) == (got["id"], "delivered")
    assert row.attempts == 2


def test_a_delivery_past_its_retry_window_is_dead_lettered_and_can_be_replayed(
    triggers: Triggers, journal: Journal, receiver: Receiver
) -> None:
    hook = triggers.register(receiver)
    triggers.subscribe(hook, VEHICLE)
    journal.put(VEHICLE, {SPEED: [(now_ms() - 1000, 150.0)]})
    triggers.evaluate()
    receiver.status = 500
    with triggers.store.begin() as conn:  # as if created a day and a minute ago
        conn.exec_driver_sql("UPDATE trigger_deliveries SET created_ms = created_ms - 86460000")
    triggers.deliver()
    headers = triggers.as_("0x" + "a1" * 20)
    dead = triggers.api.get(f"/v1/webhooks/{hook}/dead-letters", headers=headers).json()
    assert len(dead) == 1
    assert dead[0]["lastError"] == "HTTP 500"
    receiver.status = 200
    r = triggers.api.post(f"/v1/webhooks/{hook}/dead-letters/replay", headers=headers)
    assert r.json() == {"replayed": 1}
    triggers.deliver()
    assert [x["id"] for x in receiver.received] == [dead[0]["id"]]


def test_a_rotated_secret_signs_beside_the_previous_one(
    triggers: Triggers, journal: Journal, receiver: Receiver
) -> None:
    hook = triggers.register(receiver)
    triggers.subscribe(hook, VEHICLE)
    headers = triggers.as_("0x" + "a1" * 20)
    new = triggers.api.post(f"/v1/webhooks/{hook}/secret", headers=headers).json()["secret"]
    old = receiver.secrets.pop()
    receiver.secrets.append(new)  # a receiver that already has the new secret
    journal.put(VEHICLE, {SPEED: [(now_ms() - 2000, 150.0)]})
    triggers.evaluate()
    triggers.deliver()
    receiver.secrets = [old]  # and one that still has the old one
    journal.put(VEHICLE, {SPEED: [(now_ms() - 1000, 150.0)]})
    triggers.evaluate()
    triggers.deliver()
    assert receiver.bad_signatures == 0
    assert len(receiver.received) == 2


def test_the_test_route_sends_a_signed_test_delivery(
    triggers: Triggers, receiver: Receiver
) -> None:
    hook = triggers.register(receiver)
    r = triggers.api.post(f"/v1/webhooks/{hook}/test", headers=triggers.as_("0x" + "a1" * 20))
    assert r.status_code == 200
    triggers.deliver()
    [got] = receiver.received
    assert got["body"]["test"] is True
    assert "signal" not in got["body"]


def test_a_reading_newer_than_a_cached_rights_answer_is_covered_while_the_right_is_live() -> None:
    from triggers.rights import Access

    access = Access(now_ms=1_000, spans={"DRIVING": ((10, 1_000),)})
    assert access.covers(Privilege.DRIVING, 1_500)
    assert not access.covers(Privilege.DRIVING, 5)
    assert not Access(1_000, {"DRIVING": ((10, 900),)}).covers(Privilege.DRIVING, 950)
