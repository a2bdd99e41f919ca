"""The generic certification endpoint: a statement is signed by every local oracle signer only
after its kind's checker recomputed it; unknown kinds, refusals and malformed bodies are
problems."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from eth_utils import keccak
from fastapi import FastAPI
from fastapi.testclient import TestClient

from oracle.certify import (
    CheckerUnavailable,
    StatementMalformed,
    StatementRefused,
    add_certify_routes,
)
from oracle.quorum import OracleSigner
from protocol.crypto import private_key_to_address, recover_address
from protocol.eip712 import dimo_domain, type_hash

PROBLEMS = "https://dimo.local/problems/"
DOMAIN = dimo_domain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")
KEYS = [keccak(f"certify-oracle-{i}".encode()) for i in range(3)]
SUM_TYPEHASH = type_hash("Sum(uint256 a,uint256 b,uint256 total)")


def sum_checker(request: Mapping[str, Any]) -> bytes:
    """A statement kind of its own: `total` is `a + b`, recomputed before it is signed."""
    try:
        a, b, total = (int(request[k]) for k in ("a", "b", "total"))
    except (KeyError, TypeError, ValueError) as exc:
        raise StatementMalformed("sum", f"needs integers a, b, total: {exc}") from None
    if a < 0 or b < 0:
        raise CheckerUnavailable("sum", "negative terms are not handled by this checker")
    if a + b != total:
        raise StatementRefused("sum", f"{a} + {b} is {a + b}, not {total}")
    words = b"".join(x.to_bytes(32, "big") for x in (a, b, total))
    return DOMAIN.digest(keccak(SUM_TYPEHASH + words))


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = FastAPI()
    add_certify_routes(app, [OracleSigner(k, DOMAIN) for k in KEYS], {"sum": sum_checker})
    with TestClient(app) as c:
        yield c


def assert_problem(r: Any, status: int, reason: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["type"] == PROBLEMS + reason
    assert body["status"] == status
    return body


def test_a_checked_statement_is_signed_by_every_signer_in_ascending_signer_order(
    client: TestClient,
) -> None:
    r = client.post("/v1/certify/sum", json={"a": 2, "b": 3, "total": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    digest = sum_checker({"a": 2, "b": 3, "total": 5})
    assert body["kind"] == "sum"
    assert body["digest"] == "0x" + digest.hex()
    signers = [s["signer"] for s in body["signatures"]]
    expected = sorted((private_key_to_address(k) for k in KEYS), key=lambda a: int(a, 16))
    assert signers == expected
    for item in body["signatures"]:
        assert recover_address(digest, bytes.fromhex(item["signature"][2:])) == item["signer"]
    info = client.get("/v1/certify").json()
    assert info == {"kinds": ["sum"], "signers": expected}


def test_a_statement_the_checker_refuses_is_a_422_problem_and_signed_by_no_one(
    client: TestClient,
) -> None:
    r = client.post("/v1/certify/sum", json={"a": 2, "b": 3, "total": 6})
    body = assert_problem(r, 422, "statement-refused")
    assert body["refusal"] == "2 + 3 is 5, not 6"
    assert "signatures" not in body


def test_an_unknown_statement_kind_is_a_404_problem(client: TestClient) -> None:
    r = client.post("/v1/certify/battery", json={"a": 2, "b": 3, "total": 5})
    body = assert_problem(r, 404, "unknown-statement-kind")
    assert "sum" in body["detail"]


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[1, 2, 3]", b'{"a": 2, "b": 3}', b'{"a": "two", "b": 3, "total": 5}'],
    ids=["not-json", "not-an-object", "missing-field", "wrong-type"],
)
def test_a_malformed_body_is_a_400_problem(client: TestClient, content: bytes) -> None:
    r = client.post(
        "/v1/certify/sum", content=content, headers={"content-type": "application/json"}
    )
    assert_problem(r, 400, "malformed-request")


def test_a_checker_that_cannot_reach_its_data_is_a_503_problem(client: TestClient) -> None:
    r = client.post("/v1/certify/sum", json={"a": -1, "b": 3, "total": 2})
    assert_problem(r, 503, "checker-unavailable")
