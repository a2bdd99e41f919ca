"""The allocation document (`dimo-rewards-v1`): what is stored by CID and posted with the root.

Canonical JSON (keys sorted, no spaces, ASCII), so the same inputs give the same bytes and
the same CID::

    {"format": "dimo-rewards-v1", "pointsVersion": "dimo-points-v1",
     "chainId": 31337, "rewards": "0x..", "epoch": n, "epochStart": s, "epochEnd": s,
     "budget": "wei", "total": "wei", "totalPoints": p, "root": "0x.." | null,
     "leafEncoding": ["uint256", "uint256", "uint256"],
     "inputs": {"batchHorizon": id, "batches": [{"id", "cid", "counted", "rejected"}],
                "ignoredBundles": {"unpaired": n, ...}, "catalog": "<sha256>",
                "models": {"Make|Model": {"source": "catalog" | "measured", "signals": [..]}},
                "streaksFrom": {"epoch", "cid", "root"} | {"epoch", "recomputed": true} | null},
     "vehicles": [{"vehicleId": v, "amount": "wei", "points": p, "proof": ["0x..", ..],
                   "inputs": {"model", "hours": "0x<mask>", "hoursConnected", "reportable",
                              "covered", "missing": [..], "connected", "connectionPoints",
                              "streakBefore": [weeks, missed], "streakAfter": [weeks, missed],
                              "streakPoints"}}, ...],
     "streaks": {"<vehicleId>": [weeks, missed], ...}}

`vehicles` lists every vehicle with activity or a streak, in ascending id; a vehicle with an
amount has the proof of its leaf `(epoch, vehicleId, amount)`. `streaks` carries every
vehicle's streak into the next epoch. The API serves a vehicle's entry as it is.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from protocol.merkle import MerkleError, StandardMerkleTree, process_proof, standard_leaf_hash
from protocol.rewards import (
    LEAF_ENCODING,
    POINTS_VERSION,
    EpochAllocation,
    RewardsFormulaError,
    StreakState,
)

__all__ = [
    "DOCUMENT_FORMAT",
    "AllocationDocument",
    "BatchUse",
    "DocumentInputs",
    "InvalidAllocation",
    "ModelSignals",
    "StreakSource",
    "build_document",
    "csv_rows",
    "parse_document",
]

DOCUMENT_FORMAT: Final = "dimo-rewards-v1"
CSV_HEADER: Final = (
    "vehicle_id",
    "model",
    "amount_wei",
    "points",
    "connection_points",
    "streak_points",
    "hours_connected",
    "covered",
    "reportable",
    "connected",
    "streak_weeks",
    "streak_missed",
)


class InvalidAllocation(RewardsFormulaError, ValueError):
    """An allocation document is malformed or disagrees with itself or with the chain."""

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        self.reason = reason
        super().__init__(
            f"allocation {where} is invalid: {reason}; only documents written by "
            "`dimo rewards compute` (format dimo-rewards-v1) are accepted"
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


@dataclass(frozen=True, slots=True)
class ModelSignals:
    """A model's reportable signals and where they come from (`catalog` or `measured`)."""

    source: str
    signals: frozenset[str]


@dataclass(frozen=True, slots=True)
class StreakSource:
    """Where the streaks before the epoch came from: a posted allocation, or a recomputation."""

    epoch: int
    cid: str | None = None
    root: bytes | None = None

    def as_json(self) -> dict[str, Any]:
        """The `inputs.streaksFrom` member."""
        if self.cid is None or self.root is None:
            return {"epoch": self.epoch, "recomputed": True}
        return {"epoch": self.epoch, "cid": self.cid, "root": "0x" + self.root.hex()}


@dataclass(frozen=True)
class DocumentInputs:
    """The public inputs an allocation was computed from, as the document records them.

    Attributes:
        chain_id: The chain.
        rewards: The Rewards contract's address.
        epoch_start: The epoch's first second.
        epoch_end: The first second after it.
        batch_horizon: The last batch id considered.
        batches: Every batch overlapping the epoch and its use.
        ignored: Reason -> bundles that did not count.
        catalog_sha256: SHA-256 of the model catalog.
        models: `"Make|Model"` -> reportable signals, for the models of scored vehicles.
        vehicle_models: Vehicle id -> its `"Make|Model"`.
        hours: Vehicle id -> mask of its connected hours.
        signals: Vehicle id -> VSS names it reported.
        streaks_from: Where the streaks before the epoch came from (None for epoch 0).
    """

    chain_id: int
    rewards: str
    epoch_start: int
    epoch_end: int
    batch_horizon: int
    batches: Sequence[BatchUse]
    ignored: Mapping[str, int]
    catalog_sha256: str
    models: Mapping[str, ModelSignals]
    vehicle_models: Mapping[int, str]
    hours: Mapping[int, int]
    signals: Mapping[int, frozenset[str]]
    streaks_from: StreakSource | None


def _canonical(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _streak(s: StreakState) -> list[int]:
    return [s.weeks, s.missed]


def build_document(allocation: EpochAllocation, inputs: DocumentInputs) -> bytes:
    """The canonical document of `allocation`.

    Args:
        allocation: The computed allocation.
        inputs: What it was computed from.

    Returns:
        The document's bytes (what is stored by CID).
    """
    tree = allocation.tree
    proofs: dict[int, list[str]] = {}
    if tree is not None:
        for i, value in enumerate(tree.values):
            proofs[int(value[1])] = ["0x" + node.hex() for node in tree.proof(i)]
    no_signals: frozenset[str] = frozenset()
    vehicles = []
    for vehicle_id, p in allocation.vehicles.items():
        model = inputs.vehicle_models.get(vehicle_id, "")
        reportable = inputs.models.get(model)
        seen = inputs.signals.get(vehicle_id, no_signals)
        missing = sorted(reportable.signals - seen) if reportable is not None else []
        vehicles.append(
            {
                "vehicleId": vehicle_id,
                "amount": str(allocation.amounts.get(vehicle_id, 0)),
                "points": p.points,
                "proof": proofs.get(vehicle_id, []),
                "inputs": {
                    "model": model,
                    "hours": hex(inputs.hours.get(vehicle_id, 0)),
                    "hoursConnected": p.hours,
                    "reportable": p.reportable,
                    "covered": p.covered,
                    "missing": missing,
                    "connected": p.connected,
                    "connectionPoints": p.connection_points,
                    "streakBefore": _streak(p.streak_before),
                    "streakAfter": _streak(p.streak_after),
                    "streakPoints": p.streak_points,
                },
            }
        )
    doc = {
        "format": DOCUMENT_FORMAT,
        "pointsVersion": POINTS_VERSION,
        "chainId": inputs.chain_id,
        "rewards": inputs.rewards,
        "epoch": allocation.epoch,
        "epochStart": inputs.epoch_start,
        "epochEnd": inputs.epoch_end,
        "budget": str(allocation.budget),
        "total": str(allocation.total),
        "totalPoints": allocation.total_points,
        "root": None if allocation.root is None else "0x" + allocation.root.hex(),
        "leafEncoding": list(LEAF_ENCODING),
        "inputs": {
            "batchHorizon": inputs.batch_horizon,
            "batches": [
                {"id": b.id, "cid": b.cid, "counted": b.counted, "rejected": b.rejected}
                for b in inputs.batches
            ],
            "ignoredBundles": dict(sorted(inputs.ignored.items())),
            "catalog": inputs.catalog_sha256,
            "models": {
                key: {"source": m.source, "signals": sorted(m.signals)}
                for key, m in sorted(inputs.models.items())
            },
            "streaksFrom": None if inputs.streaks_from is None else inputs.streaks_from.as_json(),
        },
        "vehicles": vehicles,
        "streaks": {str(v): _streak(s) for v, s in allocation.streaks.items()},
    }
    return _canonical(doc)


def csv_rows(allocation: EpochAllocation, vehicle_models: Mapping[int, str]) -> str:
    """The allocation as CSV, one row per scored vehicle (no proofs), for spreadsheets.

    Args:
        allocation: The allocation.
        vehicle_models: Vehicle id -> `"Make|Model"`.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for vehicle_id, p in allocation.vehicles.items():
        writer.writerow(
            (
                vehicle_id,
                vehicle_models.get(vehicle_id, ""),
                allocation.amounts.get(vehicle_id, 0),
                p.points,
                p.connection_points,
                p.streak_points,
                p.hours,
                p.covered,
                p.reportable,
                int(p.connected),
                p.streak_after.weeks,
                p.streak_after.missed,
            )
        )
    return out.getvalue()


# --------------------------------------------------------------------------------------------
# Reading a document back
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AllocationDocument:
    """A parsed, checked allocation document.

    Attributes:
        raw: Its bytes.
        epoch: The epoch.
        root: The root, or None for an empty allocation.
        total: Sum of the amounts, in wei.
        budget: The cap that was split, in wei.
        batch_horizon: The last batch id its computation considered.
        vehicles: Vehicle id -> its entry as in the JSON (amount, points, proof, inputs).
        streaks: Streak states after the epoch.
        header: Every top-level member except `vehicles` and `streaks`.
    """

    raw: bytes
    epoch: int
    root: bytes | None
    total: int
    budget: int
    batch_horizon: int
    vehicles: dict[int, dict[str, Any]]
    streaks: dict[int, StreakState]
    header: dict[str, Any]

    def amounts(self) -> dict[int, int]:
        """Vehicle id -> amount, for the vehicles with one."""
        return {v: int(e["amount"]) for v, e in self.vehicles.items() if int(e["amount"])}


def parse_document(
    raw: bytes, where: str = "document", *, check_proofs: bool = False
) -> AllocationDocument:
    """Parse an allocation document and check it against itself.

    The leaves `(epoch, vehicleId, amount)` must rebuild `root` and add up to `total`, at
    most `budget`; with `check_proofs`, every vehicle's proof must lead to the root too.

    Args:
        raw: The document's bytes.
        where: Where it came from (a CID or a path), for error messages.
        check_proofs: Also check each proof (about 1 s per 100,000 vehicles).

    Raises:
        InvalidAllocation: it is malformed, not canonical, or inconsistent.
    """
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidAllocation(where, f"not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != DOCUMENT_FORMAT:
        raise InvalidAllocation(where, f"not a {DOCUMENT_FORMAT} document")
    if _canonical(doc) != raw:
        raise InvalidAllocation(where, "not in canonical JSON form")
    try:
        epoch = int(doc["epoch"])
        total = int(doc["total"])
        budget = int(doc["budget"])
        horizon = int(doc["inputs"]["batchHorizon"])
        root = None if doc["root"] is None else bytes.fromhex(str(doc["root"])[2:])
        entries = {int(e["vehicleId"]): e for e in doc["vehicles"]}
        streaks = {int(v): StreakState(int(s[0]), int(s[1])) for v, s in doc["streaks"].items()}
        amounts = {v: int(e["amount"]) for v, e in entries.items() if int(e["amount"])}
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise InvalidAllocation(where, f"a member is missing or malformed ({exc!r})") from None
    if sum(amounts.values()) != total or total > budget:
        raise InvalidAllocation(
            where, f"amounts add up to {sum(amounts.values())}, total {total}, budget {budget}"
        )
    if amounts:
        values = [(epoch, v, amounts[v]) for v in sorted(amounts)]
        try:
            rebuilt = StandardMerkleTree.of(values, LEAF_ENCODING).root
        except MerkleError as exc:
            raise InvalidAllocation(where, f"leaves do not encode ({exc})") from None
        if rebuilt != root:
            raise InvalidAllocation(where, "the leaves do not rebuild the root")
        if check_proofs:
            for v, amount in amounts.items():
                leaf = standard_leaf_hash(LEAF_ENCODING, (epoch, v, amount))
                try:
                    reached = process_proof(leaf, entries[v]["proof"])
                except (ValueError, TypeError):
                    reached = b""
                if reached != root:
                    raise InvalidAllocation(
                        where, f"the proof of vehicle {v} does not lead to the root"
                    )
    elif root is not None:
        raise InvalidAllocation(where, "a root without amounts")
    header = {k: v for k, v in doc.items() if k not in ("vehicles", "streaks")}
    return AllocationDocument(raw, epoch, root, total, budget, horizon, entries, streaks, header)
