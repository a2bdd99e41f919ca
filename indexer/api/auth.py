"""Sign-In with Ethereum (EIP-4361): message parsing, single-use nonces, login, and HS256 JWTs."""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

from sqlalchemy import BigInteger, Column, Connection, String, Table, delete, select, update

from indexer.config import IndexerSettings
from indexer.db import metadata
from indexer.exceptions import (
    InvalidToken,
    MalformedSiweMessage,
    SiweBadSignature,
    SiweChainMismatch,
    SiweDomainMismatch,
    SiweMessageExpired,
    SiweMessageNotYetValid,
    SiweNonceExpired,
    SiweNonceReused,
    SiweUnknownNonce,
    SiweUriMismatch,
    TokenExpired,
)
from protocol.crypto import SignatureError, checksum_address, keccak256, recover_address
from protocol.jwt import CLOCK_SKEW_S, AccessClaims, JwtError, JwtExpired, access_claims, encode_jwt
from protocol.jwt import decode_jwt as _decode_jwt

#: Characters of a nonce from `GET /auth/nonce` (EIP-4361 wants at least 8 alphanumerics).
NONCE_LENGTH: Final = 22
_ALPHANUMERIC: Final = string.ascii_letters + string.digits

# --------------------------------------------------------------------------------------------
# Storage: issued nonces, each usable once
# --------------------------------------------------------------------------------------------

#: Nonces issued by `GET /auth/nonce`; `used_at` is set by the one login that consumes it.
login_nonces = Table(
    "api_login_nonces",
    metadata,
    Column("nonce", String(64), primary_key=True),
    # Unix time in ms the nonce was issued, and past which it is refused.
    Column("issued_at_ms", BigInteger, nullable=False),
    Column("expires_at_ms", BigInteger, nullable=False, index=True),
    # Unix time in ms of the login that used it, and the address that signed in.
    Column("used_at_ms", BigInteger, nullable=True),
    Column("used_by", String(42), nullable=True),
)


@dataclass(frozen=True, slots=True)
class IssuedNonce:
    """A fresh nonce and its validity, in unix seconds."""

    nonce: str
    issued_at: float
    expires_at: float


def issue_nonce(conn: Connection, now: float, ttl_s: int) -> IssuedNonce:
    """Store and return a fresh random nonce; forget nonces that expired over a TTL ago.

    The caller commits `conn`.
    """
    nonce = "".join(secrets.choice(_ALPHANUMERIC) for _ in range(NONCE_LENGTH))
    now_ms = int(now * 1000)
    conn.execute(delete(login_nonces).where(login_nonces.c.expires_at_ms < now_ms - ttl_s * 1000))
    conn.execute(
        login_nonces.insert().values(
            nonce=nonce, issued_at_ms=now_ms, expires_at_ms=now_ms + ttl_s * 1000
        )
    )
    return IssuedNonce(nonce, now, now + ttl_s)


def consume_nonce(conn: Connection, nonce: str, address: str, now: float, ttl_s: int) -> None:
    """Mark `nonce` used by `address`, exactly once across concurrent logins.

    The caller commits `conn`.

    Raises:
        SiweUnknownNonce: never issued (or long forgotten).
        SiweNonceReused: already used by a login.
        SiweNonceExpired: issued more than `ttl_s` ago.
    """
    now_ms = int(now * 1000)
    t = login_nonces.c
    done = conn.execute(
        update(login_nonces)
        .where(t.nonce == nonce, t.used_at_ms.is_(None), t.expires_at_ms > now_ms)
        .values(used_at_ms=now_ms, used_by=address)
    )
    if done.rowcount == 1:
        return
    row = conn.execute(select(t.used_at_ms).where(t.nonce == nonce)).first()
    if row is None:
        raise SiweUnknownNonce(nonce)
    if row.used_at_ms is not None:
        raise SiweNonceReused(nonce)
    raise SiweNonceExpired(nonce, ttl_s)


# --------------------------------------------------------------------------------------------
# EIP-4361 messages
# --------------------------------------------------------------------------------------------

_HEADER_RE: Final = re.compile(
    r"(?:(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://)?(?P<domain>[^\s/?#]+)"
    r" wants you to sign in with your Ethereum account:"
)
_ADDRESS_RE: Final = re.compile(r"0x[0-9a-fA-F]{40}")
_URI_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[^\s]+")
_NONCE_RE: Final = re.compile(r"[A-Za-z0-9]{8,}")
_CHAIN_RE: Final = re.compile(r"[0-9]{1,18}")
_TIME_RE: Final = re.compile(
    r"(?P<base>\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2})(?P<frac>\.\d+)?"
    r"(?P<tz>[Zz]|[+-]\d{2}:\d{2})"
)


@dataclass(frozen=True, slots=True)
class SiweMessage:
    """A parsed EIP-4361 message; times are kept as written and parsed to aware datetimes."""

    scheme: str | None
    domain: str
    address: str
    statement: str | None
    uri: str
    version: str
    chain_id: int
    nonce: str
    issued_at: str
    expiration_time: str | None
    not_before: str | None
    request_id: str | None
    resources: tuple[str, ...]

    @property
    def issued_at_dt(self) -> datetime:
        """`Issued At` as an aware datetime."""
        return _parse_time(self.issued_at, "Issued At")

    @property
    def expiration_dt(self) -> datetime | None:
        """`Expiration Time` as an aware datetime, if given."""
        return None if self.expiration_time is None else _parse_time(self.expiration_time, "")

    @property
    def not_before_dt(self) -> datetime | None:
        """`Not Before` as an aware datetime, if given."""
        return None if self.not_before is None else _parse_time(self.not_before, "")


def _parse_time(value: str, field: str) -> datetime:
    """An RFC 3339 date-time (fraction cut to microseconds) as an aware datetime."""
    m = _TIME_RE.fullmatch(value)
    if m is None:
        raise MalformedSiweMessage(f"{field} {value!r} is not an RFC 3339 date-time")
    frac = (m["frac"] or "")[:7]
    tz = "+00:00" if m["tz"] in ("Z", "z") else m["tz"]
    try:
        return datetime.fromisoformat(m["base"].replace("t", "T") + frac + tz)
    except ValueError as exc:
        raise MalformedSiweMessage(f"{field} {value!r} is not a valid date-time") from exc


def parse_siwe_message(text: str) -> SiweMessage:
    """Parse an EIP-4361 message strictly: fields in order, LF line ends, EIP-55 address.

    Args:
        text: The exact message the wallet signed.

    Returns:
        The message's fields.

    Raises:
        MalformedSiweMessage: the text is not an EIP-4361 message; the reason names the line.
    """
    if "\r" in text:
        raise MalformedSiweMessage("lines must end with LF, not CRLF")
    lines = text.split("\n")
    if len(lines) < 9:
        raise MalformedSiweMessage(f"{len(lines)} lines, an EIP-4361 message has at least 9")
    header = _HEADER_RE.fullmatch(lines[0])
    if header is None:
        raise MalformedSiweMessage(
            "line 1 must be '<domain> wants you to sign in with your Ethereum account:'"
        )
    address = lines[1]
    if _ADDRESS_RE.fullmatch(address) is None:
        raise MalformedSiweMessage("line 2 must be the 0x-prefixed 20-byte address")
    if checksum_address(address) != address:
        raise MalformedSiweMessage(f"address {address} is not in EIP-55 checksum case")
    if lines[2] != "":
        raise MalformedSiweMessage("line 3 must be empty")
    if lines[3] == "":
        statement, i = None, 4
    else:
        statement, i = lines[3], 5
        if lines[4] != "":
            raise MalformedSiweMessage("the statement is one line followed by an empty line")

    def field(name: str, required: bool) -> str | None:
        nonlocal i
        prefix = f"{name}: "
        if i < len(lines) and lines[i].startswith(prefix):
            i += 1
            return lines[i - 1][len(prefix) :]
        if required:
            raise MalformedSiweMessage(f"line {i + 1} must be '{prefix}...'")
        return None

    uri = field("URI", True) or ""
    if _URI_RE.fullmatch(uri) is None:
        raise MalformedSiweMessage(f"URI {uri!r} is not an absolute RFC 3986 URI")
    version = field("Version", True)
    if version != "1":
        raise MalformedSiweMessage(f"Version is {version!r}, EIP-4361 defines only '1'")
    chain = field("Chain ID", True) or ""
    if _CHAIN_RE.fullmatch(chain) is None:
        raise MalformedSiweMessage(f"Chain ID {chain!r} is not a decimal number")
    nonce = field("Nonce", True) or ""
    if _NONCE_RE.fullmatch(nonce) is None:
        raise MalformedSiweMessage("Nonce must be at least 8 letters or digits")
    issued_at = field("Issued At", True) or ""
    expiration_time = field("Expiration Time", False)
    not_before = field("Not Before", False)
    request_id = field("Request ID", False)
    resources: list[str] = []
    if i < len(lines) and lines[i] == "Resources:":
        i += 1
        while i < len(lines) and lines[i].startswith("- "):
            resource = lines[i][2:]
            if _URI_RE.fullmatch(resource) is None:
                raise MalformedSiweMessage(f"resource {resource!r} is not a URI")
            resources.append(resource)
            i += 1
    if i != len(lines):
        raise MalformedSiweMessage(f"unexpected line {i + 1}: {lines[i][:60]!r}")
    msg = SiweMessage(
        scheme=header["scheme"],
        domain=header["domain"],
        address=address,
        statement=statement,
        uri=uri,
        version=version,
        chain_id=int(chain),
        nonce=nonce,
        issued_at=issued_at,
        expiration_time=expiration_time,
        not_before=not_before,
        request_id=request_id,
        resources=tuple(resources),
    )
    # Validate the three times now, so a malformed one is a 400 and not a later surprise.
    _parse_time(issued_at, "Issued At")
    if expiration_time is not None:
        _parse_time(expiration_time, "Expiration Time")
    if not_before is not None:
        _parse_time(not_before, "Not Before")
    return msg


def personal_sign_digest(text: str) -> bytes:
    """The EIP-191 (version 0x45, `personal_sign`) digest of `text`."""
    data = text.encode()
    return keccak256(b"\x19Ethereum Signed Message:\n" + str(len(data)).encode() + data)


def recover_signer(text: str, signature: bytes) -> str:
    """The checksummed address whose key signed `text` with `personal_sign`.

    Args:
        text: The signed message.
        signature: 65 bytes r || s || v, v in {0, 1, 27, 28}.

    Raises:
        SignatureError: malformed, high-s or unrecoverable signature.
    """
    if len(signature) == 65 and signature[64] in (0, 1):
        signature = signature[:64] + bytes((signature[64] + 27,))
    return recover_address(personal_sign_digest(text), signature)


def iso_utc(ts: float) -> str:
    """Unix seconds as an RFC 3339 UTC date-time ending in Z."""
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def verify_login(
    conn: Connection, settings: IndexerSettings, message: str, signature: bytes, now: float
) -> SiweMessage:
    """Check a Sign-In with Ethereum message and its signature, then use up its nonce.

    The checks run cheapest first; the nonce is consumed only when all others pass, so a
    rejected attempt does not burn it. The caller commits `conn`.

    Args:
        conn: Connection holding the nonce table.
        settings: The API's expected domain, URI and chain id, and the nonce TTL.
        message: The exact EIP-4361 text the wallet signed.
        signature: Its 65-byte `personal_sign` signature.
        now: Unix time in seconds.

    Returns:
        The verified message; its `address` signed in.

    Raises:
        MalformedSiweMessage, SiweDomainMismatch, SiweUriMismatch, SiweChainMismatch,
        SiweMessageExpired, SiweMessageNotYetValid, SiweBadSignature, SiweUnknownNonce,
        SiweNonceReused, SiweNonceExpired: see each class.
    """
    msg = parse_siwe_message(message)
    expected_scheme = urlsplit(settings.siwe_uri).scheme
    if msg.domain.lower() != settings.siwe_domain.lower() or (
        msg.scheme is not None and msg.scheme.lower() != expected_scheme.lower()
    ):
        got = msg.domain if msg.scheme is None else f"{msg.scheme}://{msg.domain}"
        raise SiweDomainMismatch(settings.siwe_domain, got)
    if msg.uri != settings.siwe_uri:
        raise SiweUriMismatch(settings.siwe_uri, msg.uri)
    if msg.chain_id != settings.siwe_chain_id:
        raise SiweChainMismatch(settings.siwe_chain_id, msg.chain_id)
    now_dt = datetime.fromtimestamp(now, UTC)
    expiration = msg.expiration_dt
    if expiration is not None and now_dt >= expiration:
        raise SiweMessageExpired(msg.expiration_time or "")
    not_before = msg.not_before_dt
    if not_before is not None and now_dt < not_before:
        raise SiweMessageNotYetValid("Not Before", msg.not_before or "")
    if msg.issued_at_dt.timestamp() > now + CLOCK_SKEW_S:
        raise SiweMessageNotYetValid("Issued At", msg.issued_at)
    try:
        signer = recover_signer(message, signature)
    except SignatureError as exc:
        raise SiweBadSignature(msg.address, f"the signature is unusable: {exc}") from exc
    if signer != msg.address:
        raise SiweBadSignature(msg.address, f"the signature recovers to {signer}")
    consume_nonce(conn, msg.nonce, msg.address, now, settings.nonce_ttl_s)
    return msg


# JWT (RFC 7519) with HS256 only: `protocol.jwt`, its errors as this API's problems
# --------------------------------------------------------------------------------------------

#: The claims of a wallet access token (`protocol.jwt.AccessClaims`).
TokenClaims = AccessClaims


def decode_jwt(token: str, key: bytes) -> dict[str, Any]:
    """The claims of an HS256 JWT whose MAC checks under `key` (no time checks).

    Raises:
        InvalidToken: not three base64url segments, another algorithm, or a wrong MAC.
    """
    try:
        return _decode_jwt(token, key)
    except JwtError as exc:
        raise InvalidToken(exc.reason) from exc


def issue_token(
    address: str, key: bytes, issuer: str, now: float, ttl_s: int, auth_time: int | None = None
) -> tuple[str, TokenClaims]:
    """A fresh access token for `address`, valid `ttl_s` seconds from `now`."""
    iat = int(now)
    claims = TokenClaims(
        address=address,
        issued_at=iat,
        expires_at=iat + ttl_s,
        auth_time=iat if auth_time is None else auth_time,
        token_id=secrets.token_urlsafe(12),
    )
    token = encode_jwt(
        {
            "iss": issuer,
            "sub": address,
            "iat": claims.issued_at,
            "exp": claims.expires_at,
            "auth_time": claims.auth_time,
            "jti": claims.token_id,
        },
        key,
    )
    return token, claims


def verify_token(token: str, key: bytes, issuer: str, now: float) -> TokenClaims:
    """Check an access token's MAC, issuer, subject and expiry.

    Raises:
        InvalidToken: not a token this API issued.
        TokenExpired: its `exp` has passed.
    """
    try:
        return access_claims(token, key, issuer, now)
    except JwtExpired as exc:
        raise TokenExpired(exc.expired_at) from exc
    except JwtError as exc:
        raise InvalidToken(exc.reason) from exc


def check_token_times(claims: TokenClaims, now: float) -> None:
    """The checks of `verify_token` that depend on the time.

    Raises:
        TokenExpired: its `exp` has passed.
        InvalidToken: it is issued in the future (past the allowed clock skew).
    """
    if now >= claims.expires_at:
        raise TokenExpired(claims.expires_at)
    if claims.issued_at > now + CLOCK_SKEW_S:
        raise InvalidToken("the token is issued in the future")


class TokenCache:
    """`verify_token` that remembers the tokens whose MAC, issuer and claims checked, so that
    a token seen again costs only the time checks (a request's caller was a tenth of its CPU).

    Only good tokens are kept, keyed by the token, the key and the issuer; the oldest go first
    past `size`. Meant for one event loop (not shared between threads).
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._good: dict[tuple[str, bytes, str], TokenClaims] = {}

    def verify(self, token: str, key: bytes, issuer: str, now: float) -> TokenClaims:
        """As `verify_token`, with the same errors."""
        entry = (token, key, issuer)
        found = self._good.get(entry)
        if found is None:
            found = verify_token(token, key, issuer, now)
            if len(self._good) >= self.size:
                del self._good[next(iter(self._good))]
            self._good[entry] = found
            return found
        check_token_times(found, now)
        return found


def token_subject(token: str, key: bytes) -> str | None:
    """The address of a token whose MAC checks, expired or not; None otherwise (rate limits)."""
    try:
        sub = decode_jwt(token, key).get("sub")
    except InvalidToken:
        return None
    return sub if isinstance(sub, str) else None


__all__ = [
    "CLOCK_SKEW_S",
    "IssuedNonce",
    "SiweMessage",
    "TokenCache",
    "TokenClaims",
    "check_token_times",
    "consume_nonce",
    "decode_jwt",
    "encode_jwt",
    "iso_utc",
    "issue_nonce",
    "issue_token",
    "login_nonces",
    "parse_siwe_message",
    "personal_sign_digest",
    "recover_signer",
    "token_subject",
    "verify_login",
    "verify_token",
]
