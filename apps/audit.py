"""Inputs of the applications, gathered from the index or recomputed from proofs alone.

Every application is a pure function of `AppInputs`: per signal, the verified readings it may
use, each with the (batch, leaf) of the bundle that carries it, and the device that signed
each bundle. The server gathers them from SQL (`gather_inputs`); an auditor gathers the same
set from the bundles' proofs (`fetch_and_verify_inputs`), trusting the server for nothing but
bytes to check: each bundle's device signature, its Merkle path against the root the chain
holds (`AttestationAnchor.rootOf` over JSON-RPC), and its vehicle. The readings are then
decoded from the signed bundle wire, kept inside the window and the covered times the served
result states, and handed to the same pure function; `compare_results` says where the two
answers differ.

The proof route is `POST /apps/proofs` (`indexer.api.routes.apps_proofs`); the server's side
lives in `indexer.apps.inputs`. This module needs no database: an auditor, a certifier or a
notebook runs it against any indexer's API and any node of the chain.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
import numpy as np
from numpy.typing import NDArray

from apps.columnar import as_columns, keys_to_refs
from apps.exceptions import AuditMismatch, ChainUnavailableError, InputProofInvalid
from protocol.bundle import (
    BUNDLE_LEAF_ENCODING,
    BundleError,
    SignedBundle,
    bundle_leaf,
    decode_signed_bundle,
    verify_bundle,
)
from protocol.crypto import SignatureError, keccak256
from protocol.disclosure import DisclosedBundle
from protocol.eip712 import Eip712Domain, dimo_domain
from protocol.merkle import MerkleError, verify_proof
from protocol.readings import Interval, Reading, is_text_signal

__all__ = [
    "PROOFS_PATH",
    "PROOFS_PER_REQUEST",
    "AppInputs",
    "AuditOutcome",
    "ChainRoots",
    "Compute",
    "Opened",
    "audit_served",
    "compare_results",
    "fetch_and_verify_inputs",
    "inputs_from_bundles",
    "sorted_series",
    "verify_bundle_proof",
    "verify_opened",
]

#: Path of the API route that serves bundle proofs of application inputs.
PROOFS_PATH: Final = "/apps/proofs"
#: Most (batch, leaf) pairs one proofs request may name.
PROOFS_PER_REQUEST: Final = 500
#: Relative tolerance when comparing floats of a served and a recomputed result (the same
#: code on the same readings gives the same bits; this only absorbs JSON round trips).
FLOAT_RTOL: Final = 1e-12

Ref = tuple[int, int]


@dataclass
class AppInputs:
    """The verified readings an application runs on.

    Attributes:
        series: Signal name -> readings in time order (ties by batch, leaf); numbers as floats
            (booleans 0/1), text signals as text. A list of `Reading`s, or the same readings
            as `apps.columnar.Columns` (what the fleet fetch gives; the applications
            compute on its arrays).
        devices: (batch id, leaf index) -> the device that signed that bundle.
    """

    series: dict[str, Sequence[Reading]] = field(default_factory=dict)
    devices: dict[Ref, str] = field(default_factory=dict)

    def get(self, signal: str) -> Sequence[Reading]:
        """The readings of `signal` (empty when there are none): a list or `Columns`."""
        return self.series.get(signal, [])

    def key_arrays(self) -> list[NDArray[np.int64]]:
        """Per signal, each reading's bundle as a `columnar.bundle_keys` key."""
        return [as_columns(rs).keys() for rs in self.series.values() if len(rs)]

    def refs(self) -> list[Ref]:
        """Every (batch id, leaf index) a reading comes from, sorted."""
        keys = self.key_arrays()
        if not keys:
            return []
        return [(b, leaf) for b, leaf in keys_to_refs(np.concatenate(keys))]

    def reading_count(self) -> int:
        """How many readings there are across signals."""
        return sum(len(rs) for rs in self.series.values())


def sorted_series(series: dict[str, list[Reading]]) -> dict[str, Sequence[Reading]]:
    """Each non-empty series in time order (ties by batch, leaf), by signal name."""
    return {
        name: sorted(rs, key=lambda r: (r.ts, r.batch_id, r.leaf_index))
        for name, rs in sorted(series.items())
        if rs
    }


# -------------------------------------------------------------------------------------------
# the auditor's side: from proofs
# -------------------------------------------------------------------------------------------


def _value(name: str, value: object) -> float | str:
    if is_text_signal(name):
        return str(value)
    if isinstance(value, str):  # a text value in a numeric signal cannot be in the index
        raise ValueError(f"{name} carries text {value!r}")
    return float(value)  # type: ignore[arg-type]


def _inside(spans: Sequence[Interval], ts: int) -> bool:
    return any(a <= ts < b for a, b in spans)


@dataclass(frozen=True)
class Opened:
    """The verified readings of a schema-2 bundle disclosed signal by signal.

    Attributes:
        device: The device that signed it.
        vehicle_id: Its vehicle.
        readings: The opened signals' samples (the others are absent).
    """

    device: str
    vehicle_id: int
    readings: Mapping[str, Sequence[tuple[int, Any]]]


def verify_opened(
    doc: Mapping[str, Any], domain: Eip712Domain, root: bytes, proof: Sequence[bytes]
) -> Opened:
    """Checks a schema-2 disclosure (`protocol.disclosure.DisclosedBundle.as_json`) and the
    Merkle path of its leaf to `root`; returns its opened readings.

    Raises:
        BundleError: an opening is tampered with (`TamperedOpeningError`), the commitments do
            not lead to the signed dataHash, or samples are malformed.
        SignatureError: the device signature does not recover to the leaf's device.
        MerkleError: the path does not lead to `root` (or is malformed).
    """
    disclosed = DisclosedBundle.from_json(doc)
    readings = disclosed.verify(domain)
    if not verify_proof(root, BUNDLE_LEAF_ENCODING, disclosed.leaf, list(proof)):
        raise MerkleError("the Merkle path of the bundle's leaf does not lead to the root")
    return Opened(disclosed.device, disclosed.vehicle_id, readings)


def inputs_from_bundles(
    bundles: Iterable[tuple[int, int, SignedBundle | Opened]],
    signal_names: Sequence[str],
    start_ms: int,
    end_ms: int,
    covered: Mapping[str, Sequence[Interval]],
) -> AppInputs:
    """The application inputs carried by verified bundles.

    Args:
        bundles: `(batch id, leaf index, bundle)` of bundles already verified: whole signed
            bundles, or schema-2 bundles of which only some signals were opened.
        signal_names: The signals the application reads.
        start_ms: Window start, unix ms, inclusive.
        end_ms: Window end, unix ms, exclusive.
        covered: Per signal, the times the served result says the caller's rights covered.

    Returns:
        The same inputs `gather_inputs` gives for the same bundles, window and coverage.
    """
    series: dict[str, list[Reading]] = defaultdict(list)
    devices: dict[Ref, str] = {}
    for batch_id, leaf_index, signed in bundles:
        carried: Mapping[str, Sequence[tuple[int, Any]]]
        if isinstance(signed, Opened):
            device, carried = signed.device, signed.readings
        else:
            device, carried = signed.bundle.device, signed.bundle.readings
        devices[(batch_id, leaf_index)] = device
        for name in signal_names:
            spans = covered.get(name, ())
            for ts, value in carried.get(name, ()):
                if start_ms <= ts < end_ms and _inside(spans, ts):
                    series[name].append(Reading(ts, _value(name, value), batch_id, leaf_index))
    inputs = AppInputs(sorted_series(dict(series)))
    used = set(inputs.refs())
    inputs.devices = {ref: d for ref, d in devices.items() if ref in used}
    return inputs


class ChainRoots:
    """Batch roots read from `AttestationAnchor.rootOf` over JSON-RPC, cached per batch."""

    _ROOT_OF: Final = keccak256(b"rootOf(uint64)")[:4]

    def __init__(self, rpc_url: str, anchor_address: str, *, timeout_s: float = 30.0) -> None:
        self.rpc_url = rpc_url
        self.anchor_address = anchor_address
        self._client = httpx.Client(timeout=timeout_s)
        self._roots: dict[int, bytes | None] = {}
        self._id = 0

    def close(self) -> None:
        """Closes the HTTP client."""
        self._client.close()

    def _rpc(self, method: str, params: list[Any]) -> Any:
        self._id += 1
        try:
            r = self._client.post(
                self.rpc_url,
                json={"jsonrpc": "2.0", "id": self._id, "method": method, "params": params},
            )
            body = r.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ChainUnavailableError(self.rpc_url, f"{type(exc).__name__}: {exc}") from exc
        return body

    def chain_id(self) -> int:
        """The chain's id (`eth_chainId`)."""
        body = self._rpc("eth_chainId", [])
        if "result" not in body:
            raise ChainUnavailableError(self.rpc_url, str(body.get("error")))
        return int(body["result"], 16)

    def root_of(self, batch_id: int) -> bytes | None:
        """The root anchored for `batch_id`, or None when the chain holds no such batch."""
        if batch_id not in self._roots:
            data = "0x" + (self._ROOT_OF + batch_id.to_bytes(32, "big")).hex()
            body = self._rpc("eth_call", [{"to": self.anchor_address, "data": data}, "latest"])
            if "result" in body:
                self._roots[batch_id] = bytes.fromhex(body["result"][2:])[-32:]
            elif "error" in body and "revert" in str(body["error"]).lower():
                self._roots[batch_id] = None  # AttestationAnchorUnknownBatch
            else:
                raise ChainUnavailableError(self.rpc_url, str(body.get("error")))
        return self._roots[batch_id]


def verify_bundle_proof(
    item: Mapping[str, Any], vehicle_id: int, domain: Eip712Domain, roots: ChainRoots
) -> SignedBundle | Opened:
    """Checks one served bundle proof and returns the bundle (or the opened signals) it proves.

    A whole bundle (`bundle_wire`): the device signature must recover to the bundle's device
    and the Merkle path of the leaf rebuilt from the bundle (never the served leaf) must lead to
    the root the chain holds for the batch. A schema-2 bundle served by `openings`: the leaf's
    signature, the commitments and every opening must lead to the signed dataHash
    (`verify_opened`), and the leaf's path to the chain's root. Either way it must be the
    vehicle's.

    Raises:
        InputProofInvalid: any of these fails.
    """
    batch_id, leaf_index = int(item["batch_id"]), int(item["leaf_index"])

    def bad(reason: str) -> InputProofInvalid:
        return InputProofInvalid(batch_id, leaf_index, reason)

    if item.get("bundle_wire") is None and item.get("openings") is not None:
        root = roots.root_of(batch_id)
        if root is None:
            raise bad("the chain holds no such batch")
        leaf = item["leaf"]
        doc = {
            "leaf": [leaf[k] for k in _LEAF_KEYS],
            "signature": item["signature"],
            "commitments": [[c["name"], c["commitment"]] for c in item["commitments"]],
            "openings": item["openings"],
        }
        try:
            opened = verify_opened(doc, domain, root, [bytes.fromhex(p[2:]) for p in item["proof"]])
        except (BundleError, SignatureError, MerkleError, ValueError) as exc:
            raise bad(f"opening: {exc}") from exc
        if opened.vehicle_id != vehicle_id:
            raise bad(f"the bundle is vehicle {opened.vehicle_id}'s, not {vehicle_id}'s")
        return opened
    try:
        signed = decode_signed_bundle(bytes.fromhex(str(item["bundle_wire"])[2:]))
        signer = verify_bundle(signed, domain)
    except (BundleError, SignatureError, ValueError) as exc:
        raise bad(f"bundle or signature: {exc}") from exc
    if signer != signed.bundle.device:
        raise bad(f"signature recovers to {signer}, not the bundle's device")
    if signed.bundle.vehicle_id != vehicle_id:
        raise bad(f"the bundle is vehicle {signed.bundle.vehicle_id}'s, not {vehicle_id}'s")
    root = roots.root_of(batch_id)
    if root is None:
        raise bad("the chain holds no such batch")
    try:
        proof = [bytes.fromhex(p[2:]) for p in item["proof"]]
        ok = verify_proof(root, BUNDLE_LEAF_ENCODING, bundle_leaf(signed), proof)
    except (MerkleError, ValueError) as exc:
        raise bad(f"Merkle path: {exc}") from exc
    if not ok:
        raise bad("the Merkle path does not lead to the root anchored on-chain")
    return signed


#: The served leaf's members, in the order of `protocol.bundle.BUNDLE_LEAF_FIELDS`.
_LEAF_KEYS: Final = (
    "device",
    "vehicle_id",
    "sequence",
    "window_start",
    "window_end",
    "data_hash",
    "signature_hash",
)


def fetch_and_verify_inputs(
    api_url: str,
    token: str,
    vehicle_id: int,
    inputs: Sequence[Sequence[int]],
    rpc_url: str,
    anchor_address: str,
    *,
    signal_names: Sequence[str],
    start_ms: int,
    end_ms: int,
    covered: Mapping[str, Sequence[Interval]],
    client: httpx.Client | None = None,
) -> AppInputs:
    """Fetches the proofs of an application's inputs from the API and verifies each on-chain.

    Args:
        api_url: The indexer API's base URL.
        token: A bearer token of the caller (from SIWE sign-in).
        vehicle_id: The vehicle.
        inputs: The (batch id, leaf index) pairs the served result lists.
        rpc_url: A JSON-RPC endpoint of the chain (any node: the roots come from it).
        anchor_address: The AttestationAnchor's address.
        signal_names: The signals the application reads.
        start_ms: The served result's window start, unix ms.
        end_ms: The served result's window end, unix ms.
        covered: The served result's covered times per signal.
        client: An HTTP client to reuse (its base URL is ignored).

    Returns:
        The inputs, decoded from bundles that all verified.

    Raises:
        InputProofInvalid: a bundle fails a check, or the API withheld or swapped one.
        ChainUnavailableError: the RPC endpoint did not answer.
        httpx.HTTPStatusError: the API refused the proofs request (e.g. 403 without rights).
    """
    roots = ChainRoots(rpc_url, anchor_address)
    own = client is None
    http = client or httpx.Client(timeout=120)
    try:
        domain = dimo_domain(roots.chain_id(), anchor_address)
        refs = [(int(b), int(leaf)) for b, leaf in inputs]
        verified: list[tuple[int, int, SignedBundle | Opened]] = []
        for i in range(0, len(refs), PROOFS_PER_REQUEST):
            part = refs[i : i + PROOFS_PER_REQUEST]
            r = http.post(
                api_url.rstrip("/") + PROOFS_PATH,
                json={"vehicle_id": vehicle_id, "inputs": [list(p) for p in part]},
                headers={"Authorization": f"Bearer {token}"},
            )
            r.raise_for_status()
            items = {(int(it["batch_id"]), int(it["leaf_index"])): it for it in r.json()["bundles"]}
            for ref in part:
                item = items.get(ref)
                if item is None:
                    raise InputProofInvalid(*ref, "the API served no proof of it")
                verified.append((*ref, verify_bundle_proof(item, vehicle_id, domain, roots)))
        return inputs_from_bundles(verified, signal_names, start_ms, end_ms, covered)
    finally:
        roots.close()
        if own:
            http.close()


def compare_results(app: str, served: Any, recomputed: Any) -> None:
    """Raises `AuditMismatch` listing where two JSON-like results differ (floats to 1e-12).

    Raises:
        AuditMismatch: they differ.
    """
    differences: list[str] = []
    _diff(served, recomputed, "", differences)
    if differences:
        raise AuditMismatch(app, differences)


def _diff(a: Any, b: Any, path: str, out: list[str]) -> None:
    if isinstance(a, bool) or isinstance(b, bool):
        if a is not b:
            out.append(f"{path or '/'}: {a!r} != {b!r}")
    elif isinstance(a, int | float) and isinstance(b, int | float):
        if not math.isclose(float(a), float(b), rel_tol=FLOAT_RTOL, abs_tol=1e-12):
            out.append(f"{path or '/'}: {a!r} != {b!r}")
    elif isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                out.append(f"{path}/{key}: present on one side only")
            else:
                _diff(a[key], b[key], f"{path}/{key}", out)
    elif isinstance(a, list | tuple) and isinstance(b, list | tuple):
        if len(a) != len(b):
            out.append(f"{path or '/'}: {len(a)} items != {len(b)} items")
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            _diff(x, y, f"{path}/{i}", out)
    elif a != b:
        out.append(f"{path or '/'}: {a!r} != {b!r}")


#: A pure application: (inputs, served context, window start, window end) -> result.
Compute = Callable[[AppInputs, Mapping[str, Any], int, int], dict[str, Any]]


@dataclass(frozen=True)
class AuditOutcome:
    """What an audit checked.

    Attributes:
        app: The application.
        bundles: Input bundles whose proofs verified against the chain.
        batches: Distinct anchored batches they belong to.
        readings: Readings decoded from them and used.
        result: The recomputed result (equal to the served one).
    """

    app: str
    bundles: int
    batches: int
    readings: int
    result: dict[str, Any]


def audit_served(
    answer: Mapping[str, Any],
    compute: Compute,
    api_url: str,
    token: str,
    rpc_url: str,
    anchor_address: str,
    *,
    client: httpx.Client | None = None,
) -> AuditOutcome:
    """Recomputes a served application answer from its inputs' proofs alone and compares.

    Args:
        answer: The served envelope (`app`, `vehicle_id`, `start`, `end`, `context`,
            `covered`, `inputs`, `result`).
        compute: The application's pure function (e.g. `apps.battery.compute`).
        api_url: The API that served it (only bytes to verify are taken from it).
        token: The caller's bearer token.
        rpc_url: A JSON-RPC endpoint of the chain.
        anchor_address: The AttestationAnchor's address.
        client: An HTTP client to reuse.

    Raises:
        InputProofInvalid: an input's proof fails.
        AuditMismatch: the verified inputs are not the listed ones, or the recomputed result
            differs from the served one.
    """
    app = str(answer["app"])
    covered = {
        name: [(int(a), int(b)) for a, b in spans] for name, spans in answer["covered"].items()
    }
    start, end = int(answer["start"]), int(answer["end"])
    listed = [(int(b), int(leaf)) for b, leaf in answer["inputs"]]
    inputs = fetch_and_verify_inputs(
        api_url,
        token,
        int(answer["vehicle_id"]),
        listed,
        rpc_url,
        anchor_address,
        signal_names=sorted(covered),
        start_ms=start,
        end_ms=end,
        covered=covered,
        client=client,
    )
    if inputs.refs() != sorted(listed):
        raise AuditMismatch(app, ["the listed inputs carry other readings than were used"])
    result = compute(inputs, answer["context"], start, end)
    compare_results(app, answer["result"], result)
    refs = inputs.refs()
    return AuditOutcome(app, len(refs), len({b for b, _ in refs}), inputs.reading_count(), result)
