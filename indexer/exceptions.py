"""Errors of the indexer: one root, each subclass carrying its context and its fix."""

from __future__ import annotations

from typing import Any, ClassVar

from protocol.problems import PROBLEM_BASE


class IndexerError(Exception):
    """Root of every error raised by `indexer`."""


class IndexerConfigError(IndexerError, ValueError):
    """Settings or a deployment record that the indexer cannot run with."""

    def __init__(self, setting: str, reason: str) -> None:
        self.setting = setting
        self.reason = reason
        super().__init__(f"invalid indexer setting {setting}: {reason}")


# --------------------------------------------------------------------------------------------
# Chain sync
# --------------------------------------------------------------------------------------------


class ChainUnavailableError(IndexerError, ConnectionError):
    """The chain's JSON-RPC endpoint did not answer or answered with an error."""

    def __init__(self, rpc_url: str, reason: str) -> None:
        self.rpc_url = rpc_url
        self.reason = reason
        super().__init__(
            f"chain RPC {rpc_url} failed: {reason}; check that the node is up and "
            "DIMO_INDEXER_RPC_URL points at it"
        )


class LogRangeError(IndexerError, RuntimeError):
    """`eth_getLogs` kept failing even over the smallest block range."""

    def __init__(self, from_block: int, to_block: int, reason: str) -> None:
        self.from_block = from_block
        self.to_block = to_block
        self.reason = reason
        super().__init__(
            f"eth_getLogs over blocks {from_block}..{to_block} failed: {reason}; check the "
            "provider's limits or lower DIMO_INDEXER_MIN_RANGE / DIMO_INDEXER_INITIAL_RANGE"
        )


class ReorgTooDeepError(IndexerError, RuntimeError):
    """A reorg reached past every block hash the indexer keeps; no fork point was found."""

    def __init__(self, oldest_kept: int, window: int) -> None:
        self.oldest_kept = oldest_kept
        self.window = window
        super().__init__(
            f"reorg deeper than the {window} kept block hashes (oldest kept block "
            f"{oldest_kept}); raise DIMO_INDEXER_REORG_WINDOW or DIMO_INDEXER_CONFIRMATIONS "
            "and resync from scratch"
        )


class DeploymentMismatchError(IndexerError, ValueError):
    """The database was indexed from another deployment (chain id or addresses differ)."""

    def __init__(self, stored: str, given: str) -> None:
        self.stored = stored
        self.given = given
        super().__init__(
            f"database indexed deployment {stored} but {given} was given; point "
            "DIMO_INDEXER_DATABASE_URL at a fresh database or the matching deployment"
        )


# --------------------------------------------------------------------------------------------
# API: every error the API answers with is an RFC 9457 problem with a stable `type`
# --------------------------------------------------------------------------------------------

#: Prefix of every problem `type` URI; the slug after it never changes meaning.


class ApiProblem(IndexerError):
    """An error the API answers with an RFC 9457 problem (`indexer.api.problems` renders it).

    Subclasses fix `slug` (the stable part of the `type` URI), `status` and `title`;
    `detail` says what was wrong and how to fix it, `context` adds extension members.
    """

    slug: ClassVar[str] = "bad-request"
    status: ClassVar[int] = 400
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str, **context: Any) -> None:
        self.detail = detail
        self.context = context
        super().__init__(f"{self.slug}: {detail}")

    @property
    def type_uri(self) -> str:
        """The problem `type` URI, stable per class."""
        return PROBLEM_BASE + self.slug

    def problem(self) -> dict[str, Any]:
        """The RFC 9457 problem details object (without `instance`)."""
        return {
            "type": self.type_uri,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            **self.context,
        }


class MalformedSiweMessage(ApiProblem, ValueError):
    """The login message is not an EIP-4361 message (a line missing, a field malformed)."""

    slug = "siwe-malformed-message"
    status = 400
    title = "Malformed Sign-In with Ethereum message"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(
            f"{reason}; build the message as EIP-4361 specifies (e.g. with the siwe package) "
            "and send it unchanged"
        )


class SiweRejected(ApiProblem, PermissionError):
    """A well-formed login message this API does not accept (401)."""

    slug = "siwe-rejected"
    status = 401
    title = "Sign-in rejected"


class SiweDomainMismatch(SiweRejected):
    """The message names another domain (or scheme) than this API's."""

    slug = "siwe-domain-mismatch"
    title = "Sign-in message for another domain"

    def __init__(self, expected: str, got: str) -> None:
        self.expected = expected
        self.got = got
        super().__init__(
            f"the message is for domain {got!r}, this API is {expected!r}; sign a message for "
            "this API's domain",
            expected=expected,
        )


class SiweUriMismatch(SiweRejected):
    """The message's URI is not the one this API accepts."""

    slug = "siwe-uri-mismatch"
    title = "Sign-in message for another URI"

    def __init__(self, expected: str, got: str) -> None:
        self.expected = expected
        self.got = got
        super().__init__(
            f"the message's URI is {got!r}, this API accepts {expected!r}; sign a message with "
            "that URI",
            expected=expected,
        )


class SiweChainMismatch(SiweRejected):
    """The message is bound to another chain than the deployment's."""

    slug = "siwe-chain-mismatch"
    title = "Sign-in message for another chain"

    def __init__(self, expected: int, got: int) -> None:
        self.expected = expected
        self.got = got
        super().__init__(
            f"the message is for chain {got}, this API indexes chain {expected}; switch the "
            "wallet to that chain and sign again",
            expected=expected,
        )


class SiweUnknownNonce(SiweRejected, LookupError):
    """The message's nonce was never issued by `GET /auth/nonce`."""

    slug = "siwe-unknown-nonce"
    title = "Unknown sign-in nonce"

    def __init__(self, nonce: str) -> None:
        self.nonce = nonce
        super().__init__(
            f"nonce {nonce!r} was not issued by this API; get one from GET /auth/nonce"
        )


class SiweNonceReused(SiweRejected):
    """The message's nonce was already used for a login."""

    slug = "siwe-nonce-reused"
    title = "Sign-in nonce already used"

    def __init__(self, nonce: str) -> None:
        self.nonce = nonce
        super().__init__(
            f"nonce {nonce!r} was already used; each login needs a fresh nonce from GET /auth/nonce"
        )


class SiweNonceExpired(SiweRejected):
    """The message's nonce was issued too long ago."""

    slug = "siwe-nonce-expired"
    title = "Sign-in nonce expired"

    def __init__(self, nonce: str, ttl_s: int) -> None:
        self.nonce = nonce
        self.ttl_s = ttl_s
        super().__init__(
            f"nonce {nonce!r} is older than {ttl_s} s; get a fresh one from GET /auth/nonce "
            "and sign again"
        )


class SiweMessageExpired(SiweRejected):
    """The message's Expiration Time has passed."""

    slug = "siwe-message-expired"
    title = "Sign-in message expired"

    def __init__(self, expiration_time: str) -> None:
        self.expiration_time = expiration_time
        super().__init__(
            f"the message expired at {expiration_time}; sign a new message",
            expiration_time=expiration_time,
        )


class SiweMessageNotYetValid(SiweRejected):
    """The message's Not Before (or Issued At) time is still in the future."""

    slug = "siwe-message-not-yet-valid"
    title = "Sign-in message not yet valid"

    def __init__(self, field: str, when: str) -> None:
        self.field = field
        self.when = when
        super().__init__(
            f"the message's {field} is {when}, in the future; check the wallet's clock or wait",
            valid_from=when,
        )


class SiweBadSignature(SiweRejected):
    """The signature does not recover (EIP-191) to the message's address."""

    slug = "siwe-bad-signature"
    title = "Bad sign-in signature"

    def __init__(self, address: str, reason: str) -> None:
        self.address = address
        self.reason = reason
        super().__init__(
            f"{reason}; sign the exact message text with personal_sign (EIP-191) using the key "
            f"of {address}",
        )


class TokenRejected(ApiProblem, PermissionError):
    """No usable bearer token on a route that needs one (401)."""

    slug = "token-missing"
    status = 401
    title = "Authentication required"

    def __init__(self, detail: str = "") -> None:
        super().__init__(
            detail
            or "this route needs `Authorization: Bearer <token>`; sign in with POST /auth/login"
        )


class InvalidToken(TokenRejected, ValueError):
    """The bearer token is not a JWT this API issued (bad format, algorithm or signature)."""

    slug = "token-invalid"
    title = "Invalid access token"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"{reason}; sign in again with POST /auth/login")


class TokenExpired(TokenRejected):
    """The bearer token's `exp` has passed."""

    slug = "token-expired"
    title = "Access token expired"

    def __init__(self, expired_at: int) -> None:
        self.expired_at = expired_at
        super().__init__(
            f"the token expired at unix time {expired_at}; refresh it with POST /auth/refresh "
            "before it expires, or sign in again"
        )


class SessionTooOld(TokenRejected):
    """A refresh was asked for a session signed in longer ago than the session limit."""

    slug = "session-expired"
    title = "Session too old to refresh"

    def __init__(self, auth_time: int, max_s: int) -> None:
        self.auth_time = auth_time
        self.max_s = max_s
        super().__init__(
            f"the session began at unix time {auth_time}, more than {max_s} s ago; sign in "
            "again with POST /auth/login"
        )


class RateLimited(ApiProblem):
    """The caller used up its requests for the current window (429)."""

    slug = "rate-limited"
    status = 429
    title = "Too many requests"

    def __init__(self, limit: int, retry_after_s: int) -> None:
        self.limit = limit
        self.retry_after_s = retry_after_s
        super().__init__(
            f"at most {limit} requests a minute per caller; retry after {retry_after_s} s",
            retry_after=retry_after_s,
        )


# --------------------------------------------------------------------------------------------
# Verified telemetry (batch loader, telemetry queries)
# --------------------------------------------------------------------------------------------


class BatchContentUnavailable(IndexerError, ConnectionError):
    """The blob store could not serve an anchored batch's content now; the batch is undecided."""

    def __init__(self, batch_id: int, cid: str, reason: str) -> None:
        self.batch_id = batch_id
        self.cid = cid
        self.reason = reason
        super().__init__(
            f"batch {batch_id}: content {cid} could not be fetched: {reason}; check that the "
            "blob store (DIMO_INDEXER_BLOB_DIR or DIMO_INDEXER_KUBO_URL) holds it and is up, "
            "then retry"
        )


class InvalidTelemetryQuery(IndexerError, ValueError):
    """A telemetry query with a bad argument (time range, interval, aggregation, limit)."""

    def __init__(self, argument: str, reason: str) -> None:
        self.argument = argument
        self.reason = reason
        super().__init__(f"invalid telemetry query argument {argument}: {reason}")


class ReadingNotFound(IndexerError, LookupError):
    """No served reading matches; it may be in a rejected batch or not indexed yet."""

    def __init__(self, vehicle_id: int, signal: str, ts: int) -> None:
        self.vehicle_id = vehicle_id
        self.signal = signal
        self.ts = ts
        super().__init__(
            f"no verified reading of {signal} for vehicle {vehicle_id} at {ts} ms; query the "
            "vehicle's signals for a reading that exists (rejected batches serve nothing)"
        )
