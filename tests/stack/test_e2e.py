"""End to end: `dimo stack run` drives a simulated fleet for days of history at high speed, and
every bundle a bridge got a receipt for is anchored once and served with an on-chain proof;
the epoch's rewards are posted, verified by recomputation and claimed (also `make e2e`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from siwe import SiweMessage
from web3 import Web3

from protocol.bundle import BUNDLE_LEAF_ENCODING
from protocol.deployment import Deployment
from protocol.merkle import standard_leaf_hash
from protocol.vin import check_digit_ok
from stack.chain import rpc
from stack.fleet import Ledger, SealedBundle
from stack.platform import ORACLE_SIGNER_ACCOUNTS
from stack.seed import OWNERS, dev_account, load_fleet
from tests.stack.test_stack_run import free_port, read_until, stop_stack

ROOT = Path(__file__).resolve().parents[2]
DIMO = Path(sys.executable).with_name("dimo")
T = TypeVar("T")
#: The applications' per-vehicle answers.
APPS = ("battery/{}", "finance/{}", "insurance/{}/score", "energy/{}/sessions")

pytestmark = pytest.mark.slow


def wait_for(what: str, probe: Callable[[], T | None], timeout: float) -> T:
    """Polls `probe` until it returns something other than None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value is not None:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Stack:
    """A running `dimo stack run` on free ports in a temporary data folder."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.ports = {name: free_port() for name in ("ANVIL", "ORACLE", "INDEXER", "ATTESTATION")}
        self.env = dict(
            os.environ,
            COLUMNS="200",
            DIMO_STACK_DATA_DIR=str(data),
            DIMO_STACK_ANVIL_PORT=str(self.ports["ANVIL"]),
            DIMO_STACK_ORACLE_PORT=str(self.ports["ORACLE"]),
            DIMO_STACK_INDEXER_PORT=str(self.ports["INDEXER"]),
            DIMO_STACK_SIGNER_PORTS=json.dumps([free_port() for _ in range(3)]),
            DIMO_STACK_CERTIFIER_PORT=str(free_port()),
            DIMO_STACK_TRIGGERS_PORT=str(free_port()),
            DIMO_STACK_ATTESTATION_PORT=str(self.ports["ATTESTATION"]),
            # The demo posts epoch 0 itself; this test posts, verifies and claims it.
            DIMO_STACK_DEMO="false",
            DIMO_STACK_FLEET_VEHICLES="3",
            DIMO_STACK_HISTORY_DAYS="2",
            DIMO_STACK_TIME_FACTOR="8000",
            DIMO_STACK_FLEET_RATE_SCALE="0.02",
            DIMO_STACK_FLEET_LIVE="false",
            DIMO_STACK_FLEET_WINDOW_S="300",
            DIMO_STACK_BATCH_INTERVAL_S="3",
            DIMO_STACK_API_RATE_LIMIT_PER_MINUTE="0",
        )
        self.rpc_url = f"http://127.0.0.1:{self.ports['ANVIL']}"
        self.api = f"http://127.0.0.1:{self.ports['INDEXER']}"
        self.oracle = f"http://127.0.0.1:{self.ports['ORACLE']}"
        self.attestation = f"http://127.0.0.1:{self.ports['ATTESTATION']}"

    def start(self) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(DIMO), "stack", "run", "--progress-every", "5"],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def dimo(self, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(DIMO), *args],
            cwd=ROOT,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )


def fleet_done(data: Path) -> dict[str, Any] | None:
    path = data / "fleet" / "progress.json"
    if not path.exists():
        return None
    progress: dict[str, Any] = json.loads(path.read_text())
    return progress if progress["done"] else None


def oracle_settled(url: str) -> dict[str, Any] | None:
    status: dict[str, Any] = httpx.get(f"{url}/v1/status", timeout=5).json()
    states = status["batches_by_state"]
    pending = sum(n for state, n in states.items() if state != "confirmed")
    return status if status["journal_depth"] == 0 and pending == 0 else None


def sign_in(api: str, wallet: LocalAccount, authority: str) -> dict[str, str]:
    """Signs in with Ethereum (a message built by the PyPI siwe package) and returns headers."""
    nonce = httpx.get(f"{api}/auth/nonce").json()["nonce"]
    message = SiweMessage(
        domain=authority,
        address=wallet.address,
        uri=f"http://{authority}",
        version="1",
        chain_id=31337,
        issued_at=datetime.now(UTC).isoformat(),
        nonce=nonce,
        statement="Check the platform end to end.",
    ).prepare_message()
    signature = wallet.sign_message(encode_defunct(text=message)).signature.hex()
    reply = httpx.post(
        f"{api}/auth/login",
        json={"message": message, "signature": "0x" + signature.removeprefix("0x")},
    )
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


def served_proof(api: str, headers: dict[str, str], row: SealedBundle) -> dict[str, Any] | None:
    reply = httpx.get(
        f"{api}/vehicles/{row.vehicle_id}/signals/{row.signal}/readings/{row.ts}/proof",
        headers=headers,
        timeout=10,
    )
    if reply.status_code == 404:
        return None
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


def test_every_receipted_bundle_is_anchored_once_served_with_a_proof_and_rewards_are_paid(
    tmp_path: Path,
) -> None:
    stack = Stack(tmp_path)
    proc = stack.start()
    try:
        read_until(proc, "Ctrl-C stops", timeout=240)
        progress = wait_for("the fleet to catch up", lambda: fleet_done(tmp_path), 180)
        status = wait_for("the oracle to anchor", lambda: oracle_settled(stack.oracle), 120)

        # Every sealed bundle got its receipt: none waits, none was rejected.
        ledger = Ledger(tmp_path / "fleet" / "ledger.sqlite")
        rows = ledger.rows()
        ledger.close()
        assert len(rows) > 50, "the fleet drove for days"
        assert progress["waiting"] == 0
        assert progress["rejected"] == 0
        assert progress["accepted"] + progress["duplicate"] == len(rows) == progress["sealed"]

        record = Deployment.load(tmp_path / "deployments" / "31337.json")
        w3 = Web3(Web3.HTTPProvider(stack.rpc_url))
        anchor_rec = record.contract("AttestationAnchor")
        anchor = w3.eth.contract(address=anchor_rec.address, abi=anchor_rec.abi)
        anchored = anchor.events.BatchAnchored().get_logs(from_block=0)
        assert len(anchored) == status["batches_by_state"]["confirmed"]
        # The chain's batches hold exactly as many leaves as were receipted ...
        assert sum(e["args"]["count"] for e in anchored) == len(rows)

        fleet = load_fleet(tmp_path / "fleet" / "fleet.json")
        authority = f"127.0.0.1:{stack.ports['INDEXER']}"
        headers = {
            v.owner: sign_in(stack.api, dev_account(i), authority)
            for i in OWNERS
            for v in fleet
            if v.owner == dev_account(i).address
        }
        owner_of = {v.vehicle_id: v.owner for v in fleet}

        def check(row: SealedBundle) -> tuple[int, int]:
            proof = wait_for(
                f"the indexer to serve {row.device}#{row.sequence}",
                lambda: served_proof(stack.api, headers[owner_of[row.vehicle_id]], row),
                60,
            )
            leaf = proof["leaf"]
            assert (leaf["device"], leaf["sequence"]) == (row.device, row.sequence)
            values = (
                leaf["device"],
                leaf["vehicle_id"],
                leaf["sequence"],
                leaf["window_start"],
                leaf["window_end"],
                bytes.fromhex(leaf["data_hash"][2:]),
                bytes.fromhex(leaf["signature_hash"][2:]),
            )
            assert standard_leaf_hash(BUNDLE_LEAF_ENCODING, values) == row.leaf_hash
            path = [bytes.fromhex(p[2:]) for p in proof["proof"]]
            assert anchor.functions.verifyReading(proof["batch"]["id"], values, path).call()
            return proof["batch"]["id"], proof["leaf_index"]

        with ThreadPoolExecutor(4) as pool:
            places = set(pool.map(check, rows))
        # ... and each receipted bundle sits at its own place in them: anchored exactly once.
        assert len(places) == len(rows)

        # The applications answer for every vehicle, to its owner, over the simulated days.
        start, end = min(r.window_start for r in rows), max(r.window_end for r in rows)
        for vehicle in fleet:
            for path in APPS:
                reply = httpx.get(
                    f"{stack.api}/apps/{path.format(vehicle.vehicle_id)}",
                    params={"start": start, "end": end},
                    headers=headers[vehicle.owner],
                    timeout=60,
                )
                assert reply.status_code == 200, (path, vehicle.vehicle_id, reply.text)
                assert reply.json(), path

        # A VIN credential for a fleet vehicle, with no salt sent (the stack revealed it): the
        # bridge's signed Mode 09 reading opens the on-chain commitment; vinVCLatest reads it.
        first = fleet[0]
        assert check_digit_ok(first.vin)
        issued = httpx.post(
            f"{stack.attestation}/v2/attestation/vin/{first.vehicle_id}",
            headers=headers[first.owner],
            timeout=120,
        )
        assert issued.status_code == 200, issued.text
        subject = issued.json()["credential"]["credentialSubject"]
        assert subject["vehicleIdentificationNumber"] == first.vin
        assert subject["recordedBy"].lower() == first.device.lower()
        latest = httpx.post(
            f"{stack.api}/telemetry/query",
            json={"query": f"{{ vinVCLatest(tokenId: {first.vehicle_id}) {{ vin }} }}"},
            headers=headers[first.owner],
            timeout=30,
        ).json()
        assert latest["data"]["vinVCLatest"] == {"vin": first.vin}, latest

        # Rewards: end epoch 0 on the chain's clock, post, verify by recomputation, claim.
        rewards_rec = record.contract("Rewards")
        rewards = w3.eth.contract(address=rewards_rec.address, abi=rewards_rec.abi)
        _, epoch_end = rewards.functions.epochBounds(0).call()
        rpc(stack.rpc_url, "evm_setTime", [epoch_end + 1])
        rpc(stack.rpc_url, "evm_mine")
        keys = ["0x" + bytes(dev_account(i).key).hex() for i in ORACLE_SIGNER_ACCOUNTS]
        rewards_env = {
            "DIMO_REWARDS_RPC_URL": stack.rpc_url,
            "DIMO_REWARDS_DEPLOYMENT": str(tmp_path / "deployments" / "31337.json"),
            "DIMO_REWARDS_BLOB_DIR": str(tmp_path / "blobs"),
            "DIMO_REWARDS_OUT_DIR": str(tmp_path / "rewards"),
            "DIMO_REWARDS_SIGNER_KEYS": json.dumps(keys[:2]),
            "DIMO_REWARDS_SUBMITTER_KEY": "0x" + bytes(dev_account(0).key).hex(),
        }
        posted = stack.dimo("rewards", "post", "--epoch", "0", env=rewards_env)
        assert posted.returncode == 0, posted.stdout + posted.stderr
        verified = stack.dimo("rewards", "verify", "--epoch", "0", "--json", env=rewards_env)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        result = json.loads(verified.stdout.strip().splitlines()[-1])
        assert result["rootMatches"]
        assert result["documentMatches"]
        assert result["paid"] == len(fleet), "every vehicle that drove earns"
        rpc(stack.rpc_url, "evm_increaseTime", [61])
        rpc(stack.rpc_url, "evm_mine")
        # Funding stores the tree's deepest whole level, so claims prove that much less.
        funded = stack.dimo("rewards", "fund", "--epoch", "0", env=rewards_env)
        assert funded.returncode == 0, funded.stdout + funded.stderr
        depth = len(fleet).bit_length() - 1
        assert rewards.functions.epochRoot(0).call()[5] == depth

        token_rec = record.contract("DimoToken")
        token = w3.eth.contract(address=token_rec.address, abi=token_rec.abi)
        drove = {r.vehicle_id for r in rows}
        assert len(drove) == len(fleet), "every simulated vehicle drove"
        for vehicle in fleet:
            owner = next(dev_account(i) for i in OWNERS if dev_account(i).address == vehicle.owner)
            allocation = wait_for(
                f"the indexer to serve vehicle {vehicle.vehicle_id}'s rewards, cut at {depth}",
                lambda v=vehicle: _allocation(stack.api, headers[v.owner], v.vehicle_id, depth),
                60,
            )
            before = token.functions.balanceOf(owner.address).call()
            amount = int(allocation["amount"])
            proof = [bytes.fromhex(p[2:]) for p in allocation["claim_proof"]]
            _send(w3, owner, rewards.functions.claim(0, vehicle.vehicle_id, amount, proof))
            assert token.functions.balanceOf(owner.address).call() == before + amount
            assert amount > 0

        proc.send_signal(signal.SIGINT)
        out = read_until(proc, "stopped anvil", timeout=60)
        assert proc.wait(timeout=30) == 0, out
    finally:
        stop_stack(proc)


def _allocation(
    api: str, headers: dict[str, str], vehicle_id: int, depth: int
) -> dict[str, Any] | None:
    """The vehicle's allocation once the indexer has seen the level cached at `depth`."""
    reply = httpx.get(f"{api}/rewards/epochs/0/vehicles/{vehicle_id}", headers=headers, timeout=10)
    if reply.status_code == 404:
        return None
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    if len(body["claim_proof"]) != len(body["proof"]) - depth:
        return None
    assert body["claim_proof"] == body["proof"][: len(body["claim_proof"])]
    return body


def _send(w3: Web3, account: LocalAccount, fn: Any) -> None:
    tx = fn.build_transaction(
        {"from": account.address, "nonce": w3.eth.get_transaction_count(account.address)}
    )
    signed = Account.sign_transaction(tx, account.key)
    sent = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(sent)
    assert receipt["status"] == 1
