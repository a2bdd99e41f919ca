"""Blob stores keep files under the CIDs Kubo gives them and hand back only verified bytes."""

from __future__ import annotations

import os
import random
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.blobstore import (
    BlobCidMismatch,
    BlobCorrupted,
    BlobNotFound,
    BlobStore,
    BlobStoreRejected,
    BlobStoreTimeout,
    BlobStoreUnreachable,
    BlobUnsupported,
    KuboRpcStore,
    LocalCidStore,
)
from protocol.cid import CHUNK_SIZE, Cid, InvalidCid, PbNode, UnixFsData, UnixFsType, compute_cid

ABSENT = compute_cid(b"never stored anywhere", cid_version=1)


def sample(size: int) -> bytes:
    """Deterministic pseudo-random content of `size` bytes."""
    return random.Random(size).randbytes(size)


def block_files(store: LocalCidStore) -> list[Path]:
    return sorted(path for path in (store.root / "blocks").rglob("*") if path.is_file())


@pytest.fixture
def store(tmp_path: Path) -> LocalCidStore:
    return LocalCidStore(tmp_path / "blobs")


# ---------------------------------------------------------------- LocalCidStore


def test_both_stores_satisfy_the_blob_store_protocol(store: LocalCidStore) -> None:
    assert isinstance(store, BlobStore)
    with KuboRpcStore("http://127.0.0.1:9") as kubo:
        assert isinstance(kubo, BlobStore)


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(max_size=3000),
    version=st.sampled_from([0, 1]),
    chunk_size=st.integers(min_value=1, max_value=300),
    max_links=st.integers(min_value=2, max_value=5),
)
def test_put_then_get_returns_the_same_bytes_under_kubos_cid(
    data: bytes, version: int, chunk_size: int, max_links: int
) -> None:
    with tempfile.TemporaryDirectory() as root:
        store = LocalCidStore(
            Path(root),
            cid_version=version,  # type: ignore[arg-type]
            chunk_size=chunk_size,
            max_links=max_links,
        )
        cid = store.put(data)
        assert store.has(cid)
        assert store.get(cid) == data


def test_put_returns_the_cid_kubo_prints(store: LocalCidStore, tmp_path: Path) -> None:
    data = sample(2 * CHUNK_SIZE + 5)
    assert store.put(data) == compute_cid(data, cid_version=1)
    assert LocalCidStore(tmp_path / "v0", cid_version=0).put(data) == compute_cid(data)


def test_the_empty_file_round_trips(store: LocalCidStore) -> None:
    assert store.get(store.put(b"")) == b""


def test_each_block_is_stored_under_its_own_cid(store: LocalCidStore) -> None:
    store.put(sample(3 * CHUNK_SIZE))
    files = block_files(store)
    assert len(files) == 4  # three raw leaves and their root
    assert all(Cid.parse(path.name).matches(path.read_bytes()) for path in files)


def test_putting_the_same_bytes_twice_stores_nothing_new(store: LocalCidStore) -> None:
    data = sample(CHUNK_SIZE + 1)
    assert store.put(data) == store.put(data)
    assert len(block_files(store)) == 3


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(min_size=1, max_size=2000), pick=st.integers(min_value=0), flip=st.data())
def test_a_tampered_block_makes_get_raise_blob_corrupted(
    data: bytes, pick: int, flip: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as root:
        store = LocalCidStore(Path(root), chunk_size=100, max_links=3)
        cid = store.put(data)
        files = block_files(store)
        victim = files[pick % len(files)]
        content = bytearray(victim.read_bytes())
        position = flip.draw(st.integers(min_value=0, max_value=len(content) - 1))
        content[position] ^= 0x01
        victim.write_bytes(bytes(content))
        with pytest.raises(BlobCorrupted) as raised:
            store.get(cid)
        assert raised.value.block == victim.name


def test_a_truncated_block_makes_get_raise_blob_corrupted(store: LocalCidStore) -> None:
    cid = store.put(sample(CHUNK_SIZE))
    (victim,) = block_files(store)
    victim.write_bytes(victim.read_bytes()[:-1])
    with pytest.raises(BlobCorrupted):
        store.get(cid)


def test_get_of_an_absent_cid_raises_blob_not_found(store: LocalCidStore) -> None:
    assert not store.has(ABSENT)
    with pytest.raises(BlobNotFound) as raised:
        store.get(ABSENT)
    assert isinstance(raised.value, LookupError)
    assert raised.value.cid == ABSENT


def test_get_with_a_missing_leaf_raises_blob_not_found_naming_it(store: LocalCidStore) -> None:
    cid = store.put(sample(CHUNK_SIZE + 1))
    leaf = next(path for path in block_files(store) if path.name != cid)
    leaf.unlink()
    with pytest.raises(BlobNotFound) as raised:
        store.get(cid)
    assert raised.value.missing == leaf.name


def test_get_of_a_directory_raises_blob_unsupported(store: LocalCidStore) -> None:
    directory = PbNode(data=UnixFsData(UnixFsType.DIRECTORY).encode()).encode()
    cid = Cid.of_block(directory, version=1, codec=0x70)
    path = store.block_path(cid)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(directory)
    with pytest.raises(BlobUnsupported):
        store.get(str(cid))


def test_get_of_a_string_that_is_no_cid_raises_invalid_cid(store: LocalCidStore) -> None:
    with pytest.raises(InvalidCid):
        store.get("not-a-cid")


def test_a_crash_while_writing_the_root_leaves_no_partial_block(
    store: LocalCidStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = sample(CHUNK_SIZE + 1)
    cid = compute_cid(data, cid_version=1)
    real_replace = os.replace

    def crash_on_root(src: str, dst: os.PathLike[str]) -> None:
        if Path(dst).name == cid:
            raise OSError("simulated crash")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_root)
    with pytest.raises(OSError, match="simulated crash"):
        store.put(data)
    assert not store.has(cid)
    assert not [path for path in (store.root / "blocks").rglob(".tmp-*")]
    monkeypatch.undo()
    assert store.put(data) == cid
    assert store.get(cid) == data


def test_pin_records_a_complete_file(store: LocalCidStore) -> None:
    cid = store.put(sample(CHUNK_SIZE + 1))
    store.pin(cid)
    assert store.is_pinned(cid)


def test_pin_of_an_absent_cid_raises_blob_not_found(store: LocalCidStore) -> None:
    with pytest.raises(BlobNotFound):
        store.pin(ABSENT)
    assert not store.is_pinned(ABSENT)


# ---------------------------------------------------------------- KuboRpcStore, no node


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_a_node_that_is_not_running_raises_unreachable() -> None:
    kubo = KuboRpcStore(f"http://127.0.0.1:{_closed_port()}", timeout=2)
    with kubo, pytest.raises(BlobStoreUnreachable) as raised:
        kubo.put(b"data")
    assert isinstance(raised.value, ConnectionError)


def _mock_store(handler: httpx.MockTransport) -> KuboRpcStore:
    client = httpx.Client(base_url="http://kubo.test", transport=handler)
    return KuboRpcStore("http://kubo.test", timeout=1, client=client)


def test_a_node_that_does_not_answer_in_time_raises_timeout() -> None:
    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    with pytest.raises(BlobStoreTimeout) as raised:
        _mock_store(httpx.MockTransport(hang)).get(ABSENT)
    assert isinstance(raised.value, TimeoutError)


def test_a_node_returning_another_cid_raises_cid_mismatch() -> None:
    other = compute_cid(b"something else", cid_version=1)

    def lie(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=f'{{"Name":"blob","Hash":"{other}","Size":"4"}}\n')

    with pytest.raises(BlobCidMismatch) as raised:
        _mock_store(httpx.MockTransport(lie)).put(b"data")
    assert raised.value.returned == other


def test_a_node_serving_other_bytes_raises_blob_corrupted() -> None:
    cid = compute_cid(b"data", cid_version=1)

    def lie(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"DATA")

    with pytest.raises(BlobCorrupted):
        _mock_store(httpx.MockTransport(lie)).get(cid)


def test_a_node_error_that_is_no_lookup_failure_raises_rejected() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, json={"Message": "repo is read-only", "Code": 0})

    with pytest.raises(BlobStoreRejected, match="read-only"):
        _mock_store(httpx.MockTransport(refuse)).put(b"data")


# ---------------------------------------------------------------- KuboRpcStore, real node


@pytest.fixture
def kubo(jsipfs_api: str) -> Iterator[KuboRpcStore]:
    with KuboRpcStore(jsipfs_api, timeout=60, find_timeout=1.0) as store:
        yield store


@pytest.mark.slow
@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE, 3 * CHUNK_SIZE + 11])
def test_the_node_stores_bytes_under_the_local_cid_and_serves_them_back(
    size: int, kubo: KuboRpcStore, store: LocalCidStore
) -> None:
    data = sample(size)
    cid = kubo.put(data)
    assert cid == store.put(data)
    assert kubo.has(cid)
    assert kubo.get(cid) == data
    kubo.pin(cid)


@pytest.mark.slow
def test_the_node_in_cidv0_mode_agrees_with_kubos_default(jsipfs_api: str) -> None:
    data = sample(2 * CHUNK_SIZE)
    with KuboRpcStore(jsipfs_api, timeout=60, find_timeout=1.0, cid_version=0) as kubo:
        cid = kubo.put(data)
        assert cid == compute_cid(data)
        assert kubo.get(cid) == data


@pytest.mark.slow
def test_the_node_reports_an_absent_cid_as_not_found(kubo: KuboRpcStore) -> None:
    assert not kubo.has(ABSENT)
    with pytest.raises(BlobNotFound):
        kubo.get(ABSENT)
    with pytest.raises(BlobNotFound):
        kubo.pin(ABSENT)
