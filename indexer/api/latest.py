"""Each signal's latest value within the caller's rights, as the API serves it (the telemetry
routes and the owner overview share it)."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field
from sqlalchemy import Connection

from indexer.api.access import split
from indexer.api.models import VALUE_DOC, WithheldOut
from indexer.queries import latest_values
from indexer.rights import Coverage

__all__ = ["LatestOut", "LatestValuesOut", "latest_out"]


class LatestOut(BaseModel):
    """A signal's most recent reading within the caller's rights."""

    signal: str = Field(description="VSS name")
    t: int = Field(description="Reading time, unix ms")
    value: float | str = Field(description=VALUE_DOC)
    batch_id: int = Field(description="The anchored batch")
    leaf_index: int = Field(description="The bundle's index in the batch")


class LatestValuesOut(BaseModel):
    """Each signal's latest value the caller may read."""

    vehicle_id: int = Field(description="The vehicle")
    at: int = Field(description="The API's time of the answer, unix ms")
    values: list[LatestOut] = Field(description="Covered signals with a reading")
    withheld: list[WithheldOut] = Field(description="The signals your rights do not cover")


def latest_out(
    conn: Connection, vehicle_id: int, coverage: Coverage, names: Sequence[str]
) -> LatestValuesOut:
    """The latest reading of each of `names` inside the times `coverage` gives, and the
    signals it does not cover.

    Raises:
        PrivilegeMissing: none of `names` is covered at all.
    """
    covered, withheld = split(coverage, names, 0, coverage.now_ms)
    found = latest_values(conn, vehicle_id, list(covered), within=covered)
    return LatestValuesOut(
        vehicle_id=vehicle_id,
        at=coverage.now_ms,
        values=[
            LatestOut(
                signal=name,
                t=found[name].ts,
                value=found[name].value,
                batch_id=found[name].batch_id,
                leaf_index=found[name].leaf_index,
            )
            for name in covered
            if name in found
        ],
        withheld=withheld,
    )
