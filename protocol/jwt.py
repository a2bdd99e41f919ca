"""HS256 JWTs (RFC 7519) and the developer and vehicle tokens of DIMO's developer surface.

One key signs every token of a deployment's API (`DIMO_INDEXER_JWT_SECRET`); any service
holding it (the indexer's API, the triggers) verifies them with the functions here.
docs/indexer.md ("Developer and vehicle tokens") lists the claims.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any, Final

from protocol.exceptions import ProtocolError

__all__ = [
    "CLOCK_SKEW_S",
    "DEVELOPER_TOKEN_USE",
    "VEHICLE_TOKEN_USE",
    "AccessClaims",
    "DeveloperToken",
    "JwtError",
    "JwtExpired",
    "VehicleToken",
    "access_claims",
    "decode_jwt",
    "encode_jwt",
    "issue_developer_token",
    "issue_vehicle_token",
    "vehicle_did",
    "verify_developer_token",
    "verify_vehicle_token",
]

#: `token_use` claim of a developer JWT (POST /auth/web3/submit_challenge).
DEVELOPER_TOKEN_USE: Final = "developer"
#: `token_use` claim of a vehicle JWT (POST /v1/tokens/exchange).
VEHICLE_TOKEN_USE: Final = "vehicle"
#: Seconds an `iat` may lie ahead of the verifier's clock.
CLOCK_SKEW_S: Final = 60

_B64_SEGMENT_RE: Final = re.compile(r"[A-Za-z0-9_-]+")
_ADDRESS_RE: Final = re.compile(r"0x[0-9a-fA-F]{40}")
_JWT_HEADER: Final = {"alg": "HS256", "typ": "JWT"}


class JwtError(ProtocolError, ValueError):
    """A token that is not a good JWT of this deployment; `reason` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class JwtExpired(JwtError):
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


def encode_jwt(claims: dict[str, Any], key: bytes) -> str:
    """A compact HS256 JWS of `claims` under `key`."""
    signing_input = (
        _b64encode(json.dumps(_JWT_HEADER, separators=(",", ":")).encode())
        + "."
        + _b64encode(json.dumps(claims, separators=(",", ":")).encode())
    )
    mac = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + _b64encode(mac)


def decode_jwt(token: str, key: bytes) -> dict[str, Any]:
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
    """What a wallet access token says: who signed in, when, and until when it is good."""

    address: str
    issued_at: int
    expires_at: int
    auth_time: int
    token_id: str


def access_claims(token: str, key: bytes, issuer: str, now: float) -> AccessClaims:
    """Check a wallet access token's MAC, issuer, subject and expiry (`POST /auth/login`).

    Raises:
        JwtError: not a wallet access token of `issuer` under `key` (developer and vehicle
            tokens are refused: they carry a `token_use`).
        JwtExpired: its `exp` has passed.
    """
    claims = decode_jwt(token, key)
    if "token_use" in claims:
        raise JwtError(f"a {claims['token_use']} token is not a wallet sign-in token")
    if claims.get("iss") != issuer:
        raise JwtError("the token was issued for another API")
    sub, iat, exp, auth_time = (claims.get(k) for k in ("sub", "iat", "exp", "auth_time"))
    if not (isinstance(sub, str) and _ADDRESS_RE.fullmatch(sub)):
        raise JwtError("the token's sub is not an address")
    if type(iat) is not int or type(exp) is not int or type(auth_time) is not int:
        raise JwtError("the token's iat, exp or auth_time is not an integer")
    if now >= exp:
        raise JwtExpired(exp)
    if iat > now + CLOCK_SKEW_S:
        raise JwtError("the token is issued in the future")
    return AccessClaims(sub, iat, exp, auth_time, str(claims.get("jti", "")))


def _checked(token: str, key: bytes, issuer: str, use: str, now: float) -> dict[str, Any]:
    claims = decode_jwt(token, key)
    if claims.get("token_use") != use:
        raise JwtError(f"the token is not a {use} token")
    if claims.get("iss") != issuer:
        raise JwtError("the token was issued by another API")
    iat, exp = claims.get("iat"), claims.get("exp")
    if type(iat) is not int or type(exp) is not int:
        raise JwtError("the token's iat or exp is not an integer")
    if now >= exp:
        raise JwtExpired(exp)
    if iat > now + CLOCK_SKEW_S:
        raise JwtError("the token is issued in the future")
    return claims


def _address(claims: dict[str, Any], name: str) -> str:
    value = claims.get(name)
    if not (isinstance(value, str) and _ADDRESS_RE.fullmatch(value)):
        raise JwtError(f"the token's {name} is not an address")
    return value


@dataclass(frozen=True, slots=True)
class DeveloperToken:
    """A checked developer JWT: the licence's client id, the key that signed in, its times."""

    client_id: str
    signer: str
    issued_at: int
    expires_at: int
    token_id: str


def issue_developer_token(
    client_id: str,
    signer: str,
    key: bytes,
    issuer: str,
    now: float,
    ttl_s: int,
    use: str = DEVELOPER_TOKEN_USE,
) -> str:
    """A developer JWT for licence `client_id`, signed in by `signer`, valid `ttl_s` seconds.

    Its `ethereum_address` (what DIMO's SDKs read as the client id) and `sub` are `client_id`.
    `use` "id" makes the OpenID id token of the same login, which is no access token.
    """
    iat = int(now)
    return encode_jwt(
        {
            "iss": issuer,
            "sub": client_id,
            "aud": client_id,
            "iat": iat,
            "exp": iat + ttl_s,
            "jti": secrets.token_urlsafe(12),
            "token_use": use,
            "ethereum_address": client_id,
            "signer": signer,
            "provider_id": "web3",
        },
        key,
    )


def verify_developer_token(token: str, key: bytes, issuer: str, now: float) -> DeveloperToken:
    """Check a developer JWT's MAC, use, issuer and times.

    Raises:
        JwtError: not a developer token of this issuer under `key`.
        JwtExpired: its `exp` has passed.
    """
    claims = _checked(token, key, issuer, DEVELOPER_TOKEN_USE, now)
    return DeveloperToken(
        client_id=_address(claims, "ethereum_address"),
        signer=_address(claims, "signer"),
        issued_at=claims["iat"],
        expires_at=claims["exp"],
        token_id=str(claims.get("jti", "")),
    )


def vehicle_did(chain_id: int, contract: str, token_id: int) -> str:
    """The vehicle's DID as DIMO writes it: `did:erc721:<chain>:<contract>:<tokenId>`."""
    return f"did:erc721:{chain_id}:{contract}:{token_id}"


@dataclass(frozen=True, slots=True)
class VehicleToken:
    """A checked vehicle JWT: which licence may read which vehicle, with which privileges.

    It proves only what was true at issue: a verifier checks the licence's rights on the
    vehicle again on every request (a sale or an expired grant ends access at once).
    """

    client_id: str
    vehicle_id: int
    contract: str
    asset: str
    privileges: tuple[int, ...]
    issued_at: int
    expires_at: int


def issue_vehicle_token(
    client_id: str,
    vehicle_id: int,
    contract: str,
    chain_id: int,
    privileges: list[int],
    permissions: list[str],
    key: bytes,
    issuer: str,
    now: float,
    ttl_s: int,
) -> str:
    """A vehicle JWT for licence `client_id` on vehicle `vehicle_id` of `contract`."""
    iat = int(now)
    asset = vehicle_did(chain_id, contract, vehicle_id)
    return encode_jwt(
        {
            "iss": issuer,
            "sub": asset,
            "aud": ["dimo.zone"],
            "iat": iat,
            "exp": iat + ttl_s,
            "jti": secrets.token_urlsafe(12),
            "token_use": VEHICLE_TOKEN_USE,
            "asset": asset,
            "tokenId": vehicle_id,
            "contract": contract,
            "client_id": client_id,
            "privileges": privileges,
            "permissions": permissions,
        },
        key,
    )


def verify_vehicle_token(token: str, key: bytes, issuer: str, now: float) -> VehicleToken:
    """Check a vehicle JWT's MAC, use, issuer and times.

    Raises:
        JwtError: not a vehicle token of this issuer under `key`.
        JwtExpired: its `exp` has passed.
    """
    claims = _checked(token, key, issuer, VEHICLE_TOKEN_USE, now)
    token_id, privileges = claims.get("tokenId"), claims.get("privileges")
    if type(token_id) is not int or token_id < 0:
        raise JwtError("the token's tokenId is not a token id")
    if not (isinstance(privileges, list) and all(type(p) is int for p in privileges)):
        raise JwtError("the token's privileges are not a list of ids")
    return VehicleToken(
        client_id=_address(claims, "client_id"),
        vehicle_id=token_id,
        contract=_address(claims, "contract"),
        asset=str(claims.get("asset", "")),
        privileges=tuple(privileges),
        issued_at=claims["iat"],
        expires_at=claims["exp"],
    )
