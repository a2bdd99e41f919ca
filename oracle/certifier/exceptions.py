"""Errors of the battery certifier's client: a certificate the quorum did not sign."""

from __future__ import annotations

from oracle.exceptions import OracleError

__all__ = ["CertificationFailed"]


class CertificationFailed(OracleError, RuntimeError):
    """The certifiers did not give a quorum of signatures, or the contract rejected them.

    `error` names the contract's custom error (e.g. `OracleRegistryQuorumNotReached`) when
    `verifyCertificate` reverted with one.
    """

    def __init__(self, reason: str, error: str | None = None) -> None:
        self.reason = reason
        self.error = error
        super().__init__(f"battery certificate not certified: {reason}")
