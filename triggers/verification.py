"""Verification of a new webhook's target: the platform POSTs `{"verification": "test"}` (as
DIMO's vehicle-triggers-api does) and the target must answer 200 with the verification token
as its body. No redirect is followed; the answer is read up to the size cap."""

from __future__ import annotations

import httpx

from triggers.config import TriggersSettings
from triggers.exceptions import VerificationFailed
from triggers.targets import TargetPolicy, check_target

__all__ = ["verify_target"]


def verify_target(url: str, token: str, policy: TargetPolicy, settings: TriggersSettings) -> None:
    """Checks that `url` echoes `token`.

    Raises:
        TargetRefused: the target is not allowed.
        VerificationFailed: no answer, not 200, or another body.
    """
    check_target(url, policy)
    try:
        with (
            httpx.Client(
                follow_redirects=False, timeout=settings.verify_timeout_s, trust_env=False
            ) as client,
            client.stream("POST", url, json={"verification": "test"}) as response,
        ):
            body = b""
            for chunk in response.iter_raw():
                body += chunk
                if len(body) > settings.max_response_bytes:
                    raise VerificationFailed(url, "the answer is over the size cap")
            status = response.status_code
    except httpx.HTTPError as exc:
        raise VerificationFailed(url, f"{type(exc).__name__}: {exc}") from exc
    if status != 200:
        raise VerificationFailed(url, f"it answered HTTP {status}")
    answer = body.decode("utf-8", "replace").strip()
    if answer.startswith('"') and answer.endswith('"'):
        answer = answer[1:-1]  # a JSON string is accepted too
    if answer != token:
        raise VerificationFailed(url, "the answer is not the verification token")
