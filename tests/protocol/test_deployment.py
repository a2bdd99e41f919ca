"""The deployment record: saved atomically, loaded with typed errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from protocol.deployment import (
    CONTRACTS,
    ContractRecord,
    Deployment,
    DeploymentInvalid,
    DeploymentNotFound,
)


def record() -> Deployment:
    contracts = {
        name: ContractRecord(address="0x" + f"{i:040x}", block=i, tx_hash="0x01", abi=[])
        for i, name in enumerate(CONTRACTS, start=1)
    }
    return Deployment(
        chain_id=31337,
        network="ethereum:local:foundry",
        deployer="0x" + "0" * 40,
        start_block=1,
        contracts=contracts,
    )


def test_saved_record_loads_equal(tmp_path: Path) -> None:
    path = tmp_path / "deployments" / "31337.json"
    record().save(path)
    assert Deployment.load(path) == record()
    assert not list(path.parent.glob("*.tmp"))


def test_missing_record_raises_not_found(tmp_path: Path) -> None:
    with pytest.raises(DeploymentNotFound, match="ape run deploy"):
        Deployment.load(tmp_path / "nope.json")


def test_garbage_raises_invalid(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text("{not json")
    with pytest.raises(DeploymentInvalid, match="not JSON"):
        Deployment.load(path)


def test_missing_contract_raises_invalid(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    data = json.loads(record().model_dump_json())
    del data["contracts"]["DeviceId"]
    path.write_text(json.dumps(data))
    with pytest.raises(DeploymentInvalid, match="DeviceId"):
        Deployment.load(path)


def test_bad_address_raises_invalid(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    data = json.loads(record().model_dump_json())
    data["contracts"]["DimoToken"]["address"] = "0x123"
    path.write_text(json.dumps(data))
    with pytest.raises(DeploymentInvalid):
        Deployment.load(path)
