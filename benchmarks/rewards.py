"""Rewards figures: an epoch of 100,000 vehicles computed, and the gas of claims on anvil.

- `compute_s_100k`: the median of three runs of `rewards.compute.build_epoch` plus writing
  its outputs, for 100,000 vehicles with a week of activity each (a random hours mask of
  60 to 168 hours, a random part of their model's signals, a streak for most): points,
  streaks, pro-rata split, the 100,000-leaf tree, every vehicle's proof, the canonical JSON
  document, its CID, and the CSV. One core.
- `extract_bundles_per_s`: the activity extraction that comes before it, over 8 real batch
  contents (`dimo-batch-v1`, 5,000 signed bundles each): every device signature checked,
  each tree rebuilt and compared with its root, each bundle's hours and signals gathered.
  One core; `extract_bundles_per_s_2_workers` with two processes.
- `claim_gas_1`: the mean `gasUsed` of 8 single-epoch claims in a 100,000-leaf tree, each
  paying a first-time holder, after one warm-up claim (the 256-vehicle word of the claimed
  bitmap is then in use, as it is for all but one claim in 256). Each epoch was funded with
  its tree's level at depth 8 stored (`cacheLevel`, as `dimo rewards fund` does by default),
  so proofs stop there: 8 or 9 elements instead of 16 or 17. `claim_gas_1_max` is the
  largest of them; `claim_gas_1_new_word` the claim that opens a new word;
  `claim_gas_1_whole_proof` the same claims with whole proofs, to the root.
- `claim_gas_per_epoch_4`: four epochs claimed in one `claimMany`, per epoch, first-time
  holder, after a warm-up of the same operation.
- `post_gas` (a root, 2-of-3 quorum), `fund_gas` (minting an epoch into the contract) and
  `cache_level_gas` (storing the 256 nodes at depth 8, once per epoch);
  `cache_level_gas_per_claim` spreads it over the epoch's 100,000 claims.

The last line printed is one JSON object of figures.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_utils import keccak

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protocol.batch import build_content
from protocol.blobstore import LocalCidStore
from protocol.bundle import (
    Bundle,
    SignedBundle,
    bundle_leaf,
    encode_signed_bundle,
    sign_bundle,
)
from protocol.eip712 import dimo_domain
from protocol.rewards import (
    HOUR_MS,
    HOURS_PER_EPOCH,
    StreakState,
    allocation_tree,
    claim_proof,
)
from rewards.activity import BatchUse, EpochActivity, PairingHistory, extract_activity
from rewards.catalog import ModelCatalog
from rewards.chain import AnchoredBatch, PairingEvent
from rewards.cli import write_outputs
from rewards.compute import EpochContext, build_epoch

VEHICLES = 100_000
CACHE_DEPTH = 8
DIMO = 10**18
ROOT_TYPES = [
    {"name": "epoch", "type": "uint256"},
    {"name": "root", "type": "bytes32"},
    {"name": "total", "type": "uint256"},
    {"name": "cid", "type": "bytes"},
]
ClaimArgs = tuple[int, int, int, list[bytes]]
DOC_CID = bytes.fromhex("01551220") + keccak(b"benchmark allocation")

# ---------------------------------------------------------------------------------------------
# compute
# ---------------------------------------------------------------------------------------------


def synthetic_week(
    catalog: ModelCatalog, seed: int = 7
) -> tuple[EpochActivity, dict[int, str], dict[int, StreakState]]:
    """100,000 vehicles' activity as extraction finds it, their models and prior streaks."""
    rng = random.Random(seed)
    kona = sorted(catalog.reportable("Hyundai", "Kona Electric") or ())
    tesla = sorted(catalog.reportable("Tesla", "Model 3") or ())
    other = [*tesla, "Vehicle.TraveledDistance", "Vehicle.Powertrain.Range"]
    activity = EpochActivity()
    models: dict[int, str] = {}
    before: dict[int, StreakState] = {}
    full = (1 << HOURS_PER_EPOCH) - 1
    for v in range(1, VEHICLES + 1):
        pick = rng.random()
        if pick < 0.6:
            models[v], names = "Hyundai|Kona Electric", kona
        elif pick < 0.9:
            models[v], names = "Tesla|Model 3", tesla
        else:
            models[v], names = "Acme|Prototype", other  # not in the catalog: measured
        hours = full
        for _ in range(rng.randrange(0, 109)):
            hours &= ~(1 << rng.randrange(HOURS_PER_EPOCH))
        activity.hours[v] = hours
        activity.signals[v] = set(rng.sample(names, rng.randint(1, len(names))))
        if rng.random() < 0.9:
            before[v] = StreakState(rng.randrange(0, 50), rng.randrange(0, 3))
    activity.batches = [BatchUse(i, f"bafk{i}", 10_000) for i in range(1, 1681)]
    activity.ignored = Counter({"unpaired": 12})
    return activity, models, before


def compute_seconds(runs: int = 3) -> tuple[float, int]:
    """Median seconds of computing and writing an epoch of 100,000 vehicles; document size."""
    catalog = ModelCatalog.load()
    activity, models, before = synthetic_week(catalog)
    context = EpochContext(31337, "0x" + "ab" * 20, 9, 0, 604_800, 1680, 1_105_000 * DIMO)
    times, size = [], 0
    with tempfile.TemporaryDirectory() as out:
        for _ in range(runs):
            t0 = time.perf_counter()
            computed = build_epoch(context, activity, models, catalog, before, None)
            write_outputs(computed, Path(out))
            times.append(time.perf_counter() - t0)
            size = len(computed.document)
            if len(computed.allocation.amounts) != VEHICLES:
                raise RuntimeError("expected every vehicle to be paid")
    return statistics.median(times), size


def extraction_rate(batches: int = 8, per_batch: int = 5000, workers: int = 1) -> float:
    """Bundles per second through `extract_activity` over real batch contents."""
    domain = dimo_domain(31337, "0x" + "12" * 20)
    start = 1_800_000_000_000
    keys = [Account.from_key(keccak(f"bench-rewards-{i}".encode())) for i in range(100)]
    pairings = PairingHistory.from_events(
        PairingEvent("DevicePaired", k.address, i + 1, start // 1000 - 60)
        for i, k in enumerate(keys)
    )
    readings_names = ("Vehicle.Speed", "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current")
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalCidStore(Path(tmp))
        anchored = []
        seq = 0
        for b in range(batches):
            signed: list[SignedBundle] = []
            for i in range(per_batch):
                k = keys[i % len(keys)]
                t = start + (b * per_batch + i) * 10_000 % (HOURS_PER_EPOCH * HOUR_MS)
                readings = {n: [(t + j * 1000, 50.0 + j)] for j, n in enumerate(readings_names)}
                bundle = Bundle(k.address, i % len(keys) + 1, seq, t, t + 10_000, readings)
                signed.append(sign_bundle(bundle, bytes(k.key), domain))
                seq += 1
            raw, tree = build_content(
                b + 1, [encode_signed_bundle(s) for s in signed], [bundle_leaf(s) for s in signed]
            )
            anchored.append(
                AnchoredBatch(
                    b + 1,
                    tree.root,
                    store.put(raw),
                    per_batch,
                    min(s.bundle.window_start for s in signed),
                    max(s.bundle.window_end for s in signed),
                )
            )
        t0 = time.perf_counter()
        activity = extract_activity(
            start,
            start + HOURS_PER_EPOCH * HOUR_MS,
            anchored,
            store.get,
            domain,
            pairings,
            workers=workers,
        )
        elapsed = time.perf_counter() - t0
    if sum(b.counted for b in activity.batches) != batches * per_batch:
        raise RuntimeError("expected every bundle to count")
    return batches * per_batch / elapsed


# ---------------------------------------------------------------------------------------------
# gas
# ---------------------------------------------------------------------------------------------


def gas_figures() -> dict[str, Any]:
    """Claim, post and fund gas on a fresh anvil with 100,000-leaf trees."""
    from ape import accounts, chain, networks, project

    from scripts.deploy import deploy

    with networks.parse_network_choice("ethereum:local:foundry"):
        admin = accounts.test_accounts[0]
        oracles = sorted(
            (accounts.test_accounts[i] for i in (7, 8, 9)), key=lambda a: int(a.address, 16)
        )
        record = deploy(admin, [o.address for o in oracles], 2)
        c = {n: project.get_contract(n).at(r.address) for n, r in record.contracts.items()}
        rewards, vehicles = c["Rewards"], c["VehicleId"]
        serial = iter(range(10**6))

        def fresh() -> Any:
            acct = accounts.test_accounts.generate_test_account()
            admin.transfer(acct, 10**18)
            return acct

        def mint(owner: Any) -> int:
            vin = keccak(f"bench-vin-{next(serial)}".encode())
            return int(
                vehicles.mint("Hyundai", "Kona Electric", 2019, vin, sender=owner).return_value
            )

        # Vehicles 1..12 belong to first-time holders; 13..255 fill word 0 (bulk, one owner);
        # 256 opens word 1.
        owners = {}
        for _ in range(12):
            owner = fresh()
            owners[mint(owner)] = owner
        filler = accounts.test_accounts[3]
        w3 = chain.provider.web3
        abi = [item.model_dump(mode="json", by_alias=True) for item in vehicles.contract_type.abi]
        w3v = w3.eth.contract(address=vehicles.address, abi=abi)
        last = None
        for _ in range(13, 256):
            vin = keccak(f"bench-vin-{next(serial)}".encode())
            last = w3v.functions.mint("Hyundai", "Kona Electric", 2019, vin).transact(
                {"from": filler.address, "gas": 400_000}
            )
        w3.eth.wait_for_transaction_receipt(last)
        owner = fresh()
        new_word_vehicle = mint(owner)
        owners[new_word_vehicle] = owner
        if new_word_vehicle != 256:
            raise RuntimeError(f"expected vehicle 256, got {new_word_vehicle}")

        trees = {}
        for epoch in range(5):
            amounts = {v: DIMO + v * 1000 + epoch for v in range(1, VEHICLES + 1)}
            trees[epoch] = (allocation_tree(epoch, amounts), sum(amounts.values()))
        _, end = rewards.epochBounds(4)
        chain.mine(timestamp=end + 1)
        domain = {
            "name": "DIMO",
            "version": "1",
            "chainId": chain.chain_id,
            "verifyingContract": rewards.address,
        }
        post_gas = []
        for epoch, (tree, total) in trees.items():
            message = {"epoch": epoch, "root": tree.root, "total": total, "cid": DOC_CID}
            sigs = b"".join(
                bytes(
                    Account.sign_typed_data(
                        o.private_key, domain, {"RewardsRoot": ROOT_TYPES}, message
                    ).signature
                )
                for o in oracles[:2]
            )
            tx = rewards.post(epoch, tree.root, total, DOC_CID, sigs, sender=admin)
            post_gas.append(int(tx.gas_used))
        chain.mine(timestamp=rewards.epochRoot(4).claimableAt + 1)
        fund_gas = [int(rewards.fund(e, sender=admin).gas_used) for e in range(5)]
        cache_gas = [
            int(rewards.cacheLevel(e, tree.level(CACHE_DEPTH), sender=admin).gas_used)
            for e, (tree, _) in trees.items()
        ]

        def args(epoch: int, vehicle: int, depth: int = CACHE_DEPTH) -> ClaimArgs:
            tree = trees[epoch][0]
            proof = claim_proof(tree.proof(vehicle - 1), depth)
            return epoch, vehicle, DIMO + vehicle * 1000 + epoch, proof

        rewards.claim(*args(0, 1), sender=owners[1])  # warm-up
        single = [int(rewards.claim(*args(0, v), sender=owners[v]).gas_used) for v in range(2, 10)]
        new_word = int(rewards.claim(*args(0, 256), sender=owners[256]).gas_used)
        rewards.claimMany([args(e, 10) for e in range(1, 5)], sender=owners[10])  # warm-up
        four = int(
            rewards.claimMany([args(e, 11) for e in range(1, 5)], sender=owners[11]).gas_used
        )
        # The same claims with whole proofs, in epoch 1, once each vehicle has passed to a
        # first-time holder (the claim pays the current owner).
        for v in range(2, 10):
            heir = fresh()
            vehicles.transferFrom(owners[v], heir, v, sender=owners[v])
            owners[v] = heir
        whole = [
            int(rewards.claim(*args(1, v, 0), sender=owners[v]).gas_used) for v in range(2, 10)
        ]
        depths = Counter(len(args(0, v)[3]) for v in range(2, 10))
    return {
        "claim_gas_1": round(statistics.mean(single)),
        "claim_gas_1_max": max(single),
        "claim_gas_1_new_word": new_word,
        "claim_gas_1_whole_proof": round(statistics.mean(whole)),
        "claim_proof_lengths": {str(k): n for k, n in sorted(depths.items())},
        "claim_gas_per_epoch_4": four // 4,
        "claim_gas_4_epochs": four,
        "post_gas": round(statistics.mean(post_gas)),
        "fund_gas": max(fund_gas),
        "cache_depth": CACHE_DEPTH,
        "cache_level_gas": max(cache_gas),
        "cache_level_gas_per_claim": round(max(cache_gas) / VEHICLES),
    }


def main() -> None:
    """Runs the three parts and prints the figures."""
    figures: dict[str, Any] = {}
    seconds, size = compute_seconds()
    figures["compute_s_100k"] = round(seconds, 2)
    figures["document_mb_100k"] = round(size / 1e6, 1)
    figures["extract_bundles_per_s"] = round(extraction_rate())
    figures["extract_bundles_per_s_2_workers"] = round(extraction_rate(workers=2))
    figures.update(gas_figures())
    print("compute: one core; gas: solc 0.8.28 via-IR, runs 1,000,000, evm cancun, anvil")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
