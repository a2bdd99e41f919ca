"""Deploys the contracts through the Ape deploy script, or resumes an existing deployment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from protocol.deployment import Deployment, DeploymentError
from stack.chain import rpc
from stack.exceptions import DeployError


def existing_deployment(path: Path, rpc_url: str) -> Deployment | None:
    """The record at `path` if every contract in it has code on the chain at `rpc_url`."""
    try:
        record = Deployment.load(path)
    except DeploymentError:
        return None
    for contract in record.contracts.values():
        if rpc(rpc_url, "eth_getCode", [contract.address, "latest"]) in ("0x", "0x0", None):
            return None
    return record


def deploy(
    root: Path,
    rpc_url: str,
    network: str,
    record_path: Path,
    rewards_genesis: int | None = None,
) -> Deployment:
    """Runs `ape run deploy` against the node at `rpc_url` and loads the record it wrote;
    `rewards_genesis` (unix s) sets the first second of rewards epoch 0 (default: the deploy's
    time)."""
    env = dict(os.environ)
    env.update({"APE_FOUNDRY_HOST": rpc_url, "DIMO_DEPLOYMENT": str(record_path.resolve())})
    if rewards_genesis is not None:
        env["DIMO_REWARDS_GENESIS"] = str(rewards_genesis)
    ape = Path(sys.executable).with_name("ape")
    proc = subprocess.run(
        [str(ape), "run", "deploy", "--network", network],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise DeployError(proc.returncode, proc.stdout + proc.stderr)
    return Deployment.load(record_path)
