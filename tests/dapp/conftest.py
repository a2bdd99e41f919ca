"""Fixtures of the browser tests: Debian's chromium (installed if missing), the built dApp, and
the whole local platform (anvil, deploy, oracle quorum, oracle, indexer, a small fleet) with a
data product that one vehicle is opted in to before the fleet drives."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from protocol.deployment import Deployment
from stack.config import StackSettings
from stack.platform import ORACLE_SIGNER_ACCOUNTS, Platform
from stack.seed import OWNERS, FleetVehicle, dev_account
from tests.stack.test_e2e import fleet_done, oracle_settled, wait_for
from tests.stack.test_stack_run import free_port

ROOT = Path(__file__).resolve().parents[2]
DIMO = Path(sys.executable).with_name("dimo")
CHROMIUM = Path("/usr/bin/chromium")
#: Where each run leaves its screenshots (gitignored).
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
#: anvil dev accounts by role in these tests (the fleet's owners are 2, 3 and 4).
ADMIN, BUYER, HOLDER, GRANTEE = 0, 5, 6, 8
DIMO_WEI = 10**18
#: The product the fixture lists: BATTERY | CHARGING | ODOMETER | DRIVING, 10 DIMO a 30 days.
PRODUCT_SCOPES = 0b1111
PRODUCT_PRICE = 10 * DIMO_WEI
PRODUCT_PERIOD_S = 30 * 86_400


def ensure_chromium() -> str:
    """Debian's chromium, installed with apt-get if it is missing; fails the run if it cannot."""
    if CHROMIUM.exists():
        return str(CHROMIUM)
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        pytest.fail(
            f"{CHROMIUM} is missing and cannot be installed here (needs apt-get as root): run "
            "`apt-get install -y chromium` as root, then run the browser tests again"
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = [apt, "install", "-y", "--no-install-recommends", "chromium"]
    done = subprocess.run(install, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        # A stale package list: refresh it once and try again.
        subprocess.run([apt, "update"], capture_output=True, text=True, env=env, check=False)
        done = subprocess.run(install, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0 or not CHROMIUM.exists():
        pytest.fail(
            f"`apt-get install -y chromium` failed ({done.returncode}); the browser tests need "
            f"Debian's chromium at {CHROMIUM}:\n{(done.stdout + done.stderr)[-2000:]}"
        )
    return str(CHROMIUM)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    return ensure_chromium()


@pytest.fixture(scope="session")
def dapp_dist() -> Path:
    """The dApp built from the current sources (`npm run build`: vite into dapp/dist)."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is not on PATH: run `make install`")
    built = subprocess.run(
        [npm, "run", "build"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    index = ROOT / "dapp" / "dist" / "index.html"
    assert built.returncode == 0, built.stdout + built.stderr
    assert index.exists(), f"vite wrote no {index}"
    return index.parent


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


class Chain:
    """The local chain through web3.py, for what the tests set up and check outside the page."""

    def __init__(self, rpc_url: str, deployment: Deployment) -> None:
        self.rpc_url = rpc_url
        self.deployment = deployment
        self.w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))

    def contract(self, name: str) -> Any:
        rec = self.deployment.contract(name)
        return self.w3.eth.contract(address=Web3.to_checksum_address(rec.address), abi=rec.abi)

    def send(self, account: LocalAccount, fn: Any) -> Any:
        """Signs and sends `fn` from `account`; the receipt of a successful transaction."""
        tx = fn.build_transaction(
            {"from": account.address, "nonce": self.w3.eth.get_transaction_count(account.address)}
        )
        # The estimate runs at the pending block's time; mined a second later, an ERC20Votes
        # mint or transfer may push a new checkpoint (a fresh slot) instead of rewriting one.
        tx["gas"] = int(tx["gas"]) * 6 // 5 + 25_000
        signed = Account.sign_transaction(tx, account.key)
        receipt = self.w3.eth.wait_for_transaction_receipt(
            self.w3.eth.send_raw_transaction(signed.raw_transaction)
        )
        if receipt["status"] != 1:
            try:  # replay it where it ran, for the revert's reason
                fn.call({"from": account.address}, block_identifier=receipt["blockNumber"] - 1)
            except Exception as exc:  # any reason is worth showing
                pytest.fail(f"{fn.fn_name} from {account.address} reverted: {exc!r}")
            pytest.fail(f"{fn.fn_name} from {account.address} reverted: {dict(receipt)}")
        return receipt

    def rpc(self, method: str, *params: Any) -> Any:
        return self.w3.provider.make_request(method, list(params))["result"]  # type: ignore[arg-type]

    def move_time(self, seconds: int) -> None:
        """Moves the chain's clock forward and mines a block."""
        self.rpc("evm_increaseTime", seconds)
        self.rpc("evm_mine")


class LocalPlatform(Chain):
    """The running platform and what the tests need to act on it and check it."""

    def __init__(
        self, data: Path, api: str, chain: Chain, fleet: list[FleetVehicle], product_id: int
    ) -> None:
        super().__init__(chain.rpc_url, chain.deployment)
        self.data = data
        self.api = api
        self.fleet = fleet
        self.product_id = product_id

    def dimo(self, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(DIMO), *args],
            cwd=ROOT,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def post_rewards(self, epoch: int) -> None:
        """Ends `epoch` on the chain's clock, posts its rewards root signed by the oracle quorum
        (`dimo rewards post`), and waits out the challenge delay."""
        rewards = self.contract("Rewards")
        _, end = rewards.functions.epochBounds(epoch).call()
        now = self.w3.eth.get_block("latest")["timestamp"]
        if now <= end:
            self.rpc("evm_setTime", end + 1)
            self.rpc("evm_mine")
        keys = ["0x" + bytes(dev_account(i).key).hex() for i in ORACLE_SIGNER_ACCOUNTS]
        posted = self.dimo(
            "rewards",
            "post",
            "--epoch",
            str(epoch),
            env={
                "DIMO_REWARDS_RPC_URL": self.rpc_url,
                "DIMO_REWARDS_DEPLOYMENT": str(self.data / "deployments" / "31337.json"),
                "DIMO_REWARDS_BLOB_DIR": str(self.data / "blobs"),
                "DIMO_REWARDS_OUT_DIR": str(self.data / "rewards"),
                "DIMO_REWARDS_SIGNER_KEYS": json.dumps(keys[:2]),
                "DIMO_REWARDS_SUBMITTER_KEY": "0x" + bytes(dev_account(ADMIN).key).hex(),
            },
        )
        assert posted.returncode == 0, posted.stdout + posted.stderr
        delay = self.contract("Parameters").functions.uintOf(
            Web3.keccak(text="REWARDS_CHALLENGE_DELAY")
        )
        self.move_time(int(delay.call()) + 1)


def _list_product_and_opt_in(chain: Chain, vehicle: FleetVehicle) -> int:
    """Lists a data product (the local admin makes itself a curator), opts `vehicle` in, and
    mints DIMO for the buyer and the token holder; returns the product's id."""
    admin = dev_account(ADMIN)
    market, token = chain.contract("DataMarket"), chain.contract("DimoToken")
    chain.send(
        admin, market.functions.grantRole(market.functions.CURATOR_ROLE().call(), admin.address)
    )
    chain.send(
        admin, market.functions.listProduct(PRODUCT_SCOPES, PRODUCT_PRICE, PRODUCT_PERIOD_S, b"")
    )
    product_id = int(market.functions.lastProductId().call())
    owner = next(dev_account(i) for i in OWNERS if dev_account(i).address == vehicle.owner)
    chain.send(owner, market.functions.optIn(vehicle.vehicle_id, product_id))
    chain.send(admin, token.functions.mint(dev_account(BUYER).address, 1_000 * DIMO_WEI))
    chain.send(admin, token.functions.mint(dev_account(HOLDER).address, 10_000_000 * DIMO_WEI))
    return product_id


@pytest.fixture(scope="module")
def service_env() -> dict[str, str]:
    """Environment the module's services get on top of the stack's (a module may override it,
    e.g. with a short token lifetime)."""
    return {}


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, dapp_dist: Path, service_env: dict[str, str]
) -> Iterator[LocalPlatform]:
    """The platform of `make run` on free ports, with three vehicles driving two days at 8000x.

    Before the fleet drives, a product is listed and vehicle 1 opted in to it, so that a
    licence covers its readings. Waits until every bundle is anchored; stops every process.
    """
    data = tmp_path_factory.mktemp("platform")
    # The services (the fleet among them) read their settings from the environment too.
    env = {
        "DATA_DIR": str(data),
        "ANVIL_PORT": str(free_port()),
        "ORACLE_PORT": str(free_port()),
        "INDEXER_PORT": str(free_port()),
        "SIGNER_PORTS": json.dumps([free_port() for _ in range(3)]),
        "CERTIFIER_PORT": str(free_port()),
        "TRIGGERS_PORT": str(free_port()),
        "ATTESTATION_PORT": str(free_port()),
        "FLEET_VEHICLES": "3",
        "HISTORY_DAYS": "2",
        "TIME_FACTOR": "8000",
        "FLEET_RATE_SCALE": "0.02",
        "FLEET_LIVE": "false",
        # 120 s windows: a charging session's readings (one per window) stay inside the
        # energy app's 300 s session gap, so the Kona charges in sessions the apps see.
        "FLEET_WINDOW_S": "120",
        "BATCH_INTERVAL_S": "3",
        "API_RATE_LIMIT_PER_MINUTE": "0",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(f"DIMO_STACK_{name}", value)
        for name, value in service_env.items():
            patch.setenv(name, value)
        yield from _run_platform(StackSettings(), data)


def _run_platform(settings: StackSettings, data: Path) -> Iterator[LocalPlatform]:
    platform = Platform(settings, ROOT)
    try:
        platform.start_chain()
        record, _ = platform.deploy()
        fleet = platform.register_fleet()
        chain = Chain(settings.chain_url, record)
        product_id = _list_product_and_opt_in(chain, fleet[0])
        platform.start_services(lambda _service: None)
        wait_for("the fleet to drive its history", lambda: fleet_done(data), 240)
        wait_for(
            "the oracle to anchor every bundle", lambda: oracle_settled(settings.oracle_url), 120
        )
        api = settings.indexer_url
        assert httpx.get(api + "/", timeout=10).status_code == 200, "the API serves the dApp"
        yield LocalPlatform(data, api, chain, fleet, product_id)
    finally:
        platform.stop(lambda _name: None)
