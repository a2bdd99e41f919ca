"""Regenerate the protocol test vectors from the spec, independently of `protocol/`.

How the vectors were made (and how to make them again):

* `bundles.json`: every encoding is built by `cbor2.dumps(document, canonical=True)` (cbor2 6.3.0,
  RFC 8949 core deterministic encoding) from a plain document written out here, never by
  `protocol.bundle`; `dataHash` is eth-utils' keccak; every signature is
  `eth_account.Account.sign_typed_data(key, full_message=...)` (eth-account 0.13.7) over typed
  data written out here from docs/protocol.md. Keys are throwaway test keys,
  `keccak256("dimo-vector-device-<n>")`; they guard nothing.

      .venv/bin/pip install cbor2==6.3.0
      .venv/bin/python tests/vectors/make_vectors.py bundles

* `signals_v2.json`: schema-2 bundles (salted per-signal commitments). Encodings by cbor2,
  commitments by eth-utils' keccak, signatures by eth-account, and every tree (each bundle's
  signal tree over `(string name, bytes32 commitment)` and the batch tree over their leaves)
  with its proofs by `@openzeppelin/merkle-tree@1.0.8` under node. Salts are throwaway,
  `keccak256("dimo-vector-salt-<bundle>-<signal>")`; a device draws random ones.

      .venv/bin/python tests/vectors/make_vectors.py signals --node-modules /tmp/ozmt/node_modules

* `merkle_oz.json`: roots, proofs and dumps computed by OpenZeppelin's JS library
  `@openzeppelin/merkle-tree@1.0.8` under node 20, installed outside the repo:

      mkdir -p /tmp/ozmt && (cd /tmp/ozmt && npm install @openzeppelin/merkle-tree@1.0.8)
      .venv/bin/python tests/vectors/make_vectors.py merkle --node-modules /tmp/ozmt/node_modules

  The inputs include the Merkle leaves of the bundles in `bundles.json`, so run `bundles` first.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import struct
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import cbor2
from eth_account import Account
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

HERE = Path(__file__).resolve().parent
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
ANCHOR = "0x5FbDB2315678afecb367f032d93F642f64180aa3"  # first contract anvil deploys
CHAIN_ID = 31337

BUNDLE_FIELDS = [
    {"name": "device", "type": "address"},
    {"name": "vehicleId", "type": "uint256"},
    {"name": "sequence", "type": "uint64"},
    {"name": "windowStart", "type": "uint64"},
    {"name": "windowEnd", "type": "uint64"},
    {"name": "dataHash", "type": "bytes32"},
]
DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
LEAF_ENCODING = ["address", "uint256", "uint64", "uint64", "uint64", "bytes32", "bytes32"]


def test_key(n: int) -> bytes:
    """Throwaway key n, derived from a public label."""
    return keccak(text=f"dimo-vector-device-{n}")


def address_of(key: bytes) -> str:
    return str(Account.from_key(key).address)


def domain(chain_id: int = CHAIN_ID, contract: str = ANCHOR) -> dict[str, Any]:
    return {"name": "DIMO", "version": "1", "chainId": chain_id, "verifyingContract": contract}


def document(spec: dict[str, Any]) -> dict[str, Any]:
    """The CBOR document of docs/protocol.md for a JSON bundle spec."""
    readings = [
        [name, [[ts, value] for ts, value in sorted(samples, key=lambda s: s[0])]]
        for name, samples in sorted(spec["readings"].items(), key=lambda kv: kv[0].encode())
    ]
    return {
        "device": bytes.fromhex(spec["device"][2:]),
        "schema": spec["schemaVersion"],
        "readings": readings,
        "sequence": spec["sequence"],
        "vehicleId": int(spec["vehicleId"]),
        "windowEnd": spec["windowEnd"],
        "windowStart": spec["windowStart"],
    }


def encode(spec: dict[str, Any]) -> bytes:
    return cbor2.dumps(document(spec), canonical=True)


def typed_data(spec: dict[str, Any], data_hash: bytes, dom: dict[str, Any]) -> dict[str, Any]:
    return {
        "types": {"EIP712Domain": DOMAIN_FIELDS, "Bundle": BUNDLE_FIELDS},
        "primaryType": "Bundle",
        "domain": dom,
        "message": {
            "device": spec["device"],
            "vehicleId": int(spec["vehicleId"]),
            "sequence": spec["sequence"],
            "windowStart": spec["windowStart"],
            "windowEnd": spec["windowEnd"],
            "dataHash": data_hash,
        },
    }


def sign(spec: dict[str, Any], key: bytes, dom: dict[str, Any]) -> bytes:
    data_hash = keccak(encode(spec))
    signed = Account.sign_typed_data(key, full_message=typed_data(spec, data_hash, dom))
    return bytes(signed.signature)


def specs() -> list[tuple[str, int, dict[str, Any]]]:
    """(name, key number, JSON spec) of each valid bundle."""
    t0 = 1_735_689_600_000  # 2025-01-01T00:00:00Z
    d0, d1, d2 = (address_of(test_key(n)) for n in range(3))
    return [
        (
            "minimal: one signal, one float sample",
            0,
            {
                "device": d0,
                "vehicleId": "1",
                "sequence": 0,
                "windowStart": t0,
                "windowEnd": t0 + 60_000,
                "schemaVersion": 1,
                "readings": {"Vehicle.Speed": [[t0 + 1_000, 42.5]]},
            },
        ),
        (
            "every value type, readings given out of order",
            0,
            {
                "device": d0,
                "vehicleId": "7",
                "sequence": 1,
                "windowStart": t0 + 60_000,
                "windowEnd": t0 + 120_000,
                "schemaVersion": 1,
                "readings": {
                    "Vehicle.Speed": [[t0 + 61_000, 0.1], [t0 + 60_000, 0.0], [t0 + 62_000, -0.0]],
                    "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current": [
                        [t0 + 60_500, 81.25]
                    ],
                    "Vehicle.OBD.DistanceWithMIL": [[t0 + 60_000, 0], [t0 + 61_000, -12]],
                    "Vehicle.IsMoving": [[t0 + 60_000, False], [t0 + 61_000, True]],
                    "Vehicle.Cabin.Infotainment.Media.Played.Track": [[t0 + 60_000, "Für Elise ♪"]],
                    "Vehicle.CurrentLocation.Latitude": [[t0 + 60_000, 52.520008]],
                    "Vehicle.CurrentLocation.Longitude": [[t0 + 60_000, 13.404954]],
                },
            },
        ),
        (
            "float widths: half, single, double, extremes",
            1,
            {
                "device": d1,
                "vehicleId": "123456789",
                "sequence": 4_294_967_296,
                "windowStart": t0,
                "windowEnd": t0 + 10_000,
                "schemaVersion": 1,
                "readings": {
                    "Vehicle.Test.Float": [
                        [t0 + 0, 1.5],
                        [t0 + 1, 65504.0],
                        [t0 + 2, 100000.0],
                        [t0 + 3, 3.4028234663852886e38],
                        [t0 + 4, 1e300],
                        [t0 + 5, 5e-324],
                        [t0 + 6, 5.960464477539063e-08],
                        [t0 + 7, 1.0],
                        [t0 + 8, 0.3333333333333333],
                    ],
                    "Vehicle.Test.Int": [
                        [t0 + 0, 23],
                        [t0 + 1, 24],
                        [t0 + 2, -24],
                        [t0 + 3, -25],
                        [t0 + 4, 9_223_372_036_854_775_807],
                        [t0 + 5, -9_223_372_036_854_775_808],
                    ],
                },
            },
        ),
        (
            "large vehicle id (bignum) and empty readings",
            2,
            {
                "device": d2,
                "vehicleId": str(2**256 - 1),
                "sequence": 2**64 - 1,
                "windowStart": 0,
                "windowEnd": 2**64 - 1,
                "schemaVersion": 1,
                "readings": {},
            },
        ),
    ]


def hexs(b: bytes) -> str:
    return "0x" + b.hex()


def leaf_values(spec: dict[str, Any], data_hash: bytes, signature: bytes) -> list[Any]:
    return [
        spec["device"],
        str(int(spec["vehicleId"])),
        str(spec["sequence"]),
        str(spec["windowStart"]),
        str(spec["windowEnd"]),
        hexs(data_hash),
        hexs(keccak(signature)),
    ]


def make_bundles() -> dict[str, Any]:
    valid = []
    for name, key_number, spec in specs():
        encoding = encode(spec)
        data_hash = keccak(encoding)
        signature = sign(spec, test_key(key_number), domain())
        valid.append(
            {
                "name": name,
                "privateKey": hexs(test_key(key_number)),
                "bundle": spec,
                "encoding": hexs(encoding),
                "dataHash": hexs(data_hash),
                "signature": hexs(signature),
                "leaf": leaf_values(spec, data_hash, signature),
                "leafHash": hexs(
                    keccak(keccak(bytes.fromhex(_abi_leaf(spec, data_hash, signature))))
                ),
            }
        )

    _, base_key, base = specs()[0]
    base_sig = sign(base, test_key(base_key), domain())
    d0, d1 = address_of(test_key(0)), address_of(test_key(1))
    changed_value = json.loads(json.dumps(base))
    changed_value["readings"]["Vehicle.Speed"][0][1] = 42.75
    changed_sequence = dict(base, sequence=base["sequence"] + 1)
    r, s, v = base_sig[:32], int.from_bytes(base_sig[32:64], "big"), base_sig[64]
    high_s = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes((55 - v,))
    invalid = [
        {
            "name": "changed value after signing",
            "bundle": changed_value,
            "signature": hexs(base_sig),
            "domain": domain(),
            "error": "InvalidSignerError",
        },
        {
            "name": "changed sequence after signing",
            "bundle": changed_sequence,
            "signature": hexs(base_sig),
            "domain": domain(),
            "error": "InvalidSignerError",
        },
        {
            "name": "verified under another chain id",
            "bundle": base,
            "signature": hexs(base_sig),
            "domain": domain(chain_id=1),
            "error": "InvalidSignerError",
        },
        {
            "name": "verified under another verifying contract",
            "bundle": base,
            "signature": hexs(base_sig),
            "domain": domain(contract=to_checksum_address("0x" + "11" * 20)),
            "error": "InvalidSignerError",
        },
        {
            "name": "signed by another device's key",
            "bundle": base,
            "signature": hexs(sign(base, test_key(1), domain())),
            "domain": domain(),
            "error": "InvalidSignerError",
            "signer": d1,
            "expected": d0,
        },
        {
            "name": "high-s twin of a valid signature (EIP-2)",
            "bundle": base,
            "signature": hexs(high_s),
            "domain": domain(),
            "error": "SignatureHighSError",
        },
        {
            "name": "v of 0 instead of 27",
            "bundle": base,
            "signature": hexs(base_sig[:64] + bytes((base_sig[64] - 27,))),
            "domain": domain(),
            "error": "MalformedSignatureError",
        },
    ]
    for entry in invalid:
        entry["encoding"] = hexs(encode(entry["bundle"]))
    return {
        "description": (
            "Bundles of docs/protocol.md, encoded with cbor2 (canonical) and signed with "
            "eth-account sign_typed_data; see make_vectors.py. Keys are throwaway test keys."
        ),
        "domain": domain(),
        "leafEncoding": LEAF_ENCODING,
        "valid": valid,
        "invalid": invalid,
        "malformed": malformed(base),
    }


def _abi_leaf(spec: dict[str, Any], data_hash: bytes, signature: bytes) -> str:
    from eth_abi.abi import encode as abi_encode

    values = [
        spec["device"],
        int(spec["vehicleId"]),
        spec["sequence"],
        spec["windowStart"],
        spec["windowEnd"],
        data_hash,
        keccak(signature),
    ]
    return bytes(abi_encode(LEAF_ENCODING, values)).hex()


def malformed(base: dict[str, Any]) -> list[dict[str, Any]]:
    """Payloads `decode_bundle` must reject, with the error class it must raise."""
    doc = document(base)

    def dumps(d: dict[str, Any], **kw: Any) -> bytes:
        return cbor2.dumps(d, canonical=kw.pop("canonical", True), **kw)

    canonical = dumps(doc)
    out: list[tuple[str, bytes, str]] = []
    out.append(("schema version 3", dumps(dict(doc, schema=3)), "UnsupportedSchemaVersionError"))
    out.append(
        ("schema-1 readings under schema 2", dumps(dict(doc, schema=2)), "MalformedBundleError")
    )
    out.append(("trailing byte", canonical + b"\x00", "MalformedBundleError"))
    out.append(("truncated", canonical[:-3], "MalformedBundleError"))
    out.append(("not CBOR at all", b'{"device": 1}', "MalformedBundleError"))
    out.append(
        (
            "keys in insertion order",
            cbor2.dumps(dict(reversed(list(doc.items())))),
            "NonCanonicalEncodingError",
        )
    )
    out.append(
        (
            "42.5 as a double instead of a half",
            canonical.replace(b"\xf9\x51\x50", b"\xfb" + struct.pack(">d", 42.5)),
            "NonCanonicalEncodingError",
        )
    )
    out.append(
        (
            "sequence 0 in a two-byte head",
            canonical.replace(b"\x68sequence\x00", b"\x68sequence\x19\x00\x00"),
            "NonCanonicalEncodingError",
        )
    )
    out.append(
        (
            "NaN reading",
            canonical.replace(b"\xf9\x51\x50", b"\xf9\x7e\x00"),
            "NonFiniteValueError",
        )
    )
    dup = document(base)
    dup["readings"] = [
        ["Vehicle.Speed", [[base["windowStart"] + 1_000, 1.5], [base["windowStart"] + 1_000, 2.5]]]
    ]
    out.append(("duplicate timestamp", dumps(dup), "DuplicateTimestampError"))
    unsorted = document(base)
    unsorted["readings"] = [
        ["Vehicle.Speed", [[base["windowStart"] + 2_000, 1.5], [base["windowStart"] + 1_000, 2.5]]]
    ]
    out.append(("samples out of order", dumps(unsorted), "NonCanonicalEncodingError"))
    signals = document(base)
    signals["readings"] = [
        ["Vehicle.Speed", [[base["windowStart"] + 1_000, 1.5]]],
        ["Vehicle.IsMoving", [[base["windowStart"] + 1_000, True]]],
    ]
    out.append(("signals out of order", dumps(signals), "NonCanonicalEncodingError"))
    outside = document(base)
    outside["readings"] = [["Vehicle.Speed", [[base["windowEnd"], 1.5]]]]
    out.append(("timestamp at window end", dumps(outside), "TimestampOutsideWindowError"))
    blob = document(base)
    blob["readings"] = [["Vehicle.Speed", [[base["windowStart"], b"\x01"]]]]
    out.append(("byte-string value", dumps(blob), "UnsupportedValueTypeError"))
    null = document(base)
    null["readings"] = [["Vehicle.Speed", [[base["windowStart"], None]]]]
    out.append(("null value", dumps(null), "MalformedBundleError"))
    short = dict(doc, device=b"\x01" * 19)
    out.append(("19-byte device", dumps(short), "MalformedBundleError"))
    extra = dict(doc, extra=1)
    out.append(("unknown key", dumps(extra), "MalformedBundleError"))
    indefinite = b"\x9f\xff"
    out.append(("indefinite-length array", indefinite, "MalformedBundleError"))
    return [{"name": n, "encoding": hexs(e), "error": err} for n, e, err in out]


# ------------------------------------------------------------------------------------------------
# Schema 2: salted per-signal commitments
# ------------------------------------------------------------------------------------------------

SIGNAL_LEAF_ENCODING = ["string", "bytes32"]


def signal_specs() -> list[tuple[str, int, dict[str, Any]]]:
    """(name, key number, JSON spec) of each schema-2 bundle: schema-1 specs plus 64 signals."""
    out = [(name, key, dict(spec, schemaVersion=2)) for name, key, spec in specs()[:3]]
    t0 = 1_735_689_600_000
    wide = {
        f"Vehicle.Test.Signal{i:02d}": [[t0 + 1_000 * j, round(i * 1.25 + j, 2)] for j in range(8)]
        for i in range(64)
    }
    out.append(
        (
            "64 signals of 8 samples",
            1,
            {
                "device": address_of(test_key(1)),
                "vehicleId": "42",
                "sequence": 9,
                "windowStart": t0,
                "windowEnd": t0 + 60_000,
                "schemaVersion": 2,
                "readings": wide,
            },
        )
    )
    return out


def salt_of(bundle: int, signal: str) -> bytes:
    """Throwaway salt of a vector signal, from a public label (devices draw random salts)."""
    return bytes(keccak(text=f"dimo-vector-salt-{bundle}-{signal}"))


def document_v2(spec: dict[str, Any], bundle: int) -> dict[str, Any]:
    """The schema-2 CBOR document of docs/protocol.md: readings are [name, salt, samples]."""
    doc = document(spec)
    doc["readings"] = [[name, salt_of(bundle, name), samples] for name, samples in doc["readings"]]
    return doc


OZ_SIGNALS_SCRIPT = """
const { StandardMerkleTree } = require('@openzeppelin/merkle-tree');
const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const trees = input.trees.map(c => {
  const tree = StandardMerkleTree.of(c.values, c.leafEncoding);
  return { root: tree.root, proofs: c.values.map((_, i) => tree.getProof(i)) };
});
process.stdout.write(JSON.stringify(trees));
"""


def oz_trees(trees: list[dict[str, Any]], node_modules: Path) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "oz.js"
        script.write_text(OZ_SIGNALS_SCRIPT)
        done = subprocess.run(
            ["node", str(script)],
            input=json.dumps({"trees": trees}),
            capture_output=True,
            text=True,
            env=dict(os.environ, NODE_PATH=str(node_modules)),
            check=True,
        )
    result: list[dict[str, Any]] = json.loads(done.stdout)
    return result


def make_signals(node_modules: Path) -> dict[str, Any]:
    entries: list[dict[str, Any]] = []
    signal_trees: list[dict[str, Any]] = []
    for index, (name, key_number, spec) in enumerate(signal_specs()):
        doc = document_v2(spec, index)
        signals = []
        for signal, salt, samples in doc["readings"]:
            encoded = cbor2.dumps(samples, canonical=True)
            signals.append(
                {
                    "name": signal,
                    "salt": hexs(salt),
                    "samples": hexs(encoded),
                    "commitment": hexs(keccak(salt + encoded)),
                }
            )
        entries.append(
            {
                "name": name,
                "key": hexs(test_key(key_number)),
                "spec": spec,
                "encoding": hexs(cbor2.dumps(doc, canonical=True)),
                "signals": signals,
            }
        )
        signal_trees.append(
            {
                "leafEncoding": SIGNAL_LEAF_ENCODING,
                "values": [[s["name"], s["commitment"]] for s in signals],
            }
        )
    for entry, tree in zip(entries, oz_trees(signal_trees, node_modules), strict=True):
        data_hash = bytes.fromhex(tree["root"][2:])
        signature = bytes(
            Account.sign_typed_data(
                bytes.fromhex(entry["key"][2:]),
                full_message=typed_data(entry["spec"], data_hash, domain()),
            ).signature
        )
        entry["dataHash"] = tree["root"]
        entry["signature"] = hexs(signature)
        entry["leaf"] = leaf_values(entry["spec"], data_hash, signature)
        for signal, proof in zip(entry["signals"], tree["proofs"], strict=True):
            signal["proof"] = proof
    (batch,) = oz_trees(
        [{"leafEncoding": LEAF_ENCODING, "values": [e["leaf"] for e in entries]}], node_modules
    )
    for entry, proof in zip(entries, batch["proofs"], strict=True):
        entry["batchProof"] = proof
    wide = entries[-1]["signals"][5]
    tampered = [
        ("another salt", dict(wide, salt=hexs(salt_of(99, wide["name"])))),
        ("a changed sample", dict(wide, samples=hexs(cbor2.dumps([[1_735_689_600_000, 1.5]])))),
        ("another signal's name", dict(wide, name=entries[-1]["signals"][6]["name"])),
        ("a dropped proof node", dict(wide, proof=wide["proof"][1:])),
    ]
    base = document_v2(signal_specs()[1][2], 1)
    reused_doc = dict(base, readings=[list(r) for r in base["readings"]])
    reused_doc["readings"][1][1] = reused_doc["readings"][0][1]
    short_doc = dict(base, readings=[list(r) for r in base["readings"]])
    short_doc["readings"][0][1] = short_doc["readings"][0][1][:31]
    return {
        "description": (
            "Schema-2 bundles: cbor2 6.3.0 encodings, eth-utils keccak commitments, eth-account "
            "signatures, trees and proofs by @openzeppelin/merkle-tree@1.0.8; see make_vectors.py."
        ),
        "domain": domain(),
        "signalLeafEncoding": SIGNAL_LEAF_ENCODING,
        "leafEncoding": LEAF_ENCODING,
        "batchRoot": batch["root"],
        "bundles": entries,
        "tampered": [
            {"name": n, "bundle": len(entries) - 1, "opening": o, "error": "TamperedOpeningError"}
            for n, o in tampered
        ],
        "malformed": [
            {
                "name": "a salt reused across signals",
                "encoding": hexs(cbor2.dumps(reused_doc, canonical=True)),
                "error": "SaltReusedError",
            },
            {
                "name": "a 31-byte salt",
                "encoding": hexs(cbor2.dumps(short_doc, canonical=True)),
                "error": "InvalidBundleError",
            },
            {
                "name": "no signal",
                "encoding": hexs(cbor2.dumps(dict(base, readings=[]), canonical=True)),
                "error": "InvalidBundleError",
            },
        ],
    }


OZ_SCRIPT = """
const { StandardMerkleTree } = require('@openzeppelin/merkle-tree');
const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const out = cases.map(c => {
  const tree = StandardMerkleTree.of(c.values, c.leafEncoding);
  return {
    name: c.name,
    leafEncoding: c.leafEncoding,
    values: c.values,
    root: tree.root,
    leafHashes: c.values.map(v => tree.leafHash(v)),
    proofs: c.values.map((_, i) => tree.getProof(i)),
    dump: tree.dump(),
  };
});
process.stdout.write(JSON.stringify(out, null, 1));
"""


def merkle_cases() -> list[dict[str, Any]]:
    rng = random.Random(8785)

    def rhex(n: int) -> str:
        return "0x" + rng.randbytes(n).hex()

    bundles = json.loads((HERE / "bundles.json").read_text())
    return [
        {
            "name": "OpenZeppelin README example",
            "leafEncoding": ["address", "uint256"],
            "values": [
                ["0x1111111111111111111111111111111111111111", "5000000000000000000"],
                ["0x2222222222222222222222222222222222222222", "2500000000000000000"],
            ],
        },
        {
            "name": "bundle leaves of bundles.json",
            "leafEncoding": LEAF_ENCODING,
            "values": [entry["leaf"] for entry in bundles["valid"]],
        },
        {
            "name": "one leaf",
            "leafEncoding": ["uint8"],
            "values": [["7"]],
        },
        {
            "name": "thirteen static leaves of mixed types, one repeated",
            "leafEncoding": ["uint256", "bool", "bytes32", "int64", "address", "bytes4", "uint8"],
            "values": [
                [
                    str(rng.getrandbits(256)),
                    i % 3 == 0,
                    rhex(32),
                    str(rng.randint(-(2**63), 2**63 - 1)),
                    to_checksum_address(rhex(20)),
                    rhex(4),
                    str(i),
                ]
                for i in range(12)
            ],
        },
        {
            "name": "dynamic types",
            "leafEncoding": ["string", "bytes", "uint256[]", "(address,uint8)"],
            "values": [
                [f"reading {i}", rhex(i), [str(j) for j in range(i)], [rhex(20), str(i)]]
                for i in range(6)
            ],
        },
    ]


def make_merkle(node_modules: Path) -> list[dict[str, Any]]:
    cases = merkle_cases()
    thirteen = cases[3]["values"]
    thirteen.append(list(thirteen[5]))  # a duplicate value: JS's stable sort keeps input order
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "oz.js"
        script.write_text(OZ_SCRIPT)
        env = dict(os.environ, NODE_PATH=str(node_modules))
        done = subprocess.run(
            ["node", str(script)],
            input=json.dumps(cases),
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
    result: list[dict[str, Any]] = json.loads(done.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["bundles", "merkle", "signals", "all"])
    parser.add_argument("--node-modules", type=Path, default=Path("/tmp/ozmt/node_modules"))
    args = parser.parse_args()
    if args.what in ("bundles", "all"):
        data = make_bundles()
        (HERE / "bundles.json").write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    if args.what in ("signals", "all"):
        vectors = make_signals(args.node_modules)
        (HERE / "signals_v2.json").write_text(
            json.dumps(vectors, indent=1, ensure_ascii=False) + "\n"
        )
    if args.what in ("merkle", "all"):
        trees = make_merkle(args.node_modules)
        payload = {
            "description": (
                "Computed by @openzeppelin/merkle-tree@1.0.8 (node 20); see make_vectors.py."
            ),
            "trees": trees,
        }
        (HERE / "merkle_oz.json").write_text(json.dumps(payload, indent=1) + "\n")


if __name__ == "__main__":
    main()
