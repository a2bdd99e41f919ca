"""Battery health certificates certified for real: a simulated Kona's signed bundles anchored on
anvil and synced into an index served by uvicorn, a certifier with the oracle quorum's keys on
127.0.0.1 recomputing each certificate from the proofs, and `verifyCertificate` on-chain."""

# The fixtures come from the indexer tests; their names are parameters here by design.
# ruff: noqa: F811

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from apps.battery import Certificate, certificate_signers
from oracle.certifier.battery import BatteryChecker, certify_battery, create_certifier_app
from oracle.certifier.cli import app as certify_cli
from oracle.certifier.exceptions import CertificationFailed
from protocol.deployment import Deployment
from protocol.eip712 import Eip712Domain, dimo_domain
from tests.apps.sim import shift_for, sign_windows, simulated
from tests.conftest import private_key
from tests.indexer.test_api_basics import Served
from tests.indexer.test_api_telemetry import (  # fixtures shared with the telemetry tests
    World,
    world,  # noqa: F401
)
from tests.indexer.test_loader import (  # fixtures shared with the loader tests
    Anchored,
    anchor_bundles,  # noqa: F401
    deployment,  # noqa: F401
    domain,  # noqa: F401
    fleet,  # noqa: F401
    now_ms,  # noqa: F401
    store,  # noqa: F401
)

PROBLEMS = "https://dimo.local/problems/"
HOUR_MS = 3_600_000
Fleet = tuple[list[tuple[int, Any]], int]
#: One index is enough here: the index's two databases are the indexer tests' concern.
SQLITE_ONLY = pytest.mark.parametrize("world", ["sqlite"], indirect=True)


@pytest.fixture
def vehicle(
    world: World, anchor_bundles: Callable[..., Anchored], domain: Eip712Domain, fleet: Fleet
) -> tuple[int, int, int]:
    """A simulated Kona (three days, SoH 92 %) anchored, synced, the API's clock after it."""
    (car, key), _ = fleet[0]
    windows, _ = simulated(3, 92.0, 3)
    shift = shift_for(fleet[1])
    anchor_bundles(sign_windows(windows, key, car, domain, shift))
    world.sync()
    start, end = windows[0].start + shift, windows[-1].end + shift
    world.at(end + 60_000)
    return car, start, end


@pytest.fixture
def certifier(
    world: World, rpc_url: str, deployment: Deployment, oracle_signers: list[Any]
) -> Iterator[str]:
    """The certifier with the three oracle keys, checking against the world's index."""
    checker = BatteryChecker(world.base_url, rpc_url, deployment)
    app = create_certifier_app([private_key(s) for s in oracle_signers], checker)
    with Served(app) as served:
        yield served.url


def _token(client: httpx.Client) -> str:
    return str(client.headers["Authorization"]).removeprefix("Bearer ")


@SQLITE_ONLY
def test_the_indexers_statement_is_certified_by_the_quorum_and_verifies_on_chain(
    world: World,
    vehicle: tuple[int, int, int],
    certifier: str,
    owner: Any,
    oracle_signers: list[Any],
    platform: Any,
    rpc_url: str,
    deployment_record: Path,
    tmp_path: Path,
) -> None:
    car, start, end = vehicle
    with world.client(owner) as mine:
        r = mine.get(f"/apps/battery/{car}/certificate", params={"start": start, "end": end})
        token = _token(mine)
    assert r.status_code == 200, r.text
    statement = r.json()["certificate"]
    run = CliRunner().invoke(
        certify_cli,
        [
            "battery", "--vehicle", str(car), "--start", str(start), "--end", str(end),
            "--certifier", certifier, "--api-url", world.base_url, "--token", token,
            "--rpc-url", rpc_url, "--deployment", str(deployment_record),
            "--out", str(tmp_path),
        ],
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    saved = json.loads((tmp_path / f"battery-certificate-{car}-{start}-{end}.json").read_text())
    assert saved["certificate"] == statement
    cert = Certificate.from_dict(saved["certificate"])
    signatures = bytes.fromhex(saved["signatures"][2:])
    contract = platform["BatteryCertificates"]
    assert saved["verify"]["contract"] == contract.address
    # What a lender checks, with no server of ours: the contract's view, and who signed.
    assert contract.verifyCertificate(cert.as_tuple(), signatures) is True
    signers = certificate_signers(cert, signatures, dimo_domain(31337, contract.address))
    assert signers == saved["signers"] == [s.address for s in oracle_signers]
    # The simulated pack's true health (92 %) lies inside the certified interval.
    assert cert.lower_bps <= 9200 <= cert.upper_bps
    assert abs(cert.soh_bps - 9200) <= 150


@SQLITE_ONLY
def test_a_certificate_the_verified_readings_do_not_give_is_refused_by_every_certifier(
    world: World,
    vehicle: tuple[int, int, int],
    certifier: str,
    owner: Any,
    rpc_url: str,
    deployment: Deployment,
) -> None:
    car, start, end = vehicle
    with world.client(owner) as mine:
        token = _token(mine)
        statement = mine.get(
            f"/apps/battery/{car}/certificate", params={"start": start, "end": end}
        ).json()["certificate"]
        # The first hours hold no charging session: the index itself has no statement.
        short_end = start + 6 * HOUR_MS
        none = mine.get(
            f"/apps/battery/{car}/certificate", params={"start": start, "end": short_end}
        )
    assert none.status_code == 400, none.text
    better = {**statement, "sohBps": statement["sohBps"] + 300}
    better["upperBps"] = max(better["upperBps"], better["sohBps"])
    wishes = {
        "changed SoH": ({"start": start, "end": end, "certificate": better}, "sohBps"),
        "unsupported window": (
            {
                "start": start,
                "end": short_end,
                "certificate": {**statement, "windowEnd": short_end},
            },
            "give no certificate",
        ),
    }
    with httpx.Client(timeout=300) as client:
        for name, (wish, reason) in wishes.items():
            request = {"vehicleId": car, "token": token, **wish}
            r = client.post(f"{certifier}/v1/certify/battery", json=request)
            assert r.status_code == 422, (name, r.text)
            problem = r.json()
            assert problem["type"] == PROBLEMS + "statement-refused"
            assert reason in problem["refusal"], name
            assert "signatures" not in problem
            with pytest.raises(CertificationFailed) as failed:
                certify_battery([certifier], request, rpc_url, deployment, client=client)
            assert failed.value.error == "OracleRegistryQuorumNotReached"
            assert "0 of the 2 oracle signatures" in failed.value.reason
