"""Usage-based insurance in the indexer: the score's inputs from SQL, the driver's export and
its offline verification, the audit from proofs, and the trip chart.

The score itself (trips, events, the published formula) is a pure function in `apps.insurance`,
re-exported here for the callers that reach it through this module.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import httpx
from sqlalchemy import Connection

from apps.audit import (
    AuditOutcome,
    ChainRoots,
    Opened,
    audit_served,
    inputs_from_bundles,
    verify_opened,
)
from apps.insurance import (
    EVENT_KINDS,
    KMH_PER_S_PER_MPHPS,
    SIGNALS,
    VERSION,
    Event,
    InsuranceScore,
    ReadingLike,
    ScoreParams,
    TripScore,
    compute,
    score,
)
from indexer.apps.inputs import gather_fleet_inputs, gather_inputs
from indexer.disclosure import decide
from indexer.exceptions import ExportInvalid
from indexer.queries import (
    IGNITION,
    SPEED,
    Interval,
    Reading,
    bundle_proof,
)
from indexer.rights import Coverage
from protocol.bundle import (
    BUNDLE_LEAF_ENCODING,
    BundleError,
    MalformedBundleError,
    SignedBundle,
    bundle_leaf,
    decode_signed_bundle,
    verify_bundle,
)
from protocol.crypto import SignatureError, checksum_address
from protocol.eip712 import dimo_domain
from protocol.merkle import MerkleError, verify_proof

__all__ = [
    "EVENT_KINDS",
    "EXPORT_FORMAT",
    "EXPORT_FORMATS",
    "KMH_PER_S_PER_MPHPS",
    "SIGNALS",
    "VERSION",
    "Event",
    "InsuranceScore",
    "ReadingLike",
    "ScoreParams",
    "TripScore",
    "VerifiedExport",
    "audit",
    "build_export",
    "compute",
    "fleet_scores",
    "read_inputs",
    "score",
    "score_vehicle",
    "trip_chart",
    "verify_export",
]

#: Format of the export file (v2: a schema-2 bundle goes in by the openings of the score's
#: signals, `disclosed`, instead of its whole `wire`).
EXPORT_FORMAT: Final = "dimo-insurance-export-v2"
#: Formats `verify_export` reads (v1 files hold whole wires only).
EXPORT_FORMATS: Final = ("dimo-insurance-export-v1", EXPORT_FORMAT)
_HOUR_MS: Final = 3_600_000


# -------------------------------------------------------------------------------------------
# from the index
# -------------------------------------------------------------------------------------------


def read_inputs(
    conn: Connection,
    vehicle_id: int,
    start_ms: int,
    end_ms: int,
    within: Sequence[Interval] | None,
) -> tuple[Sequence[Reading], Sequence[Reading]]:
    """The speed and ignition readings the score reads, from the index.

    Args:
        conn: A connection to the index.
        vehicle_id: The vehicle.
        start_ms: Window start, unix ms.
        end_ms: Window end, unix ms.
        within: The times the caller may read DRIVING; None for the whole window.
    """
    spans = [(start_ms, end_ms)] if within is None else list(within)
    got = gather_inputs(conn, vehicle_id, SIGNALS, start_ms, end_ms, dict.fromkeys(SIGNALS, spans))
    return got.get(SPEED), got.get(IGNITION)


def score_vehicle(
    conn: Connection,
    vehicle_id: int,
    start_ms: int,
    end_ms: int,
    *,
    within: Sequence[Interval] | None = None,
    params: ScoreParams | None = None,
) -> InsuranceScore:
    """`score` over the vehicle's readings in the index (inside `within` if given)."""
    speed, ignition = read_inputs(conn, vehicle_id, start_ms, end_ms, within)
    return score(vehicle_id, start_ms, end_ms, speed, ignition, params)


def fleet_scores(
    conn: Connection,
    vehicle_ids: Sequence[int],
    start_ms: int,
    end_ms: int,
    params: ScoreParams | None = None,
) -> dict[int, InsuranceScore]:
    """`score` of many vehicles over one window, read in one ordered pass per signal.

    For a batch job whose rights were checked as a whole (e.g. an insurer's fleet licence
    over the whole window); per-caller time limits are `score_vehicle`'s job.

    Returns:
        Vehicle id -> its score (vehicles without readings score an empty window).
    """
    wanted = sorted(set(vehicle_ids))
    got = gather_fleet_inputs(conn, wanted, SIGNALS, start_ms, end_ms, devices=False)
    return {
        vid: score(
            vid,
            start_ms,
            end_ms,
            got[vid].get(SPEED),
            got[vid].get(IGNITION),
            params,
        )
        for vid in wanted
    }


# -------------------------------------------------------------------------------------------
# the driver's copy: export and offline verification
# -------------------------------------------------------------------------------------------


def _hex(raw: bytes) -> str:
    return "0x" + raw.hex()


def build_export(
    conn: Connection,
    vehicle_id: int,
    start_ms: int,
    end_ms: int,
    *,
    chain_id: int,
    anchor: str,
    coverage: Coverage,
    within: Sequence[Interval] | None = None,
    params: ScoreParams | None = None,
) -> dict[str, Any]:
    """The signed readings of a window with their proofs and the score: a file that verifies
    offline (`verify_export`).

    It holds, per input bundle, what proves its readings, its Merkle path, its batch's root,
    CID and anchoring transaction; the chain id and the anchor address, the times read
    (`covered`) and the score computed from them. A schema-2 bundle goes in as `disclosed`:
    its leaf, device signature, every signal's commitment and the openings of the score's
    signals alone (`protocol.disclosure.DisclosedBundle`), whatever else the recipient may
    read. A schema-1 bundle goes in whole (`wire`), so it must hold nothing `coverage` (the
    recipient's rights) does not cover. `indexer.disclosure.decide` decides.

    Raises:
        BundleNotDisclosable: an input bundle holds a score signal the recipient may not read
            (schema 2) or any signal it may not read (schema 1).
    """
    spans = [(start_ms, end_ms)] if within is None else list(within)
    speed, ignition = read_inputs(conn, vehicle_id, start_ms, end_ms, spans)
    result = score(vehicle_id, start_ms, end_ms, speed, ignition, params)
    batches: dict[int, dict[str, Any]] = {}
    bundles = []
    for batch_id, leaf_index in result.inputs:
        proof = bundle_proof(conn, batch_id, leaf_index)
        served = decide(
            proof.wire, coverage, (vehicle_id, batch_id, leaf_index), wanted=SIGNALS, whole=False
        )
        batches.setdefault(
            batch_id,
            {
                "id": batch_id,
                "root": _hex(proof.root),
                "cid": proof.cid,
                "tx_hash": proof.tx_hash,
                "block_number": proof.block_number,
            },
        )
        carried = (
            {"disclosed": served.opened.as_json()}
            if served.opened is not None
            else {"wire": _hex(proof.wire)}
        )
        bundles.append(
            {
                "batch_id": batch_id,
                "leaf_index": leaf_index,
                **carried,
                "proof": [_hex(p) for p in proof.proof],
            }
        )
    return {
        "format": EXPORT_FORMAT,
        "chain_id": chain_id,
        "anchor": checksum_address(anchor),
        "vehicle_id": vehicle_id,
        "start_ms": start_ms,
        "end_ms": end_ms,
        "signals": list(SIGNALS),
        "covered": {name: [list(iv) for iv in spans] for name in SIGNALS},
        "batches": sorted(batches.values(), key=lambda b: int(b["id"])),
        "bundles": bundles,
        "result": result.to_dict(),
    }


@dataclass(frozen=True)
class VerifiedExport:
    """What `verify_export` established.

    Attributes:
        vehicle_id: The vehicle.
        result: The score recomputed from the file's signed readings (equal to the file's).
        bundles: Bundles whose device signature and Merkle path were checked.
        batches: Batches whose roots the bundles lead to.
        devices: The devices that signed them.
        roots_checked_on_chain: Whether each root was compared with `rootOf` on the chain.
    """

    vehicle_id: int
    result: InsuranceScore
    bundles: int
    batches: int
    devices: list[str]
    roots_checked_on_chain: bool


def _bytes(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ExportInvalid(what, f"{value!r} is not 0x hex")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise ExportInvalid(what, f"{value!r} is not 0x hex") from None


def _check_roots_on_chain(
    rpc_url: str, anchor: str, chain_id: int, batches: Mapping[int, bytes]
) -> None:
    """Each batch root of the file must be the one `AttestationAnchor.rootOf` returns."""
    roots = ChainRoots(rpc_url, anchor)
    try:
        actual = roots.chain_id()
        if actual != chain_id:
            raise ExportInvalid("chain_id", f"the file names chain {chain_id}, the RPC {actual}")
        for batch_id, root in sorted(batches.items()):
            if roots.root_of(batch_id) != root:
                raise ExportInvalid(f"batch {batch_id}", "its root is not the one on-chain")
    finally:
        roots.close()


def verify_export(
    doc: Mapping[str, Any],
    *,
    rpc_url: str | None = None,
    anchor: str | None = None,
) -> VerifiedExport:
    """Checks an export file without any server, and recomputes its score.

    Each bundle's device signature is checked under the DIMO EIP-712 domain of the file's
    chain and anchor, its Merkle path is folded to its batch's root, its vehicle must be the
    file's; a schema-2 bundle's openings must lead to its signed dataHash (a tampered opening
    fails); the readings of the score's signals inside the window (and `covered`) are decoded
    from the bundles and the score is recomputed with the file's parameters. With `rpc_url`
    each root is also compared with the root the chain holds (`AttestationAnchor.rootOf`).

    Args:
        doc: The parsed file.
        rpc_url: JSON-RPC URL of the chain; None to check offline only.
        anchor: The AttestationAnchor address you trust (e.g. from the deployment record);
            None to take the file's.

    Returns:
        What was checked, with the recomputed result.

    Raises:
        ExportInvalid: anything fails, naming what.
    """
    if doc.get("format") not in EXPORT_FORMATS:
        raise ExportInvalid("format", f"{doc.get('format')!r} is not one of {EXPORT_FORMATS}")
    try:
        chain_id = int(doc["chain_id"])
        vehicle_id = int(doc["vehicle_id"])
        start_ms, end_ms = int(doc["start_ms"]), int(doc["end_ms"])
        file_anchor = checksum_address(str(doc["anchor"]))
        params = ScoreParams.from_dict(doc["result"]["params"])
        covered = {str(k): [(int(a), int(b)) for a, b in v] for k, v in doc["covered"].items()}
        batches = {int(b["id"]): _bytes(b["root"], f"batch {b['id']} root") for b in doc["batches"]}
        bundles = list(doc["bundles"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ExportInvalid("structure", f"missing or malformed member: {exc}") from exc
    if anchor is not None and checksum_address(anchor) != file_anchor:
        raise ExportInvalid("anchor", f"the file names {file_anchor}, you trust {anchor}")
    domain = dimo_domain(chain_id, file_anchor)
    if rpc_url is not None:
        _check_roots_on_chain(rpc_url, file_anchor, chain_id, batches)
    verified: list[tuple[int, int, SignedBundle | Opened]] = []
    devices: set[str] = set()
    for entry in bundles:
        where = f"bundle {entry.get('batch_id')}/{entry.get('leaf_index')}"
        try:
            batch_id, leaf_index = int(entry["batch_id"]), int(entry["leaf_index"])
            proof = [_bytes(p, where) for p in entry["proof"]]
            signed = (
                None if "disclosed" in entry else decode_signed_bundle(_bytes(entry["wire"], where))
            )
        except (KeyError, TypeError, ValueError, MalformedBundleError) as exc:
            raise ExportInvalid(where, f"undecodable: {exc}") from exc
        if batch_id not in batches:
            raise ExportInvalid(where, f"batch {batch_id} is not listed")
        item: SignedBundle | Opened
        if signed is None:
            try:
                item = verify_opened(entry["disclosed"], domain, batches[batch_id], proof)
            except (BundleError, SignatureError, MerkleError, ValueError) as exc:
                raise ExportInvalid(where, f"its disclosure does not verify: {exc}") from exc
            devices.add(item.device)
            vehicle = item.vehicle_id
        else:
            try:
                devices.add(verify_bundle(signed, domain))
            except ValueError as exc:
                raise ExportInvalid(where, f"device signature does not verify: {exc}") from exc
            leaf = bundle_leaf(signed)
            if not verify_proof(batches[batch_id], BUNDLE_LEAF_ENCODING, leaf, proof):
                raise ExportInvalid(where, "its Merkle path does not lead to the batch root")
            item, vehicle = signed, signed.bundle.vehicle_id
        if vehicle != vehicle_id:
            raise ExportInvalid(where, f"signed for vehicle {vehicle}")
        verified.append((batch_id, leaf_index, item))
    got = inputs_from_bundles(verified, SIGNALS, start_ms, end_ms, covered)
    result = score(vehicle_id, start_ms, end_ms, got.get(SPEED), got.get(IGNITION), params)
    if _canonical(result.to_dict()) != _canonical(doc["result"]):
        raise ExportInvalid("result", "the score recomputed from the signed readings differs")
    return VerifiedExport(
        vehicle_id,
        result,
        len(bundles),
        len(batches),
        sorted(devices),
        rpc_url is not None,
    )


def _canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def audit(
    api_url: str,
    token: str,
    vehicle_id: int,
    start_ms: int,
    end_ms: int,
    rpc_url: str,
    anchor: str,
    *,
    params: Mapping[str, Any] | None = None,
    client: httpx.Client | None = None,
) -> tuple[dict[str, Any], AuditOutcome]:
    """Recomputes a served score from proofs alone and compares it with what was served.

    Fetches the score, then the proof of every input bundle (`POST /apps/proofs`); each
    bundle's device signature, vehicle and Merkle path against the root the chain holds
    (`rootOf` over `rpc_url`) is checked; the readings are decoded from the bundles and the
    score recomputed with the served parameters (`apps.audit.audit_served`).

    Args:
        api_url: The indexer API's base URL.
        token: The caller's bearer token (SIWE sign-in).
        vehicle_id: The vehicle.
        start_ms: Window start, unix ms.
        end_ms: Window end, unix ms.
        rpc_url: A JSON-RPC endpoint of the chain.
        anchor: The AttestationAnchor address you trust (from the deployment record).
        params: Score parameters to ask for; None for the defaults.
        client: An HTTP client to reuse.

    Returns:
        The served envelope and what the audit checked (with the recomputed result).

    Raises:
        AuditMismatch: the recomputed score differs from the served one.
        InputProofInvalid: a bundle fails a check, or the API withheld one.
        httpx.HTTPStatusError: the API refused (e.g. 403 without DRIVING rights).
    """
    own = client is None
    http = client or httpx.Client(timeout=120)
    try:
        query: dict[str, Any] = {"start": start_ms, "end": end_ms}
        if params:
            query["params"] = json.dumps(dict(params))
        r = http.get(
            f"{api_url.rstrip('/')}/apps/insurance/{vehicle_id}/score",
            params=query,
            headers={"Authorization": f"Bearer {token}"},
        )
        r.raise_for_status()
        served: dict[str, Any] = r.json()
        outcome = audit_served(served, compute, api_url, token, rpc_url, anchor, client=http)
    finally:
        if own:
            http.close()
    return served, outcome


# -------------------------------------------------------------------------------------------
# chart
# -------------------------------------------------------------------------------------------

_EVENT_STYLE: Final = {
    "harsh_braking": ("tab:red", "v", "harsh braking"),
    "harsh_acceleration": ("tab:orange", "^", "harsh acceleration"),
    "high_speed": ("tab:purple", "s", "high speed"),
    "night": ("tab:blue", "o", "night driving"),
}


def trip_chart(result: InsuranceScore, speed: Sequence[ReadingLike]) -> bytes:
    """The speed trace with the score's events marked on it, as PNG.

    Args:
        result: A score over the readings.
        speed: The speed readings it was computed from.
    """
    import matplotlib.pyplot as plt

    from indexer.apps.charts import png

    fig, ax = plt.subplots(figsize=(10, 4.5))
    t0 = result.start_ms
    hours = [(r.ts - t0) / _HOUR_MS for r in speed]
    ax.plot(hours, [float(r.value) for r in speed], color="tab:gray", lw=0.8, label="speed")
    ax.axhline(result.params["high_speed_kmh"], color="tab:purple", lw=0.6, ls="--")
    shown: set[str] = set()
    for trip in result.trips:
        for e in trip.events:
            color, marker, label = _EVENT_STYLE[e.kind]
            xs = [(r[0] - t0) / _HOUR_MS for r in e.readings]
            ys = [float(r[1]) for r in e.readings]
            if e.kind in ("harsh_braking", "harsh_acceleration"):
                ax.plot(xs, ys, color=color, lw=2.5)
                xs, ys = xs[:1], ys[:1]
            else:
                ax.axvspan(xs[0], xs[-1], color=color, alpha=0.12)
            ax.scatter(
                xs,
                ys,
                color=color,
                marker=marker,
                zorder=3,
                label=None if e.kind in shown else label,
            )
            shown.add(e.kind)
    when = datetime.fromtimestamp(t0 / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
    ax.set_title(
        f"Vehicle {result.vehicle_id}: score {result.score:.1f} ({result.version}), from {when}"
    )
    ax.set_xlabel("hours from the window start")
    ax.set_ylabel("speed, km/h")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    return png(fig)
