"""Errors of the applications: plain errors with their context, no HTTP (the indexer's API
maps them to problems in `indexer.api.problems`)."""

from __future__ import annotations

from protocol.exceptions import ChainUnavailableError as _ChainUnavailableError
from protocol.exceptions import PlatformError


class AppError(PlatformError):
    """Root of every error raised by `apps`."""


class AppParameterInvalid(AppError, ValueError):
    """An application parameter out of its documented range."""

    def __init__(self, parameter: str, reason: str) -> None:
        self.parameter = parameter
        self.reason = reason
        self.detail = f"{parameter}: {reason}"
        super().__init__(self.detail)


class AppInputInvalid(AppError, ValueError):
    """Readings an application cannot run on (a numeric series holding text, malformed
    columns)."""

    def __init__(self, argument: str, reason: str) -> None:
        self.argument = argument
        self.reason = reason
        super().__init__(f"invalid application input {argument}: {reason}")


class InputProofInvalid(AppError, ValueError):
    """An application input's bundle proof does not check out: the audit trusts nothing of it."""

    def __init__(self, batch_id: int, leaf_index: int, reason: str) -> None:
        self.batch_id = batch_id
        self.leaf_index = leaf_index
        self.reason = reason
        super().__init__(
            f"input bundle (batch {batch_id}, leaf {leaf_index}) fails verification: {reason}; "
            "the served result cannot be relied on, report it to the indexer's operator"
        )


class AuditMismatch(AppError, ValueError):
    """Recomputing an application from verified proofs gave another result than served."""

    def __init__(self, app: str, differences: list[str]) -> None:
        self.app = app
        self.differences = differences
        shown = "; ".join(differences[:5])
        super().__init__(
            f"{app}: the recomputed result differs from the served one ({shown}); the server "
            "served numbers its proofs do not support"
        )


class CertificateInvalid(AppError, ValueError):
    """A battery health certificate whose fields or signatures do not hold together."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"battery certificate rejected: {reason}")


class ChainUnavailableError(AppError, _ChainUnavailableError):
    """The chain's JSON-RPC endpoint did not answer an auditor's call."""

    rpc_setting = "the RPC URL given to the audit"
