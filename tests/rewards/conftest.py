"""Fixtures of the rewards tests: the deployed Rewards contract and roots posted by the quorum.

Roots are signed with eth-account's `sign_typed_data` (the `sign` fixture), not by our code.
Each test runs in Ape's isolation, so the time it moves forward is undone after it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from protocol.batch import build_content
from protocol.blobstore import LocalCidStore
from protocol.bundle import Bundle, SignedBundle, bundle_leaf, encode_signed_bundle, sign_bundle
from protocol.cid import Cid
from protocol.deployment import Deployment
from protocol.eip712 import Eip712Domain, dimo_domain
from protocol.merkle import StandardMerkleTree
from protocol.rewards import allocation_tree
from rewards.catalog import ModelCatalog
from rewards.chain import RewardsChain
from rewards.compute import RewardsComputer
from tests.conftest import private_key, vin_commitment

ROOT_TYPES = [
    {"name": "epoch", "type": "uint256"},
    {"name": "root", "type": "bytes32"},
    {"name": "total", "type": "uint256"},
    {"name": "cid", "type": "bytes"},
]
#: A CIDv1 (raw, sha2-256) in binary form, standing in for an allocation document's CID.
DOC_CID = bytes.fromhex("01551220") + keccak(b"an allocation document")
DIMO = 10**18


@pytest.fixture(scope="session")
def rewards(platform: Any) -> Any:
    return platform["Rewards"]


@dataclass
class Posted:
    """A posted epoch: its tree (values in vehicle order) and the post transaction."""

    epoch: int
    tree: StandardMerkleTree
    total: int
    tx: Any

    def claim_args(self, vehicle: int) -> tuple[int, int, int, list[bytes]]:
        """`(epoch, vehicleId, amount, proof)` of `vehicle`'s leaf."""
        for i, (_, v, amount) in enumerate(self.tree.values):
            if v == vehicle:
                return self.epoch, vehicle, amount, self.tree.proof(i)
        raise KeyError(vehicle)


@pytest.fixture
def end_epoch(rewards: Any, chain: Any) -> Callable[[int], None]:
    """Moves the chain's clock past the end of an epoch."""

    def _end(epoch: int) -> None:
        _, end = rewards.epochBounds(epoch)
        if chain.pending_timestamp <= end:
            chain.mine(timestamp=end + 1)

    return _end


@pytest.fixture
def root_signatures(
    rewards: Any, oracle_signers: list[Any], sign: Callable[..., bytes]
) -> Callable[..., bytes]:
    """Signatures of `RewardsRoot(epoch, root, total, cid)` by the first `n` oracles, sorted."""

    def _signatures(epoch: int, root: bytes, total: int, cid: bytes = DOC_CID, n: int = 2) -> bytes:
        message = {"epoch": epoch, "root": root, "total": total, "cid": cid}
        return b"".join(
            sign(private_key(o), rewards, "RewardsRoot", ROOT_TYPES, message)
            for o in oracle_signers[:n]
        )

    return _signatures


@pytest.fixture
def post_root(
    rewards: Any,
    admin: Any,
    end_epoch: Callable[[int], None],
    root_signatures: Callable[..., bytes],
) -> Callable[..., Posted]:
    """Ends `epoch` and posts the tree of `amounts` (vehicle id -> wei) with a quorum."""

    def _post(epoch: int, amounts: dict[int, int]) -> Posted:
        end_epoch(epoch)
        tree = allocation_tree(epoch, amounts)
        total = sum(amounts.values())
        tx = rewards.post(
            epoch, tree.root, total, DOC_CID, root_signatures(epoch, tree.root, total), sender=admin
        )
        return Posted(epoch, tree, total, tx)

    return _post


@pytest.fixture
def wait_delay(rewards: Any, chain: Any) -> Callable[[int], None]:
    """Moves the clock to the moment claims of `epoch` open."""

    def _wait(epoch: int) -> None:
        chain.mine(timestamp=max(rewards.epochRoot(epoch).claimableAt, chain.pending_timestamp))

    return _wait


_VINS = iter(range(10**6))


@pytest.fixture
def new_vehicle(vehicle_id: Any) -> Callable[[Any], int]:
    """Mints a vehicle to `owner` and returns its id."""

    def _mint(owner: Any) -> int:
        vin = vin_commitment(f"REWARDS{next(_VINS):010d}")
        tx = vehicle_id.mint("Hyundai", "Kona Electric", 2019, vin, sender=owner)
        return int(tx.return_value)

    return _mint


@pytest.fixture
def fresh_owner(accounts: Any, admin: Any) -> Callable[[], Any]:
    """A new funded account that holds no DIMO."""

    def _fresh() -> Any:
        acct = accounts.generate_test_account()
        admin.transfer(acct, 10**18)
        return acct

    return _fresh


# ---------------------------------------------------------------------------------------------
# Anchored telemetry: bundles signed by devices, batched, stored and anchored with a quorum
# ---------------------------------------------------------------------------------------------

BATCH_TYPES = [
    {"name": "id", "type": "uint64"},
    {"name": "root", "type": "bytes32"},
    {"name": "cid", "type": "bytes"},
    {"name": "count", "type": "uint32"},
    {"name": "windowStart", "type": "uint64"},
    {"name": "windowEnd", "type": "uint64"},
]
SPEED = "Vehicle.Speed"
SOC = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current"


@pytest.fixture
def store(tmp_path: Path) -> LocalCidStore:
    return LocalCidStore(tmp_path / "blobs")


@pytest.fixture(scope="session")
def deployment(deployment_record: Path) -> Deployment:
    return Deployment.load(deployment_record)


@pytest.fixture(scope="session")
def bundle_domain(deployment: Deployment) -> Eip712Domain:
    return dimo_domain(deployment.chain_id, deployment.contract("AttestationAnchor").address)


@pytest.fixture
def signed_bundle(bundle_domain: Eip712Domain) -> Callable[..., SignedBundle]:
    """A 10 s bundle of `key`'s device for `vehicle` from `start_ms`, with one sample a signal."""
    sequences: dict[str, int] = {}

    def _bundle(
        key: LocalAccount, vehicle: int, start_ms: int, signals: tuple[str, ...] = (SPEED,)
    ) -> SignedBundle:
        seq = sequences.get(key.address, 0)
        sequences[key.address] = seq + 1
        readings = {name: [(start_ms + 1000 * i, 40.0 + i)] for i, name in enumerate(signals)}
        bundle = Bundle(key.address, vehicle, seq, start_ms, start_ms + 10_000, readings)
        return sign_bundle(bundle, bytes(key.key), bundle_domain)

    return _bundle


@pytest.fixture
def anchor_bundles(
    anchor: Any,
    oracle_signers: list[Any],
    sign: Callable[..., bytes],
    store: LocalCidStore,
    admin: Any,
) -> Callable[[list[SignedBundle]], int]:
    """Stores a batch of `bundles` by CID and anchors it with two oracle signatures."""

    def _anchor(bundles: list[SignedBundle]) -> int:
        batch_id = int(anchor.lastBatchId()) + 1
        wires = [encode_signed_bundle(b) for b in bundles]
        raw, tree = build_content(batch_id, wires, [bundle_leaf(b) for b in bundles])
        message = {
            "id": batch_id,
            "root": tree.root,
            "cid": Cid.parse(store.put(raw)).to_bytes(),
            "count": len(bundles),
            "windowStart": min(b.bundle.window_start for b in bundles),
            "windowEnd": max(b.bundle.window_end for b in bundles),
        }
        signatures = b"".join(
            sign(private_key(s), anchor, "AnchorBatch", BATCH_TYPES, message)
            for s in oracle_signers[:2]
        )
        anchor.anchor(tuple(message[t["name"]] for t in BATCH_TYPES), signatures, sender=admin)
        return batch_id

    return _anchor


@pytest.fixture
def start_epoch(rewards: Any, chain: Any) -> Callable[[], int]:
    """Moves the clock to the start of the next epoch and returns that epoch."""

    def _start() -> int:
        epoch = int(rewards.epochAt(chain.pending_timestamp)) + 1
        start, _ = rewards.epochBounds(epoch)
        chain.mine(timestamp=start + 1)
        return epoch

    return _start


@pytest.fixture
def computer(rpc_url: str, deployment: Deployment, store: LocalCidStore) -> RewardsComputer:
    return RewardsComputer(RewardsChain(rpc_url, deployment), store, ModelCatalog.load())
