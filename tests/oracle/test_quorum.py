"""Oracle signers check the content before signing; the quorum tolerates down and refusing ones."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_utils import keccak

from oracle.anchoring import BatchHeader, batch_digest
from oracle.quorum import (
    BatchRefused,
    OracleSigner,
    Quorum,
    QuorumNotReached,
    RemoteSigner,
    build_content,
    leaf_of_row,
    wire_form,
)
from protocol.blobstore import LocalCidStore
from protocol.bundle import Bundle, encode_signed_bundle, sign_bundle
from protocol.crypto import private_key_to_address, recover_address
from protocol.eip712 import dimo_domain

T0 = 1_767_225_600_000
DOMAIN = dimo_domain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")
ORACLE_KEYS = [keccak(f"oracle-{i}".encode()) for i in range(3)]
ROOT = Path(__file__).resolve().parents[2]


def make_batch(
    store: LocalCidStore, n: int = 4, batch_id: int = 1, break_signature: bool = False
) -> tuple[BatchHeader, bytes]:
    wires, leaves = [], []
    for i in range(n):
        key = keccak(f"quorum-device-{i % 2}".encode())
        bundle = Bundle(
            private_key_to_address(key),
            7,
            i,
            T0 + 1000 * i,
            T0 + 1000 * (i + 1),
            {"Vehicle.Speed": [(T0 + 1000 * i, float(i))]},
        )
        signed = sign_bundle(bundle, key, DOMAIN)
        signature = signed.signature
        if break_signature and i == 1:
            signature = sign_bundle(bundle, keccak(b"someone else"), DOMAIN).signature
        wires.append(wire_form(bundle.encoding, signature))
        assert wires[-1] == encode_signed_bundle(replace(signed, signature=signature))
        leaves.append(
            leaf_of_row(
                bundle.device,
                7,
                i,
                bundle.window_start,
                bundle.window_end,
                bundle.data_hash,
                signature,
            )
        )
    content, tree = build_content(batch_id, wires, leaves)
    cid = store.put(content)
    header = BatchHeader(batch_id, tree.root, cid, n, T0, T0 + 1000 * n)
    return header, content


@pytest.fixture
def store(tmp_path: Path) -> LocalCidStore:
    return LocalCidStore(tmp_path / "blobs")


def test_a_signer_signs_the_eip712_digest_of_a_batch_its_content_rebuilds(
    store: LocalCidStore,
) -> None:
    header, content = make_batch(store)
    signer = OracleSigner(ORACLE_KEYS[0], DOMAIN)
    signature = signer.sign_batch(header, content)
    assert recover_address(batch_digest(header, DOMAIN), signature) == signer.address


@pytest.mark.parametrize(
    "change",
    [
        {"root": keccak(b"another root")},
        {"count": 5},
        {"window_end": T0 + 1},
        {"id": 2},
        {"cid": "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"},
    ],
)
def test_a_signer_refuses_a_header_the_content_does_not_rebuild(
    store: LocalCidStore, change: dict[str, Any]
) -> None:
    header, content = make_batch(store)
    with pytest.raises(BatchRefused):
        OracleSigner(ORACLE_KEYS[0], DOMAIN).sign_batch(replace(header, **change), content)


def test_a_signer_refuses_a_bundle_its_device_did_not_sign(store: LocalCidStore) -> None:
    header, content = make_batch(store, break_signature=True)
    with pytest.raises(BatchRefused, match="bundle 1 is invalid"):
        OracleSigner(ORACLE_KEYS[0], DOMAIN).sign_batch(header, content)


def test_the_quorum_sorts_signatures_by_signer_and_skips_down_and_refusing_signers(
    store: LocalCidStore,
) -> None:
    header, content = make_batch(store)

    class Refusing(OracleSigner):
        def sign_batch(self, header: BatchHeader, content: bytes) -> bytes:
            raise BatchRefused(header.id, "test refusal")

    signers = [OracleSigner(k, DOMAIN) for k in ORACLE_KEYS]
    oracle_set = [s.address for s in signers]
    quorum = Quorum(
        [
            signers[2],
            RemoteSigner("http://127.0.0.1:9", 1.0),
            Refusing(ORACLE_KEYS[1], DOMAIN),
            signers[0],
        ],
        oracle_set,
        2,
        DOMAIN,
    )
    sigs = quorum.collect(header, content)
    digest = batch_digest(header, DOMAIN)
    who = [recover_address(digest, sigs[i : i + 65]) for i in range(0, len(sigs), 65)]
    assert who == sorted([signers[0].address, signers[2].address], key=lambda a: int(a, 16))
    with pytest.raises(QuorumNotReached):
        Quorum(signers[:1], oracle_set, 2, DOMAIN).collect(header, content)


def test_the_quorum_asks_only_as_many_signers_as_signatures_are_missing(
    store: LocalCidStore,
) -> None:
    header, content = make_batch(store)
    asked: list[str] = []

    class Counting(OracleSigner):
        def sign_batch(self, header: BatchHeader, content: bytes) -> bytes:
            asked.append(self.address)
            return super().sign_batch(header, content)

    class Refusing(OracleSigner):
        def sign_batch(self, header: BatchHeader, content: bytes) -> bytes:
            asked.append(self.address)
            raise BatchRefused(header.id, "test refusal")

    signers = [Counting(k, DOMAIN) for k in ORACLE_KEYS]
    oracle_set = [s.address for s in signers]
    loads: list[int] = []

    def load() -> bytes:  # the batch document, loaded once for both local signers
        loads.append(1)
        return content

    Quorum(signers, oracle_set, 2, DOMAIN).collect(header, load)
    assert len(loads) == 1
    # Every signer re-checks the whole batch: the third is spared. The first one asked
    # rotates with the batch id, so that the work is shared.
    assert len(asked) == 2
    assert signers[header.id % 3].address in asked
    # The signer asked first refuses: the third is asked, and the quorum is still met.
    asked.clear()
    order = list(signers)
    order[header.id % 3] = Refusing(ORACLE_KEYS[header.id % 3], DOMAIN)
    sigs = Quorum(order, oracle_set, 2, DOMAIN).collect(header, content)
    digest = batch_digest(header, DOMAIN)
    who = {recover_address(digest, sigs[i : i + 65]) for i in range(0, len(sigs), 65)}
    assert who == {s.address for i, s in enumerate(signers) if i != header.id % 3}
    assert sorted(asked) == sorted(oracle_set)


def test_the_quorum_ignores_signatures_of_keys_outside_the_oracle_set(
    store: LocalCidStore,
) -> None:
    header, content = make_batch(store)
    outsider = OracleSigner(keccak(b"not an oracle"), DOMAIN)
    insider = OracleSigner(ORACLE_KEYS[0], DOMAIN)
    with pytest.raises(QuorumNotReached):
        Quorum([outsider, insider], [insider.address], 2, DOMAIN).collect(header, content)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_remote_signer_fetches_the_content_by_cid_and_refuses_a_wrong_root(
    store: LocalCidStore, tmp_path: Path, deployment_record: Path
) -> None:
    from protocol.deployment import Deployment

    record = Deployment.load(deployment_record)
    domain = dimo_domain(record.chain_id, record.contract("AttestationAnchor").address)
    global DOMAIN
    saved, DOMAIN = DOMAIN, domain
    try:
        header, _content = make_batch(store)
    finally:
        DOMAIN = saved
    port = _free_port()
    env = {
        **os.environ,
        "ORACLE_TEST_KEY": "0x" + ORACLE_KEYS[1].hex(),
        "DIMO_ORACLE_BLOB_DIR": str(store.root),
        "DIMO_ORACLE_DEPLOYMENT": str(deployment_record),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "oracle.cli",
            "signer",
            "--key-env",
            "ORACLE_TEST_KEY",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url + "/healthz", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline
                time.sleep(0.2)
        remote = RemoteSigner(url)
        signature = remote.sign_batch(header, b"")
        expected = private_key_to_address(ORACLE_KEYS[1])
        assert recover_address(batch_digest(header, domain), signature) == expected
        with pytest.raises(BatchRefused, match="root"):
            remote.sign_batch(replace(header, root=keccak(b"forged")), b"")

        def never() -> bytes:  # a remote signer fetches the content by CID itself
            raise AssertionError("the batch document was loaded for a remote signer")

        quorum = Quorum([remote], [expected], 1, domain)
        assert recover_address(batch_digest(header, domain), quorum.collect(header, never)) == (
            expected
        )
    finally:
        proc.terminate()
        proc.wait(10)
