"""Standard Webhooks signatures (`webhook-id`, `webhook-timestamp`, `webhook-signature`) with a
secret per webhook; during a rotation's overlap both secrets sign, so a receiver that still
holds the previous one keeps verifying."""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

__all__ = ["new_message_id", "new_secret", "signed_headers"]

#: Prefix Standard Webhooks gives a secret.
SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A fresh 32-byte signing secret, `whsec_<base64>`."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def new_message_id() -> str:
    """A fresh `webhook-id` (the idempotency key of one delivery, kept across retries)."""
    return "msg_" + secrets.token_hex(16)


def signed_headers(
    message_id: str, body: str, timestamp_s: int, secret: str, previous: str | None = None
) -> dict[str, str]:
    """The Standard Webhooks headers of `body`, signed with `secret` (and `previous`)."""
    at = datetime.fromtimestamp(timestamp_s, UTC)
    signature = Webhook(secret).sign(message_id, at, body)
    if previous is not None:
        signature += " " + Webhook(previous).sign(message_id, at, body)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp_s),
        "webhook-signature": signature,
        "content-type": "application/json",
    }
