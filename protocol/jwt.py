"""The platform's access tokens: compact HS256 JWTs (RFC 7519) issued after a wallet's Sign-In
with Ethereum, checked the same way by every service that accepts them (the indexer's API, the
triggers service)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any, Final

from protocol.exceptions import ProtocolError

__all__ = [
    "CLOCK_SKEW_S",
    "AccessClaims",
    "JwtError",
    "JwtExpiredError",
    "access_claims",
    "decode_hs256",
    "encode_hs256",
]

#: Seconds an `iat` may lie ahead of the verifier's clock (clocks drift).
CLOCK_SKEW_S: Final = 60
_B64_SEGMENT_RE: Final = re.compile(r"[A-Za-z0-9_-]+")
_ADDRESS_RE: Final = re.compile(r"0x[0-9a-fA-F]{40}")
_HEADER: Final = {"alg": "HS256", "typ": "JWT"}


class JwtError(ProtocolError, ValueError):
    """A token that is not an HS256 JWT of the expected issuer (format, algorithm, MAC, claims)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class JwtExpiredError(ProtocolError, ValueError):
    """A token whose `exp` has passed."""

    def __init__(self, expired_at: int) -> None:
        self.expired_at = expired_at
        super().__init__(f"the token expired at unix time {expired_at}")


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64decode(segment: str) -> bytes:
    if _B64_SEGMENT_RE.fullmatch(segment) is None:
        raise JwtError("a token segment is not base64url")
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except ValueError as exc:
        raise JwtError("a token segment is not base64url") from exc


def encode_hs256(claims: dict[str, Any], key: bytes) -> str:
    """A compact HS256 JWS of `claims` under `key`."""
    signing_input = (
        _b64encode(json.dumps(_HEADER, separators=(",", ":")).encode())
        + "."
        + _b64encode(json.dumps(claims, separators=(",", ":")).encode())
    )
    mac = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + _b64encode(mac)


def decode_hs256(token: str, key: bytes) -> dict[str, Any]:
    """The claims of an HS256 JWT whose MAC checks under `key` (no time checks).

    Raises:
        JwtError: not three base64url segments, another algorithm, or a wrong MAC.
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise JwtError("the token is not a compact JWS (three dot-separated parts)")
    try:
        header = json.loads(_b64decode(parts[0]))
    except (ValueError, UnicodeDecodeError) as exc:
        raise JwtError("the token header is not JSON") from exc
    if not isinstance(header, dict) or header.get("alg") != "HS256" or "crit" in header:
        raise JwtError("the token is not signed with HS256")
    mac = hmac.new(key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(mac, _b64decode(parts[2])):
        raise JwtError("the token's signature does not check")
    try:
        claims = json.loads(_b64decode(parts[1]))
    except (ValueError, UnicodeDecodeError) as exc:
        raise JwtError("the token payload is not JSON") from exc
    if not isinstance(claims, dict):
        raise JwtError("the token payload is not a JSON object")
    return claims


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What an access token says: who signed in, when, and until when it is good."""

    address: str
    issued_at: int
    expires_at: int
    auth_time: int
    token_id: str


def access_claims(token: str, key: bytes, issuer: str, now: float) -> AccessClaims:
    """Check an access token's MAC, issuer, subject and expiry.

    Raises:
        JwtError: not a token of `issuer` under `key`.
        JwtExpiredError: its `exp` has passed.
    """
    claims = decode_hs256(token, key)
    if claims.get("iss") != issuer:
        raise JwtError("the token was issued for another API")
    sub, iat, exp, auth_time = (claims.get(k) for k in ("sub", "iat", "exp", "auth_time"))
    if not (isinstance(sub, str) and _ADDRESS_RE.fullmatch(sub)):
        raise JwtError("the token's sub is not an address")
    if type(iat) is not int or type(exp) is not int or type(auth_time) is not int:
        raise JwtError("the token's iat, exp or auth_time is not an integer")
    if now >= exp:
        raise JwtExpiredError(exp)
    if iat > now + CLOCK_SKEW_S:
        raise JwtError("the token is issued in the future")
    return AccessClaims(sub, iat, exp, auth_time, str(claims.get("jti", "")))
