"""The indexer serves the dApp: the page at `/`, its assets, and `/dapp/config.json` with the
deployment's addresses and ABIs and the signals' labels (the table the API docs list); without
a build or a record it says so, and the API's own routes and problems are unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from indexer.api import main
from indexer.api.main import create_app, mount_dapp
from indexer.config import IndexerSettings
from protocol.deployment import CONTRACTS, ContractRecord, Deployment
from protocol.signal_labels import LABELS, markdown_table

ABI = [{"type": "function", "name": "ping", "inputs": [], "outputs": [], "stateMutability": "view"}]


@pytest.fixture(autouse=True)
def no_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Apps made here find no dApp build unless a test mounts one."""
    monkeypatch.setattr(main, "DAPP_DIST", tmp_path / "no-build")


def record(chain_id: int) -> Deployment:
    contracts = {
        name: ContractRecord(address="0x" + f"{i + 1:040x}", block=1, tx_hash="0x00", abi=ABI)
        for i, name in enumerate(CONTRACTS)
    }
    return Deployment(
        chain_id=chain_id,
        network="ethereum:local:foundry",
        deployer="0x" + "0" * 40,
        start_block=1,
        contracts=contracts,
    )


def client(tmp_path: Path, chain_id: int | None = 31337) -> TestClient:
    path = tmp_path / "deployments" / "record.json"
    if chain_id is not None:
        record(chain_id).save(path)
    settings = IndexerSettings(
        deployment=path, rpc_url="http://127.0.0.1:9545", rate_limit_per_minute=0
    )
    return TestClient(create_app(settings, create_engine("sqlite://")))


def test_the_config_gives_the_local_rpc_url_the_dev_wallet_and_every_abi(tmp_path: Path) -> None:
    body = client(tmp_path).get("/dapp/config.json").json()
    assert body["chain_id"] == 31337
    assert body["rpc_url"] == "http://127.0.0.1:9545"
    assert body["dev_wallet"] is True
    assert set(body["contracts"]) == set(CONTRACTS)
    assert body["contracts"]["DataMarket"]["abi"] == ABI


def test_on_a_live_chain_the_config_hides_the_rpc_url_and_the_dev_wallet(tmp_path: Path) -> None:
    body = client(tmp_path, chain_id=137).get("/dapp/config.json").json()
    assert body["rpc_url"] is None, "a live RPC URL may carry a key"
    assert body["dev_wallet"] is False


def test_without_a_deployment_record_the_config_is_a_not_found_problem(tmp_path: Path) -> None:
    reply = client(tmp_path, chain_id=None).get("/dapp/config.json")
    assert reply.status_code == 404
    assert reply.headers["content-type"].startswith("application/problem+json")
    assert reply.json()["type"].endswith("/deployment-not-found")


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><title>dApp</title>")
    (dist / "assets" / "index.js").write_text("console.log('dApp')")
    return dist


def test_the_page_and_its_assets_are_served_and_the_api_keeps_its_problems(
    tmp_path: Path, dist: Path
) -> None:
    test_client = client(tmp_path)
    app = test_client.app
    assert mount_dapp(app, dist)  # type: ignore[arg-type]
    assert "<title>dApp</title>" in test_client.get("/").text
    assert test_client.get("/assets/index.js").text == "console.log('dApp')"
    missing = test_client.get("/no-such-page")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert test_client.post("/auth/nonce").status_code == 405
    assert "/" not in test_client.get("/openapi.json").json()["paths"]


def test_without_a_build_nothing_is_mounted(tmp_path: Path) -> None:
    test_client = client(tmp_path)
    assert not mount_dapp(test_client.app, tmp_path / "nothing")  # type: ignore[arg-type]
    assert test_client.get("/").status_code == 404


def test_the_assets_and_the_config_come_back_gzip_encoded_when_asked(
    tmp_path: Path, dist: Path
) -> None:
    bundle = "export const views = [" + ",".join(f'"view {i}"' for i in range(2_000)) + "];\n"
    (dist / "assets" / "index.js").write_text(bundle)
    test_client = client(tmp_path)
    mount_dapp(test_client.app, dist)  # type: ignore[arg-type]
    for path in ("/assets/index.js", "/dapp/config.json"):
        with test_client.stream("GET", path, headers={"Accept-Encoding": "gzip"}) as packed:
            packed.read()
            assert packed.status_code == 200, path
            assert packed.headers["content-encoding"] == "gzip", path
            assert packed.num_bytes_downloaded < len(packed.content) / 2, path
        plain = test_client.get(path, headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers, path
        assert plain.content == packed.content, path  # httpx decodes the gzip body
    assert test_client.get("/assets/index.js").text == bundle
    assert set(test_client.get("/dapp/config.json").json()["contracts"]) == set(CONTRACTS)


def test_the_dapp_and_the_api_docs_show_signals_from_the_one_label_table(tmp_path: Path) -> None:
    test_client = client(tmp_path)
    signals = test_client.get("/dapp/config.json").json()["signals"]
    assert set(signals) == set(LABELS)
    for path, row in LABELS.items():
        served = signals[path]
        assert served["label"] == row.label, path
        assert served["shown_unit"] == row.unit, path
        assert served["shown_factor"] == row.factor, path
        assert served["value_names"] == dict(row.values), path
    assert signals["Vehicle.Powertrain.Range"]["shown_unit"] == "km"
    assert signals["Vehicle.Powertrain.Transmission.SelectedGear"]["value_names"]["127"] == (
        "D (drive)"
    )
    doc = test_client.get("/openapi.json").json()
    (telemetry,) = [t for t in doc["tags"] if t["name"] == "telemetry"]
    assert markdown_table() in telemetry["description"]
    for row in LABELS.values():
        assert f"| `{row.path}` | {row.label} | {row.unit or '-'} |" in telemetry["description"]
