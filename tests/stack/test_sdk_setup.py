"""The SDK setup lines `dimo stack run` prints point DIMO's Python SDK at the stack when run."""

from __future__ import annotations

import textwrap

from stack.sdk_setup import sdk_setup_lines

API = "http://127.0.0.1:8700"
NFT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
TRIGGERS = "http://127.0.0.1:8800"
ATTESTATION = "http://127.0.0.1:8630"


def test_the_python_lines_set_the_sdks_hosts_and_nft_address() -> None:
    from dimo.constants import dimo_constants
    from dimo.environments import dimo_environment

    lines = sdk_setup_lines(API, NFT, TRIGGERS, ATTESTATION)
    start = lines.index("Python (pip install dimo-python-sdk==1.8.0):") + 1
    end = next(i for i, line in enumerate(lines) if line.startswith("JavaScript"))
    code = textwrap.dedent("\n".join(lines[start:end]))
    saved_env = dict(dimo_environment["Production"])
    saved_nft = dimo_constants["Production"]["NFT_address"]
    try:
        scope: dict[str, object] = {}
        exec(code, scope)
        dimo = scope["dimo"]
        assert dimo._get_full_path("Auth", "/auth/web3/generate_challenge") == (  # type: ignore[attr-defined]
            API + "/auth/web3/generate_challenge"
        )
        assert dimo._get_full_path("Identity", "") == API + "/query"  # type: ignore[attr-defined]
        assert dimo._get_full_path("Telemetry", "") == (  # type: ignore[attr-defined]
            API + "/telemetry/query"
        )
        assert dimo._get_full_path("VehicleTriggers", "/v1/webhooks") == (  # type: ignore[attr-defined]
            TRIGGERS + "/v1/webhooks"
        )
        assert dimo._get_full_path("Attestation", "/v2/attestation/vin/7") == (  # type: ignore[attr-defined]
            ATTESTATION + "/v2/attestation/vin/7"
        )
        assert dimo_constants["Production"]["NFT_address"] == NFT
    finally:
        dimo_environment["Production"].update(saved_env)
        dimo_constants["Production"]["NFT_address"] = saved_nft


def test_the_javascript_lines_set_every_host_before_the_sdk_is_made() -> None:
    lines = sdk_setup_lines(API, NFT, TRIGGERS, ATTESTATION)
    js = "\n".join(lines[lines.index(next(x for x in lines if x.startswith("JavaScript"))) :])
    assert f'Identity: "{API}/query"' in js
    assert f'Telemetry: "{API}/telemetry/query"' in js
    assert f'VehicleTriggers: "{TRIGGERS}"' in js
    assert f'Attestation: "{ATTESTATION}"' in js
    assert js.index("Object.assign") < js.index("const dimo = new DIMO")
