"""Compute, post, verify and claim on anvil, from bundles anchored by the oracle quorum."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from typer.testing import CliRunner

from protocol.blobstore import LocalCidStore
from protocol.bundle import SignedBundle
from protocol.cid import Cid
from protocol.crypto import sign_digest
from protocol.rewards import HOUR_MS, root_digest
from protocol.rewards_document import parse_document
from rewards.catalog import ModelCatalog
from rewards.chain import RewardsChain
from rewards.cli import app
from rewards.compute import RewardsComputer
from rewards.exceptions import BatchContentUnavailable, EpochNotEnded, RootVetoed
from tests.conftest import FAR_FUTURE, make_device_key, private_key
from tests.rewards.conftest import SOC, SPEED

KONA_SIGNALS = 23
_NUMBERS = iter(range(5000, 6000, 4))


def _keys(oracle_signers: list[Any]) -> list[str]:
    return [private_key(o) for o in oracle_signers]


@pytest.fixture
def fleet(
    start_epoch: Callable[[], int],
    paired_vehicle: Callable[[int], tuple[int, LocalAccount]],
    device_id: Any,
    owner: Any,
    chain: Any,
) -> dict[str, Any]:
    """At the start of a new epoch: vehicles A and B paired, C paired then unpaired."""
    epoch = start_epoch()
    n = next(_NUMBERS)
    a, key_a = paired_vehicle(n)
    b, key_b = paired_vehicle(n + 1)
    c, key_c = paired_vehicle(n + 2)
    device_id.unpair(key_c.address, sender=owner)
    t0 = (int(chain.pending_timestamp) + 5) * 1000
    return {"epoch": epoch, "a": (a, key_a), "b": (b, key_b), "c": (c, key_c), "t0": t0}


@pytest.fixture
def anchored_week(
    fleet: dict[str, Any],
    signed_bundle: Callable[..., SignedBundle],
    anchor_bundles: Callable[[list[SignedBundle]], int],
    rewards: Any,
) -> dict[str, Any]:
    """A: 3 hours with speed and SoC; B: 1 hour with speed; C: unpaired; one bundle of A
    after the epoch. All in one anchored batch."""
    (a, key_a), (b, key_b), (c, key_c), t0 = fleet["a"], fleet["b"], fleet["c"], fleet["t0"]
    _, end = rewards.epochBounds(fleet["epoch"])
    bundles = [
        *(signed_bundle(key_a, a, t0 + h * HOUR_MS, (SPEED, SOC)) for h in range(3)),
        signed_bundle(key_b, b, t0 + 30_000),
        signed_bundle(key_c, c, t0 + 60_000),
        signed_bundle(key_a, a, end * 1000 + 5_000),
    ]
    fleet["batch"] = anchor_bundles(bundles)
    return fleet


def test_an_epochs_allocation_follows_the_formula_from_the_anchored_bundles(
    anchored_week: dict[str, Any],
    computer: RewardsComputer,
    rewards: Any,
    end_epoch: Callable[[int], None],
) -> None:
    epoch = anchored_week["epoch"]
    (a, _), (b, _) = anchored_week["a"], anchored_week["b"]
    end_epoch(epoch)
    computed = computer.compute(epoch)
    allocation = computed.allocation
    # A: floor(6000 * 3 h * 2 signals / (168 * 23)) = floor(36000 / 3864) = 9; B: 1 h, 1 signal:
    # floor(6000 / 3864) = 1. Both in their first week: no streak points. C counts nothing.
    assert {v: p.points for v, p in allocation.vehicles.items()} == {a: 9, b: 1}
    cap = rewards.capOf(epoch)
    assert allocation.budget == cap
    assert allocation.amounts == {a: cap * 9 // 10, b: cap // 10}
    doc = computed.parsed
    assert doc.root == allocation.root
    entry = doc.vehicles[a]
    assert entry["inputs"]["hoursConnected"] == 3
    assert entry["inputs"]["hours"] == "0x7"
    assert (entry["inputs"]["covered"], entry["inputs"]["reportable"]) == (2, KONA_SIGNALS)
    assert len(entry["inputs"]["missing"]) == KONA_SIGNALS - 2
    assert entry["inputs"]["streakAfter"] == [1, 0]
    assert entry["inputs"]["model"] == "Hyundai|Kona Electric"
    inputs = doc.header["inputs"]
    assert inputs["ignoredBundles"] == {"outside-epoch": 1, "unpaired": 1}
    batch = next(x for x in inputs["batches"] if x["id"] == anchored_week["batch"])
    assert (batch["counted"], batch["rejected"]) == (4, None)
    assert inputs["models"]["Hyundai|Kona Electric"]["source"] == "catalog"
    # The same inputs give the same bytes, so the same CID.
    assert computer.compute(epoch).document == computed.document


def test_post_verify_and_claim_an_epoch(
    anchored_week: dict[str, Any],
    computer: RewardsComputer,
    rewards: Any,
    token: Any,
    owner: Any,
    admin: Any,
    oracle_signers: list[Any],
    end_epoch: Callable[[int], None],
    wait_delay: Callable[[int], None],
) -> None:
    epoch = anchored_week["epoch"]
    a, _ = anchored_week["a"]
    end_epoch(epoch)
    posted = computer.post(epoch, _keys(oracle_signers), private_key(admin))
    onchain = rewards.epochRoot(epoch)
    assert onchain.root == posted.computed.allocation.root
    assert onchain.total == posted.computed.allocation.total
    assert computer.store.get(posted.cid) == posted.computed.document
    result = computer.verify(epoch)
    assert result.root_matches
    assert result.document_matches
    assert result.ok
    entry = parse_document(computer.store.get(posted.cid), check_proofs=True).vehicles[a]
    wait_delay(epoch)
    before = token.balanceOf(owner)
    rewards.claim(epoch, a, int(entry["amount"]), entry["proof"], sender=owner)
    assert token.balanceOf(owner) == before + int(entry["amount"])


def test_posting_a_root_that_was_vetoed_fails_with_a_clear_error_before_any_transaction(
    anchored_week: dict[str, Any],
    computer: RewardsComputer,
    rewards: Any,
    admin: Any,
    oracle_signers: list[Any],
    end_epoch: Callable[[int], None],
) -> None:
    epoch = anchored_week["epoch"]
    end_epoch(epoch)
    posted = computer.post(epoch, _keys(oracle_signers), private_key(admin))
    rewards.veto(epoch, sender=admin)
    with pytest.raises(RootVetoed) as caught:
        computer.post(epoch, _keys(oracle_signers), private_key(admin))
    assert caught.value.root == posted.computed.allocation.root
    assert rewards.epochRoot(epoch).vetoed


def test_verify_finds_a_root_that_the_inputs_do_not_give(
    anchored_week: dict[str, Any],
    computer: RewardsComputer,
    rewards: Any,
    admin: Any,
    oracle_signers: list[Any],
    end_epoch: Callable[[int], None],
    chain: Any,
) -> None:
    epoch = anchored_week["epoch"]
    (a, _), (b, _) = anchored_week["a"], anchored_week["b"]
    end_epoch(epoch)
    # A self-consistent allocation of half the cap, signed by the quorum: not the formula's.
    wrong = computer.compute(epoch, budget=rewards.capOf(epoch) // 2)
    cid = computer.store.put(wrong.document)
    cid_bytes = Cid.parse(cid).to_bytes()
    allocation = wrong.allocation
    assert allocation.root is not None
    digest = root_digest(
        computer.chain.root_domain(), epoch, allocation.root, allocation.total, cid_bytes
    )
    signatures = b"".join(sign_digest(digest, private_key(o)) for o in oracle_signers[:2])
    computer.chain.post(
        epoch, allocation.root, allocation.total, cid_bytes, signatures, private_key(admin)
    )
    result = computer.verify(epoch)
    assert not result.root_matches
    assert not result.ok
    assert [v for v, _, _ in result.differences] == [a, b]
    assert result.differences[0][1] * 2 in (result.differences[0][2], result.differences[0][2] - 1)


def test_a_new_device_on_the_same_vehicle_keeps_its_streak_across_epochs(
    fleet: dict[str, Any],
    signed_bundle: Callable[..., SignedBundle],
    anchor_bundles: Callable[[list[SignedBundle]], int],
    computer: RewardsComputer,
    rewards: Any,
    device_id: Any,
    owner: Any,
    admin: Any,
    oracle_signers: list[Any],
    claim: Callable[..., None],
    pair_sigs: Callable[..., tuple[bytes, bytes]],
    end_epoch: Callable[[int], None],
    chain: Any,
) -> None:
    first = fleet["epoch"]
    (a, key_a), (b, key_b), t0 = fleet["a"], fleet["b"], fleet["t0"]
    anchor_bundles([signed_bundle(key_a, a, t0), signed_bundle(key_b, b, t0 + 1000)])
    end_epoch(first)
    computer.post(first, _keys(oracle_signers), private_key(admin))
    # Next epoch: A's device is replaced; B sends nothing.
    second = first + 1
    start, _ = rewards.epochBounds(second)
    if chain.pending_timestamp <= start:  # posting may already have carried the clock past it
        chain.mine(timestamp=start + 1)
    new_key = make_device_key(next(_NUMBERS) + 3)
    device_id.unpair(key_a.address, sender=owner)
    claim(owner, new_key)
    device_id.pair(
        a, new_key.address, FAR_FUTURE, *pair_sigs(private_key(owner), new_key, a), sender=owner
    )
    t1 = (int(chain.pending_timestamp) + 5) * 1000
    anchor_bundles([signed_bundle(new_key, a, t1), signed_bundle(key_a, a, t1 + 1000)])
    end_epoch(second)
    computed = computer.compute(second)
    vehicles = computed.allocation.vehicles
    assert vehicles[a].streak_before.weeks == 1
    assert vehicles[a].streak_after.weeks == 2
    assert (vehicles[b].connected, vehicles[b].points, vehicles[b].streak_after.missed) == (
        False,
        0,
        1,
    )
    assert computed.parsed.header["inputs"]["ignoredBundles"] == {"unpaired": 1}
    assert computed.parsed.header["inputs"]["streaksFrom"]["epoch"] == first
    assert computed.parsed.header["inputs"]["streaksFrom"]["cid"]
    # From genesis, trusting no posted document, the history gives the same document.
    again = computer.compute(second, from_scratch=True)
    assert again.document == computed.document
    assert [(c.epoch, c.ok) for c in computer.checks] == [(first, True)]


def test_an_epoch_that_has_not_ended_is_refused(
    computer: RewardsComputer, rewards: Any, chain: Any
) -> None:
    current = int(rewards.epochAt(chain.pending_timestamp))
    with pytest.raises(EpochNotEnded) as err:
        computer.compute(current)
    assert err.value.epoch == current


def test_a_batch_whose_content_is_missing_stops_the_computation(
    anchored_week: dict[str, Any],
    rpc_url: str,
    deployment: Any,
    tmp_path: Path,
    end_epoch: Callable[[int], None],
) -> None:
    end_epoch(anchored_week["epoch"])
    empty = RewardsComputer(
        RewardsChain(rpc_url, deployment), LocalCidStore(tmp_path / "empty"), ModelCatalog.load()
    )
    with pytest.raises(BatchContentUnavailable) as err:
        empty.compute(anchored_week["epoch"])
    assert err.value.batch_id == anchored_week["batch"]


def test_the_cli_computes_writes_and_verifies(
    anchored_week: dict[str, Any],
    computer: RewardsComputer,
    rpc_url: str,
    deployment_record: Path,
    store: Any,
    tmp_path: Path,
    admin: Any,
    oracle_signers: list[Any],
    end_epoch: Callable[[int], None],
    wait_delay: Callable[[int], None],
    rewards: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    epoch = anchored_week["epoch"]
    end_epoch(epoch)
    out = tmp_path / "out"
    for name, value in {
        "RPC_URL": rpc_url,
        "DEPLOYMENT": str(deployment_record),
        "BLOB_DIR": str(store.root),
        "OUT_DIR": str(out),
        "SIGNER_KEYS": json.dumps(_keys(oracle_signers)),
        "SUBMITTER_KEY": private_key(admin),
    }.items():
        monkeypatch.setenv(f"DIMO_REWARDS_{name}", value)
    runner = CliRunner()
    result = runner.invoke(app, ["compute", "--epoch", str(epoch), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    folder = out / f"epoch-{epoch}"
    document = (folder / "allocation.json").read_bytes()
    assert summary["root"] == parse_document(document).header["root"]
    assert (folder / "allocation.cid").read_text().strip() == summary["cid"]
    rows = (folder / "allocation.csv").read_text().splitlines()
    assert rows[0].startswith("vehicle_id,model,amount_wei,points")
    assert len(rows) == 3
    # Nothing posted yet: verify says so and fails.
    missing = runner.invoke(app, ["verify", "--epoch", str(epoch)])
    assert missing.exit_code == 1
    assert "no root to verify" in missing.output
    posted = runner.invoke(app, ["post", "--epoch", str(epoch)])
    assert posted.exit_code == 0, posted.output
    verified = runner.invoke(app, ["verify", "--epoch", str(epoch), "--json"])
    assert verified.exit_code == 0, verified.output
    report = json.loads(verified.output.strip().splitlines()[-1])
    assert (report["rootMatches"], report["documentMatches"]) == (True, True)
    assert report["cid"] == summary["cid"]
    early = runner.invoke(app, ["fund", "--epoch", str(epoch)])
    assert early.exit_code == 1
    assert f"RewardsNotClaimable(epoch={epoch}," in early.output
    assert not rewards.epochRoot(epoch).funded
    wait_delay(epoch)
    funded = runner.invoke(app, ["fund", "--epoch", str(epoch)])
    assert funded.exit_code == 0, funded.output
    assert (rewards.epochRoot(epoch).funded, rewards.epochRoot(epoch).cachedDepth) == (True, 1)
