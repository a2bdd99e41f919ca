"""A caller's side of the indexer API: Sign-In with Ethereum for a token, and the check of a
served reading proof against the chain alone (no trust in the server)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
from eth_account import Account
from eth_account.messages import encode_defunct

from apps.audit import ChainRoots, Opened, verify_bundle_proof
from protocol.eip712 import dimo_domain

__all__ = ["login", "siwe_message", "verify_reading_proof"]


def siwe_message(
    api_url: str, address: str, chain_id: int, nonce: str, issued_at: datetime | None = None
) -> str:
    """The EIP-4361 message that signs `address` in to the API at `api_url` (its domain is
    the URL's host and port, as `DIMO_INDEXER_SIWE_DOMAIN` and `_URI` say by default)."""
    authority = api_url.split("://", 1)[-1].rstrip("/")
    issued = (issued_at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f"{authority} wants you to sign in with your Ethereum account:\n{address}\n\n"
        "Sign in to the DIMO platform's API.\n\n"
        f"URI: {api_url.rstrip('/')}\nVersion: 1\nChain ID: {chain_id}\nNonce: {nonce}\n"
        f"Issued At: {issued}"
    )


def login(
    api_url: str,
    private_key: str,
    chain_id: int,
    *,
    client: httpx.Client,
    siwe_uri: str | None = None,
    issued_at: datetime | None = None,
) -> str:
    """Signs in with the account of `private_key`; returns the API's bearer token.

    Args:
        api_url: The API's base URL (requests go there).
        private_key: The account's key, 0x hex.
        chain_id: The chain the API signs in on.
        client: The HTTP client.
        siwe_uri: The URI the API expects in the message, when not `api_url`.
        issued_at: The message's time (default: now).

    Raises:
        httpx.HTTPStatusError: the API refused the nonce request or the login.
    """
    account = Account.from_key(private_key)
    r = client.get(f"{api_url.rstrip('/')}/auth/nonce")
    r.raise_for_status()
    nonce = str(r.json()["nonce"])
    message = siwe_message(siwe_uri or api_url, account.address, chain_id, nonce, issued_at)
    signature = account.sign_message(encode_defunct(text=message)).signature.hex()
    r = client.post(
        f"{api_url.rstrip('/')}/auth/login",
        json={"message": message, "signature": "0x" + signature.removeprefix("0x")},
    )
    r.raise_for_status()
    return str(r.json()["access_token"])


def verify_reading_proof(
    proof: Mapping[str, Any], rpc_url: str, anchor_address: str
) -> dict[str, Any]:
    """Checks a reading proof (`GET /vehicles/{id}/signals/{signal}/readings/{ts}/proof`).

    The bundle's device signature must recover to its device, the bundle must be the
    vehicle's and hold the reading, and the Merkle path of the leaf rebuilt from the bundle
    must lead to the root `AttestationAnchor` holds for the batch. A schema-2 proof served
    without the whole bundle is checked by its opening of the signal: the opening, the other
    signals' commitments and the device signature must lead to the signed leaf.

    Returns:
        What was checked: vehicle, signal, time, value, device, batch and its root.

    Raises:
        apps.exceptions.InputProofInvalid: a check fails.
        apps.exceptions.ChainUnavailableError: the RPC endpoint did not answer.
    """
    from apps.exceptions import InputProofInvalid

    roots = ChainRoots(rpc_url, anchor_address)
    try:
        domain = dimo_domain(roots.chain_id(), anchor_address)
        batch_id, leaf_index = int(proof["batch"]["id"]), int(proof["leaf_index"])
        item: dict[str, Any] = {
            "batch_id": batch_id,
            "leaf_index": leaf_index,
            "bundle_wire": proof.get("bundle_wire"),
            "proof": proof["proof"],
        }
        if item["bundle_wire"] is None:
            # A schema-2 proof of one signal: its opening, the other signals as commitments.
            item |= {
                "leaf": proof["leaf"],
                "signature": proof["signature"],
                "commitments": proof["commitments"],
                "openings": [proof["opening"]],
            }
        vehicle_id = int(proof["vehicle_id"])
        verified = verify_bundle_proof(item, vehicle_id, domain, roots)
        signal, ts = str(proof["signal"]), int(proof["reading"]["t"])
        if isinstance(verified, Opened):
            device, readings = verified.device, verified.readings
        else:
            device, readings = verified.bundle.device, verified.bundle.readings
        carried = {int(t): v for t, v in readings.get(signal, ())}
        if ts not in carried:
            raise InputProofInvalid(batch_id, leaf_index, f"the bundle holds no {signal} at {ts}")
        return {
            "vehicle_id": vehicle_id,
            "signal": signal,
            "ts": ts,
            "value": carried[ts],
            "device": device,
            "batch": batch_id,
            "root": "0x" + (roots.root_of(batch_id) or b"").hex(),
        }
    finally:
        roots.close()
