"""DIMO's developer login: EIP-4361 challenges for a developer licence, checked by ERC-1271."""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from typing import Final

import httpx
from eth_abi.abi import encode as abi_encode
from sqlalchemy import BigInteger, Column, Connection, String, Table, Text, delete, select, update

from indexer import schema as s
from indexer.api.auth import iso_utc, personal_sign_digest, recover_signer
from indexer.config import IndexerSettings
from indexer.db import metadata
from indexer.exceptions import (
    ChallengeExpired,
    ChallengeMismatch,
    ChallengeReused,
    ChallengeSignerRejected,
    ChallengeUnknown,
    ClientIdUnknown,
    RedirectUriUnknown,
    SignerCheckUnavailable,
)
from protocol.crypto import SignatureError, checksum_address, keccak256

#: ERC-1271's answer for a valid signature.
ERC1271_MAGIC: Final = bytes.fromhex("1626ba7e")
_IS_VALID_SIGNATURE: Final = keccak256(b"isValidSignature(bytes32,bytes)")[:4]
_ALPHANUMERIC: Final = string.ascii_letters + string.digits

#: Challenges from POST /auth/web3/generate_challenge; `used_at_ms` is set by the one submit
#: that uses it.
web3_challenges = Table(
    "api_web3_challenges",
    metadata,
    Column("state", String(64), primary_key=True),
    Column("client_id", String(42), nullable=False),
    Column("domain", Text, nullable=False),
    Column("address", String(42), nullable=False),
    Column("message", Text, nullable=False),
    Column("expires_at_ms", BigInteger, nullable=False, index=True),
    Column("used_at_ms", BigInteger, nullable=True),
)


@dataclass(frozen=True, slots=True)
class Challenge:
    """An issued challenge: the state to submit with and the EIP-4361 message to sign."""

    state: str
    message: str


def licence_of(conn: Connection, client_id: str) -> int:
    """The indexed licence id of `client_id`.

    Raises:
        ClientIdUnknown: no indexed licence has this client id.
    """
    t = s.developer_licences.c
    row = conn.execute(select(t.id).where(t.client_id == client_id.lower())).first()
    if row is None:
        raise ClientIdUnknown(checksum_address(client_id))
    return int(row.id)


def challenge_message(
    settings: IndexerSettings, address: str, client_id: str, domain: str, nonce: str, now: float
) -> str:
    """The EIP-4361 message a developer signs to log in with licence `client_id`."""
    return "\n".join(
        [
            f"{settings.siwe_domain} wants you to sign in with your Ethereum account:",
            checksum_address(address),
            "",
            f"Sign in to the platform's developer API as licence {checksum_address(client_id)}.",
            "",
            f"URI: {domain}",
            "Version: 1",
            f"Chain ID: {settings.siwe_chain_id}",
            f"Nonce: {nonce}",
            f"Issued At: {iso_utc(int(now))}",
            f"Expiration Time: {iso_utc(int(now) + settings.challenge_ttl_s)}",
        ]
    )


def generate_challenge(
    conn: Connection,
    settings: IndexerSettings,
    client_id: str,
    domain: str,
    address: str,
    now: float,
) -> Challenge:
    """Store and return a fresh challenge for licence `client_id`, signed in at `domain`.

    The caller commits `conn`.

    Raises:
        ClientIdUnknown: `client_id` is no licence's.
        RedirectUriUnknown: `domain` is not an enabled redirect URI of the licence.
    """
    licence_id = licence_of(conn, client_id)
    u = s.licence_redirect_uris.c
    known = conn.execute(select(u.uri).where(u.licence_id == licence_id, u.uri == domain)).first()
    if known is None:
        raise RedirectUriUnknown(checksum_address(client_id), domain)
    nonce = "".join(secrets.choice(_ALPHANUMERIC) for _ in range(22))
    state = secrets.token_urlsafe(24)
    message = challenge_message(settings, address, client_id, domain, nonce, now)
    now_ms = int(now * 1000)
    conn.execute(
        delete(web3_challenges).where(web3_challenges.c.expires_at_ms < now_ms - 86_400_000)
    )
    conn.execute(
        web3_challenges.insert().values(
            state=state,
            client_id=client_id.lower(),
            domain=domain,
            address=address.lower(),
            message=message,
            expires_at_ms=now_ms + settings.challenge_ttl_s * 1000,
        )
    )
    return Challenge(state, message)


def erc1271_valid(rpc_url: str, account: str, digest: bytes, signature: bytes) -> bool:
    """Whether `account` answers ERC-1271 `isValidSignature(digest, signature)` with the magic
    value (an account without code, or one that reverts, answers no).

    Raises:
        SignerCheckUnavailable: the node does not answer.
    """
    data = _IS_VALID_SIGNATURE + abi_encode(["bytes32", "bytes"], [digest, signature])
    payload = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "eth_call",
        "params": [{"to": account, "data": "0x" + data.hex()}, "latest"],
    }
    try:
        answer = httpx.post(rpc_url, json=payload, timeout=10.0).json()
    except (httpx.HTTPError, ValueError) as exc:
        raise SignerCheckUnavailable(type(exc).__name__) from exc
    result = answer.get("result")
    if not isinstance(result, str) or len(result) < 10:
        return False
    return bytes.fromhex(result[2:10]) == ERC1271_MAGIC


def submit_challenge(
    conn: Connection,
    settings: IndexerSettings,
    client_id: str,
    domain: str,
    state: str,
    signature: bytes,
    now: float,
) -> str:
    """Check a signed challenge and use it up; returns the address that signed.

    The signer must be the client id itself, or a key the licence's account accepts by
    ERC-1271 (a signer the owner registered). The state is used up only when every check
    passes. The caller commits `conn`.

    Raises:
        ChallengeUnknown, ChallengeReused, ChallengeExpired, ChallengeMismatch,
        ChallengeSignerRejected: see each class.
    """
    t = web3_challenges.c
    row = conn.execute(select(web3_challenges).where(t.state == state)).first()
    if row is None:
        raise ChallengeUnknown()
    if row.used_at_ms is not None:
        raise ChallengeReused()
    now_ms = int(now * 1000)
    if row.expires_at_ms <= now_ms:
        raise ChallengeExpired(settings.challenge_ttl_s)
    if row.client_id != client_id.lower():
        raise ChallengeMismatch("client_id", checksum_address(row.client_id), client_id)
    if row.domain != domain:
        raise ChallengeMismatch("domain", row.domain, domain)
    client = checksum_address(row.client_id)
    try:
        signer = recover_signer(row.message, signature)
    except SignatureError:
        raise ChallengeSignerRejected(client, "an unrecoverable signature") from None
    named = signer.lower() == row.address
    if not (named or row.address == row.client_id):
        raise ChallengeSignerRejected(client, signer)
    if signer.lower() != row.client_id and not erc1271_valid(
        settings.rpc_url, client, personal_sign_digest(row.message), signature
    ):
        raise ChallengeSignerRejected(client, signer)
    done = conn.execute(
        update(web3_challenges)
        .where(t.state == state, t.used_at_ms.is_(None))
        .values(used_at_ms=now_ms)
    )
    if done.rowcount != 1:
        raise ChallengeReused()
    return signer
