"""The `dimo rewards` commands: compute, verify and post an epoch's allocation; fund an epoch."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from protocol.blobstore import BlobStore, KuboRpcStore, LocalCidStore
from protocol.deployment import Deployment, DeploymentError
from rewards.config import RewardsSettings
from rewards.exceptions import InvalidAllocation, RewardsError

if TYPE_CHECKING:  # the computer pulls in web3 and numpy: imported when a command runs
    from rewards.compute import ComputedEpoch, RewardsComputer, Verification

app = typer.Typer(
    help="Weekly rewards: compute and verify allocations from public inputs, post roots.",
    no_args_is_help=True,
)
console = Console()


def blob_store(settings: RewardsSettings) -> BlobStore:
    """The configured blob store: Kubo when `kubo_url` is set, else the local CID store."""
    if settings.kubo_url:
        return KuboRpcStore(settings.kubo_url)
    return LocalCidStore(Path(settings.blob_dir))


def computer(settings: RewardsSettings) -> RewardsComputer:
    """A computer over the configured chain, blob store and catalog.

    Raises:
        DeploymentError: the deployment record is missing or invalid.
        RewardsConfigError: the catalog is missing or invalid.
    """
    from rewards.catalog import ModelCatalog
    from rewards.chain import RewardsChain
    from rewards.compute import RewardsComputer

    deployment = Deployment.load(Path(settings.deployment))
    chain = RewardsChain(
        settings.rpc_url,
        deployment,
        log_range=settings.log_range,
        timeout_s=settings.rpc_timeout_s,
    )
    return RewardsComputer(
        chain, blob_store(settings), ModelCatalog.load(settings.catalog), workers=settings.workers
    )


def write_outputs(computed: ComputedEpoch, out_dir: Path) -> Path:
    """Write `allocation.json`, `allocation.csv` and `allocation.cid` under `epoch-<N>/`.

    Returns:
        The directory written.
    """
    folder = out_dir / f"epoch-{computed.epoch}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "allocation.json").write_bytes(computed.document)
    (folder / "allocation.csv").write_text(computed.csv())
    (folder / "allocation.cid").write_text(computed.cid + "\n")
    return folder


def _summary(computed: ComputedEpoch) -> dict[str, Any]:
    a = computed.allocation
    return {
        "epoch": a.epoch,
        "vehicles": len(a.vehicles),
        "paid": len(a.amounts),
        "totalPoints": a.total_points,
        "budget": str(a.budget),
        "total": str(a.total),
        "root": None if a.root is None else "0x" + a.root.hex(),
        "cid": computed.cid,
    }


def _table(title: str, rows: dict[str, Any]) -> Table:
    table = Table(title=title)
    table.add_column("what")
    table.add_column("value", overflow="fold")
    for key, value in rows.items():
        table.add_row(key, str(value))
    return table


DeploymentOpt = Annotated[
    Path | None,
    typer.Option(
        help="Deployment record to read (default DIMO_REWARDS_DEPLOYMENT, else "
        "data/deployments/31337.json under the current folder)."
    ),
]
RpcOpt = Annotated[
    str | None, typer.Option(help="Chain JSON-RPC URL (default DIMO_REWARDS_RPC_URL).")
]
BlobDirOpt = Annotated[
    Path | None,
    typer.Option(help="Local blob store folder (default DIMO_REWARDS_BLOB_DIR, else data/blobs)."),
]


def _settings(
    deployment: Path | None, rpc_url: str | None, blob_dir: Path | None
) -> RewardsSettings:
    """The rewards settings, with what the command line names in place of the environment's."""
    overrides = {"deployment": deployment, "rpc_url": rpc_url, "blob_dir": blob_dir}
    settings = RewardsSettings()
    return settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})


def _fail(exc: Exception) -> typer.Exit:
    console.print(f"[red]error[/] {exc}")
    return typer.Exit(1)


@app.command("compute")
def compute_command(
    epoch: int = typer.Option(..., "--epoch", min=0, help="The epoch (week) to compute."),
    deployment: DeploymentOpt = None,
    rpc_url: RpcOpt = None,
    blob_dir: BlobDirOpt = None,
    out: Annotated[
        Path | None, typer.Option(help="Output directory (default DIMO_REWARDS_OUT_DIR).")
    ] = None,
    horizon: int | None = typer.Option(
        None, min=0, help="Last batch id to consider (default: the last anchored)."
    ),
    from_scratch: bool = typer.Option(
        False, help="Recompute the streaks from genesis instead of the posted allocations."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Builds an epoch's allocation from public inputs; writes JSON, CSV, root and CID."""
    settings = _settings(deployment, rpc_url, blob_dir)
    try:
        with console.status(f"computing epoch {epoch}"):
            computed = computer(settings).compute(epoch, horizon=horizon, from_scratch=from_scratch)
    except (RewardsError, InvalidAllocation, DeploymentError) as exc:
        raise _fail(exc) from None
    folder = write_outputs(computed, out or settings.out_dir)
    summary = _summary(computed) | {"out": str(folder)}
    if as_json:
        print(json.dumps(summary))
        return
    console.print(_table(f"rewards epoch {epoch}", summary))


def _show_verification(result: Verification) -> None:
    a = result.recomputed.allocation
    rows = {
        "on-chain root": "0x" + result.onchain.root.hex(),
        "recomputed root": "none" if a.root is None else "0x" + a.root.hex(),
        "on-chain total": str(result.onchain.total),
        "recomputed total": str(a.total),
        "posted CID": result.posted_cid,
        "recomputed CID": result.recomputed.cid,
        "root": "MATCHES" if result.root_matches else "DIFFERS",
        "document": "identical" if result.document_matches else "differs",
    }
    for check in result.earlier:
        rows[f"epoch {check.epoch}"] = "matches" if check.ok else "DIFFERS"
    console.print(_table(f"rewards epoch {result.epoch}", rows))
    for vehicle, posted, ours in result.differences:
        console.print(f"  vehicle {vehicle}: posted {posted}, recomputed {ours}")


@app.command("verify")
def verify_command(
    epoch: int = typer.Option(..., "--epoch", min=0, help="The posted epoch to check."),
    deployment: DeploymentOpt = None,
    rpc_url: RpcOpt = None,
    blob_dir: BlobDirOpt = None,
    from_scratch: bool = typer.Option(
        False, help="Recompute every epoch from genesis, trusting no posted allocation."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Recomputes a posted epoch from public inputs and compares it with the on-chain root.

    Exits with status 1 when the root (or an earlier epoch's, with --from-scratch) differs.
    """
    settings = _settings(deployment, rpc_url, blob_dir)
    try:
        with console.status(f"verifying epoch {epoch}"):
            result = computer(settings).verify(epoch, from_scratch=from_scratch)
    except (RewardsError, InvalidAllocation, DeploymentError) as exc:
        raise _fail(exc) from None
    if as_json:
        print(
            json.dumps(
                _summary(result.recomputed)
                | {
                    "onchainRoot": "0x" + result.onchain.root.hex(),
                    "postedCid": result.posted_cid,
                    "rootMatches": result.root_matches,
                    "documentMatches": result.document_matches,
                    "earlier": {str(c.epoch): c.ok for c in result.earlier},
                    "differences": result.differences,
                }
            )
        )
    else:
        _show_verification(result)
    if not result.ok:
        raise typer.Exit(1)


def _secret(value: Any) -> str:
    return str(value.get_secret_value())


@app.command("post")
def post_command(
    epoch: int = typer.Option(..., "--epoch", min=0, help="The ended epoch to post."),
    deployment: DeploymentOpt = None,
    rpc_url: RpcOpt = None,
    blob_dir: BlobDirOpt = None,
    key_env: Annotated[
        list[str] | None,
        typer.Option(
            help="Environment variable holding an oracle key (repeatable); adds to "
            "DIMO_REWARDS_SIGNER_KEYS."
        ),
    ] = None,
) -> None:
    """Computes the epoch, stores its document by CID, signs with the oracle keys and posts."""
    settings = _settings(deployment, rpc_url, blob_dir)
    keys = [_secret(k) for k in settings.signer_keys]
    for name in key_env or []:
        value = os.environ.get(name)
        if not value:
            console.print(f"[red]error[/] environment variable {name} is not set")
            raise typer.Exit(2)
        keys.append(value)
    if settings.submitter_key is None:
        console.print("[red]error[/] set DIMO_REWARDS_SUBMITTER_KEY (the relaying account)")
        raise typer.Exit(2)
    try:
        with console.status(f"posting epoch {epoch}"):
            result = computer(settings).post(epoch, keys, _secret(settings.submitter_key))
    except (RewardsError, InvalidAllocation, DeploymentError) as exc:
        raise _fail(exc) from None
    folder = write_outputs(result.computed, settings.out_dir)
    rows = _summary(result.computed) | {
        "tx": result.tx_hash,
        "signers": ", ".join(result.signers),
        "out": str(folder),
    }
    console.print(_table(f"rewards epoch {epoch} posted", rows))


@app.command("fund")
def fund_command(
    epoch: int = typer.Option(..., "--epoch", min=0, help="The epoch whose delay is over."),
    deployment: DeploymentOpt = None,
    rpc_url: RpcOpt = None,
    blob_dir: BlobDirOpt = None,
    cache_depth: int | None = typer.Option(
        None,
        "--cache-depth",
        min=0,
        max=16,
        help="Tree level to store on-chain so that claims prove less (default "
        "DIMO_REWARDS_CACHE_DEPTH, 8; 0 for none).",
    ),
) -> None:
    """Mints an epoch's total into the Rewards contract and stores the top of its tree, so that
    no claimant pays for either."""
    settings = _settings(deployment, rpc_url, blob_dir)
    if settings.submitter_key is None:
        console.print("[red]error[/] set DIMO_REWARDS_SUBMITTER_KEY (the relaying account)")
        raise typer.Exit(2)
    depth = settings.cache_depth if cache_depth is None else cache_depth
    try:
        with console.status(f"funding epoch {epoch}"):
            result = computer(settings).fund(epoch, _secret(settings.submitter_key), depth)
    except (RewardsError, InvalidAllocation, DeploymentError) as exc:
        raise _fail(exc) from None
    rows = {
        "funded": result.funded_tx or "already",
        "level cached": result.cache_tx or "already",
        "claim proofs stop at depth": result.cached_depth,
    }
    console.print(_table(f"rewards epoch {epoch} funded", rows))


if __name__ == "__main__":
    app()
