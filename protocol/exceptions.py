"""Errors of the shared protocol layer."""

from __future__ import annotations


class ProtocolError(Exception):
    """Root of every error raised by `protocol`."""
