"""StandardMerkleTree equals OpenZeppelin's JS library and proves what it holds."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from eth_abi.abi import encode as abi_encode
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.crypto import checksum_address, keccak256
from protocol.merkle import (
    EmptyTreeError,
    InvalidTreeDumpError,
    LeafEncodingError,
    LeafIndexError,
    LeafNotInTreeError,
    LeafValueError,
    StandardMerkleTree,
    hash_pair,
    leaf_encoder,
    process_proof,
    standard_leaf_hash,
    verify_proof,
)

OZ = json.loads((Path(__file__).parent.parent / "vectors" / "merkle_oz.json").read_text())
OZ_TREES = {tree["name"]: tree for tree in OZ["trees"]}

LEAF_TYPES = ["address", "uint256", "bool", "bytes32", "int64"]
leaf_values = st.tuples(
    st.binary(min_size=20, max_size=20),
    st.integers(0, 2**256 - 1),
    st.booleans(),
    st.binary(min_size=32, max_size=32),
    st.integers(-(2**63), 2**63 - 1),
)
value_lists = st.lists(leaf_values, min_size=1, max_size=40)


def hexs(node: bytes) -> str:
    return "0x" + node.hex()


@pytest.mark.parametrize("name", sorted(OZ_TREES))
def test_root_leaves_and_proofs_equal_openzeppelin_js(name: str) -> None:
    oz = OZ_TREES[name]
    tree = StandardMerkleTree.of(oz["values"], oz["leafEncoding"])
    assert hexs(tree.root) == oz["root"]
    assert [hexs(tree.leaf_hash(v)) for v in oz["values"]] == oz["leafHashes"]
    assert [[hexs(p) for p in tree.proof(i)] for i in range(len(tree))] == oz["proofs"]


@pytest.mark.parametrize("name", sorted(OZ_TREES))
def test_dump_equals_openzeppelin_js_dump(name: str) -> None:
    oz = OZ_TREES[name]
    assert StandardMerkleTree.of(oz["values"], oz["leafEncoding"]).dump() == oz["dump"]


@pytest.mark.parametrize("name", sorted(OZ_TREES))
def test_load_reads_an_openzeppelin_dump(name: str) -> None:
    oz = OZ_TREES[name]
    tree = StandardMerkleTree.load(oz["dump"])
    assert hexs(tree.root) == oz["root"]
    assert [[hexs(p) for p in tree.proof(i)] for i in range(len(tree))] == oz["proofs"]


def test_int_and_bytes_values_give_the_same_tree_as_their_json_strings() -> None:
    oz = OZ_TREES["bundle leaves of bundles.json"]
    native = [
        [
            v[0],
            int(v[1]),
            int(v[2]),
            int(v[3]),
            int(v[4]),
            bytes.fromhex(v[5][2:]),
            bytes.fromhex(v[6][2:]),
        ]
        for v in oz["values"]
    ]
    tree = StandardMerkleTree.of(native, oz["leafEncoding"])
    assert hexs(tree.root) == oz["root"]
    assert tree.dump()["values"] == oz["dump"]["values"]


@settings(max_examples=60, deadline=None)
@given(value_lists)
def test_every_proof_verifies(values: list[tuple[Any, ...]]) -> None:
    tree = StandardMerkleTree.of(values, LEAF_TYPES)
    for i, value in enumerate(values):
        proof = tree.proof(i)
        assert tree.verify(i, proof)
        assert tree.verify(value, proof)
        assert StandardMerkleTree.verify(tree.root, LEAF_TYPES, value, proof)
        assert process_proof(tree.leaf_hash(value), proof) == tree.root


@settings(max_examples=60, deadline=None)
@given(value_lists, st.data())
def test_a_tampered_value_does_not_verify(values: list[tuple[Any, ...]], data: Any) -> None:
    tree = StandardMerkleTree.of(values, LEAF_TYPES)
    i = data.draw(st.integers(0, len(values) - 1))
    tampered = data.draw(leaf_values.filter(lambda v: v != values[i]))
    assert not verify_proof(tree.root, LEAF_TYPES, tampered, tree.proof(i))


@settings(max_examples=60, deadline=None)
@given(st.lists(leaf_values, min_size=2, max_size=40, unique=True), st.data())
def test_a_tampered_proof_does_not_verify(values: list[tuple[Any, ...]], data: Any) -> None:
    tree = StandardMerkleTree.of(values, LEAF_TYPES)
    i = data.draw(st.integers(0, len(values) - 1))
    proof = tree.proof(i)
    j = data.draw(st.integers(0, len(proof) - 1))
    bit = data.draw(st.integers(0, 255))
    node = bytearray(proof[j])
    node[bit // 8] ^= 1 << (bit % 8)
    proof[j] = bytes(node)
    assert not tree.verify(i, proof)


@settings(max_examples=40, deadline=None)
@given(value_lists)
def test_dump_then_load_gives_the_same_tree(values: list[tuple[Any, ...]]) -> None:
    tree = StandardMerkleTree.of(values, LEAF_TYPES)
    loaded = StandardMerkleTree.load(json.loads(json.dumps(tree.dump())))
    assert loaded.root == tree.root
    assert [loaded.proof(i) for i in range(len(tree))] == [tree.proof(i) for i in range(len(tree))]


static_types_and_values = st.sampled_from(
    [
        *("address", "bool", "uint8", "uint64", "uint256", "int8", "int128", "int256"),
        *("bytes1", "bytes4", "bytes20", "bytes32"),
    ]
).flatmap(
    lambda t: st.tuples(
        st.just(t),
        {
            "address": st.binary(min_size=20, max_size=20).map(checksum_address),
            "bool": st.booleans(),
            "uint8": st.integers(0, 2**8 - 1),
            "uint64": st.integers(0, 2**64 - 1),
            "uint256": st.integers(0, 2**256 - 1),
            "int8": st.integers(-(2**7), 2**7 - 1),
            "int128": st.integers(-(2**127), 2**127 - 1),
            "int256": st.integers(-(2**255), 2**255 - 1),
            "bytes1": st.binary(min_size=0, max_size=1),
            "bytes4": st.binary(min_size=0, max_size=4),
            "bytes20": st.binary(min_size=0, max_size=20),
            "bytes32": st.binary(min_size=0, max_size=32),
        }[t],
    )
)


@settings(max_examples=200, deadline=None)
@given(st.lists(static_types_and_values, min_size=1, max_size=8))
def test_hand_rolled_static_encoding_equals_eth_abi(fields: list[tuple[str, Any]]) -> None:
    types = [t for t, _ in fields]
    values = [v for _, v in fields]
    assert leaf_encoder(types)(values) == abi_encode(types, values)


def test_leaf_hash_is_keccak_of_keccak_of_abi_encode() -> None:
    value = ["0x1111111111111111111111111111111111111111", 5]
    expected = keccak256(keccak256(abi_encode(["address", "uint256"], value)))
    assert standard_leaf_hash(["address", "uint256"], value) == expected


def test_node_hash_sorts_the_pair() -> None:
    a, b = b"\x01" * 32, b"\x02" * 32
    assert hash_pair(a, b) == hash_pair(b, a) == keccak256(a + b)


def test_proof_by_value_equals_proof_by_index() -> None:
    values = [[i, i % 2 == 0] for i in range(9)]
    tree = StandardMerkleTree.of(values, ["uint256", "bool"])
    assert all(tree.proof(v) == tree.proof(i) for i, v in enumerate(values))


def test_a_tree_of_no_values_is_refused() -> None:
    with pytest.raises(EmptyTreeError):
        StandardMerkleTree.of([], ["uint256"])


def test_proof_of_an_unknown_value_raises_leaf_not_in_tree() -> None:
    tree = StandardMerkleTree.of([[1], [2]], ["uint256"])
    with pytest.raises(LeafNotInTreeError):
        tree.proof([3])


@pytest.mark.parametrize("index", [2, -1])
def test_proof_of_an_index_out_of_range_raises_leaf_index_error(index: int) -> None:
    tree = StandardMerkleTree.of([[1], [2]], ["uint256"])
    with pytest.raises(LeafIndexError):
        tree.proof(index)


@pytest.mark.parametrize(
    ("types", "value"),
    [
        (["uint8"], [256]),
        (["uint8"], [-1]),
        (["int8"], [128]),
        (["bool"], [1]),
        (["address"], ["0x12"]),
        (["address"], ["0x9E120061cf003fB75E0eBD8c08E8438209C25791"]),  # bad checksum
        (["bytes4"], [b"12345"]),
        (["uint256", "bool"], [1]),
        (["uint256"], ["twelve"]),
        (["string"], [5]),
        (["uint256[]"], [["x"]]),
    ],
)
def test_a_value_that_does_not_fit_the_encoding_raises_leaf_value_error(
    types: list[str], value: list[Any]
) -> None:
    with pytest.raises(LeafValueError):
        StandardMerkleTree.of([value], types)


@pytest.mark.parametrize("types", [[], ["uint7"], ["bytes33"], ["notatype"]])
def test_an_invalid_leaf_encoding_raises_leaf_encoding_error(types: list[str]) -> None:
    with pytest.raises(LeafEncodingError):
        StandardMerkleTree.of([[1]], types)


def _tamper(dump: dict[str, Any], path: str) -> dict[str, Any]:
    bad = copy.deepcopy(dump)
    if path == "format":
        bad["format"] = "simple-v1"
    elif path == "node":
        bad["tree"][1] = "0x" + "00" * 32
    elif path == "leaf":
        bad["tree"][-1] = "0x" + "00" * 32
    elif path == "value":
        bad["values"][0]["value"][1] = "999"
    elif path == "treeIndex":
        bad["values"][0]["treeIndex"] = 0
    elif path == "short node":
        bad["tree"][0] = "0x1234"
    return bad


@pytest.mark.parametrize("path", ["format", "node", "leaf", "value", "treeIndex", "short node"])
def test_load_rejects_a_tampered_dump(path: str) -> None:
    dump = OZ_TREES["OpenZeppelin README example"]["dump"]
    with pytest.raises(InvalidTreeDumpError):
        StandardMerkleTree.load(_tamper(dump, path))


def test_proof_of_a_repeated_value_is_that_of_its_last_copy_like_js() -> None:
    values = [[1], [2], [1]]
    tree = StandardMerkleTree.of(values, ["uint256"])
    assert tree.proof([1]) == tree.proof(2)


def test_repeated_values_keep_input_order_like_js_stable_sort() -> None:
    oz = OZ_TREES["thirteen static leaves of mixed types, one repeated"]
    tree = StandardMerkleTree.of(oz["values"], oz["leafEncoding"])
    assert [v["treeIndex"] for v in tree.dump()["values"]] == [
        v["treeIndex"] for v in oz["dump"]["values"]
    ]
