"""AttestationAnchor: quorum-signed Merkle batches, and readings proven against them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ape
import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

from protocol.merkle import StandardMerkleTree
from tests.conftest import private_key

BATCH_TYPES = [
    {"name": "id", "type": "uint64"},
    {"name": "root", "type": "bytes32"},
    {"name": "cid", "type": "bytes"},
    {"name": "count", "type": "uint32"},
    {"name": "windowStart", "type": "uint64"},
    {"name": "windowEnd", "type": "uint64"},
]
LEAF_TYPES = ["address", "uint256", "uint64", "uint64", "uint64", "bytes32", "bytes32"]
T0 = 1_767_225_600_000  # 2026-01-01, unix ms


def leaves(n: int, seed: str = "a") -> list[list[Any]]:
    out = []
    for i in range(n):
        device = Account.from_key(keccak(f"dev-{seed}-{i % 3}".encode())).address
        out.append(
            [
                device,
                1 + i % 3,
                i,
                T0 + 10_000 * i,
                T0 + 10_000 * (i + 1),
                keccak(f"data-{seed}-{i}".encode()),
                keccak(f"sig-{seed}-{i}".encode()),
            ]
        )
    return out


def batch_message(
    batch_id: int, tree: StandardMerkleTree, cid: bytes | None = None, count: int | None = None
) -> dict[str, Any]:
    return {
        "id": batch_id,
        "root": tree.root,
        "cid": cid or b"\x01\x55\x12\x20" + tree.root,
        "count": len(tree) if count is None else count,
        "windowStart": T0,
        "windowEnd": T0 + 10_000 * len(tree),
    }


@pytest.fixture
def sign_batch(anchor: Any, sign: Callable[..., bytes]) -> Callable[..., bytes]:
    def _sign(signers: list[Any], message: dict[str, Any]) -> bytes:
        return b"".join(
            sign(private_key(s), anchor, "AnchorBatch", BATCH_TYPES, message) for s in signers
        )

    return _sign


def as_tuple(message: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(message[t["name"]] for t in BATCH_TYPES)


def test_quorum_anchors_a_batch_relayed_by_anyone(
    anchor: Any, oracle_signers: list[Any], stranger: Any, sign_batch: Callable[..., bytes]
) -> None:
    tree = StandardMerkleTree.of(leaves(5), LEAF_TYPES)
    message = batch_message(1, tree)
    tx = anchor.anchor(as_tuple(message), sign_batch(oracle_signers[:2], message), sender=stranger)
    event = tx.events.filter(anchor.BatchAnchored)[0]
    assert (event.id, event.root, event.cid, event.count) == (1, tree.root, message["cid"], 5)
    assert anchor.rootOf(1) == tree.root
    assert anchor.lastBatchId() == 1


def test_every_reading_of_a_batch_verifies_and_tampered_ones_do_not(
    anchor: Any, oracle_signers: list[Any], sign_batch: Callable[..., bytes], admin: Any
) -> None:
    values = leaves(9)
    tree = StandardMerkleTree.of(values, LEAF_TYPES)
    message = batch_message(1, tree)
    anchor.anchor(as_tuple(message), sign_batch(oracle_signers[1:], message), sender=admin)
    for value in values:
        assert anchor.verifyReading(1, value, tree.proof(value)) is True
    tampered = list(values[0])
    tampered[5] = keccak(b"other data")
    assert anchor.verifyReading(1, tampered, tree.proof(values[0])) is False
    assert anchor.verifyReading(1, values[1], tree.proof(values[0])) is False


def test_verify_reading_of_unknown_batch_reverts(anchor: Any) -> None:
    with ape.reverts(anchor.AttestationAnchorUnknownBatch, id=4):
        anchor.verifyReading(4, leaves(1)[0], [])
    with ape.reverts(anchor.AttestationAnchorUnknownBatch, id=4):
        anchor.rootOf(4)


def test_batch_ids_are_strictly_sequential(
    anchor: Any, oracle_signers: list[Any], admin: Any, sign_batch: Callable[..., bytes]
) -> None:
    tree = StandardMerkleTree.of(leaves(2), LEAF_TYPES)
    skipped = batch_message(2, tree)
    with ape.reverts(anchor.AttestationAnchorUnexpectedBatchId, id=2, expected=1):
        anchor.anchor(as_tuple(skipped), sign_batch(oracle_signers[:2], skipped), sender=admin)
    first = batch_message(1, tree)
    signatures = sign_batch(oracle_signers[:2], first)
    anchor.anchor(as_tuple(first), signatures, sender=admin)
    with ape.reverts(anchor.AttestationAnchorUnexpectedBatchId, id=1, expected=2):
        anchor.anchor(as_tuple(first), signatures, sender=admin)


@pytest.mark.parametrize(
    ("field", "value"), [("root", b"\x00" * 32), ("count", 0), ("cid", b""), ("windowEnd", T0 - 1)]
)
def test_malformed_batch_reverts(
    anchor: Any,
    oracle_signers: list[Any],
    admin: Any,
    sign_batch: Callable[..., bytes],
    field: str,
    value: Any,
) -> None:
    message = batch_message(1, StandardMerkleTree.of(leaves(2), LEAF_TYPES))
    message[field] = value
    with ape.reverts(anchor.AttestationAnchorInvalidBatch, id=1):
        anchor.anchor(as_tuple(message), sign_batch(oracle_signers[:2], message), sender=admin)


def test_one_signature_does_not_reach_the_quorum(
    anchor: Any, oracle_signers: list[Any], admin: Any, sign_batch: Callable[..., bytes]
) -> None:
    message = batch_message(1, StandardMerkleTree.of(leaves(2), LEAF_TYPES))
    with ape.reverts(anchor.OracleRegistryQuorumNotReached, given=1, threshold=2):
        anchor.anchor(as_tuple(message), sign_batch(oracle_signers[:1], message), sender=admin)


def test_repeated_or_unsorted_signers_revert(
    anchor: Any, oracle_signers: list[Any], admin: Any, sign_batch: Callable[..., bytes]
) -> None:
    message = batch_message(1, StandardMerkleTree.of(leaves(2), LEAF_TYPES))
    a, b = oracle_signers[0], oracle_signers[1]
    with ape.reverts(anchor.OracleRegistryUnsortedSigners, previous=a.address, signer=a.address):
        anchor.anchor(as_tuple(message), sign_batch([a, a], message), sender=admin)
    with ape.reverts(anchor.OracleRegistryUnsortedSigners, previous=b.address, signer=a.address):
        anchor.anchor(as_tuple(message), sign_batch([b, a], message), sender=admin)


def test_signature_by_a_non_oracle_reverts(
    anchor: Any,
    oracle_signers: list[Any],
    stranger: Any,
    admin: Any,
    sign_batch: Callable[..., bytes],
) -> None:
    message = batch_message(1, StandardMerkleTree.of(leaves(2), LEAF_TYPES))
    signers = sorted([oracle_signers[0], stranger], key=lambda s: int(s.address, 16))
    with ape.reverts(anchor.OracleRegistryUnknownSigner, signer=stranger.address):
        anchor.anchor(as_tuple(message), sign_batch(signers, message), sender=admin)


def test_signatures_over_other_content_revert(
    anchor: Any, oracle_signers: list[Any], admin: Any, sign_batch: Callable[..., bytes]
) -> None:
    message = batch_message(1, StandardMerkleTree.of(leaves(2), LEAF_TYPES))
    signed = dict(message, count=message["count"] + 1)
    with ape.reverts(anchor.OracleRegistryUnknownSigner):
        anchor.anchor(as_tuple(message), sign_batch(oracle_signers[:2], signed), sender=admin)


def test_signatures_of_wrong_length_revert(
    anchor: Any, oracle_signers: list[Any], admin: Any, sign_batch: Callable[..., bytes]
) -> None:
    message = batch_message(1, StandardMerkleTree.of(leaves(2), LEAF_TYPES))
    signatures = sign_batch(oracle_signers[:2], message)[:-1]
    with ape.reverts(anchor.OracleRegistryMalformedSignatures, length=129):
        anchor.anchor(as_tuple(message), signatures, sender=admin)


def test_batch_digest_equals_eth_account_typed_data_hash(anchor: Any, chain: Any) -> None:
    message = batch_message(1, StandardMerkleTree.of(leaves(3), LEAF_TYPES))
    domain = {
        "name": "DIMO",
        "version": "1",
        "chainId": chain.chain_id,
        "verifyingContract": anchor.address,
    }
    signable = encode_typed_data(domain, {"AnchorBatch": BATCH_TYPES}, message)
    expected = keccak(b"\x19\x01" + signable.header + signable.body)
    assert anchor.batchDigest(as_tuple(message)) == expected


def test_oracle_set_views(anchor: Any, oracle_signers: list[Any], stranger: Any) -> None:
    signers, threshold, version = anchor.oracles()
    assert list(signers) == [s.address for s in oracle_signers]
    assert (threshold, version) == (2, 1)
    assert anchor.isOracle(oracle_signers[0]) is True
    assert anchor.isOracle(stranger) is False


def test_admin_replaces_the_oracle_set(
    anchor: Any,
    oracle_signers: list[Any],
    admin: Any,
    stranger: Any,
    sign_batch: Callable[..., bytes],
) -> None:
    tx = anchor.setOracles([stranger.address], 1, sender=admin)
    assert tx.events.filter(anchor.OracleSetChanged)[0].version == 2
    assert anchor.isOracle(oracle_signers[0]) is False
    message = batch_message(1, StandardMerkleTree.of(leaves(2), LEAF_TYPES))
    with ape.reverts(anchor.OracleRegistryUnknownSigner):
        anchor.anchor(as_tuple(message), sign_batch(oracle_signers[:1], message), sender=admin)
    anchor.anchor(as_tuple(message), sign_batch([stranger], message), sender=admin)


def test_oracle_set_changes_only_by_admin(anchor: Any, stranger: Any) -> None:
    with ape.reverts(anchor.AccessControlUnauthorizedAccount):
        anchor.setOracles([stranger.address], 1, sender=stranger)


@pytest.mark.parametrize(("threshold", "count"), [(0, 3), (4, 3), (1, 0)])
def test_invalid_quorum_reverts(
    anchor: Any, accounts: Any, admin: Any, threshold: int, count: int
) -> None:
    signers = [accounts[i].address for i in range(count)]
    with ape.reverts(anchor.OracleRegistryInvalidQuorum, signers=count, threshold=threshold):
        anchor.setOracles(signers, threshold, sender=admin)


def test_duplicate_or_zero_signer_reverts(anchor: Any, accounts: Any, admin: Any) -> None:
    a = accounts[1].address
    with ape.reverts(anchor.OracleRegistryInvalidSigner, signer=a):
        anchor.setOracles([a, a], 1, sender=admin)
    zero = "0x0000000000000000000000000000000000000000"
    with ape.reverts(anchor.OracleRegistryInvalidSigner, signer=zero):
        anchor.setOracles([zero], 1, sender=admin)


# ------------------------------------------------------------------------------------------------
# Schema-2 signal openings (vectors made by cbor2, eth-account and OZ's JS merkle-tree)
# ------------------------------------------------------------------------------------------------

SIGNAL_VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "signals_v2.json").read_text())


def _opening(signal: dict[str, Any]) -> tuple[Any, ...]:
    return (signal["name"], signal["salt"], signal["samples"], signal["proof"])


def _vector_leaf(entry: dict[str, Any]) -> list[Any]:
    leaf = entry["leaf"]
    return [leaf[0], *(int(x) for x in leaf[1:5]), leaf[5], leaf[6]]


@pytest.fixture
def signal_batch(
    anchor: Any, oracle_signers: list[Any], sign_batch: Callable[..., bytes], admin: Any
) -> int:
    entries = SIGNAL_VECTORS["bundles"]
    tree = StandardMerkleTree.of([_vector_leaf(e) for e in entries], LEAF_TYPES)
    assert "0x" + tree.root.hex() == SIGNAL_VECTORS["batchRoot"]  # the JS library's root
    message = batch_message(1, tree)
    anchor.anchor(as_tuple(message), sign_batch(oracle_signers[:2], message), sender=admin)
    return 1


def test_every_signal_opening_of_the_vectors_verifies_on_chain(
    anchor: Any, signal_batch: int
) -> None:
    for entry in SIGNAL_VECTORS["bundles"]:
        for signal in entry["signals"]:
            assert (
                anchor.verifySignal(
                    signal_batch, _vector_leaf(entry), entry["batchProof"], _opening(signal)
                )
                is True
            )


@pytest.mark.parametrize("case", SIGNAL_VECTORS["tampered"], ids=lambda c: c["name"])
def test_a_tampered_signal_opening_is_false_on_chain(
    anchor: Any, signal_batch: int, case: dict[str, Any]
) -> None:
    entry = SIGNAL_VECTORS["bundles"][case["bundle"]]
    opening = _opening(case["opening"])
    assert anchor.verifySignal(signal_batch, _vector_leaf(entry), entry["batchProof"], opening) is (
        False
    )


def test_a_signal_opening_of_another_bundle_leaf_is_false(anchor: Any, signal_batch: int) -> None:
    first, last = SIGNAL_VECTORS["bundles"][0], SIGNAL_VECTORS["bundles"][-1]
    opening = _opening(last["signals"][0])
    assert anchor.verifySignal(signal_batch, _vector_leaf(first), first["batchProof"], opening) is (
        False
    )
    # The right leaf with another bundle's batch proof fails the batch proof instead.
    assert anchor.verifySignal(signal_batch, _vector_leaf(last), first["batchProof"], opening) is (
        False
    )


def test_a_signal_opening_of_an_unknown_batch_reverts(anchor: Any) -> None:
    entry = SIGNAL_VECTORS["bundles"][0]
    with ape.reverts(anchor.AttestationAnchorUnknownBatch):
        anchor.verifySignal(7, _vector_leaf(entry), [], _opening(entry["signals"][0]))
