"""The base of every error the platform raises, and the errors every service shares.

Each box keeps its own root (`ProtocolError`, `OracleError`, `IndexerError`, ...) deriving
from `PlatformError`; a service's config and chain errors derive from its root and from
`ConfigError` / `ChainUnavailableError` here, so the message and its fix are written once.
"""

from __future__ import annotations

from typing import Any, ClassVar


class PlatformError(Exception):
    """Base of every error raised by the platform's packages (each box derives its root)."""


class ProtocolError(PlatformError):
    """Root of every error raised by `protocol`."""


class ConfigError(PlatformError, ValueError):
    """Settings or a deployment record that a service cannot run with.

    Subclasses fix `service`, the name the message gives the setting.
    """

    service: ClassVar[str] = "platform"

    def __init__(self, setting: str, reason: str) -> None:
        self.setting = setting
        self.reason = reason
        super().__init__(f"invalid {self.service} setting {setting}: {reason}")


class ChainUnavailableError(PlatformError, ConnectionError):
    """The chain's JSON-RPC endpoint did not answer or answered with an error.

    Subclasses fix `rpc_setting`, the environment variable that names the endpoint.
    """

    rpc_setting: ClassVar[str] = "the RPC URL setting"

    def __init__(self, rpc_url: str, reason: str) -> None:
        self.rpc_url = rpc_url
        self.reason = reason
        super().__init__(
            f"chain RPC {rpc_url} failed: {reason}; check that the node is up and "
            f"{self.rpc_setting} points at it"
        )


class ProblemError(PlatformError):
    """An error a service answers with as an RFC 9457 problem (`protocol.problems`).

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
        from protocol.problems import problem_type

        return problem_type(self.slug)

    def problem(self) -> dict[str, Any]:
        """The RFC 9457 problem details object (without `instance`)."""
        from protocol.problems import problem_details

        return problem_details(self.slug, self.title, self.status, self.detail, **self.context)
