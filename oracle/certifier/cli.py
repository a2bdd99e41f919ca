"""`dimo certify`: run the battery certifier or the attestation host, or have the certifiers
sign a certificate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from oracle.certifier.attestation_api import statement_builder
from oracle.certifier.attestations import CREDENTIAL_KIND, CredentialChecker
from oracle.certifier.battery import (
    KIND,
    BatteryChecker,
    certify_battery,
    create_certifier_app,
    problem_text,
)
from oracle.certifier.config import AttestationSettings, CertifierSettings
from oracle.certifier.exceptions import CertificationFailed
from oracle.certify import CERTIFY_PATH, StatementMalformed
from oracle.exceptions import OracleError
from protocol.clisession import load_token
from protocol.deployment import Deployment, DeploymentError

app = typer.Typer(
    help="Battery health certificates signed by the oracle quorum.", no_args_is_help=True
)
console = Console()


@app.command("serve")
def serve_command(
    deployment: Annotated[
        Path | None,
        typer.Option(
            help="Deployment record to read (default DIMO_CERTIFY_DEPLOYMENT, else "
            "data/deployments/31337.json under the current folder)."
        ),
    ] = None,
) -> None:
    """Runs the certifier (DIMO_CERTIFY_* settings): POST /v1/certify/battery and
    /v1/certify/credential (credential limits from the DIMO_ATTEST_* settings)."""
    import uvicorn

    settings = CertifierSettings()
    if deployment is not None:
        settings = settings.model_copy(update={"deployment": deployment})
    try:
        record = Deployment.load(settings.deployment)
        checker = BatteryChecker(
            settings.api_url,
            settings.rpc_url,
            record,
            api_token=settings.api_token.get_secret_value() if settings.api_token else None,
        )
        limits = AttestationSettings(api_url=settings.api_url, rpc_url=settings.rpc_url)
        credentials = CredentialChecker(statement_builder(limits, record))
        service = create_certifier_app(
            [k.get_secret_value() for k in settings.keys],
            checker,
            {CREDENTIAL_KIND: credentials},
        )
    except (DeploymentError, OracleError) as exc:
        console.print(f"[red]error[/] {exc}")
        raise typer.Exit(2) from None
    console.print(
        f"[green]certifier[/] {len(settings.keys)} oracle keys on "
        f"http://{settings.host}:{settings.port}{CERTIFY_PATH}/{KIND}",
        highlight=False,
    )
    uvicorn.run(service, host=settings.host, port=settings.port, log_level="warning")


@app.command("attestations")
def attestations_command() -> None:
    """Runs the attestation host (DIMO_ATTEST_* settings): POST /v2/attestation/...."""
    import uvicorn

    from oracle.certifier.attestation_api import build_attestation_app

    settings = AttestationSettings()
    try:
        service = build_attestation_app(settings)
    except (DeploymentError, OracleError) as exc:
        console.print(f"[red]error[/] {exc}")
        raise typer.Exit(2) from None
    console.print(
        f"[green]attestations[/] {len(settings.keys)} oracle keys on "
        f"http://{settings.host}:{settings.port}/v2/attestation",
        highlight=False,
    )
    uvicorn.run(service, host=settings.host, port=settings.port, log_level="warning")


def _statement(
    client: httpx.Client, api_url: str, token: str, vehicle: int, start: int, end: int
) -> dict[str, Any]:
    r = client.get(
        f"{api_url.rstrip('/')}/apps/battery/{vehicle}/certificate",
        params={"start": start, "end": end},
        headers={"Authorization": f"Bearer {token}"},
    )
    if r.status_code != 200:
        console.print(f"[red]the indexer gave no statement[/] {problem_text(r)}")
        raise typer.Exit(2)
    certificate: dict[str, Any] = r.json()["certificate"]
    return certificate


@app.command("battery")
def battery_command(
    vehicle: Annotated[int, typer.Option("--vehicle", min=0, help="Vehicle token id.")],
    start: Annotated[int, typer.Option(min=0, help="Window start, unix ms.")],
    end: Annotated[int, typer.Option(min=1, help="Window end, unix ms (exclusive).")],
    certifier: Annotated[
        list[str] | None,
        typer.Option(
            "--certifier", help="A certifier's base URL (repeat for each); default: the local one."
        ),
    ] = None,
    api_url: Annotated[
        str, typer.Option(envvar="DIMO_API_URL", help="The indexer API's base URL.")
    ] = "http://127.0.0.1:8700",
    token: Annotated[
        str,
        typer.Option(
            envvar="DIMO_API_TOKEN",
            help="Bearer token from SIWE sign-in; the certifiers read the proofs with it "
            "(default: the token `dimo login` saved for --api-url).",
        ),
    ] = "",
    rpc_url: Annotated[
        str, typer.Option(envvar="DIMO_INDEXER_RPC_URL", help="Chain JSON-RPC URL.")
    ] = "http://127.0.0.1:8545",
    deployment: Annotated[
        Path, typer.Option(envvar="DIMO_DEPLOYMENT", help="The deployment record.")
    ] = Path("data/deployments/31337.json"),
    out: Annotated[Path, typer.Option(help="Folder for the signed certificate (JSON).")] = Path(
        "data/certificates"
    ),
) -> None:
    """Certifies a vehicle's battery health over a window, checked on-chain.

    Gets the statement from the indexer API, has the certifiers recompute and sign it with
    the oracle keys, checks the signatures with `verifyCertificate` and writes the result.
    """
    urls = certifier or [f"http://127.0.0.1:{CertifierSettings().port}"]
    token = token or load_token(api_url) or ""
    try:
        record = Deployment.load(deployment)
    except DeploymentError as exc:
        console.print(f"[red]error[/] {exc}")
        raise typer.Exit(2) from None
    with httpx.Client(timeout=600) as client:
        statement = _statement(client, api_url, token, vehicle, start, end)
        request = {
            "vehicleId": vehicle,
            "start": start,
            "end": end,
            "certificate": statement,
            "token": token,
        }
        try:
            with console.status(f"certifying with {len(urls)} certifier(s)"):
                signed = certify_battery(urls, request, rpc_url, record, client=client)
        except (CertificationFailed, StatementMalformed) as exc:
            console.print(f"[red]not certified[/] {exc}")
            raise typer.Exit(1) from None
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"battery-certificate-{vehicle}-{start}-{end}.json"
    path.write_text(json.dumps(signed.as_json(), indent=1) + "\n", encoding="utf-8")
    c = signed.certificate
    table = Table(title=f"Battery health certificate, vehicle {vehicle}")
    table.add_column("field")
    table.add_column("value", justify="right")
    table.add_row("SoH %", f"{c.soh_bps / 100:.2f}")
    table.add_row("95 % interval", f"{c.lower_bps / 100:.2f} - {c.upper_bps / 100:.2f}")
    table.add_row("method version", str(c.method_version))
    table.add_row("window (unix ms)", f"{c.window_start} - {c.window_end}")
    table.add_row("inputs root", "0x" + c.inputs_root.hex())
    table.add_row("signed by", ", ".join(signed.signers))
    console.print(table)
    console.print(
        f"[green]verifyCertificate[/] on {signed.contract} (chain {signed.chain_id}): true\n"
        f"certificate: {path}",
        highlight=False,
    )
