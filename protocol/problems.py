"""RFC 9457 problem details shared by every service: one base URI, one stable type per reason,
and the one function that builds the problem object."""

from __future__ import annotations

from typing import Any, Final

#: Base of every problem `type` the platform's APIs return; the reason code follows it.
PROBLEM_BASE: Final = "https://dimo.local/problems/"
#: The media type of a problem response.
PROBLEM_JSON: Final = "application/problem+json"


def problem_type(reason: str) -> str:
    """The stable `type` URI of a problem with reason code `reason`."""
    return PROBLEM_BASE + reason


def problem_details(
    slug: str, title: str, status: int, detail: str | None = None, /, **extensions: Any
) -> dict[str, Any]:
    """The RFC 9457 problem object: `type` from `slug`, `title`, `status`, `detail` when
    given, then the extension members (`instance`, `errors`, `reason`, ...) in the order
    given."""
    body: dict[str, Any] = {"type": problem_type(slug), "title": title, "status": status}
    if detail is not None:
        body["detail"] = detail
    body.update(extensions)
    return body
