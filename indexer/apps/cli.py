"""The `dimo apps` commands: ask the API for an application's answer, save it with its chart,
and with `--audit` recompute it from the inputs' proofs alone, checked against the chain."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from apps.exceptions import AppError
from indexer.exceptions import IndexerError
from protocol.clisession import (
    DEFAULT_API_URL,
    CliError,
    api_errors,
    auth_headers,
    check_answer,
    load_token,
    one_line_errors,
    parse_when,
)
from protocol.deployment import Deployment

if TYPE_CHECKING:
    from apps.audit import AuditOutcome, Compute

app = typer.Typer(
    help="Applications over verified readings: battery health, vehicle finance, insurance, grid.",
    no_args_is_help=True,
)
console = Console()

ApiOpt = Annotated[
    str, typer.Option(envvar="DIMO_API_URL", help="The indexer API's base URL (DIMO_API_URL).")
]
TokenOpt = Annotated[
    str,
    typer.Option(
        envvar="DIMO_API_TOKEN",
        help="Bearer token (DIMO_API_TOKEN); default: the one `dimo indexer login` saved.",
    ),
]
VehicleOpt = Annotated[int, typer.Option("--vehicle", min=0, help="Vehicle token id.")]
_WHEN = "unix ms, a span back from now (7d, 12h), now, or an ISO date (2026-03-02T08:00Z)"


def _when(text: str) -> int:
    try:
        return parse_when(text)
    except CliError as exc:
        raise typer.BadParameter(str(exc)) from None


StartOpt = Annotated[
    int,
    typer.Option(
        "--start", "--since", parser=_when, metavar="WHEN", help=f"Window start: {_WHEN}."
    ),
]
EndOpt = Annotated[
    int,
    typer.Option(
        "--end", "--until", parser=_when, metavar="WHEN", help=f"Window end (exclusive): {_WHEN}."
    ),
]
OptStartOpt = Annotated[
    int | None,
    typer.Option(
        "--start", "--since", parser=_when, metavar="WHEN", help=f"Window start: {_WHEN}."
    ),
]
OptEndOpt = Annotated[
    int | None,
    typer.Option(
        "--end", "--until", parser=_when, metavar="WHEN", help=f"Window end (exclusive): {_WHEN}."
    ),
]
AuditOpt = Annotated[bool, typer.Option("--audit", help="Recompute from proofs alone and compare.")]
RpcOpt = Annotated[
    str | None,
    typer.Option(envvar="DIMO_INDEXER_RPC_URL", help="Chain JSON-RPC URL, for --audit."),
]
AnchorOpt = Annotated[
    str | None, typer.Option(help="AttestationAnchor address (else from --deployment).")
]
DeploymentOpt = Annotated[
    Path | None,
    typer.Option(envvar="DIMO_DEPLOYMENT", help="Deployment record, for the anchor address."),
]
OutOpt = Annotated[Path, typer.Option(help="Folder for the answer (JSON) and the chart (PNG).")]
ParamsOpt = Annotated[
    str | None, typer.Option(help='JSON object of method parameters, e.g. {"min_soc_delta":20}.')
]


def compute_of(app_name: str) -> Compute:
    """Each application's pure function, by the name its answers carry (imported when used:
    the apps pull in numpy, SQLAlchemy and web3, which `--help` does not need)."""
    from apps import battery, finance
    from indexer.apps import insurance

    functions: dict[str, Compute] = {
        "battery": battery.compute,
        "finance": finance.compute,
        "insurance": insurance.compute,
    }
    return functions[app_name]


def fetch_answer(
    api_url: str, token: str, path: str, params: Mapping[str, Any], client: httpx.Client
) -> dict[str, Any]:
    """GETs an application answer.

    Raises:
        CliError: the API cannot be reached or answered with a problem (one line, with the fix).
    """
    with api_errors(api_url):
        r = client.get(
            api_url.rstrip("/") + path,
            params={k: v for k, v in params.items() if v is not None},
            headers=auth_headers(_token(api_url, token)),
        )
    check_answer(r)
    body: dict[str, Any] = r.json()
    return body


def _token(api_url: str, token: str) -> str:
    """The token given, else the one `dimo indexer login` saved for `api_url`, else ""."""
    return token or load_token(api_url) or ""


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]error[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


def _anchor(anchor: str | None, deployment: Path | None) -> str:
    if anchor:
        return anchor
    if deployment is None:
        console.print("[red]--audit needs --anchor or --deployment (DIMO_DEPLOYMENT)[/red]")
        raise typer.Exit(2)
    return Deployment.load(deployment).contract("AttestationAnchor").address


def run_audit(
    answer: Mapping[str, Any],
    api_url: str,
    token: str,
    rpc_url: str | None,
    anchor_address: str,
    client: httpx.Client,
) -> AuditOutcome:
    """Audits an answer with the application's own pure function; prints the outcome.

    Raises:
        typer.Exit: no RPC URL, or the audit failed (code 1, the reason printed).
    """
    if not rpc_url:
        console.print("[red]--audit needs --rpc-url (DIMO_INDEXER_RPC_URL)[/red]")
        raise typer.Exit(2)
    token = _token(api_url, token)
    if not token:
        raise CliError("--audit reads proofs, which need a sign-in: run `dimo indexer login`")
    from apps.audit import audit_served

    try:
        outcome = audit_served(
            answer,
            compute_of(str(answer["app"])),
            api_url,
            token,
            rpc_url,
            anchor_address,
            client=client,
        )
    except (IndexerError, AppError, httpx.HTTPError) as exc:
        console.print(f"[red]audit failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    console.print(
        f"[green]audit passed[/green]: {outcome.bundles} bundles in {outcome.batches} batches "
        f"verified against the chain, {outcome.readings} readings; recomputed result equals "
        "the served one"
    )
    return outcome


def _save(out: Path, name: str, answer: Mapping[str, Any]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(answer, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path


def _fmt(x: Any, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}" if isinstance(x, float) else str(x)


@app.command("battery")
@one_line_errors(_fail)
def battery_command(
    vehicle: VehicleOpt,
    start: StartOpt,
    end: EndOpt,
    api_url: ApiOpt = DEFAULT_API_URL,
    token: TokenOpt = "",
    audit: AuditOpt = False,
    rpc_url: RpcOpt = None,
    anchor: AnchorOpt = None,
    deployment: DeploymentOpt = None,
    out: OutOpt = Path("data/apps"),
    params: ParamsOpt = None,
) -> None:
    """State of health with its interval, degradation, charging behaviour; chart and audit."""
    with httpx.Client(timeout=300) as client:
        answer = fetch_answer(
            api_url,
            token,
            f"/apps/battery/{vehicle}",
            {"start": start, "end": end, "params": params},
            client,
        )
        result = answer["result"]
        path = _save(out, f"battery-{vehicle}", answer)
        chart = out / f"battery-{vehicle}-soh.png"
        from indexer.apps.charts import soh_chart

        chart.write_bytes(soh_chart(result, start, end, vehicle_id=vehicle))
        table = Table(title=f"Battery, vehicle {vehicle} ({result['method']})")
        table.add_column("figure")
        table.add_column("value", justify="right")
        soh = result["soh"]
        table.add_row("SoH %", _fmt(soh and soh["percent"]))
        table.add_row("95 % interval", "-" if not soh else " - ".join(_fmt(x) for x in soh["ci95"]))
        table.add_row("sessions used", _fmt(soh and soh["sessions_used"]))
        deg = result["degradation"]
        table.add_row("degradation fit %/year", _fmt(deg["fit_pct_per_year"]))
        table.add_row("lifetime %/year", _fmt(deg["lifetime_pct_per_year"]))
        table.add_row("vs field 1.8-2.3 %/year", deg["assessment"])
        if result["charging"]:
            table.add_row("DC share (energy)", _fmt(result["charging"]["dc_share_energy"]))
        table.add_row("inputs (bundles)", str(len(answer["inputs"])))
        console.print(table)
        console.print(f"answer: {path}\nchart:  {chart}")
        if audit:
            run_audit(answer, api_url, token, rpc_url, _anchor(anchor, deployment), client)


@app.command("finance")
@one_line_errors(_fail)
def finance_command(
    vehicle: VehicleOpt,
    start: StartOpt,
    end: EndOpt,
    api_url: ApiOpt = DEFAULT_API_URL,
    token: TokenOpt = "",
    audit: AuditOpt = False,
    rpc_url: RpcOpt = None,
    anchor: AnchorOpt = None,
    deployment: DeploymentOpt = None,
    out: OutOpt = Path("data/apps"),
    params: ParamsOpt = None,
) -> None:
    """Odometer history with tamper signals, usage, battery and value adjustment; audit."""
    with httpx.Client(timeout=300) as client:
        answer = fetch_answer(
            api_url,
            token,
            f"/apps/finance/{vehicle}",
            {"start": start, "end": end, "params": params},
            client,
        )
        result = answer["result"]
        path = _save(out, f"finance-{vehicle}", answer)
        odo = result["odometer"]
        table = Table(title=f"Finance, vehicle {vehicle} ({result['method']})")
        table.add_column("figure")
        table.add_column("value", justify="right")
        table.add_row("odometer km", _fmt(odo["latest"] and odo["latest"]["km"], 1))
        table.add_row("tamper flags", ", ".join(odo["flags"]) or "none")
        table.add_row("signed share of odometer", _fmt(odo["signed_share_of_odometer"], 4))
        table.add_row("covered share of life", _fmt(odo["covered_share_of_life"], 4))
        if result["usage"]:
            table.add_row("annual km", _fmt(result["usage"]["annual_km"], 0))
            table.add_row("trips per week", _fmt(result["usage"]["trips_per_week"], 1))
        if result["battery"] and result["battery"]["soh"]:
            table.add_row("SoH %", _fmt(result["battery"]["soh"]["percent"]))
        value = result["value"]
        for f in value["factors"]:
            table.add_row(f"factor: {f['name']}", _fmt(f["value"], 4))
        table.add_row("value", _fmt(value["value"], 0))
        table.add_row("adjustment", _fmt(value["adjustment"], 0))
        console.print(table)
        console.print(f"answer: {path}")
        if audit:
            run_audit(answer, api_url, token, rpc_url, _anchor(anchor, deployment), client)


@app.command("insurance")
@one_line_errors(_fail)
def insurance_command(
    vehicle: Annotated[
        int | None, typer.Option("--vehicle", min=0, help="Vehicle token id.")
    ] = None,
    start: OptStartOpt = None,
    end: OptEndOpt = None,
    api_url: ApiOpt = DEFAULT_API_URL,
    token: TokenOpt = "",
    audit: AuditOpt = False,
    export: Annotated[
        Path | None,
        typer.Option("--export", help="Write the window's signed readings and proofs to FILE."),
    ] = None,
    verify: Annotated[
        Path | None,
        typer.Option("--verify", help="Verify an exported FILE with no server (offline)."),
    ] = None,
    rpc_url: RpcOpt = None,
    anchor: AnchorOpt = None,
    deployment: DeploymentOpt = None,
    out: OutOpt = Path("data/apps"),
    params: ParamsOpt = None,
) -> None:
    """Driving score with its trips and events; `--audit`, `--export FILE`, `--verify FILE`.

    `--verify` needs nothing but the file; with `--rpc-url` it also compares each batch root
    with the chain's, and with `--anchor`/`--deployment` it checks the file's anchor address.
    """
    if verify is not None:
        _verify_insurance_export(verify, rpc_url, anchor, deployment)
        return
    if vehicle is None or start is None or end is None:
        console.print("[red]--vehicle, --start and --end are needed (or --verify FILE)[/red]")
        raise typer.Exit(2)
    query = {"start": start, "end": end, "params": params}
    with httpx.Client(timeout=300) as client:
        answer = fetch_answer(api_url, token, f"/apps/insurance/{vehicle}/score", query, client)
        result = answer["result"]
        path = _save(out, f"insurance-{vehicle}", answer)
        table = Table(title=f"Driving score, vehicle {vehicle} ({result['version']})")
        table.add_column("figure")
        table.add_column("value", justify="right")
        table.add_row("score (0-100)", _fmt(result["score"]))
        for name, points in result["penalties"].items():
            table.add_row(f"penalty: {name}", _fmt(points, 3))
        for name in ("trips", "distance_km", "harsh_braking", "harsh_acceleration"):
            table.add_row(name, _fmt(result["exposure"][name]))
        table.add_row(
            "high speed s / night s",
            f"{result['exposure']['high_speed_s']:.0f} / {result['exposure']['night_s']:.0f}",
        )
        table.add_row("inputs (bundles)", str(len(answer["inputs"])))
        console.print(table)
        console.print(f"answer: {path}")
        if end - start <= 86_400_000:
            r = client.get(
                f"{api_url.rstrip('/')}/apps/insurance/{vehicle}/chart.png",
                params={k: v for k, v in query.items() if v is not None},
                headers=auth_headers(_token(api_url, token)),
            )
            if r.status_code == 200:
                chart = out / f"insurance-{vehicle}-trips.png"
                chart.write_bytes(r.content)
                console.print(f"chart:  {chart}")
        if export is not None:
            doc = fetch_answer(api_url, token, f"/apps/insurance/{vehicle}/export", query, client)
            export.parent.mkdir(parents=True, exist_ok=True)
            export.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
            console.print(f"export: {export} ({len(doc['bundles'])} signed bundles)")
        if audit:
            run_audit(answer, api_url, token, rpc_url, _anchor(anchor, deployment), client)


def _verify_insurance_export(
    path: Path, rpc_url: str | None, anchor: str | None, deployment: Path | None
) -> None:
    trusted = anchor or (
        Deployment.load(deployment).contract("AttestationAnchor").address if deployment else None
    )
    from indexer.apps import insurance

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        checked = insurance.verify_export(doc, rpc_url=rpc_url, anchor=trusted)
    except (IndexerError, AppError, OSError, ValueError) as exc:
        console.print(f"[red]export rejected:[/red] {exc}")
        raise typer.Exit(1) from exc
    console.print(
        f"[green]export verified[/green]: {checked.bundles} bundles signed by "
        f"{', '.join(checked.devices)} in {checked.batches} batches; Merkle paths lead to the "
        f"roots{' held on-chain' if checked.roots_checked_on_chain else ' in the file'}; "
        f"score {checked.result.score} recomputed from the signed readings"
    )


@app.command("energy")
@one_line_errors(_fail)
def energy_command(
    vehicle: Annotated[
        int | None, typer.Option("--vehicle", min=0, help="Vehicle token id.")
    ] = None,
    start: OptStartOpt = None,
    end: OptEndOpt = None,
    report: Annotated[
        int | None, typer.Option(min=1, help="A settlement report id: fetch it and its chart.")
    ] = None,
    api_url: ApiOpt = DEFAULT_API_URL,
    token: TokenOpt = "",
    out: OutOpt = Path("data/apps"),
    params: ParamsOpt = None,
    pay: Annotated[
        bool, typer.Option("--pay", help="Pay the --report's settlement in DIMO on-chain.")
    ] = False,
    product: Annotated[
        int | None, typer.Option(min=1, help="For --pay: your licensed CHARGING product.")
    ] = None,
    key_env: Annotated[
        str, typer.Option(help="For --pay: environment variable holding the utility's key.")
    ] = "DIMO_UTILITY_KEY",
    permit: Annotated[
        bool,
        typer.Option(
            "--permit/--approve",
            help="For --pay, when the allowance is short: sign an "
            "ERC-2612 permit (one transaction) or send an approve first.",
        ),
    ] = True,
    rpc_url: RpcOpt = None,
    deployment: DeploymentOpt = None,
) -> None:
    """A vehicle's charging sessions and flexibility, or a demand-response settlement, which
    `--pay` pays through the data market (each vehicle credited its amount, fee on top)."""
    if pay and report is None:
        console.print("[red]--pay needs --report ID[/red]")
        raise typer.Exit(2)
    from indexer.apps import energy

    with httpx.Client(timeout=300) as client:
        if report is not None:
            body = fetch_answer(api_url, token, f"/apps/energy/reports/{report}", {}, client)
            path = _save(out, f"energy-report-{report}", body)
            settlement = body["settlement"]
            chart = out / f"energy-report-{report}.png"
            chart.write_bytes(energy.delivery_chart(settlement))
            table = Table(title=f"Settlement of event {settlement['event_id']}")
            for column in ("vehicle", "status", "baseline kWh", "actual kWh", "delivered kWh"):
                table.add_column(column, justify="right")
            for v in settlement["vehicles"]:
                table.add_row(
                    str(v["vehicle_id"]),
                    v["status"],
                    _fmt(v["baseline_kwh"]),
                    _fmt(v["actual_kwh"]),
                    _fmt(v["delivered_kwh"]),
                )
            console.print(table)
            console.print(f"report: {path}\nchart:  {chart}")
            if pay:
                paid = _pay_settlement(body, product, key_env, permit, rpc_url, deployment)
                receipt = _save(out, f"energy-report-{report}-payment", paid)
                console.print(f"payment: {receipt}")
            return
        if vehicle is None or start is None or end is None:
            console.print("[red]--vehicle, --start and --end are needed (or --report ID)[/red]")
            raise typer.Exit(2)
        answer = fetch_answer(
            api_url,
            token,
            f"/apps/energy/{vehicle}/sessions",
            {"start": start, "end": end, "params": params},
            client,
        )
        path = _save(out, f"energy-{vehicle}", answer)
        table = Table(title=f"Charging sessions, vehicle {vehicle}")
        for column in ("plug-in", "hours", "kWh", "peak kW", "slack h", "movable kWh"):
            table.add_column(column, justify="right")
        for sess in answer["result"]["sessions"]:
            table.add_row(
                energy.iso(sess["plug_in_ms"]),
                _fmt(sess["plugged_h"]),
                _fmt(sess["energy_kwh"]),
                _fmt(sess["peak_kw"]),
                _fmt(sess["slack_h"]),
                _fmt(sess["shiftable_kwh"]),
            )
        console.print(table)
        console.print(f"answer: {path}")


def _pay_settlement(
    body: Mapping[str, Any],
    product: int | None,
    key_env: str,
    permit: bool,
    rpc_url: str | None,
    deployment: Path | None,
) -> dict[str, Any]:
    """Pays a served settlement report through `DataMarket.paySettlement`; the receipt.

    Raises:
        typer.Exit: a missing option (2), or a settlement already paid or refused (1).
    """
    key = os.environ.get(key_env)
    if product is None or not key or not rpc_url or deployment is None:
        needs = {
            "--product (the licensed CHARGING product)": product is None,
            f"the utility's key in ${key_env}": not key,
            "--rpc-url (DIMO_INDEXER_RPC_URL)": not rpc_url,
            "--deployment (DIMO_DEPLOYMENT)": deployment is None,
        }
        console.print(f"[red]--pay needs {', '.join(k for k, v in needs.items() if v)}[/red]")
        raise typer.Exit(2)
    from indexer.apps import settlement_pay

    served = body.get("payment") or {}
    if served.get("paid"):
        console.print(f"[red]already paid[/red] in {served['tx_hash']}")
        raise typer.Exit(1)
    try:
        call = settlement_pay.settlement_call(body["settlement"])
        if served.get("settlement_id") not in (None, "0x" + call.settlement_id.hex()):
            raise settlement_pay.SettlementNotPayable(
                f"the API names settlement id {served['settlement_id']}, this client "
                f"0x{call.settlement_id.hex()}"
            )
        payer = settlement_pay.SettlementPayer(rpc_url, Deployment.load(deployment), key)
        if payer.is_paid(call.settlement_id):
            console.print("[red]already paid[/red] on-chain (not indexed yet)")
            raise typer.Exit(1)
        with console.status(f"paying {len(call.vehicle_ids)} vehicles"):
            receipt = payer.pay(product, call, permit=permit)
    except IndexerError as exc:
        console.print(f"[red]payment failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    rows = Table(title=f"Settlement {receipt.settlement_id} paid")
    for column in ("tx", "product", "vehicles", "total wei", "fee wei"):
        rows.add_column(column, justify="right")
    rows.add_row(
        receipt.tx_hash,
        str(receipt.product_id),
        str(receipt.vehicles),
        str(receipt.total),
        str(receipt.fee),
    )
    console.print(rows)
    return {
        **asdict(receipt),
        "payer": payer.address,
        "vehicle_ids": call.vehicle_ids,
        "amounts": [str(a) for a in call.amounts],
    }
