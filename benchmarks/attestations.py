"""Vehicle credentials issued per second by the attestation host: `attestations_per_s`.

Set-up (not timed), all real: anvil with the platform deployed and a 2-of-3 oracle quorum; a
vehicle minted with a VIN commitment, its device claimed and paired; `BUNDLES` device-signed
bundles (odometer every second, the VIN once) anchored by the quorum; an index synced from
the chain into SQLite and its API served by uvicorn on 127.0.0.1; the owner signed in with
Sign-In with Ethereum; the attestation host served on 127.0.0.1 with the three oracle keys.

Timed: `REQUESTS` credentials, VIN and odometer statements alternately, each a
`POST /v2/attestation/...` over HTTP from one client. Each one reads the readings with the
owner's token, fetches and checks every input bundle's signature and Merkle path against the
anchored root, runs the finance tamper checks (odometer), has the keys sign, stores the
document by CID, and (odometer) relays `VehicleCredentials.supersede` on anvil. The figure is
the median of `RUNS` runs, with their spread and the load average before each.

Baseline, same run: `sign_store_per_s` is the issuer alone (the quorum's signatures and the
store, no data read or verified, no transaction), so `attestations_vs_sign_store` says what
verifying the data and relaying cost.

Usage: `python benchmarks/attestations.py`; the last line printed is one JSON object.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from eth_account import Account
from eth_account.messages import encode_defunct
from fastapi import FastAPI

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from indexer.api.main import create_app  # noqa: E402
from indexer.config import IndexerSettings  # noqa: E402
from indexer.db import make_engine  # noqa: E402
from indexer.migrate import upgrade  # noqa: E402
from indexer.sync import Syncer  # noqa: E402
from oracle.anchoring import BatchHeader  # noqa: E402
from oracle.certifier.attestation_api import SaltBook, create_attestation_app  # noqa: E402
from oracle.certifier.attestations import (  # noqa: E402
    VIN,
    CredentialIssuer,
    Statement,
    StatementBuilder,
)
from oracle.certifier.battery import BatteryChecker  # noqa: E402
from oracle.certifier.chain import CertifierChain  # noqa: E402
from oracle.quorum import OracleSigner, Quorum, build_content, leaf_of_row, wire_form  # noqa: E402
from protocol.blobstore import LocalCidStore  # noqa: E402
from protocol.bundle import Bundle, sign_bundle  # noqa: E402
from protocol.credentials import CredentialKind, iso_ms  # noqa: E402
from protocol.crypto import keccak256  # noqa: E402
from protocol.eip712 import dimo_domain  # noqa: E402
from protocol.readings import ODOMETER  # noqa: E402

BUNDLES = 30
REQUESTS = 40
RUNS = 3
SALT = b"\x01" * 32
VIN_TEXT = "KMHK381GFKU900001"
FAR_FUTURE = 2**40
SIWE_DOMAIN, SIWE_URI = "127.0.0.1:8700", "http://127.0.0.1:8700"
CLAIM_TYPES = [
    {"name": "device", "type": "address"},
    {"name": "user", "type": "address"},
    {"name": "deadline", "type": "uint256"},
]
PAIR_TYPES = [
    {"name": "vehicleId", "type": "uint256"},
    {"name": "device", "type": "address"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]


class Served:
    """An app served by uvicorn in a thread on a free 127.0.0.1 port."""

    def __init__(self, app: FastAPI) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> Served:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


def _sign_typed(key: Any, contract: Any, primary: str, types: Any, message: Any) -> bytes:
    from ape import chain

    domain = {
        "name": "DIMO",
        "version": "1",
        "chainId": chain.chain_id,
        "verifyingContract": contract.address,
    }
    return bytes(Account.sign_typed_data(key, domain, {primary: types}, message).signature)


def _vehicle(contracts: dict[str, Any], admin: Any, owner: Any, maker: Any) -> tuple[int, Any]:
    """Mints a vehicle with `VIN_TEXT`'s commitment, and pairs a fresh device to it."""
    vehicles, devices = contracts["VehicleId"], contracts["DeviceId"]
    contracts["ManufacturerRegistry"].register(maker, "Bench Telematics", 1, sender=admin)
    tx = vehicles.mint(
        "Hyundai", "Kona Electric", 2019, keccak256(SALT + VIN_TEXT.encode()), sender=owner
    )
    vehicle = int(tx.return_value)
    key = Account.from_key(keccak256(b"bench-attestations-device"))
    devices.mintDevices([key.address], [keccak256(key.address.encode())], sender=maker)
    claim = {"device": key.address, "user": owner.address, "deadline": FAR_FUTURE}
    devices.claim(
        key.address,
        owner,
        FAR_FUTURE,
        _sign_typed(str(owner.private_key), devices, "ClaimDevice", CLAIM_TYPES, claim),
        _sign_typed(key.key, devices, "ClaimDevice", CLAIM_TYPES, claim),
        sender=owner,
    )
    pair = {"vehicleId": vehicle, "device": key.address, "nonce": 0, "deadline": FAR_FUTURE}
    devices.pair(
        vehicle,
        key.address,
        FAR_FUTURE,
        _sign_typed(str(owner.private_key), devices, "PairDevice", PAIR_TYPES, pair),
        _sign_typed(key.key, devices, "PairDevice", PAIR_TYPES, pair),
        sender=owner,
    )
    return vehicle, key


def _anchor(
    contracts: dict[str, Any], oracles: list[Any], admin: Any, store: LocalCidStore, bundles: Any
) -> None:
    anchor = contracts["AttestationAnchor"]
    from ape import chain

    domain = dimo_domain(chain.chain_id, anchor.address)
    signers = [OracleSigner(str(o.private_key), domain) for o in oracles]
    quorum = Quorum(signers, [o.address for o in oracles], 2, domain)
    leaves = [
        leaf_of_row(
            b.bundle.device,
            b.bundle.vehicle_id,
            b.bundle.sequence,
            b.bundle.window_start,
            b.bundle.window_end,
            b.bundle.data_hash,
            b.signature,
        )
        for b in bundles
    ]
    batch_id = int(anchor.lastBatchId()) + 1
    content, tree = build_content(
        batch_id, [wire_form(b.bundle.encoding, b.signature) for b in bundles], leaves
    )
    header = BatchHeader(
        batch_id,
        tree.root,
        store.put(content),
        len(bundles),
        min(v[3] for v in leaves),
        max(v[4] for v in leaves),
    )
    anchor.anchor(header.as_tuple(), quorum.collect(header, content), sender=admin)


def _login(base_url: str, account: Any, now_s: float) -> str:
    from siwe import SiweMessage

    wallet = Account.from_key(str(account.private_key))
    with httpx.Client(base_url=base_url, timeout=30) as client:
        nonce = client.get("/auth/nonce").json()["nonce"]
        message = SiweMessage(
            domain=SIWE_DOMAIN,
            address=wallet.address,
            uri=SIWE_URI,
            version="1",
            chain_id=31337,
            issued_at=datetime.fromtimestamp(now_s, UTC).isoformat(),
            nonce=nonce,
        ).prepare_message()
        sig = wallet.sign_message(encode_defunct(text=message)).signature.hex()
        r = client.post(
            "/auth/login",
            json={"message": message, "signature": sig if sig.startswith("0x") else "0x" + sig},
        )
        r.raise_for_status()
        return str(r.json()["access_token"])


def _timed(fn: Any, n: int) -> dict[str, Any]:
    runs, loads = [], []
    for _ in range(RUNS):
        loads.append(round(os.getloadavg()[0], 2))
        start = time.perf_counter()
        fn(n)
        runs.append(n / (time.perf_counter() - start))
    return {"median": statistics.median(runs), "runs": [round(r, 1) for r in runs], "load": loads}


def main() -> None:
    """Sets the platform up on anvil, then times the attestation host."""
    from ape import accounts, chain, networks, project

    from scripts.deploy import deploy

    with (
        networks.parse_network_choice("ethereum:local:foundry"),
        tempfile.TemporaryDirectory() as tmp,
    ):
        work = Path(tmp)
        test = accounts.test_accounts
        admin, maker, owner = test[0], test[1], test[2]
        oracles = sorted((test[i] for i in (7, 8, 9)), key=lambda a: int(a.address, 16))
        record = deploy(admin, [o.address for o in oracles], 2)
        record_path = work / "deployment.json"
        record.save(record_path)
        contracts = {
            name: project.get_contract(name).at(rec.address)
            for name, rec in record.contracts.items()
        }
        vehicle, key = _vehicle(contracts, admin, owner, maker)
        anchor_domain = dimo_domain(chain.chain_id, contracts["AttestationAnchor"].address)
        t0 = int(chain.blocks.head.timestamp) * 1000 + 1_000
        bundles = []
        for i in range(BUNDLES):
            start = t0 + 10_000 * i
            readings: dict[str, Any] = {
                ODOMETER: [(start + 1000 * j, 1000.0 + 0.01 * (10 * i + j)) for j in range(10)]
            }
            if i == 0:
                readings[VIN] = [(start + 500, VIN_TEXT)]
            bundle = Bundle(key.address, vehicle, i, start, start + 10_000, readings)
            bundles.append(sign_bundle(bundle, bytes(key.key), anchor_domain))
        store = LocalCidStore(work / "blobs")
        _anchor(contracts, oracles, admin, store, bundles)

        rpc_url = str(chain.provider.uri)
        db_url = f"sqlite:///{work / 'index.db'}"
        upgrade(db_url)
        settings = IndexerSettings(
            database_url=db_url,
            rpc_url=rpc_url,
            deployment=record_path,
            pending_retry_s=0,
            siwe_domain=SIWE_DOMAIN,
            siwe_uri=SIWE_URI,
            siwe_chain_id=31337,
            jwt_secret="b" * 32,
            rate_limit_per_minute=0,
        )
        syncer = Syncer(settings, store=store)
        try:
            syncer.backfill()
        finally:
            syncer.close()
        now_s = (t0 + 10_000 * BUNDLES + 60_000) / 1000
        clock = lambda: now_s  # noqa: E731
        engine = make_engine(db_url)
        keys = [str(o.private_key) for o in oracles]
        cchain = CertifierChain(rpc_url, record)
        with Served(create_app(settings, engine, clock=clock)) as index:
            token = _login(index.url, owner, now_s)
            builder = StatementBuilder(
                index.url,
                cchain,
                BatteryChecker(index.url, rpc_url, record),
                vin_valid_ms=30 * 86_400_000,
                odometer_window_ms=86_400_000,
                position_max_age_ms=300_000,
                clock=clock,
            )
            issued = LocalCidStore(work / "credentials")
            ticks = iter(range(10**9))
            # Each credential's issue time must grow (a later odometer statement supersedes).
            issuer = CredentialIssuer(
                cchain, keys, issued, relayer_key=keys[0], clock=lambda: now_s + next(ticks)
            )
            app = create_attestation_app(
                builder, issuer, issued, SaltBook(work / "salts.json"), telemetry_url=index.url
            )
            with Served(app) as host, httpx.Client(timeout=120) as client:
                headers = {"Authorization": f"Bearer {token}"}
                at = iso_ms(t0 + 10_000 * BUNDLES)
                first = client.post(
                    f"{host.url}/v2/attestation/vin/{vehicle}",
                    json={"salt": "0x" + SALT.hex()},
                    headers=headers,
                )
                first.raise_for_status()

                def attest(n: int) -> None:
                    for i in range(n):
                        if i % 2:
                            r = client.post(
                                f"{host.url}/v2/attestation/odometer-statement/{vehicle}",
                                json={"timestamp": at},
                                headers=headers,
                            )
                        else:
                            r = client.post(
                                f"{host.url}/v2/attestation/vin/{vehicle}", headers=headers
                            )
                        r.raise_for_status()

                statement = Statement(CredentialKind.VIN, vehicle, {"vin": VIN_TEXT})

                def sign_store(n: int) -> None:
                    for _ in range(n):
                        issuer.issue(statement)

                issue = _timed(attest, REQUESTS)
                baseline = _timed(sign_store, REQUESTS * 5)
            builder.close()
        engine.dispose()
    figures = {
        "attestations_per_s": round(issue["median"], 1),
        "attestations_per_s_runs": issue["runs"],
        "attestations_load_avg": issue["load"],
        "sign_store_per_s": round(baseline["median"], 1),
        "sign_store_per_s_runs": baseline["runs"],
        "attestations_vs_sign_store": round(issue["median"] / baseline["median"], 3),
        "quorum": "2-of-3",
        "requests": REQUESTS,
        "odometer_readings": BUNDLES * 10,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
