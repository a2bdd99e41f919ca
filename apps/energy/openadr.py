"""OpenADR 3 objects: durations, times and reports as the utility reads them."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from apps.energy.params import VERSION

_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def parse_duration_ms(text: str) -> int:
    """An ISO 8601 duration of days, hours, minutes and seconds (`PT2H`, `P1DT30M`) in ms.

    Raises:
        ValueError: not such a duration, or zero.
    """
    m = _DURATION.match(text)
    if m is None or text in ("P", "PT"):
        raise ValueError(f"{text!r} is not an ISO 8601 duration like PT2H")
    d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    ms = round((((d * 24 + h) * 60 + mi) * 60 + s) * 1000)
    if ms <= 0:
        raise ValueError(f"{text!r} is empty")
    return ms


def iso(ms: int) -> str:
    """Unix ms as an RFC 3339 UTC time (`2026-01-01T18:00:00.000Z`)."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def openadr_report(
    report_id: int, event: Mapping[str, Any], settlement: Mapping[str, Any], client: str, now: int
) -> dict[str, Any]:
    """The settlement as an OpenADR 3 REPORT: per vehicle, baseline, usage and delivery."""
    window = {
        "start": iso(int(event["start_ms"])),
        "duration": f"PT{(int(event['end_ms']) - int(event['start_ms'])) // 1000}S",
    }
    return {
        "id": str(report_id),
        "objectType": "REPORT",
        "createdDateTime": iso(now),
        "modificationDateTime": iso(now),
        "programID": str(event["program_id"]),
        "eventID": str(event["id"]),
        "clientName": client,
        "reportName": f"settlement of event {event['id']} ({VERSION})",
        "payloadDescriptors": [
            {"objectType": "REPORT_PAYLOAD_DESCRIPTOR", "payloadType": t, "units": "KWH"}
            for t in ("BASELINE", "USAGE", "DELIVERED")
        ],
        "resources": [
            {
                "resourceName": f"vehicle:{v['vehicle_id']}",
                "intervalPeriod": window,
                "intervals": [
                    {
                        "id": 0,
                        "payloads": [
                            {"type": "BASELINE", "values": [v["baseline_kwh"]]},
                            {"type": "USAGE", "values": [v["actual_kwh"]]},
                            {"type": "DELIVERED", "values": [v["paid_kwh"]]},
                        ],
                    }
                ],
            }
            for v in settlement["vehicles"]
        ],
    }


def dumps(data: Any) -> str:
    """Canonical JSON text (stored bodies)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"))
