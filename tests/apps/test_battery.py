"""Battery intelligence against the simulator's ground truth: SoH from charging sessions, the
served answer and its audit from proofs alone, rights, the chart, and the certificate checked
on-chain by BatteryCertificates."""

# The fixtures come from the indexer tests; their names are parameters here by design.
# ruff: noqa: F811

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ape
import pytest
from typer.testing import CliRunner

from apps import battery
from apps.audit import AppInputs, audit_served
from apps.battery import (
    CURRENT,
    VOLTAGE,
    BatteryParams,
    Certificate,
    VehicleFacts,
    battery_report,
    certificate_signers,
    sign_certificate,
)
from indexer.apps.charts import PNG_MAGIC
from indexer.apps.cli import app as apps_cli
from indexer.exceptions import AppParameterInvalid, AuditMismatch, CertificateInvalid
from indexer.queries import SOC, Reading
from protocol.eip712 import Eip712Domain, dimo_domain
from tests.apps.sim import direct_inputs, shift_for, sign_windows, simulated
from tests.conftest import FAR_FUTURE, TERMS_CID, private_key
from tests.indexer.test_api_telemetry import (  # fixtures shared with the telemetry tests
    World,
    assert_problem,
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

KONA = VehicleFacts("Hyundai", "Kona Electric", 2019)
TRUE_SOH = 92.0
DAYS = 10
BATTERY_BIT, CHARGING_BIT, DRIVING_BIT = 1 << 0, 1 << 1, 1 << 3
Fleet = tuple[list[tuple[int, Any]], int]


# -------------------------------------------------------------------------------------------
# the pure function against the simulator's truth
# -------------------------------------------------------------------------------------------


def test_a_vehicle_simulated_at_soh_92_is_estimated_within_one_and_a_half_points() -> None:
    windows, truth = simulated(DAYS, TRUE_SOH, 3)
    report = battery_report(
        direct_inputs(windows), BatteryParams(64.0), KONA, windows[0].start, windows[-1].end
    )
    soh = report["soh"]
    assert truth.soh_percent == TRUE_SOH
    assert abs(soh["percent"] - TRUE_SOH) <= 1.5
    lo, hi = soh["ci95"]
    assert lo <= TRUE_SOH <= hi
    assert hi - lo < 3.0
    assert soh["sessions_used"] >= 3
    used = [s for s in report["sessions"] if s["used"]]
    # Each used session is one true session, measured between SoC edges inside it.
    for s in used:
        (true,) = [
            t
            for t in truth.charging_sessions
            if t.start <= s["end"] / 1000 and s["start"] / 1000 <= t.end
        ]
        assert 0.5 * true.energy_battery_kwh < s["energy_kwh"] <= true.energy_battery_kwh
        assert true.soc_start - 0.5 <= s["soc_start"] < s["soc_end"] <= true.soc_end + 0.5
    assert report["charging"]["sessions"] == len(truth.charging_sessions)
    assert report["charging"]["dc_sessions"] == sum(
        1 for t in truth.charging_sessions if t.kind == "DC"
    )


def test_another_pack_health_moves_the_estimate_with_it() -> None:
    windows, _ = simulated(4, 85.0, 11)
    report = battery_report(
        direct_inputs(windows), BatteryParams(64.0), KONA, windows[0].start, windows[-1].end
    )
    assert report["soh"] is not None
    assert abs(report["soh"]["percent"] - 85.0) <= 1.5


def _charge(t0: int, minutes: int, soc0: float, kw: float, cap_kwh: float) -> AppInputs:
    """A synthetic constant-power charge: readings every 10 s at 400 V."""
    cur, volt, soc = [], [], []
    for i in range(minutes * 6):
        t = t0 + i * 10_000
        level = soc0 + kw * i * 10 / 3600 / cap_kwh * 100
        cur.append(Reading(t, kw * 1000 / 400, 1, i))
        volt.append(Reading(t, 400.0, 1, i))
        soc.append(Reading(t + 5_000, float(int(level * 2) / 2), 1, i))
    return AppInputs({CURRENT: cur, SOC: soc, VOLTAGE: volt})


def test_a_session_gaining_too_little_charge_is_listed_but_left_out() -> None:
    t0 = 1_700_000_000_000
    report = battery_report(
        _charge(t0, 30, 50.0, 7.0, 58.88), BatteryParams(64.0), KONA, t0, t0 + 3_600_000
    )
    (session,) = report["sessions"]
    assert session["reason"] == "soc-delta-too-small"
    assert not session["used"]
    assert report["soh"] is None
    longer = battery_report(
        _charge(t0, 240, 20.0, 7.0, 58.88), BatteryParams(64.0), KONA, t0, t0 + 5 * 3_600_000
    )
    assert longer["sessions"][0]["used"]
    assert abs(longer["soh"]["percent"] - 92.0) < 0.5


def test_parameters_out_of_range_are_typed_errors() -> None:
    with pytest.raises(AppParameterInvalid) as err:
        BatteryParams(64.0, min_soc_delta=0)
    assert err.value.parameter == "min_soc_delta"
    with pytest.raises(AppParameterInvalid):
        BatteryParams(float("nan"))
    with pytest.raises(AppParameterInvalid):
        BatteryParams.from_dict({"nominal_kwh": 64, "no_such": 1})


def test_the_fleet_view_ranks_each_vehicle_within_its_make_model_and_year() -> None:
    entries = [
        {"vehicle_id": i, "make": "Hyundai", "model": "Kona Electric", "year": 2019,
         "soh": soh, "age_years": 5.0, "odometer_km": 50_000.0 + i}
        for i, soh in enumerate([88.0, 90.0, 92.0, 94.0])
    ] + [
        {"vehicle_id": 9, "make": "Tesla", "model": "Model 3", "year": 2021,
         "soh": 95.0, "age_years": 3.0, "odometer_km": None},
    ]  # fmt: skip
    view = battery.fleet_view(entries)
    kona = next(g for g in view["groups"] if g["model"] == "Kona Electric")
    assert kona["count"] == 4
    assert kona["soh_median"] == 91.0
    assert kona["loss_pct_per_year"] == pytest.approx((100 - 91.0) / 5.0)
    ranks = {v["vehicle_id"]: v["percentile"] for v in view["vehicles"]}
    assert ranks == {0: 12.5, 1: 37.5, 2: 62.5, 3: 87.5, 9: 50.0}


# -------------------------------------------------------------------------------------------
# the certificate, checked on-chain
# -------------------------------------------------------------------------------------------


def _certificate(**changes: Any) -> Certificate:
    fields = {
        "vehicle_id": 7,
        "soh_bps": 9200,
        "lower_bps": 9140,
        "upper_bps": 9260,
        "method_version": battery.METHOD_VERSION,
        "window_start": 1_700_000_000_000,
        "window_end": 1_700_864_000_000,
        "inputs_root": battery.inputs_root([(1, 0), (1, 1), (2, 5)]),
    }
    return Certificate(**(fields | changes))


def test_a_certificate_signed_by_the_oracle_quorum_verifies_on_chain(
    platform: Any, oracle_signers: list[Any]
) -> None:
    contract = platform["BatteryCertificates"]
    domain = dimo_domain(31337, contract.address)
    cert = _certificate()
    keys = [private_key(s) for s in oracle_signers[:2]]
    sigs = sign_certificate(cert, keys, domain)
    assert contract.certificateDigest(cert.as_tuple()) == cert.digest(domain)
    assert contract.verifyCertificate(cert.as_tuple(), sigs)
    assert sorted(certificate_signers(cert, sigs, domain)) == sorted(
        s.address for s in oracle_signers[:2]
    )
    assert contract.oracleRegistry() == platform["AttestationAnchor"].address


def test_a_certificate_with_one_signature_or_altered_fields_reverts(
    platform: Any, oracle_signers: list[Any], accounts: Any
) -> None:
    contract = platform["BatteryCertificates"]
    anchor = platform["AttestationAnchor"]
    domain = dimo_domain(31337, contract.address)
    cert = _certificate()
    one = sign_certificate(cert, [private_key(oracle_signers[0])], domain)
    with ape.reverts(anchor.OracleRegistryQuorumNotReached):
        contract.verifyCertificate(cert.as_tuple(), one)
    sigs = sign_certificate(cert, [private_key(s) for s in oracle_signers[:2]], domain)
    better = _certificate(soh_bps=9500, upper_bps=9600)  # a seller's wish, same signatures
    with ape.reverts(anchor.OracleRegistryUnknownSigner):
        contract.verifyCertificate(better.as_tuple(), sigs)
    forged = sign_certificate(cert, [private_key(accounts[0]), private_key(accounts[1])], domain)
    with ape.reverts(anchor.OracleRegistryUnknownSigner):
        contract.verifyCertificate(cert.as_tuple(), forged)


def test_a_certificate_whose_fields_do_not_hold_together_reverts_with_its_error(
    platform: Any, oracle_signers: list[Any]
) -> None:
    contract = platform["BatteryCertificates"]
    raw = _certificate().as_tuple()
    sigs = b"\x00" * 130
    bad_interval = (raw[0], 9200, 9300, 9260, *raw[4:])
    with ape.reverts(contract.BatteryCertificatesInvalidInterval):
        contract.verifyCertificate(bad_interval, sigs)
    with ape.reverts(contract.BatteryCertificatesInvalidInterval):
        contract.verifyCertificate((raw[0], 9200, 9100, 10_001, *raw[4:]), sigs)
    with ape.reverts(contract.BatteryCertificatesInvalidWindow):
        contract.verifyCertificate((*raw[:5], raw[6], raw[6], raw[7]), sigs)
    with ape.reverts(contract.BatteryCertificatesMissingInputs):
        contract.verifyCertificate((*raw[:7], b"\x00" * 32), sigs)
    with pytest.raises(CertificateInvalid):
        _certificate(lower_bps=9300)


# -------------------------------------------------------------------------------------------
# served over the API, audited from proofs alone
# -------------------------------------------------------------------------------------------


def _load_sim(
    world: World,
    anchor_bundles: Callable[..., Anchored],
    domain: Eip712Domain,
    fleet: Fleet,
    days: int,
    soh: float,
    seed: int,
) -> tuple[int, Any, int, int]:
    """Anchors a simulated Kona's bundles for the fleet's first car; syncs; sets the clock."""
    (car, key), _ = fleet[0]
    windows, _ = simulated(days, soh, seed)
    shift = shift_for(fleet[1])
    anchor_bundles(sign_windows(windows, key, car, domain, shift))
    world.sync()
    start, end = windows[0].start + shift, windows[-1].end + shift
    world.at(end + 60_000)
    return car, key, start, end


def _token(client: Any) -> str:
    return str(client.headers["Authorization"]).removeprefix("Bearer ")


def test_the_served_soh_matches_the_truth_and_the_audit_recomputes_it_from_proofs(
    world: World,
    fleet: Fleet,
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    owner: Any,
    rpc_url: str,
    platform: Any,
    tmp_path: Path,
) -> None:
    car, _, start, end = _load_sim(world, anchor_bundles, domain, fleet, DAYS, TRUE_SOH, 3)
    anchor = platform["AttestationAnchor"].address
    with world.client(owner) as mine:
        r = mine.get(f"/apps/battery/{car}", params={"start": start, "end": end})
        assert r.status_code == 200, r.text
        answer = r.json()
        chart = mine.get(f"/apps/battery/{car}/chart.png", params={"start": start, "end": end})
        outcome = audit_served(
            answer, battery.compute, world.base_url, _token(mine), rpc_url, anchor, client=mine
        )
        lie = json.loads(json.dumps(answer))
        lie["result"]["soh"]["percent"] += 1.0
        with pytest.raises(AuditMismatch):
            audit_served(
                lie, battery.compute, world.base_url, _token(mine), rpc_url, anchor, client=mine
            )
        token = _token(mine)
        fleet_view = mine.get(
            "/apps/battery/fleet", params={"start": start, "end": end, "model": "Kona Electric"}
        )
    soh = answer["result"]["soh"]
    assert fleet_view.status_code == 200, fleet_view.text
    mine_in_fleet = [v for v in fleet_view.json()["vehicles"] if v["vehicle_id"] == car]
    assert mine_in_fleet[0]["soh"] == pytest.approx(soh["percent"])
    assert 0 <= mine_in_fleet[0]["percentile"] <= 100
    assert abs(soh["percent"] - TRUE_SOH) <= 1.5
    assert answer["withheld"] == []
    assert outcome.result == answer["result"]
    assert outcome.bundles == len(answer["inputs"]) > 1000
    assert chart.status_code == 200
    assert chart.headers["content-type"] == "image/png"
    assert chart.content.startswith(PNG_MAGIC)
    # The CLI does the same from the command line, and writes the answer and the chart.
    run = CliRunner().invoke(
        apps_cli,
        [
            "battery", "--vehicle", str(car), "--start", str(start), "--end", str(end),
            "--api-url", world.base_url, "--token", token, "--audit", "--rpc-url", rpc_url,
            "--anchor", anchor, "--out", str(tmp_path),
        ],
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    assert "audit passed" in run.output
    assert (tmp_path / f"battery-{car}-soh.png").read_bytes().startswith(PNG_MAGIC)
    saved = json.loads((tmp_path / f"battery-{car}.json").read_text())
    assert saved["result"]["soh"]["percent"] == soh["percent"]


def test_without_battery_scope_there_is_no_battery_answer(
    world: World,
    fleet: Fleet,
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    owner: Any,
    stranger: Any,
    other_owner: Any,
    vehicle_rights: Any,
) -> None:
    (car, _), _ = fleet[0]
    vehicle_rights.grant(car, stranger, DRIVING_BIT | CHARGING_BIT, FAR_FUTURE, TERMS_CID,
                         sender=owner)  # fmt: skip
    car, _, start, end = _load_sim(world, anchor_bundles, domain, fleet, 2, TRUE_SOH, 5)
    span = {"start": start, "end": end}
    with world.client(owner) as mine, world.client(other_owner) as nobody:
        ref = mine.get(f"/apps/battery/{car}", params=span).json()["inputs"][0]
        body = {"vehicle_id": car, "inputs": [ref]}
        own_proofs = mine.post("/apps/proofs", json=body)
        proofs = nobody.post("/apps/proofs", json=body)
    with world.client(stranger) as grantee:
        problem = assert_problem(grantee.get(f"/apps/battery/{car}", params=span), 403,
                                 "privilege-missing")  # fmt: skip
        chart = grantee.get(f"/apps/battery/{car}/chart.png", params=span)
        vehicle_rights.grant(car, stranger, BATTERY_BIT, FAR_FUTURE, TERMS_CID, sender=owner)
        world.sync()
        granted = grantee.get(f"/apps/battery/{car}", params=span)
    assert problem["missing_scopes"] == ["BATTERY"]
    assert_problem(chart, 403, "privilege-missing")
    assert own_proofs.status_code == 200, own_proofs.text
    assert own_proofs.json()["bundles"][0]["leaf_index"] == ref[1]
    assert_problem(proofs, 403, "privilege-missing")
    assert granted.status_code == 200, granted.text
    body = granted.json()
    assert body["result"]["charging"] is None
    assert {w["missing_scope"] for w in body["withheld"]} == {"CHARGING", "ODOMETER"}
