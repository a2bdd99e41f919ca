"""Activity extraction from batch contents, without a chain: hours, signals, rejections."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from protocol.batch import build_content
from protocol.blobstore import LocalCidStore
from protocol.bundle import Bundle, SignedBundle, bundle_leaf, encode_signed_bundle, sign_bundle
from protocol.eip712 import dimo_domain
from protocol.rewards import HOUR_MS
from rewards.activity import PairingHistory, extract_activity
from rewards.chain import AnchoredBatch, PairingEvent
from rewards.exceptions import BatchContentUnavailable

DOMAIN = dimo_domain(31337, "0x" + "12" * 20)
EPOCH_START = 1_800_000_000_000
EPOCH_END = EPOCH_START + 168 * HOUR_MS
PAIRED_AT_S = EPOCH_START // 1000 - 3600
SPEED = "Vehicle.Speed"
SOC = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current"


def _key(n: int) -> LocalAccount:
    return Account.from_key(keccak(f"activity-device-{n}".encode()))


def _bundle(key: LocalAccount, vehicle: int, start: int, signals: tuple[str, ...]) -> SignedBundle:
    readings = {name: [(start + i, 1.0)] for i, name in enumerate(signals)}
    return sign_bundle(
        Bundle(key.address, vehicle, start, start, start + 10_000, readings), bytes(key.key), DOMAIN
    )


def _batch(store: LocalCidStore, batch_id: int, bundles: list[SignedBundle]) -> AnchoredBatch:
    raw, tree = build_content(
        batch_id, [encode_signed_bundle(b) for b in bundles], [bundle_leaf(b) for b in bundles]
    )
    return AnchoredBatch(
        batch_id,
        tree.root,
        store.put(raw),
        len(bundles),
        min(b.bundle.window_start for b in bundles),
        max(b.bundle.window_end for b in bundles),
    )


@pytest.fixture
def store(tmp_path: Path) -> LocalCidStore:
    return LocalCidStore(tmp_path / "blobs")


def test_hours_and_signals_are_gathered_per_vehicle_across_devices_and_batches(
    store: LocalCidStore,
) -> None:
    old, new, other = _key(1), _key(2), _key(3)
    swap_s = (EPOCH_START + 50 * HOUR_MS) // 1000
    pairings = PairingHistory.from_events(
        [
            PairingEvent("DevicePaired", old.address, 7, PAIRED_AT_S),
            PairingEvent("DevicePaired", other.address, 8, PAIRED_AT_S),
            PairingEvent("DeviceUnpaired", old.address, 7, swap_s),
            PairingEvent("DevicePaired", new.address, 7, swap_s + 1),
        ]
    )
    first = _batch(
        store,
        1,
        [
            _bundle(old, 7, EPOCH_START + 5_000, (SPEED,)),  # hour 0
            _bundle(old, 7, EPOCH_START + 10 * HOUR_MS, (SOC,)),  # hour 10
            _bundle(other, 8, EPOCH_START + 3 * HOUR_MS, (SPEED,)),  # hour 3
        ],
    )
    second = _batch(
        store,
        2,
        [
            _bundle(new, 7, EPOCH_START + 60 * HOUR_MS, (SPEED,)),  # the new device: hour 60
            _bundle(old, 7, EPOCH_START + 61 * HOUR_MS, (SPEED,)),  # unpaired by then
            _bundle(new, 7, EPOCH_END + 1, (SPEED,)),  # after the epoch
        ],
    )
    activity = extract_activity(
        EPOCH_START, EPOCH_END, [first, second], store.get, DOMAIN, pairings
    )
    assert activity.hours == {7: (1 << 0) | (1 << 10) | (1 << 60), 8: 1 << 3}
    assert activity.signals == {7: {SPEED, SOC}, 8: {SPEED}}
    assert dict(activity.ignored) == {"unpaired": 1, "outside-epoch": 1}
    assert [(b.id, b.counted, b.rejected) for b in activity.batches] == [(1, 3, None), (2, 1, None)]


def test_a_bundle_before_its_devices_pairing_does_not_count(store: LocalCidStore) -> None:
    key = _key(4)
    paired_s = (EPOCH_START + 2 * HOUR_MS) // 1000
    pairings = PairingHistory.from_events([PairingEvent("DevicePaired", key.address, 9, paired_s)])
    batch = _batch(
        store,
        1,
        [
            _bundle(key, 9, EPOCH_START + HOUR_MS, (SPEED,)),
            _bundle(key, 9, paired_s * 1000, (SPEED,)),
        ],
    )
    activity = extract_activity(EPOCH_START, EPOCH_END, [batch], store.get, DOMAIN, pairings)
    assert activity.hours == {9: 1 << 2}
    assert activity.ignored["unpaired"] == 1


def test_a_batch_whose_content_does_not_rebuild_the_anchored_root_counts_for_nothing(
    store: LocalCidStore,
) -> None:
    key = _key(5)
    pairings = PairingHistory.from_events(
        [PairingEvent("DevicePaired", key.address, 9, PAIRED_AT_S)]
    )
    good = _batch(store, 1, [_bundle(key, 9, EPOCH_START, (SPEED,))])
    forged = AnchoredBatch(1, b"\x01" * 32, good.cid, 1, good.window_start, good.window_end)
    activity = extract_activity(EPOCH_START, EPOCH_END, [forged], store.get, DOMAIN, pairings)
    assert activity.hours == {}
    assert activity.batches[0].rejected == "the content does not rebuild the anchored root"
    signed_elsewhere = dimo_domain(1, "0x" + "12" * 20)
    bad = extract_activity(EPOCH_START, EPOCH_END, [good], store.get, signed_elsewhere, pairings)
    assert bad.hours == {}
    assert bad.batches[0].rejected is not None
    assert "bundle 0 is invalid" in bad.batches[0].rejected


def test_batches_outside_the_epoch_are_not_fetched_and_a_missing_one_inside_is_an_error(
    store: LocalCidStore, tmp_path: Path
) -> None:
    key = _key(6)
    pairings = PairingHistory.from_events(
        [PairingEvent("DevicePaired", key.address, 9, PAIRED_AT_S)]
    )
    inside = _batch(store, 1, [_bundle(key, 9, EPOCH_START, (SPEED,))])
    outside = AnchoredBatch(2, b"\x01" * 32, inside.cid, 1, EPOCH_END, EPOCH_END + 10_000)
    empty = LocalCidStore(tmp_path / "empty")
    activity = extract_activity(EPOCH_START, EPOCH_END, [outside], empty.get, DOMAIN, pairings)
    assert activity.batches == []
    with pytest.raises(BatchContentUnavailable) as err:
        extract_activity(EPOCH_START, EPOCH_END, [inside], empty.get, DOMAIN, pairings)
    assert (err.value.batch_id, err.value.cid) == (1, inside.cid)


def test_an_unknown_pairing_event_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown pairing event"):
        PairingHistory.from_events([PairingEvent("DeviceBurned", "0x" + "11" * 20, 1, 0)])


def test_two_worker_processes_find_the_same_activity_as_one(store: LocalCidStore) -> None:
    keys = [_key(10 + i) for i in range(3)]
    pairings = PairingHistory.from_events(
        PairingEvent("DevicePaired", k.address, 20 + i, PAIRED_AT_S) for i, k in enumerate(keys)
    )
    batches = [
        _batch(
            store,
            b + 1,
            [
                _bundle(k, 20 + i, EPOCH_START + (b * 3 + i) * HOUR_MS, (SPEED,))
                for i, k in enumerate(keys)
            ],
        )
        for b in range(3)
    ]
    one = extract_activity(EPOCH_START, EPOCH_END, batches, store.get, DOMAIN, pairings)
    two = extract_activity(EPOCH_START, EPOCH_END, batches, store.get, DOMAIN, pairings, workers=2)
    assert (two.hours, two.signals, two.batches) == (one.hours, one.signals, one.batches)
    assert one.hours[20] == (1 << 0) | (1 << 3) | (1 << 6)
