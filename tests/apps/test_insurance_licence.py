"""Insurance scores read through a DataMarket licence: a live DRIVING licence covers the
vehicles opted in to the product, and nothing else, and only while it lasts."""

# The fixtures come from the indexer and insurance tests; their names are parameters here.
# ruff: noqa: F811

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from protocol.eip712 import Eip712Domain
from protocol.privileges import Privilege
from tests.apps.test_insurance import (  # fixtures shared with the insurance tests
    ServedWorld,
    drive_with_a_harsh_brake,
    served_world,  # noqa: F401
)
from tests.conftest import TERMS_CID
from tests.indexer.test_api_telemetry import advance, assert_problem, head_s
from tests.indexer.test_loader import (  # fixtures shared with the loader tests
    Anchored,
    anchor_bundles,  # noqa: F401
    deployment,  # noqa: F401
    domain,  # noqa: F401
    fleet,  # noqa: F401
    now_ms,  # noqa: F401
    store,  # noqa: F401
    windowed_bundles,
)

DRIVING = int(Privilege.DRIVING)
PRICE = 10**18
PERIOD_S = 3_600
Fleet = tuple[list[tuple[int, Any]], int]


def test_an_insurer_reads_scores_of_opted_in_vehicles_only_while_its_licence_lives(
    served_world: ServedWorld,
    fleet: Fleet,
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    now_ms: Callable[[], int],
    owner: Any,
    stranger: Any,
    curator: Any,
    admin: Any,
    data_market: Any,
    token: Any,
) -> None:
    world = served_world
    (car, key), (other, other_key) = fleet[0]
    product = int(
        data_market.listProduct(DRIVING, PRICE, PERIOD_S, TERMS_CID, sender=curator).return_value
    )
    data_market.optIn(car, product, sender=owner)  # `other` is never opted in
    token.mint(stranger, PRICE, sender=admin)
    token.approve(data_market, PRICE, sender=stranger)
    expiry = int(data_market.buy(product, 1, sender=stranger).return_value)
    # Both cars drive after the opt-in, and both drives are anchored.
    t0 = now_ms() + 1000
    anchor_bundles(
        windowed_bundles(key, car, drive_with_a_harsh_brake(t0), domain)
        + windowed_bundles(other_key, other, drive_with_a_harsh_brake(t0), domain)
    )
    advance(900)
    world.sync()
    world.at(head_s() * 1000)
    assert head_s() < expiry
    window = {"start": t0, "end": t0 + 900_000}
    with world.client(stranger) as insurer:
        r = insurer.get(f"/apps/insurance/{car}/score", params=window)
        assert r.status_code == 200, r.text
        result = r.json()["result"]
        assert (result["exposure"]["trips"], result["exposure"]["harsh_braking"]) == (1, 1)
        assert 0 <= result["score"] < 100
        # Location is never read: the licence's DRIVING scope is enough.
        assert "Vehicle.CurrentLocation.Latitude" not in r.json()["covered"]
        refused = insurer.get(f"/apps/insurance/{other}/score", params=window)
        assert assert_problem(refused, 403, "privilege-missing")["missing_scopes"] == ["DRIVING"]

        # The licence lapses: the same question is now refused.
        advance(expiry - head_s() + 60)
        world.sync()
        world.at(head_s() * 1000)
        expired = insurer.get(f"/apps/insurance/{car}/score", params=window)
        assert assert_problem(expired, 403, "privilege-missing")["missing_scopes"] == ["DRIVING"]

        # Renewing it restores the reading, over the same opt-in interval.
        token.mint(stranger, PRICE, sender=admin)
        token.approve(data_market, PRICE, sender=stranger)
        data_market.buy(product, 1, sender=stranger)
        world.sync()
        world.at(head_s() * 1000)
        renewed = insurer.get(f"/apps/insurance/{car}/score", params=window)
        assert renewed.status_code == 200, renewed.text
        assert renewed.json()["result"] == result
