"""What proofs and exports disclose (issue 17, fixes 1-3), over real chain rights and a real index.

A schema-1 proof carries a whole signed bundle, so a bundle is handed out only to a caller
whose rights cover every reading it holds; `POST /apps/proofs` authorises by signal and time;
and an outsider learns nothing of which bundles exist.
"""

# The fixtures come from the loader and insurance tests; their names are parameters here.
# ruff: noqa: F811

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from indexer.apps.insurance import verify_export
from protocol.bundle import decode_signed_bundle
from protocol.eip712 import Eip712Domain
from protocol.privileges import Privilege
from tests.apps.test_insurance import ServedWorld, drive_with_a_harsh_brake, served_world
from tests.conftest import FAR_FUTURE, TERMS_CID
from tests.indexer.leaks import LAT, LON, latitude, longitude, position_found, values_found
from tests.indexer.test_api_telemetry import (
    advance,
    assert_problem,
    block_ms,
    head_s,
    leaf_tuple,
    proof_list,
)
from tests.indexer.test_loader import (  # fixtures shared with the loader tests
    SOC,
    SPEED,
    Anchored,
    anchor_bundles,  # noqa: F401
    deployment,  # noqa: F401
    domain,  # noqa: F401
    fleet,  # noqa: F401
    now_ms,  # noqa: F401
    store,  # noqa: F401
    windowed_bundles,
)

__all__ = ["served_world"]

Fleet = tuple[list[tuple[int, Any]], int]
Samples = dict[str, list[tuple[int, Any]]]
DRIVING, LOCATION, BATTERY, VIN = (
    int(Privilege.DRIVING),
    int(Privilege.LOCATION),
    int(Privilege.BATTERY),
    int(Privilege.VIN),
)
ALL_BUT_LOCATION = 0xFF & ~LOCATION


def mixed_then_position_only(t0: int) -> Samples:
    """Five minutes of speed, state of charge and position, then one of position alone (60 s
    bundles: the first five mix the signals, the sixth holds nothing but position)."""
    return {
        SPEED: [(t0 + 2_000 * i, 61.37 + (i % 9) * 1.13) for i in range(150)],
        SOC: [(t0 + 20_000 * i, 77.31 - i * 0.07) for i in range(15)],
        LAT: [(t0 + 10_000 * i, latitude(i)) for i in range(36)],
        LON: [(t0 + 10_000 * i, longitude(i)) for i in range(36)],
    }


def positions(samples: Samples) -> tuple[list[float], list[float]]:
    return [v for _, v in samples[LAT]], [v for _, v in samples[LON]]


def refs_by_content(anchored: Anchored) -> tuple[list[int], list[int]]:
    """Leaf indexes of the bundles that mix signals, and of those holding only position."""
    mixed, position_only = [], []
    for i, signed in enumerate(anchored.bundles):
        names = set(signed.bundle.readings)
        (position_only if names <= {LAT, LON} else mixed).append(i)
    return mixed, position_only


def proofs(client: httpx.Client, car: int, batch_id: int, leaf: int) -> httpx.Response:
    return client.post("/apps/proofs", json={"vehicle_id": car, "inputs": [[batch_id, leaf]]})


def test_apps_proofs_give_a_vin_only_grantee_nothing_and_no_grantee_without_location_a_position(
    served_world: ServedWorld,
    fleet: Fleet,
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    owner: Any,
    stranger: Any,
    other_owner: Any,
    vehicle_rights: Any,
) -> None:
    world = served_world
    (car, key), t0 = fleet[0][0], fleet[1]
    samples = mixed_then_position_only(t0)
    anchored = anchor_bundles(windowed_bundles(key, car, samples, domain))
    batch = anchored.batch.id
    mixed, position_only = refs_by_content(anchored)
    assert len(mixed) == 5
    assert len(position_only) == 1
    vehicle_rights.grant(car, stranger, VIN, FAR_FUTURE, TERMS_CID, sender=owner)
    vehicle_rights.grant(car, other_owner, ALL_BUT_LOCATION, FAR_FUTURE, TERMS_CID, sender=owner)
    advance(600)
    world.sync()
    world.at(head_s() * 1000)
    lats, lons = positions(samples)
    with (
        world.client(stranger) as vin_only,
        world.client(other_owner) as no_location,
        world.client(owner) as mine,
    ):
        answers = {
            "vin mixed": proofs(vin_only, car, batch, mixed[0]),
            "vin position": proofs(vin_only, car, batch, position_only[0]),
            "no-location mixed": proofs(no_location, car, batch, mixed[0]),
            "no-location position": proofs(no_location, car, batch, position_only[0]),
        }
        own = [proofs(mine, car, batch, leaf) for leaf in (mixed[0], position_only[0])]
    # A VIN-only grantee may read no reading of these bundles: the same 404 as for a pair that
    # does not exist, so it learns nothing.
    assert_problem(answers["vin mixed"], 404, "bundle-not-found")
    assert_problem(answers["vin position"], 404, "bundle-not-found")
    # Every scope but LOCATION: a position-only bundle is as absent; a mixed one is refused
    # naming the position signals, whose values never appear.
    assert_problem(answers["no-location position"], 404, "bundle-not-found")
    problem = assert_problem(answers["no-location mixed"], 403, "bundle-not-disclosable")
    assert problem["signals"] == [LAT, LON]
    assert "schema-2" in problem["detail"]
    for name, r in answers.items():
        assert position_found(r.text, lats, lons) == [], name
    # The owner gets both bundles, positions included (the check above is not vacuous).
    for r in own:
        assert r.status_code == 200, r.text
        assert position_found(r.text, lats, lons)


def test_the_proof_of_a_speed_reading_is_refused_to_a_grantee_without_location_when_its_bundle_holds_position(  # noqa: E501
    served_world: ServedWorld,
    fleet: Fleet,
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    owner: Any,
    stranger: Any,
    vehicle_rights: Any,
    platform: Any,
) -> None:
    world = served_world
    (car, key), t0 = fleet[0][0], fleet[1]
    samples = mixed_then_position_only(t0)
    # A seventh minute of speed alone.
    speed_only = {SPEED: [(t0 + 360_000 + 2_000 * i, 88.17) for i in range(30)]}
    anchor_bundles(windowed_bundles(key, car, samples, domain))
    anchor_bundles(windowed_bundles(key, car, speed_only, domain, first_sequence=100))
    vehicle_rights.grant(car, stranger, DRIVING | BATTERY, FAR_FUTURE, TERMS_CID, sender=owner)
    advance(700)
    world.sync()
    world.at(head_s() * 1000)
    ts = samples[SPEED][3][0]
    lone = speed_only[SPEED][0][0]
    lats, lons = positions(samples)
    with world.client(stranger) as grantee:
        refused = grantee.get(f"/vehicles/{car}/signals/{SPEED}/readings/{ts}/proof")
        served = grantee.get(f"/vehicles/{car}/signals/{SPEED}/readings/{lone}/proof")
        readings = grantee.get(
            f"/vehicles/{car}/readings", params={"signal": SPEED, "start": t0, "end": ts + 1}
        )
        vehicle_rights.grant(
            car, stranger, DRIVING | BATTERY | LOCATION, FAR_FUTURE, TERMS_CID, sender=owner
        )
        world.sync()
        granted = grantee.get(f"/vehicles/{car}/signals/{SPEED}/readings/{ts}/proof")
    problem = assert_problem(refused, 403, "bundle-not-disclosable")
    assert problem["signals"] == [LAT, LON]
    assert position_found(refused.text, lats, lons) == []
    # The value itself stays readable where no bundle bytes are handed out.
    assert readings.status_code == 200, readings.text
    assert readings.json()["items"][-1]["t"] == ts
    # A bundle holding only what the grantee may read is proved as before.
    assert served.status_code == 200, served.text
    assert set(decode_signed_bundle(bytes.fromhex(served.json()["bundle_wire"][2:])).bundle.readings) == {SPEED}  # fmt: skip  # noqa: E501
    # With LOCATION the same proof is served, and verifies on-chain.
    assert granted.status_code == 200, granted.text
    body = granted.json()
    anchor = platform["AttestationAnchor"]
    assert anchor.verifyReading(body["batch"]["id"], leaf_tuple(body), proof_list(body))


def test_the_insurance_export_is_refused_to_a_driving_insurer_when_its_bundles_hold_position(
    served_world: ServedWorld,
    fleet: Fleet,
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    owner: Any,
    stranger: Any,
    vehicle_rights: Any,
) -> None:
    world = served_world
    (car, key), t0 = fleet[0][0], fleet[1]
    samples: Samples = dict(drive_with_a_harsh_brake(t0))
    end = samples[SPEED][-1][0]
    samples[LAT] = [(t, latitude(i)) for i, t in enumerate(range(t0, end, 10_000))]
    samples[LON] = [(t, longitude(i)) for i, t in enumerate(range(t0, end, 10_000))]
    anchor_bundles(windowed_bundles(key, car, samples, domain))
    vehicle_rights.grant(car, stranger, DRIVING, FAR_FUTURE, TERMS_CID, sender=owner)
    advance(900)
    world.sync()
    world.at(head_s() * 1000)
    window = {"start": t0, "end": t0 + 900_000}
    lats, lons = positions(samples)
    with world.client(stranger) as insurer, world.client(owner) as mine:
        score = insurer.get(f"/apps/insurance/{car}/score", params=window)
        refused = insurer.get(f"/apps/insurance/{car}/export", params=window)
        own = mine.get(f"/apps/insurance/{car}/export", params=window)
    # The score reads speed and ignition only: still served.
    assert score.status_code == 200, score.text
    assert score.json()["result"]["exposure"]["harsh_braking"] == 1
    problem = assert_problem(refused, 403, "bundle-not-disclosable")
    assert problem["signals"] == [LAT, LON]
    assert position_found(refused.text, lats, lons) == []
    assert position_found(score.text, lats, lons) == []
    # The owner's export holds the whole bundles and verifies offline.
    assert own.status_code == 200, own.text
    assert position_found(own.text, lats, lons)
    assert verify_export(own.json()).result.to_dict() == score.json()["result"]


def test_an_outsider_gets_the_same_answer_whether_or_not_a_bundle_exists(
    served_world: ServedWorld,
    fleet: Fleet,
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    owner: Any,
    stranger: Any,
    other_owner: Any,
    vehicle_rights: Any,
) -> None:
    world = served_world
    (car, key), (other, other_key) = fleet[0]
    t0 = fleet[1]
    drive = {SPEED: [(t0 + 2_000 * i, 70.7) for i in range(30)]}
    anchored = anchor_bundles(
        windowed_bundles(key, car, drive, domain)
        + windowed_bundles(other_key, other, drive, domain)
    )
    batch = anchored.batch.id
    (mine_leaf,) = [i for i, b in enumerate(anchored.bundles) if b.bundle.vehicle_id == car]
    (their_leaf,) = [i for i, b in enumerate(anchored.bundles) if b.bundle.vehicle_id == other]
    vehicle_rights.grant(car, other_owner, LOCATION, FAR_FUTURE, TERMS_CID, sender=owner)
    advance(200)
    world.sync()
    world.at(head_s() * 1000)
    pairs = {"real": (batch, mine_leaf), "other's": (batch, their_leaf), "none": (10**9, 0)}
    with (
        world.client(stranger) as outsider,
        world.client(other_owner) as location_only,
        world.client(owner) as mine,
    ):
        outside = {k: proofs(outsider, car, *p) for k, p in pairs.items()}
        partial = {k: proofs(location_only, car, *p) for k, p in pairs.items()}
        own = {k: proofs(mine, car, *p) for k, p in pairs.items()}
        spec = mine.get("/openapi.json").json()
    # No rights at all: 403 before any lookup, the very same body for every pair.
    bodies = [assert_problem(r, 403, "privilege-missing") for r in outside.values()]
    assert bodies[0] == bodies[1] == bodies[2]
    # Rights that cover nothing of the bundle: the same 404 as for an unknown pair.
    for r in partial.values():
        assert_problem(r, 404, "bundle-not-found")
    # The owner: its bundle, and 404 for the others, as the OpenAPI document says.
    assert own["real"].status_code == 200, own["real"].text
    assert_problem(own["other's"], 404, "bundle-not-found")
    assert_problem(own["none"], 404, "bundle-not-found")
    documented = spec["paths"]["/apps/proofs"]["post"]["responses"]
    assert {"200", "403", "404"} <= set(documented)
    proof_route = "/vehicles/{vehicle_id}/signals/{signal}/readings/{ts}/proof"
    assert {"200", "403", "404"} <= set(spec["paths"][proof_route]["get"]["responses"])


@pytest.mark.parametrize("schema", [1, 2])
def test_a_licensee_gets_no_bundle_that_straddles_its_opt_in_time(
    schema: int,
    served_world: ServedWorld,
    fleet: Fleet,
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    owner: Any,
    stranger: Any,
    curator: Any,
    admin: Any,
    data_market: Any,
    token: Any,
) -> None:
    world = served_world
    (car, key), _ = fleet[0]
    product = int(
        data_market.listProduct(DRIVING, 10**18, 3_600, TERMS_CID, sender=curator).return_value
    )
    advance(100)
    opted_in = block_ms(data_market.optIn(car, product, sender=owner))
    token.mint(stranger, 10**18, sender=admin)
    token.approve(data_market, 10**18, sender=stranger)
    data_market.buy(product, 1, sender=stranger)
    # One 60 s bundle of speed, half before the opt-in (not the licensee's), half after.
    before = [(opted_in - 30_000 + 1_000 * i, 50.713 + i * 0.011) for i in range(30)]
    after = [(opted_in + 1_000 * i, 80.419 + i * 0.013) for i in range(30)]
    anchored = anchor_bundles(
        windowed_bundles(key, car, {SPEED: before + after}, domain, schema=schema)
    )
    assert len(anchored.bundles) == 1
    advance(200)
    world.sync()
    world.at(head_s() * 1000)
    ts = after[2][0]
    with world.client(stranger) as licensee:
        readings = licensee.get(
            f"/vehicles/{car}/readings",
            params={"signal": SPEED, "start": before[0][0], "end": after[-1][0] + 1},
        )
        proof = licensee.get(f"/vehicles/{car}/signals/{SPEED}/readings/{ts}/proof")
        bundle = proofs(licensee, car, anchored.batch.id, 0)
    # The readings after the opt-in are the licensee's; the bundle is not, as a whole.
    assert [(i["t"], i["value"]) for i in readings.json()["items"]] == after
    for r in (proof, bundle):
        assert assert_problem(r, 403, "bundle-not-disclosable")["signals"] == [SPEED]
        assert values_found(r.text, [v for _, v in before]) == []
