"""The lines that point DIMO's SDKs at the local stack, printed by `dimo stack run`.

Neither SDK takes a URL; both keep their hosts in a mutable table per environment, and the
vehicle NFT address in a constants table. The indexer's one API serves Auth, TokenExchange and
Identity (`/query`) at the root of its host, as the SDKs join their absolute paths, and
Telemetry at `/telemetry/query` (the SDKs post to their Telemetry entry as it is, so it names
the whole path); the triggers service serves VehicleTriggers (`/v1/webhooks`) and the
attestation host Attestation (`/v2/attestation/...`) at the roots of their own.
"""

from __future__ import annotations


def sdk_setup_lines(
    api_url: str, vehicle_nft: str, triggers_url: str, attestation_url: str
) -> list[str]:
    """The Python and npm setup for an API at `api_url` whose VehicleId is `vehicle_nft`, with
    the triggers service at `triggers_url` and the attestation host at `attestation_url`."""
    return [
        "Python (pip install dimo-python-sdk==1.8.0):",
        "  from dimo import DIMO",
        "  from dimo.constants import dimo_constants",
        "  from dimo.environments import dimo_environment",
        f'  dimo_environment["Production"].update(Auth="{api_url}", '
        f'TokenExchange="{api_url}", Identity="{api_url}/query", '
        f'Telemetry="{api_url}/telemetry/query", VehicleTriggers="{triggers_url}", '
        f'Attestation="{attestation_url}")',
        f'  dimo_constants["Production"]["NFT_address"] = "{vehicle_nft}"',
        '  dimo = DIMO("Production")',
        "JavaScript (npm install @dimo-network/data-sdk@1.6.0), before new DIMO(...):",
        '  import { DIMO, DimoEnvironment, DimoConstants } from "@dimo-network/data-sdk";',
        f'  Object.assign(DimoEnvironment.Production, {{ Auth: "{api_url}", '
        f'TokenExchange: "{api_url}", Identity: "{api_url}/query", '
        f'Telemetry: "{api_url}/telemetry/query", VehicleTriggers: "{triggers_url}", '
        f'Attestation: "{attestation_url}" }});',
        f'  DimoConstants.Production.NFT_address = "{vehicle_nft}";',
        '  const dimo = new DIMO("Production");',
    ]
