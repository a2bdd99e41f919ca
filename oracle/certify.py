"""Statement certification: the oracle's signers sign a statement only after a checker has
recomputed it from verified data.

The oracle knows no kind of statement. Whoever serves the signers (the stack) injects, per
kind, a `StatementChecker`: given the request JSON it recomputes the statement from anchored,
signed data and returns the EIP-712 digest to sign, or raises `StatementRefused` saying why.
`add_certify_routes` puts `POST /v1/certify/{kind}` on a FastAPI app; its answer holds the
signature of every local signer, in ascending signer order, with the signer addresses::

    {"kind": "battery", "digest": "0x..",
     "signatures": [{"signer": "0x..", "signature": "0x.."}, ...]}

Errors are RFC 9457 problems: unknown kind 404 (`unknown-statement-kind`), a body that is not
a JSON object or lacks what the checker needs 400 (`malformed-request`), a refused statement
422 (`statement-refused`), a checker that could not reach its data 503 (`checker-unavailable`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from oracle.exceptions import OracleError
from oracle.quorum import OracleSigner, problem_json

__all__ = [
    "CERTIFY_PATH",
    "Certification",
    "CheckerUnavailable",
    "StatementChecker",
    "StatementMalformed",
    "StatementRefused",
    "UnknownStatementKind",
    "add_certify_routes",
    "certify",
]

log = logging.getLogger(__name__)

#: Path prefix of the certification routes; `POST {CERTIFY_PATH}/{kind}` certifies.
CERTIFY_PATH = "/v1/certify"


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class UnknownStatementKind(OracleError, LookupError):
    """No checker is configured for the statement kind asked for."""

    def __init__(self, kind: str, known: Sequence[str]) -> None:
        self.kind = kind
        self.known = list(known)
        super().__init__(
            f"no checker certifies {kind!r} statements here; known kinds: "
            f"{', '.join(self.known) or 'none'}"
        )


class StatementMalformed(OracleError, ValueError):
    """The request does not carry a statement the checker can read."""

    def __init__(self, kind: str, reason: str) -> None:
        self.kind = kind
        self.reason = reason
        super().__init__(f"malformed {kind} certification request: {reason}")


class StatementRefused(OracleError, ValueError):
    """The checker recomputed the statement from verified data and it differs, or the data
    does not support it: no signer signs it."""

    def __init__(self, kind: str, reason: str) -> None:
        self.kind = kind
        self.reason = reason
        super().__init__(
            f"refusing to sign the {kind} statement: {reason}; ask for the statement the "
            "verified data supports"
        )


class CheckerUnavailable(OracleError, ConnectionError):
    """The checker could not reach what it recomputes from (chain, index): try again."""

    def __init__(self, kind: str, reason: str) -> None:
        self.kind = kind
        self.reason = reason
        super().__init__(
            f"cannot check the {kind} statement now: {reason}; check that the chain and the "
            "index the certifier reads are up"
        )


# --------------------------------------------------------------------------------------------
# Checking and signing
# --------------------------------------------------------------------------------------------


class StatementChecker(Protocol):
    """Recomputes a statement from verified data; returns the EIP-712 digest to sign.

    Raises:
        StatementMalformed: the request lacks a field or has one of the wrong type.
        StatementRefused: the statement is not the one the verified data gives.
        CheckerUnavailable: the data could not be reached.
    """

    def __call__(self, request: Mapping[str, Any], /) -> bytes: ...


@dataclass(frozen=True)
class Certification:
    """The local signers' signatures of a checked statement.

    Attributes:
        kind: The statement kind.
        digest: The EIP-712 digest signed.
        signatures: (signer address, 65-byte signature), ascending by signer address.
    """

    kind: str
    digest: bytes
    signatures: tuple[tuple[str, bytes], ...]

    def as_json(self) -> dict[str, Any]:
        """The answer of `POST /v1/certify/{kind}`."""
        return {
            "kind": self.kind,
            "digest": "0x" + self.digest.hex(),
            "signatures": [
                {"signer": who, "signature": "0x" + sig.hex()} for who, sig in self.signatures
            ],
        }


def certify(
    kind: str,
    request: Mapping[str, Any],
    signers: Sequence[OracleSigner],
    checkers: Mapping[str, StatementChecker],
) -> Certification:
    """Checks a statement with its kind's checker, then has every signer sign its digest.

    Raises:
        UnknownStatementKind: no checker for `kind`.
        StatementMalformed: see `StatementChecker`.
        StatementRefused: see `StatementChecker`.
        CheckerUnavailable: see `StatementChecker`, or the checker returned no 32-byte digest.
    """
    checker = checkers.get(kind)
    if checker is None:
        raise UnknownStatementKind(kind, sorted(checkers))
    digest = checker(request)
    if not isinstance(digest, bytes) or len(digest) != 32:
        raise CheckerUnavailable(kind, "the checker returned no 32-byte digest")
    signed = sorted(
        ((s.address, s.sign_checked(digest)) for s in signers),
        key=lambda pair: int(pair[0], 16),
    )
    return Certification(kind, digest, tuple(signed))


# --------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------


def add_certify_routes(
    app: FastAPI, signers: Sequence[OracleSigner], checkers: Mapping[str, StatementChecker]
) -> None:
    """Adds `GET /v1/certify` (kinds and signers) and `POST /v1/certify/{kind}` to `app`.

    Args:
        app: The app to extend.
        signers: The local oracle signers; each signs every statement its checker accepts.
        checkers: Statement kind -> its checker.
    """
    local = list(signers)
    kinds = dict(checkers)

    @app.get(CERTIFY_PATH)
    def certify_info() -> dict[str, Any]:
        """The statement kinds certified here and the signers that sign them."""
        return {
            "kinds": sorted(kinds),
            "signers": sorted((s.address for s in local), key=lambda a: int(a, 16)),
        }

    @app.post(CERTIFY_PATH + "/{kind}", response_model=None)
    async def certify_route(kind: str, request: Request) -> dict[str, Any] | JSONResponse:
        """Checks the statement in the JSON body, then returns every local signature of it."""
        if kind not in kinds:
            return problem_json(
                404, "unknown-statement-kind", str(UnknownStatementKind(kind, sorted(kinds)))
            )
        try:
            body = json.loads(await request.body())
        except ValueError as exc:
            return problem_json(400, "malformed-request", f"the body is not JSON: {exc}")
        if not isinstance(body, dict):
            return problem_json(400, "malformed-request", "the body is not a JSON object")
        try:
            done = await run_in_threadpool(certify, kind, body, local, kinds)
        except StatementMalformed as exc:
            return problem_json(400, "malformed-request", str(exc))
        except StatementRefused as exc:
            log.info("refused a %s statement: %s", kind, exc.reason)
            return problem_json(422, "statement-refused", str(exc), refusal=exc.reason)
        except CheckerUnavailable as exc:
            log.warning("could not check a %s statement: %s", kind, exc.reason)
            return problem_json(503, "checker-unavailable", str(exc))
        return done.as_json()
