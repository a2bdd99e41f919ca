"""Each vehicle's activity in an epoch, from the anchored batches fetched by CID.

A bundle counts for its vehicle when all of these hold:

- its batch is anchored on-chain (an id up to the allocation's batch horizon), its content
  is fetched by the anchored CID, every bundle in it is canonical with a valid device
  signature, and their leaves rebuild the anchored root (`read_batch`);
- its device was paired to its vehicle for the whole window (`DevicePaired` and
  `DeviceUnpaired` events; the indexer applies the same rule);
- its window overlaps the epoch.

A counted bundle sets the bits of the epoch's hours its window overlaps and adds its VSS
signal names to the vehicle's set. A batch whose content fails a check counts for nothing
and is listed with its reason.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Final

from protocol.batch import (
    CONTENT_FORMAT,
    PUBLIC_FORMAT,
    InvalidBatchContent,
    document_format,
    parse_public,
    wire_form,
)
from protocol.blobstore import BlobStoreError
from protocol.bundle import (
    BUNDLE_LEAF_ENCODING,
    BundleError,
    SignedBundle,
    bundle_leaf,
    decode_bundle,
    verify_bundle,
)
from protocol.cid import InvalidCid
from protocol.crypto import SignatureError
from protocol.eip712 import Eip712Domain
from protocol.merkle import StandardMerkleTree
from protocol.rewards import hours_in
from rewards.chain import AnchoredBatch, PairingEvent
from rewards.exceptions import BatchContentUnavailable

__all__ = [
    "BatchUse",
    "EpochActivity",
    "PairingHistory",
    "PairingInterval",
    "Seen",
    "extract_activity",
    "read_batch",
]


@dataclass(frozen=True, slots=True)
class PairingInterval:
    """Device `device` paired to `vehicle_id` from `paired_at_s` until `unpaired_at_s`."""

    device: str
    vehicle_id: int
    paired_at_s: int
    unpaired_at_s: int | None = None

    def covers(self, window_start_ms: int, window_end_ms: int) -> bool:
        """Whether the pairing covers `[window_start_ms, window_end_ms)`.

        The pairing dates from no later than the window's start (as the oracle requires at
        ingest). Block timestamps have second resolution, so an unpairing dated second `s`
        is in force from `s + 1`.
        """
        if self.paired_at_s * 1000 > window_start_ms:
            return False
        return self.unpaired_at_s is None or window_end_ms <= (self.unpaired_at_s + 1) * 1000


class PairingHistory:
    """Every pairing interval, replayed from the chain's pairing events."""

    def __init__(self, intervals: Iterable[PairingInterval] = ()) -> None:
        """Index `intervals` by (device, vehicle)."""
        self._by_pair: dict[tuple[str, int], list[PairingInterval]] = {}
        for interval in intervals:
            key = (interval.device.lower(), interval.vehicle_id)
            self._by_pair.setdefault(key, []).append(interval)

    @classmethod
    def from_events(cls, events: Iterable[PairingEvent]) -> PairingHistory:
        """Replay `DevicePaired` / `DeviceUnpaired` events given in chain order."""
        open_: dict[str, PairingInterval] = {}
        closed: list[PairingInterval] = []
        for event in events:
            key = event.device.lower()
            if key in open_:
                done = open_.pop(key)
                closed.append(
                    PairingInterval(done.device, done.vehicle_id, done.paired_at_s, event.timestamp)
                )
            if event.kind == "DevicePaired":
                open_[key] = PairingInterval(event.device, event.vehicle_id, event.timestamp)
            elif event.kind != "DeviceUnpaired":
                raise ValueError(f"unknown pairing event {event.kind!r}")
        return cls([*closed, *open_.values()])

    def covers(
        self, device: str, vehicle_id: int, window_start_ms: int, window_end_ms: int
    ) -> bool:
        """Whether `device` was paired to `vehicle_id` for the whole window."""
        return any(
            interval.covers(window_start_ms, window_end_ms)
            for interval in self._by_pair.get((device.lower(), vehicle_id), ())
        )


@dataclass(frozen=True, slots=True)
class BatchUse:
    """How one anchored batch overlapping the epoch was used.

    Attributes:
        id: The batch id.
        cid: Its CID.
        counted: Bundles of it that counted.
        rejected: Why the whole batch counts for nothing, or None.
    """

    id: int
    cid: str
    counted: int
    rejected: str | None = None


@dataclass
class EpochActivity:
    """What the epoch's anchored bundles show, per vehicle.

    Attributes:
        hours: Vehicle id -> mask of the epoch's hours with a counted bundle.
        signals: Vehicle id -> VSS names in its counted bundles.
        batches: Every batch overlapping the epoch, in id order, with its use.
        ignored: Reason -> bundles not counted (`unpaired`, `outside-epoch`).
    """

    hours: dict[int, int] = field(default_factory=dict)
    signals: dict[int, set[str]] = field(default_factory=dict)
    batches: list[BatchUse] = field(default_factory=list)
    ignored: Counter[str] = field(default_factory=Counter)


_ENVELOPE_HEAD: Final = b"\xa2\x66bundle"
_SIGNATURE_KEY: Final = b"\x69signature\x58\x41"

#: What a counted bundle contributes: vehicle, device, window start and end (ms), signals.
Seen = tuple[int, str, int, int, tuple[str, ...]]


def _split_wire(wire: bytes) -> tuple[bytes, bytes]:
    """The canonical encoding and signature inside a signed bundle's wire form."""
    if not wire.startswith(_ENVELOPE_HEAD) or len(wire) < 10:
        raise ValueError("not a signed bundle envelope")
    info = wire[8] & 0x1F
    if wire[8] >> 5 != 2 or info > 27:
        raise ValueError("the bundle is not a byte string")
    size = 0 if info < 24 else 1 << (info - 24)
    length = info if info < 24 else int.from_bytes(wire[9 : 9 + size], "big")
    begin = 9 + size
    encoding = wire[begin : begin + length]
    tail = wire[begin + length :]
    if len(encoding) != length or len(tail) != len(_SIGNATURE_KEY) + 65:
        raise ValueError("truncated signed bundle")
    if not tail.startswith(_SIGNATURE_KEY):
        raise ValueError("no 65-byte signature after the bundle")
    signature = tail[len(_SIGNATURE_KEY) :]
    if wire_form(encoding, signature) != wire:
        raise ValueError("the envelope is not in canonical form")
    return encoding, signature


def read_batch(raw: bytes, anchored_root: bytes, domain: Eip712Domain) -> list[Seen] | str:
    """Every bundle of a batch's content, checked against the anchored root.

    A public document (`dimo-batch-v2`) is checked by `protocol.batch.parse_public`: every
    device signature from its leaf, every schema-2 bundle's signal names and commitments
    against its signed `dataHash`, and the tree against the anchored root; it holds the signal
    names, not their values, which is all a reward counts. In a document of a batch anchored
    before schema 2 (`dimo-batch-v1`), each bundle is decoded from its canonical wire form,
    its device signature verified, and the tree of their leaves rebuilt: it must have the
    anchored root, which commits to exactly these bundles.

    Args:
        raw: The content fetched by the anchored CID (`dimo-batch-v2`, or `-v1` of old batches).
        anchored_root: The root anchored on-chain.
        domain: The domain devices sign bundles in.

    Returns:
        `(vehicle, device, window start, window end, signals)` of every bundle, or why the
        batch counts for nothing.
    """
    if document_format(raw) == PUBLIC_FORMAT:
        try:
            public = parse_public(raw, domain)
        except InvalidBatchContent as exc:
            return exc.reason
        if public.tree.root != anchored_root:
            return "the content does not rebuild the anchored root"
        return [
            (e.leaf[1], e.leaf[0], e.leaf[3], e.leaf[4], tuple(e.signals)) for e in public.entries
        ]
    try:
        doc = json.loads(raw)
        wires = doc["bundles"]
        if doc.get("format") != CONTENT_FORMAT or not isinstance(wires, list) or not wires:
            return f"the content is not a {CONTENT_FORMAT} document with bundles"
    except (ValueError, TypeError, KeyError) as exc:
        return f"the content is not JSON ({exc})"
    seen: list[Seen] = []
    leaves = []
    for i, item in enumerate(wires):
        try:
            encoding, signature = _split_wire(bytes.fromhex(str(item).removeprefix("0x")))
            signed = SignedBundle(decode_bundle(encoding), signature)
            verify_bundle(signed, domain)
        except (ValueError, BundleError, SignatureError) as exc:
            return f"bundle {i} is invalid: {exc}"
        b = signed.bundle
        leaves.append(bundle_leaf(signed))
        names = tuple(name for name, samples in b.readings.items() if samples)
        seen.append((b.vehicle_id, b.device, b.window_start, b.window_end, names))
    if StandardMerkleTree.of(leaves, BUNDLE_LEAF_ENCODING).root != anchored_root:
        return "the content does not rebuild the anchored root"
    return seen


def _read_job(job: tuple[bytes, bytes, Eip712Domain]) -> list[Seen] | str:
    return read_batch(*job)


def extract_activity(
    epoch_start_ms: int,
    epoch_end_ms: int,
    batches: Sequence[AnchoredBatch],
    fetch: Callable[[str], bytes],
    domain: Eip712Domain,
    pairings: PairingHistory,
    *,
    workers: int = 1,
) -> EpochActivity:
    """Each vehicle's hours and signals in `[epoch_start_ms, epoch_end_ms)`.

    Args:
        epoch_start_ms: The epoch's start, unix ms.
        epoch_end_ms: Its end (exclusive), unix ms.
        batches: Anchored batches (those not overlapping the epoch are skipped).
        fetch: Returns a blob's content by CID (a blob store's `get`).
        domain: The domain devices sign bundles in.
        pairings: The pairing history.
        workers: Processes that check batches in parallel (1: in this process).

    Returns:
        The activity, with the use of every overlapping batch.

    Raises:
        BatchContentUnavailable: an overlapping batch's content cannot be fetched.
    """
    out = EpochActivity()
    overlapping = [
        b for b in batches if b.window_end > epoch_start_ms and b.window_start < epoch_end_ms
    ]

    def contents() -> Iterator[tuple[bytes, bytes, Eip712Domain]]:
        for batch in overlapping:
            try:
                raw = fetch(batch.cid) if batch.cid else b""
            except (BlobStoreError, InvalidCid) as exc:
                raise BatchContentUnavailable(batch.id, batch.cid, str(exc)) from None
            yield raw, batch.root, domain

    if workers > 1 and len(overlapping) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(_read_job, contents()))
    else:
        results = [_read_job(job) for job in contents()]
    for batch, result in zip(overlapping, results, strict=True):
        if not batch.cid:
            out.batches.append(BatchUse(batch.id, batch.cid, 0, "the anchored CID is malformed"))
            continue
        if isinstance(result, str):
            out.batches.append(BatchUse(batch.id, batch.cid, 0, result))
            continue
        counted = 0
        for vehicle, device, start, end, names in result:
            mask = hours_in(start, end, epoch_start_ms)
            if not mask:
                out.ignored["outside-epoch"] += 1
                continue
            if not pairings.covers(device, vehicle, start, end):
                out.ignored["unpaired"] += 1
                continue
            out.hours[vehicle] = out.hours.get(vehicle, 0) | mask
            signals = out.signals.get(vehicle)
            if signals is None:
                signals = out.signals[vehicle] = set()
            signals.update(names)
            counted += 1
        out.batches.append(BatchUse(batch.id, batch.cid, counted))
    return out
