"""The caller's side of the API: `dimo indexer login` signs in with Ethereum, and
`dimo indexer verify-proof` checks a served reading proof against the chain alone."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from apps.exceptions import InputProofInvalid
from indexer.client import login, verify_reading_proof
from protocol.eip712 import Eip712Domain
from tests.conftest import private_key
from tests.indexer.test_api_telemetry import (  # fixtures shared with the telemetry tests
    SPEED,
    URI,
    Anchored,
    Fleet,
    World,
    advance,
    anchor_bundles,  # noqa: F401
    deployment,  # noqa: F401
    domain,  # noqa: F401
    drive_samples,
    fleet,  # noqa: F401
    head_s,
    load,
    now_ms,  # noqa: F401
    store,  # noqa: F401
    world,  # noqa: F401
)
from tests.indexer.test_loader import windowed_bundles


def owner_proof(served: World, owner: Any, car: int, ts: int) -> dict[str, Any]:
    """Signs in as the owner with `indexer.client.login` and fetches the speed proof at `ts`."""
    with httpx.Client(base_url=served.base_url, timeout=30) as client:
        token = login(
            served.base_url,
            private_key(owner),
            31337,
            client=client,
            siwe_uri=URI,
            issued_at=datetime.fromtimestamp(served.clock.now, UTC),
        )
        r = client.get(
            f"/vehicles/{car}/signals/{SPEED}/readings/{ts}/proof",
            headers={"Authorization": f"Bearer {token}"},
        )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_the_owner_signs_in_fetches_a_proof_that_verifies_and_a_changed_path_is_rejected(
    world: World,  # noqa: F811
    fleet: Fleet,  # noqa: F811
    domain: Eip712Domain,  # noqa: F811
    anchor_bundles: Callable[..., Anchored],  # noqa: F811
    owner: Any,
    platform: Any,
) -> None:
    (car, key), _ = fleet[0]
    t0 = fleet[1]
    samples = drive_samples(t0, t0 + 120_000)
    load(world, anchor_bundles, domain, key, car, samples)
    advance(700)
    world.sync()
    world.at(head_s() * 1000)
    ts, value = samples[SPEED][7]
    body = owner_proof(world, owner, car, ts)
    anchor = platform["AttestationAnchor"].address
    checked = verify_reading_proof(body, world.rpc_url, anchor)
    assert (checked["vehicle_id"], checked["ts"], checked["value"]) == (car, ts, value)
    assert checked["device"] == key.address
    body["proof"][0] = "0x" + bytes(32).hex()
    with pytest.raises(InputProofInvalid):
        verify_reading_proof(body, world.rpc_url, anchor)


def test_a_schema_2_proof_of_one_signal_verifies_by_its_opening_and_a_changed_sample_is_rejected(
    world: World,  # noqa: F811
    fleet: Fleet,  # noqa: F811
    domain: Eip712Domain,  # noqa: F811
    anchor_bundles: Callable[..., Anchored],  # noqa: F811
    owner: Any,
    platform: Any,
) -> None:
    (car, key), _ = fleet[0]
    t0 = fleet[1]
    samples = drive_samples(t0, t0 + 120_000)
    anchor_bundles(windowed_bundles(key, car, samples, domain, schema=2))
    advance(700)
    world.sync()
    world.at(head_s() * 1000)
    ts, value = samples[SPEED][7]
    body = owner_proof(world, owner, car, ts)
    assert body["schema_version"] == 2
    assert body["opening"]["name"] == SPEED
    # What a caller who may read speed alone holds: the opening, not the whole bundle.
    body["bundle_wire"] = None
    anchor = platform["AttestationAnchor"].address
    checked = verify_reading_proof(body, world.rpc_url, anchor)
    assert (checked["vehicle_id"], checked["ts"], checked["value"]) == (car, ts, value)
    assert checked["device"] == key.address
    samples_hex = body["opening"]["samples"]
    body["opening"]["samples"] = samples_hex[:-2] + ("00" if samples_hex[-2:] != "00" else "01")
    with pytest.raises(InputProofInvalid):
        verify_reading_proof(body, world.rpc_url, anchor)
