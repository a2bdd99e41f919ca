"""The indexer serves each vehicle's rewards: synced from `RootPosted`, its document fetched by
CID and checked, then claimed on-chain with the proof the API served (real anvil and uvicorn)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from indexer.config import IndexerSettings
from indexer.db import make_engine
from indexer.sync import Syncer
from protocol.blobstore import LocalCidStore
from protocol.rewards_document import parse_document
from rewards.compute import RewardsComputer
from tests.conftest import private_key
from tests.indexer.test_api_basics import Clock, Served, make_app
from tests.indexer.test_sync import fresh_db
from tests.rewards.conftest import Posted
from tests.rewards.test_compute import anchored_week, fleet  # noqa: F401

PROBLEMS = "https://dimo.local/problems/"


@pytest.fixture
def index(tmp_path: Path) -> Iterator[str]:
    url, drop = fresh_db("sqlite", tmp_path)
    yield url
    drop()


def sync(url: str, rpc_url: str, deployment_record: Path, store: LocalCidStore) -> None:
    settings = IndexerSettings(
        database_url=url, rpc_url=rpc_url, deployment=deployment_record, pending_retry_s=0
    )
    syncer = Syncer(settings, store=store)
    try:
        syncer.backfill()
    finally:
        syncer.close()
        syncer.engine.dispose()


def test_a_vehicle_is_served_its_allocation_and_claims_with_the_served_proof(
    anchored_week: dict[str, Any],  # noqa: F811
    computer: RewardsComputer,
    rewards: Any,
    token: Any,
    owner: Any,
    admin: Any,
    oracle_signers: list[Any],
    end_epoch: Callable[[int], None],
    wait_delay: Callable[[int], None],
    rpc_url: str,
    deployment_record: Path,
    index: str,
    chain: Any,
) -> None:
    epoch = anchored_week["epoch"]
    a, _ = anchored_week["a"]
    end_epoch(epoch)
    posted = computer.post(epoch, [private_key(o) for o in oracle_signers], private_key(admin))
    document = parse_document(computer.store.get(posted.cid))
    sync(index, rpc_url, deployment_record, computer.store)
    engine = make_engine(index)
    clock = Clock()
    clock.now = chain.pending_timestamp
    try:
        with Served(make_app(engine, clock)) as served, httpx.Client(base_url=served.url) as api:
            served_epoch = api.get(f"/rewards/epochs/{epoch}").json()
            assert served_epoch["document"] == "loaded"
            assert served_epoch["root"] == "0x" + posted.computed.allocation.root.hex()
            assert served_epoch["claimable"] is False  # the challenge delay runs
            mine = api.get(f"/vehicles/{a}/rewards").json()["items"]
            entry = next(m for m in mine if m["epoch"] == epoch)
            expected = document.vehicles[a]
            assert (entry["amount"], entry["proof"]) == (expected["amount"], expected["proof"])
            assert entry["inputs"] == expected["inputs"]
            assert (entry["claimed"], entry["claimable"]) == (False, False)
            wait_delay(epoch)
            clock.now = chain.pending_timestamp
            assert api.get(f"/rewards/epochs/{epoch}/vehicles/{a}").json()["claimable"] is True
            # Funding stores the deepest whole level (1, for two leaves); once indexed, the
            # served claim proof stops there.
            assert entry["claim_proof"] == entry["proof"]
            funded = computer.fund(epoch, private_key(admin), cache_depth=8)
            assert (funded.cache_tx is not None, funded.cached_depth) == (True, 1)
            again = computer.fund(epoch, private_key(admin), cache_depth=8)
            assert (again.funded_tx, again.cache_tx, again.cached_depth) == (None, None, 1)
            sync(index, rpc_url, deployment_record, computer.store)
            assert api.get(f"/rewards/epochs/{epoch}").json()["cached_depth"] == 1
            entry = api.get(f"/rewards/epochs/{epoch}/vehicles/{a}").json()
            assert entry["claim_proof"] == entry["proof"][:-1]
            before = token.balanceOf(owner)
            rewards.claim(epoch, a, int(entry["amount"]), entry["claim_proof"], sender=owner)
            assert token.balanceOf(owner) == before + int(entry["amount"])
            sync(index, rpc_url, deployment_record, computer.store)
            after = api.get(f"/rewards/epochs/{epoch}/vehicles/{a}").json()
            assert (after["claimed"], after["claimable"]) == (True, False)
            assert after["claimed_by"] == owner.address
            missing = api.get(f"/rewards/epochs/{epoch}/vehicles/999999")
            assert missing.status_code == 404
            assert missing.json()["type"] == PROBLEMS + "reward-not-found"
    finally:
        engine.dispose()


def test_a_root_whose_document_is_not_in_the_store_serves_nothing_until_it_arrives(
    post_root: Callable[..., Posted],
    start_epoch: Callable[[], int],
    rpc_url: str,
    deployment_record: Path,
    index: str,
    tmp_path: Path,
) -> None:
    epoch = start_epoch()
    post_root(epoch, {1: 10**18, 2: 3 * 10**18})  # posted with a CID no store holds
    sync(index, rpc_url, deployment_record, LocalCidStore(tmp_path / "empty"))
    engine = make_engine(index)
    try:
        with Served(make_app(engine, Clock())) as served, httpx.Client(base_url=served.url) as api:
            served_epoch = api.get(f"/rewards/epochs/{epoch}").json()
            assert (served_epoch["document"], served_epoch["document_reason"]) == (
                "pending",
                "content-unavailable",
            )
            assert api.get(f"/rewards/epochs/{epoch}/vehicles/1").status_code == 404
    finally:
        engine.dispose()
