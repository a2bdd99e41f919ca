"""The model catalog against the bridge's mappings, and the allocation document's checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from protocol.rewards import Activity, EpochAllocation, StreakState, allocate
from protocol.rewards_document import (
    DocumentInputs,
    ModelSignals,
    StreakSource,
    build_document,
    csv_rows,
    parse_document,
)
from rewards.activity import BatchUse
from rewards.catalog import DEFAULT_CATALOG, ModelCatalog
from rewards.exceptions import InvalidAllocation, RewardsConfigError

MAPPINGS = Path(__file__).resolve().parents[2] / "device_bridge" / "mappings"
DIMO = 10**18


def _mapping_signals(name: str) -> set[str]:
    doc = yaml.safe_load((MAPPINGS / f"{name}.yaml").read_text())
    return {s["vss"] for bus in doc["buses"].values() for s in bus["signals"]}


def test_each_catalog_entry_lists_the_signals_of_its_bridge_mapping() -> None:
    doc = yaml.safe_load(DEFAULT_CATALOG.read_text())
    catalog = ModelCatalog.load()
    assert len(catalog.models) == len(doc["models"])
    for entry in doc["models"]:
        listed = catalog.reportable(entry["make"].upper(), entry["model"].lower())
        assert listed == _mapping_signals(entry["mapping"]), entry["model"]


HEAD = "format: dimo-model-catalog-v1\nmodels:\n"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("format: other\nmodels: []\n", "not a dimo-model-catalog-v1"),
        ("format: dimo-model-catalog-v1\nmodels: {}\n", "must be a list"),
        (
            HEAD + "  - {make: A, model: B, signals: [Vehicle.Nope]}\n",
            "unknown signal",
        ),
        (
            HEAD + "  - {make: A, model: B, signals: [Vehicle.Speed]}\n"
            "  - {make: a, model: b, signals: [Vehicle.Speed]}\n",
            "listed twice",
        ),
        (
            "format: dimo-model-catalog-v1\nmodels:\n  - {make: A, signals: [Vehicle.Speed]}\n",
            "make and model",
        ),
    ],
)
def test_a_malformed_catalog_is_refused(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(text)
    with pytest.raises(RewardsConfigError, match=reason):
        ModelCatalog.load(path)


def test_a_missing_catalog_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RewardsConfigError, match="cannot read"):
        ModelCatalog.load(tmp_path / "nope.yaml")


R = frozenset({"Vehicle.Speed", "Vehicle.TraveledDistance", "Vehicle.Powertrain.Range"})


def _allocation() -> EpochAllocation:
    activity = {
        3: Activity(0b111, frozenset({"Vehicle.Speed"}), R),
        5: Activity((1 << 168) - 1, R, R),
    }
    return allocate(2, 1000 * DIMO, activity, {5: StreakState(3, 0), 9: StreakState(25, 2)})


MODELS = {3: "Hyundai|Kona Electric", 5: "Hyundai|Kona Electric", 9: "X|Y"}


def _document() -> bytes:
    inputs = DocumentInputs(
        chain_id=31337,
        rewards="0x" + "ab" * 20,
        epoch_start=100,
        epoch_end=100 + 604_800,
        batch_horizon=12,
        batches=[BatchUse(11, "bafk", 40), BatchUse(12, "bafq", 0, "bad")],
        ignored={"unpaired": 2},
        catalog_sha256="00" * 32,
        models={"Hyundai|Kona Electric": ModelSignals("catalog", R)},
        vehicle_models=MODELS,
        hours={3: 0b111, 5: (1 << 168) - 1},
        signals={3: frozenset({"Vehicle.Speed"}), 5: R},
        streaks_from=StreakSource(1, "bafprev", b"\x02" * 32),
    )
    return build_document(_allocation(), inputs)


def test_a_document_carries_each_vehicles_amount_proof_and_inputs() -> None:
    doc = parse_document(_document(), check_proofs=True)
    # 3: floor(6000 * 3 * 1 / (168 * 3)) = 35; 5: 6000 + 1000 (4 weeks) = 7000; 9: misses a
    # third week and drops from level 3 to the start of level 2.
    assert {v: e["points"] for v, e in doc.vehicles.items()} == {3: 35, 5: 7000, 9: 0}
    assert doc.amounts() == {3: 1000 * DIMO * 35 // 7035, 5: 1000 * DIMO * 7000 // 7035}
    three = doc.vehicles[3]["inputs"]
    assert three["missing"] == ["Vehicle.Powertrain.Range", "Vehicle.TraveledDistance"]
    assert (three["hours"], three["hoursConnected"], three["covered"]) == ("0x7", 3, 1)
    assert doc.vehicles[9]["proof"] == []
    assert doc.streaks == {3: StreakState(1, 0), 5: StreakState(4, 0), 9: StreakState(4, 3)}
    assert doc.header["inputs"]["streaksFrom"] == {
        "epoch": 1,
        "cid": "bafprev",
        "root": "0x" + "02" * 32,
    }
    rows = csv_rows(_allocation(), MODELS).splitlines()
    assert rows[1].split(",")[:4] == ["3", "Hyundai|Kona Electric", str(doc.amounts()[3]), "35"]


def test_a_tampered_amount_does_not_rebuild_the_root() -> None:
    doc = json.loads(_document())
    doc["vehicles"][0]["amount"] = str(int(doc["vehicles"][0]["amount"]) - 1)
    doc["total"] = str(int(doc["total"]) - 1)
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    with pytest.raises(InvalidAllocation, match="do not rebuild the root"):
        parse_document(raw)


def test_a_wrong_proof_is_found_when_proofs_are_checked() -> None:
    doc = json.loads(_document())
    doc["vehicles"][0]["proof"] = ["0x" + "11" * 32]
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    parse_document(raw)
    with pytest.raises(InvalidAllocation, match="proof of vehicle 3"):
        parse_document(raw, check_proofs=True)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "not JSON"),
        (b'{"format":"other"}', "not a dimo-rewards-v1"),
        (b'{"format": "dimo-rewards-v1"}', "canonical"),
        (b'{"format":"dimo-rewards-v1"}', "missing or malformed"),
    ],
)
def test_a_malformed_document_is_refused(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidAllocation, match=reason):
        parse_document(raw)


def test_amounts_above_the_budget_are_refused() -> None:
    doc = json.loads(_document())
    doc["budget"] = "1"
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    with pytest.raises(InvalidAllocation, match="budget 1"):
        parse_document(raw)
