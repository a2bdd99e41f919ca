"""Schema-2 proofs open one signal (issue 17): served openings verify on-chain, with
OpenZeppelin's JS merkle-tree library and offline; a tampered opening fails all three.

A DRIVING grantee of a vehicle whose schema-2 bundles mix speed and position gets proofs of its
speed readings that disclose speed alone (position as names and commitments only), the inputs
of its applications the same way, and an insurance export that verifies offline.
"""

# The fixtures come from the loader and insurance tests; their names are parameters here.
# ruff: noqa: F811

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from apps import battery
from apps.audit import ChainRoots, Opened, audit_served, verify_bundle_proof
from indexer.apps import insurance
from indexer.apps.insurance import verify_export
from indexer.disclosure import BundleFacts
from indexer.exceptions import ExportInvalid, InputProofInvalid
from indexer.queries import bundle_proofs
from indexer.rights import signal_privilege
from protocol.bundle import SCHEMA_SIGNALS
from protocol.deployment import Deployment
from protocol.disclosure import SignalOpening, TamperedOpeningError
from protocol.eip712 import Eip712Domain
from protocol.privileges import Privilege
from tests.apps.sim import shift_for, sign_windows, simulated
from tests.apps.test_insurance import (
    ServedWorld,
    drive_with_a_harsh_brake,
    served_world,
    token_of,
)
from tests.apps.traces import IGNITION
from tests.conftest import FAR_FUTURE, TERMS_CID
from tests.indexer.leaks import LAT, LON, latitude, longitude, position_found, values_found
from tests.indexer.test_api_telemetry import (
    advance,
    assert_problem,
    head_s,
    leaf_tuple,
    proof_list,
)
from tests.indexer.test_loader import (  # fixtures shared with the loader tests
    SPEED,
    Anchored,
    anchor_bundles,  # noqa: F401
    deployment,  # noqa: F401
    domain,  # noqa: F401
    fleet,  # noqa: F401
    now_ms,  # noqa: F401
    store,  # noqa: F401
    windowed_bundles,
)

__all__ = ["served_world"]

Fleet = tuple[list[tuple[int, Any]], int]
Samples = dict[str, list[tuple[int, Any]]]
DRIVING = int(Privilege.DRIVING)
ROOT = Path(__file__).resolve().parents[2]

#: Checks a batch leaf and a signal opening with @openzeppelin/merkle-tree alone: the
#: commitment is keccak256(salt || samples) (ethereum-cryptography, a dependency of the
#: library), the signal leaf (name, commitment) must lead to the leaf's dataHash, the batch
#: leaf to the batch root.
OZ_CHECK = """
const { StandardMerkleTree } = require('@openzeppelin/merkle-tree');
const { keccak256 } = require('ethereum-cryptography/keccak');
const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const hex = (s) => Buffer.from(s.slice(2), 'hex');
const out = input.cases.map(({ leaf, proof, opening }) => {
  const batch = StandardMerkleTree.verify(
    input.root,
    ['address', 'uint256', 'uint64', 'uint64', 'uint64', 'bytes32', 'bytes32'],
    leaf,
    proof,
  );
  const commitment = '0x' + Buffer.from(
    keccak256(Buffer.concat([hex(opening.salt), hex(opening.samples)]))).toString('hex');
  const signal = StandardMerkleTree.verify(
    leaf[5], ['string', 'bytes32'], [opening.name, commitment], opening.proof);
  return { batch, signal };
});
process.stdout.write(JSON.stringify(out));
"""


def oz_check(root: str, cases: list[dict[str, Any]]) -> list[dict[str, bool]]:
    """Runs `OZ_CHECK` under node from the repository (its node_modules)."""
    done = subprocess.run(
        ["node", "-e", OZ_CHECK],
        input=json.dumps({"root": root, "cases": cases}),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    result: list[dict[str, bool]] = json.loads(done.stdout)
    return result


def speed_and_position(t0: int) -> Samples:
    """Two minutes of speed (1 Hz) and position (0.2 Hz) in 60 s bundles."""
    return {
        SPEED: [(t0 + 1_000 * i, 61.37 + (i % 9) * 1.13) for i in range(120)],
        LAT: [(t0 + 5_000 * i, latitude(i)) for i in range(24)],
        LON: [(t0 + 5_000 * i, longitude(i)) for i in range(24)],
    }


def tampered(opening: dict[str, Any]) -> dict[str, Any]:
    """The opening with one byte of its last sample's value changed."""
    bad = copy.deepcopy(opening)
    raw = bytearray(bytes.fromhex(bad["samples"][2:]))
    raw[-1] ^= 0x01
    bad["samples"] = "0x" + raw.hex()
    return bad


def opening_tuple(opening: dict[str, Any]) -> tuple[Any, ...]:
    return (
        opening["name"],
        bytes.fromhex(opening["salt"][2:]),
        bytes.fromhex(opening["samples"][2:]),
        [bytes.fromhex(p[2:]) for p in opening["proof"]],
    )


def setup(
    world: ServedWorld,
    fleet: Fleet,
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    samples: Samples,
    grant: tuple[Any, Any, Any],
) -> tuple[int, Anchored]:
    """Anchors the samples as schema-2 bundles of the first car, grants DRIVING, syncs."""
    (car, key), _ = fleet[0]
    anchored = anchor_bundles(windowed_bundles(key, car, samples, domain, schema=SCHEMA_SIGNALS))
    vehicle_rights, owner, grantee = grant
    vehicle_rights.grant(car, grantee, DRIVING, FAR_FUTURE, TERMS_CID, sender=owner)
    advance(900)
    world.sync()
    world.at(head_s() * 1000)
    return car, anchored


def test_a_speed_proof_opens_speed_alone_and_verifies_on_chain_and_with_oz_js_unless_tampered(
    served_world: ServedWorld,
    fleet: Fleet,
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    owner: Any,
    stranger: Any,
    vehicle_rights: Any,
    platform: Any,
) -> None:
    t0 = fleet[1]
    samples = speed_and_position(t0)
    car, anchored = setup(
        served_world, fleet, domain, anchor_bundles, samples, (vehicle_rights, owner, stranger)
    )
    ts, value = samples[SPEED][70]
    lats = [v for _, v in samples[LAT]]
    lons = [v for _, v in samples[LON]]
    with served_world.client(stranger) as driving, served_world.client(owner) as mine:
        served = driving.get(f"/vehicles/{car}/signals/{SPEED}/readings/{ts}/proof")
        position = driving.get(f"/vehicles/{car}/signals/{LAT}/readings/{t0 + 5_000}/proof")
        own = mine.get(f"/vehicles/{car}/signals/{SPEED}/readings/{ts}/proof")
        assert served.status_code == 200, served.text
        body = served.json()
        opening = body["opening"]
        check = {k: body[k] for k in ("leaf", "proof", "opening")}
        checked = driving.post(
            "/apps/proofs/check", json={"batch_id": body["batch"]["id"], **check}
        )
        refused = driving.post(
            "/apps/proofs/check",
            json={"batch_id": body["batch"]["id"], **check, "opening": tampered(opening)},
        )
        unknown = driving.post("/apps/proofs/check", json={"batch_id": 10**9, **check})
    assert (body["schema_version"], body["bundle_wire"], opening["name"]) == (2, None, SPEED)
    assert [c["name"] for c in body["commitments"]] == sorted([SPEED, LAT, LON])
    assert values_found(opening["samples"], [value])
    assert position_found(served.text, lats, lons) == []
    # A proof of a signal the grantee may not read: a typed 403, no value.
    assert_problem(position, 403, "privilege-missing")
    assert position_found(position.text, lats, lons) == []
    # The owner still gets the whole bundle, and the same opening.
    assert own.status_code == 200, own.text
    assert own.json()["bundle_wire"] is not None
    assert own.json()["opening"] == opening
    # On-chain.
    anchor = platform["AttestationAnchor"]
    batch_id, leaf, proof = body["batch"]["id"], leaf_tuple(body), proof_list(body)
    assert anchor.verifySignal(batch_id, leaf, proof, opening_tuple(opening)) is True
    bad = tampered(opening)
    assert anchor.verifySignal(batch_id, leaf, proof, opening_tuple(bad)) is False
    # OpenZeppelin's JS library.
    js_leaf = [
        body["leaf"]["device"],
        str(body["leaf"]["vehicle_id"]),
        str(body["leaf"]["sequence"]),
        str(body["leaf"]["window_start"]),
        str(body["leaf"]["window_end"]),
        body["leaf"]["data_hash"],
        body["leaf"]["signature_hash"],
    ]
    root = "0x" + anchored.tree.root.hex()
    cases = [{"leaf": js_leaf, "proof": body["proof"], "opening": o} for o in (opening, bad)]
    assert oz_check(root, cases) == [
        {"batch": True, "signal": True},
        {"batch": True, "signal": False},
    ]
    # The API's check: the samples of a sound opening; a typed 422 for a tampered one.
    assert checked.status_code == 200, checked.text
    assert checked.json()["samples"] == [list(r) for r in samples[SPEED][60:120]]
    assert assert_problem(refused, 422, "opening-invalid")["signal"] == SPEED
    assert_problem(unknown, 404, "batch-not-found")
    # Offline, with protocol.disclosure.
    data_hash = leaf[5]
    assert SignalOpening.from_json(opening).verify(data_hash)[70 % 60] == (ts, value)
    with pytest.raises(TamperedOpeningError):
        SignalOpening.from_json(bad).verify(data_hash)
    # The sync stored each bundle's disclosure facts, which the proofs were decided with.
    key = (batch_id, body["leaf_index"])
    with served_world.engine.connect() as conn:
        stored = bundle_proofs(conn, [key])[key]
    assert stored.facts == BundleFacts.of_wire(stored.wire)
    assert stored.facts.spans[SPEED] == (samples[SPEED][60][0], samples[SPEED][119][0])


def test_apps_proofs_open_only_the_grantees_signals_and_the_auditor_refuses_a_tampered_one(
    served_world: ServedWorld,
    fleet: Fleet,
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    owner: Any,
    stranger: Any,
    vehicle_rights: Any,
    rpc_url: str,
    deployment: Deployment,
) -> None:
    t0 = fleet[1]
    samples = speed_and_position(t0)
    car, anchored = setup(
        served_world, fleet, domain, anchor_bundles, samples, (vehicle_rights, owner, stranger)
    )
    refs = [[anchored.batch.id, leaf] for leaf in range(len(anchored.bundles))]
    with served_world.client(stranger) as driving:
        r = driving.post("/apps/proofs", json={"vehicle_id": car, "inputs": refs})
    assert r.status_code == 200, r.text
    assert position_found(r.text, [v for _, v in samples[LAT]], [v for _, v in samples[LON]]) == []
    roots = ChainRoots(rpc_url, deployment.contract("AttestationAnchor").address)
    try:
        for item, signed in zip(r.json()["bundles"], anchored.bundles, strict=True):
            assert item["bundle_wire"] is None
            assert [o["name"] for o in item["openings"]] == [SPEED]
            opened = verify_bundle_proof(item, car, domain, roots)
            assert isinstance(opened, Opened)
            assert dict(opened.readings) == {SPEED: signed.bundle.readings[SPEED]}
            bad = copy.deepcopy(item)
            bad["openings"][0] = tampered(bad["openings"][0])
            with pytest.raises(InputProofInvalid, match="opening"):
                verify_bundle_proof(bad, car, domain, roots)
    finally:
        roots.close()


def test_a_driving_insurer_exports_speed_and_ignition_alone_and_the_file_verifies_offline(
    served_world: ServedWorld,
    fleet: Fleet,
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    owner: Any,
    stranger: Any,
    vehicle_rights: Any,
    rpc_url: str,
    deployment: Deployment,
) -> None:
    t0 = fleet[1]
    samples: Samples = dict(drive_with_a_harsh_brake(t0))
    end = samples[SPEED][-1][0]
    samples[LAT] = [(t, latitude(i)) for i, t in enumerate(range(t0, end, 10_000))]
    samples[LON] = [(t, longitude(i)) for i, t in enumerate(range(t0, end, 10_000))]
    car, _ = setup(
        served_world, fleet, domain, anchor_bundles, samples, (vehicle_rights, owner, stranger)
    )
    lats = [v for _, v in samples[LAT]]
    lons = [v for _, v in samples[LON]]
    window = {"start": t0, "end": t0 + 900_000}
    anchor = deployment.contract("AttestationAnchor").address
    with served_world.client(stranger) as insurer, served_world.client(owner) as mine:
        score = insurer.get(f"/apps/insurance/{car}/score", params=window)
        export = insurer.get(f"/apps/insurance/{car}/export", params=window)
        own = mine.get(f"/apps/insurance/{car}/export", params=window)
        served, outcome = insurance.audit(
            served_world.base_url, token_of(insurer), car, t0, t0 + 900_000, rpc_url, anchor
        )
    assert score.status_code == 200, score.text
    result = score.json()["result"]
    assert result["exposure"]["harsh_braking"] == 1
    for r in (export, own):
        assert r.status_code == 200, r.text
        assert position_found(r.text, lats, lons) == []
        doc = r.json()
        assert all("wire" not in b for b in doc["bundles"])
        opened = {o["name"] for b in doc["bundles"] for o in b["disclosed"]["openings"]}
        assert opened == {SPEED, IGNITION}
        checked = verify_export(doc, rpc_url=rpc_url, anchor=anchor)
        assert checked.result.to_dict() == result
        assert checked.roots_checked_on_chain
    # The audit recomputes the score from the openings POST /apps/proofs serves.
    assert served["result"] == result == outcome.result
    assert outcome.bundles == len(result["inputs"])
    # A tampered opening in the file fails the offline check.
    doc = export.json()
    entry = doc["bundles"][0]["disclosed"]
    entry["openings"][0] = tampered(entry["openings"][0])
    with pytest.raises(ExportInvalid, match="disclosure"):
        verify_export(doc)


def test_the_oz_check_refuses_a_leaf_of_another_batch() -> None:
    """The JS check is not vacuous: a wrong root fails the batch leaf."""
    opening = {"name": SPEED, "salt": "0x" + "11" * 32, "samples": "0x80", "proof": []}
    leaf = ["0x" + "22" * 20, "1", "0", "0", "1", "0x" + "33" * 32, "0x" + "44" * 32]
    (out,) = oz_check("0x" + "55" * 32, [{"leaf": leaf, "proof": [], "opening": opening}])
    assert out == {"batch": False, "signal": False}


def test_a_battery_grantee_audits_its_soh_from_openings_of_bundles_holding_other_scopes(
    served_world: ServedWorld,
    fleet: Fleet,
    domain: Eip712Domain,
    anchor_bundles: Callable[..., Anchored],
    owner: Any,
    stranger: Any,
    vehicle_rights: Any,
    rpc_url: str,
    deployment: Deployment,
) -> None:
    (car, key), _ = fleet[0]
    windows, _ = simulated(3, 92.0, 3)
    shift = shift_for(fleet[1])
    signed = sign_windows(windows, key, car, domain, shift, schema=SCHEMA_SIGNALS)
    scopes = int(Privilege.BATTERY) | int(Privilege.CHARGING)
    others = {n for b in signed for n in b.bundle.readings if not signal_privilege(n) & scopes}
    assert others  # e.g. odometer and speed: the grantee may not read them
    anchor_bundles(signed)
    vehicle_rights.grant(car, stranger, scopes, FAR_FUTURE, TERMS_CID, sender=owner)
    advance(100)
    served_world.sync()
    start, end = windows[0].start + shift, windows[-1].end + shift
    served_world.at(max(head_s() * 1000, end + 60_000))
    anchor = deployment.contract("AttestationAnchor").address
    with served_world.client(stranger) as grantee:
        r = grantee.get(f"/apps/battery/{car}", params={"start": start, "end": end})
        assert r.status_code == 200, r.text
        answer = r.json()
        outcome = audit_served(
            answer, battery.compute, served_world.base_url, token_of(grantee), rpc_url, anchor,
            client=grantee,
        )  # fmt: skip
        first = grantee.post(
            "/apps/proofs", json={"vehicle_id": car, "inputs": answer["inputs"][:1]}
        )
    assert outcome.result == answer["result"]
    assert outcome.bundles == len(answer["inputs"]) > 1000
    # What the audit checked were openings: no whole bundle, nothing of the other scopes.
    (item,) = first.json()["bundles"]
    assert item["bundle_wire"] is None
    assert item["openings"]
    assert {o["name"] for o in item["openings"]}.isdisjoint(others)
