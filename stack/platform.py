"""The whole local platform: chain, contracts, oracle quorum, oracle, indexer and simulated fleet,
each service a child process with its own settings pointing into one data folder."""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from oracle.certifier.attestation_api import SaltBook, salt_book_path
from oracle.tables import open_journal
from protocol.crypto import private_key_to_address
from protocol.deployment import Deployment
from stack.chain import Anvil, anvil_binary
from stack.config import StackSettings
from stack.demo import open_proposal, post_first_rewards, seed_market
from stack.deploy import deploy, existing_deployment
from stack.exceptions import StackError
from stack.fleet import fleet_dir
from stack.seed import ADMIN, FleetVehicle, dev_account, register_fleet
from stack.services import RestartPolicy, Service, dimo_command

__all__ = ["ORACLE_SIGNER_ACCOUNTS", "Platform", "Progress"]

#: anvil dev accounts that form the local oracle quorum (threshold 2, set by the deploy).
ORACLE_SIGNER_ACCOUNTS = (7, 8, 9)
#: anvil dev account that relays the local oracle's anchors.
ORACLE_SUBMITTER_ACCOUNT = 7
#: anvil dev account that relays the attestation host's supersessions (an oracle signer that
#: sends nothing else, so that its nonces never race the anchors').
ATTESTATION_RELAYER_ACCOUNT = 9
#: Length of a rewards epoch (Rewards.EPOCH_SECONDS).
EPOCH_S = 7 * 86_400


def _key(index: int) -> str:
    return "0x" + bytes(dev_account(index).key).hex()


@dataclass(frozen=True, slots=True)
class Progress:
    """One look at the running platform, for the progress display."""

    fleet: dict[str, Any] | None
    oracle: dict[str, Any] | None
    indexer_vehicles: int | None
    #: Services down after a crash or started again, in words ("oracle restarted 2x").
    services: tuple[str, ...] = ()

    def line(self) -> str:
        """A one-line summary."""
        parts = []
        if self.services:
            parts.append("services " + ", ".join(self.services))
        if self.fleet is not None:
            f = self.fleet
            sim = time.strftime("%Y-%m-%d %H:%M", time.gmtime(f["sim_ms"] / 1000))
            state = "done" if f["done"] else ("live" if f["caught_up"] else "accelerated")
            parts.append(
                f"fleet {f['vehicles']} vehicles at {sim} UTC ({state}): bundles sealed "
                f"{f['sealed']}, receipted {f['accepted'] + f['duplicate']}, waiting "
                f"{f['waiting']}, rejected {f['rejected']}"
            )
        if self.oracle is not None:
            o = self.oracle
            last = o.get("last_anchor") or {}
            parts.append(
                f"oracle journal depth {o['journal_depth']}, batches anchored "
                f"{o['batches_by_state'].get('confirmed', 0)}, last anchor block "
                f"{last.get('block', '-')}"
            )
        if self.indexer_vehicles is not None:
            parts.append(f"indexer vehicles {self.indexer_vehicles}")
        return " | ".join(parts)


class Platform:
    """Starts, watches and stops the platform's processes in order."""

    def __init__(self, settings: StackSettings, root: Path) -> None:
        self.settings = settings
        self.root = root
        self.data = settings.data_dir.resolve()
        self.anvil: Anvil | None = None
        self.deployment: Deployment | None = None
        self.fleet: list[FleetVehicle] = []
        self.services: list[Service] = []
        self.policy = RestartPolicy(
            backoff_s=settings.restart_backoff_s,
            max_backoff_s=settings.restart_max_backoff_s,
            max_crashes=settings.restart_max_crashes,
            window_s=settings.restart_window_s,
        )

    # -- chain -----------------------------------------------------------------------------

    def start_chain(self) -> str:
        """Starts anvil (unless a live RPC URL is set); returns the chain's URL."""
        s = self.settings
        if s.rpc_url:
            return s.rpc_url
        genesis = None
        if s.fleet_vehicles and s.history_days:
            # Leave an hour for the deploy and the pairings before the fleet's first day.
            genesis = int(time.time() - s.history_days * 86_400 - 3_600)
        self.anvil = Anvil(
            anvil_binary(self.root),
            s.host,
            s.anvil_port,
            self.data / "anvil-state.json",
            s.block_time,
            self.data / "logs" / "anvil.log",
            genesis_timestamp=genesis,
        )
        (self.data / "logs").mkdir(parents=True, exist_ok=True)
        self.anvil.start()
        return self.anvil.url

    def deploy(self, demo: bool = False) -> tuple[Deployment, bool]:
        """Resumes the deployment on the chain, or deploys; returns it and whether it resumed.

        With `demo` on a fresh local chain with a history to drive, rewards epoch 0 ends at
        this moment (it starts a week before), so that the history falls inside it and the
        demo can post its rewards once the fleet has caught up.
        """
        s = self.settings
        record = existing_deployment(s.deployment_path, s.chain_url)
        if record is not None:
            self.deployment = record
            return record, True
        genesis = None
        if demo and not s.rpc_url and s.fleet_vehicles and s.history_days:
            genesis = int(time.time()) - EPOCH_S
        self.deployment = deploy(self.root, s.chain_url, s.network, s.deployment_path, genesis)
        return self.deployment, False

    def register_fleet(self) -> list[FleetVehicle]:
        """Registers (or resumes) the simulated fleet on the local chain."""
        s = self.settings
        if s.rpc_url or not s.fleet_vehicles or self.deployment is None:
            return []
        self.fleet = register_fleet(
            s.chain_url,
            self.deployment,
            fleet_dir(self.data) / "fleet.json",
            vehicles=s.fleet_vehicles,
            models=s.models,
            seed=s.fleet_seed,
        )
        return self.fleet

    # -- demo ------------------------------------------------------------------------------

    def seed_demo(self) -> list[str]:
        """Lists the demo's products (with opt-ins) and funds its buyer and holder, before the
        fleet drives; what it did, one line a step (nothing on a live network or a resume)."""
        s = self.settings
        if s.rpc_url or self.deployment is None or not self.fleet:
            return []
        return seed_market(s.chain_url, self.deployment, self.fleet)

    def history_driven(self) -> bool:
        """Whether the simulated fleet has caught up with the present."""
        try:
            progress = json.loads((fleet_dir(self.data) / "progress.json").read_text())
        except (OSError, ValueError):
            return False
        return bool(progress.get("caught_up"))

    def finish_demo(self) -> list[str]:
        """Once the history is driven: the holder's proposal and epoch 0's rewards, each
        unless done before; what it did, one line a step."""
        s = self.settings
        if s.rpc_url or self.deployment is None:
            return []
        done = []
        proposal = open_proposal(s.chain_url, self.deployment)
        if proposal is not None:
            done.append(f"proposal open for votes in a minute: {proposal}")
        keys, _ = self._oracle_keys()
        posted = post_first_rewards(
            self.data, s.chain_url, s.deployment_path.resolve(), keys[:2], _key(ADMIN)
        )
        if posted is not None:
            done.append(f"epoch 0 rewards: {posted}")
        return done

    # -- services --------------------------------------------------------------------------

    def _oracle_keys(self) -> tuple[list[str], str]:
        s = self.settings
        if s.rpc_url:
            if not s.oracle_keys or s.submitter_key is None:
                raise StackError(
                    "on a live network set DIMO_STACK_ORACLE_KEYS (JSON list of the quorum's "
                    "keys) and DIMO_STACK_SUBMITTER_KEY (a funded relaying account)"
                )
            keys = [k.get_secret_value() for k in s.oracle_keys]
            return keys, s.submitter_key.get_secret_value()
        return [_key(i) for i in ORACLE_SIGNER_ACCOUNTS], _key(ORACLE_SUBMITTER_ACCOUNT)

    def _blob_env(self, prefix: str) -> dict[str, str]:
        env = {f"{prefix}BLOB_DIR": str(self.data / "blobs")}
        if self.settings.kubo_url:
            env[f"{prefix}KUBO_URL"] = self.settings.kubo_url
        return env

    def plan(self) -> list[Service]:
        """The services in start order: three signers, the oracle's ingest API and its batcher,
        the indexer, the triggers, the attestation host, the certifier and the fleet (with a
        simulated fleet only)."""
        s = self.settings
        deployment = str(s.deployment_path.resolve())
        logs = self.data / "logs"
        keys, submitter = self._oracle_keys()
        services = []
        signer_urls = []
        if len(s.signer_ports) < len(keys):
            raise StackError(
                f"DIMO_STACK_SIGNER_PORTS names {len(s.signer_ports)} ports for {len(keys)} "
                "oracle signers: give one port each (JSON list)"
            )
        for i, (key, port) in enumerate(zip(keys, s.signer_ports, strict=False)):
            url = f"http://{s.host}:{port}"
            signer_urls.append(url)
            services.append(
                Service(
                    f"oracle signer {i + 1}",
                    dimo_command(
                        "oracle",
                        "signer",
                        "--key-env",
                        "DIMO_STACK_SIGNER_KEY",
                        "--port",
                        str(port),
                        "--host",
                        s.host,
                    ),
                    {
                        "DIMO_STACK_SIGNER_KEY": key,
                        "DIMO_ORACLE_DEPLOYMENT": deployment,
                        **self._blob_env("DIMO_ORACLE_"),
                    },
                    f"{url}/healthz",
                    logs / f"signer-{i + 1}.log",
                    self.root,
                )
            )
        oracle_env = {
            "DIMO_ORACLE_DATABASE_URL": self.oracle_database_url,
            "DIMO_ORACLE_RPC_URL": s.chain_url,
            "DIMO_ORACLE_DEPLOYMENT": deployment,
            "DIMO_ORACLE_HOST": s.host,
            "DIMO_ORACLE_PORT": str(s.oracle_port),
            "DIMO_ORACLE_BATCH_INTERVAL_S": str(s.batch_interval_s),
            "DIMO_ORACLE_SIGNER_URLS": json.dumps(signer_urls),
            "DIMO_ORACLE_SIGNER_KEYS": "[]",
            "DIMO_ORACLE_SUBMITTER_KEY": submitter,
            # The one indexer allowed to read reading values (public documents hold none).
            "DIMO_ORACLE_INDEXERS": json.dumps([private_key_to_address(self._reader_key())]),
            **self._blob_env("DIMO_ORACLE_"),
        }
        # The ingest API and the batcher run as two processes over one journal: building,
        # storing and anchoring a batch of thousands of bundles takes a second of CPU, which
        # in one process would stall the ingest behind the interpreter lock.
        services.append(
            Service(
                "oracle",
                dimo_command("oracle", "run", "--no-batcher"),
                oracle_env,
                f"{s.oracle_url}/healthz",
                logs / "oracle.log",
                self.root,
            )
        )
        services.append(
            Service(
                "oracle batcher",
                dimo_command("oracle", "run", "--no-api"),
                oracle_env,
                None,
                logs / "oracle-batcher.log",
                self.root,
            )
        )
        authority = f"{s.host}:{s.indexer_port}"
        services.append(
            Service(
                "indexer",
                dimo_command("indexer", "run"),
                {
                    "DIMO_INDEXER_DATABASE_URL": s.indexer_database_url
                    or f"sqlite:///{self.data / 'indexer.db'}",
                    "DIMO_INDEXER_RPC_URL": s.chain_url,
                    "DIMO_INDEXER_DEPLOYMENT": deployment,
                    "DIMO_INDEXER_HOST": s.host,
                    "DIMO_INDEXER_PORT": str(s.indexer_port),
                    "DIMO_INDEXER_SIWE_DOMAIN": authority,
                    "DIMO_INDEXER_SIWE_URI": f"http://{authority}",
                    "DIMO_INDEXER_SIWE_CHAIN_ID": str(self._chain_id()),
                    "DIMO_INDEXER_JWT_SECRET": self._jwt_secret(),
                    "DIMO_INDEXER_PENDING_RETRY_S": "2",
                    "DIMO_INDEXER_RATE_LIMIT_PER_MINUTE": str(s.api_rate_limit_per_minute),
                    "DIMO_INDEXER_ORACLE_URL": s.oracle_url,
                    "DIMO_INDEXER_READER_KEY": self._reader_key(),
                    **self._blob_env("DIMO_INDEXER_"),
                },
                f"{s.indexer_url}/healthz",
                logs / "indexer.log",
                self.root,
            )
        )
        services.append(
            Service(
                "triggers",
                dimo_command("triggers", "run"),
                {
                    "DIMO_TRIGGERS_DATABASE_URL": s.triggers_database_url
                    or f"sqlite:///{self.data / 'triggers.db'}",
                    "DIMO_TRIGGERS_JOURNAL_URL": self.oracle_database_url,
                    "DIMO_TRIGGERS_INDEXER_URL": s.indexer_url,
                    "DIMO_TRIGGERS_HOST": s.host,
                    "DIMO_TRIGGERS_PORT": str(s.triggers_port),
                    "DIMO_TRIGGERS_JWT_SECRET": self._jwt_secret(),
                    "DIMO_TRIGGERS_JWT_ISSUER": authority,
                    "DIMO_TRIGGERS_DEVELOPER_JWT_ISSUER": f"http://{authority}",
                    "DIMO_TRIGGERS_CHAIN_ID": str(self._chain_id()),
                    "DIMO_TRIGGERS_VEHICLE_CONTRACT": self._vehicle_contract(),
                    # Local chain: receivers on this machine may be called (http too).
                    "DIMO_TRIGGERS_NETWORK": "live" if s.rpc_url else "local",
                    "DIMO_TRIGGERS_ALLOW_LOOPBACK": "false" if s.rpc_url else "true",
                },
                f"{s.triggers_url}/healthz",
                logs / "triggers.log",
                self.root,
            )
        )
        services.append(
            Service(
                "attestations",
                dimo_command("certify", "attestations"),
                {
                    "DIMO_ATTEST_HOST": s.host,
                    "DIMO_ATTEST_PORT": str(s.attestation_port),
                    "DIMO_ATTEST_API_URL": s.indexer_url,
                    "DIMO_ATTEST_RPC_URL": s.chain_url,
                    "DIMO_ATTEST_DEPLOYMENT": deployment,
                    "DIMO_ATTEST_KEYS": json.dumps(keys),
                    "DIMO_ATTEST_RELAYER_KEY": (
                        submitter if s.rpc_url else _key(ATTESTATION_RELAYER_ACCOUNT)
                    ),
                    "DIMO_ATTEST_BLOB_DIR": str(self.data / "blobs"),
                    "DIMO_ATTEST_TELEMETRY_URL": f"{s.indexer_url}/telemetry",
                    "DIMO_ATTEST_JWT_SECRET": self._jwt_secret(),
                    "DIMO_ATTEST_VEHICLE_JWT_ISSUER": f"http://{authority}",
                },
                f"{s.attestation_url}/healthz",
                logs / "attestations.log",
                self.root,
            )
        )
        if self.certifier_url is not None:
            services.append(
                Service(
                    "certifier",
                    dimo_command("certify", "serve"),
                    {
                        "DIMO_CERTIFY_HOST": s.host,
                        "DIMO_CERTIFY_PORT": str(s.certifier_port),
                        "DIMO_CERTIFY_API_URL": s.indexer_url,
                        "DIMO_CERTIFY_RPC_URL": s.chain_url,
                        "DIMO_CERTIFY_DEPLOYMENT": deployment,
                        "DIMO_CERTIFY_KEYS": json.dumps(keys),
                    },
                    f"{self.certifier_url}/healthz",
                    logs / "certifier.log",
                    self.root,
                )
            )
        if self.fleet:
            services.append(
                Service(
                    "fleet",
                    dimo_command("stack", "fleet"),
                    {
                        "DIMO_STACK_DATA_DIR": str(self.data),
                        "DIMO_STACK_ANVIL_PORT": str(s.anvil_port),
                        "DIMO_STACK_HOST": s.host,
                        "DIMO_STACK_ORACLE_PORT": str(s.oracle_port),
                    },
                    None,
                    logs / "fleet.log",
                    self.root,
                )
            )
        return services

    @property
    def certifier_url(self) -> str | None:
        """The battery certificate certifier's URL (the quorum's keys, recomputing each
        certificate from the index's proofs), served with the simulated fleet; on a live
        network each oracle operator runs `dimo certify serve` beside its own indexer."""
        if not self.fleet:
            return None
        return f"http://{self.settings.host}:{self.settings.certifier_port}"

    @property
    def oracle_database_url(self) -> str:
        """The oracle journal's URL: the configured one, else SQLite in the data folder."""
        return self.settings.oracle_database_url or f"sqlite:///{self.data / 'oracle.db'}"

    def _vehicle_contract(self) -> str:
        """The VehicleId contract's address (the payloads' vehicle DIDs name it)."""
        if self.deployment is None:
            return "0x" + "00" * 20
        return self.deployment.contract("VehicleId").address

    def _chain_id(self) -> int:
        return self.deployment.chain_id if self.deployment is not None else self.settings.chain_id

    def _jwt_secret(self) -> str:
        """The API's token key, made once and kept in the data folder (sessions survive)."""
        path = self.data / "jwt-secret"
        if not path.exists():
            path.write_text(secrets.token_hex(32))
            path.chmod(0o600)
        return path.read_text().strip()

    def _reader_key(self) -> str:
        """The indexer's throwaway readings key, made once and kept in the data folder."""
        path = self.data / "indexer-reader-key"
        if not path.exists():
            path.write_text("0x" + secrets.token_hex(32))
            path.chmod(0o600)
        return path.read_text().strip()

    def reveal_vin_salts(self) -> int:
        """Reveals the simulated owners' VIN salts to the attestation host (what each owner
        does once for a VIN credential), so that DIMO's SDKs, which send none, get one for any
        fleet vehicle; returns how many. The host checks each against the vehicle's on-chain
        commitment and the device's Mode 09 reading before it signs."""
        book = SaltBook(salt_book_path(self.data / "blobs"))
        revealed = 0
        for vehicle in self.fleet:
            if vehicle.vin_salt and book.get(vehicle.vehicle_id) is None:
                book.put(vehicle.vehicle_id, bytes.fromhex(vehicle.vin_salt))
                revealed += 1
        return revealed

    def start_services(self, on_started: Callable[[Service], None]) -> None:
        """Starts each service and waits until it is healthy before the next.

        Raises:
            ServiceStartError: a service exited or did not become healthy.
        """
        # The oracle's API and batcher open the journal at once; a journal created here
        # first spares them racing to create its tables.
        journal = open_journal(self.oracle_database_url)
        journal.dispose()
        self.reveal_vin_salts()
        for service in self.plan():
            service.start()
            self.services.append(service)
            service.wait_healthy(timeout=180.0)
            on_started(service)

    def supervise(self, now: float | None = None) -> list[str]:
        """Restarts the services that crashed, each after its backoff.

        Args:
            now: the monotonic clock (default: now).

        Returns:
            What happened (crashes noted, restarts made), in words.

        Raises:
            ServiceCrashLoop: a service crashed too often inside the policy's window.
            StackError: anvil exited (its chain cannot be restarted without losing state).
        """
        if self.anvil is not None and not self.anvil.running:
            raise StackError(
                f"anvil exited; the chain's last saved state is in {self.data}. Its log is "
                f"{self.data / 'logs' / 'anvil.log'}; run the platform again to resume"
            )
        at = time.monotonic() if now is None else now
        events = []
        for service in self.services:
            event = service.supervise(self.policy, at)
            if event is not None:
                events.append(event)
        return events

    def service_states(self, now: float | None = None) -> tuple[str, ...]:
        """The services that are down or were restarted, in words, for the status line."""
        at = time.monotonic() if now is None else now
        out = []
        for service in self.services:
            if service.restart_at is not None:
                out.append(
                    f"{service.name} down (restart in {max(0.0, service.restart_at - at):.0f} s)"
                )
            elif service.restarts:
                out.append(f"{service.name} restarted {service.restarts}x")
        return tuple(out)

    def stop(self, on_stopped: Callable[[str], None]) -> None:
        """Stops the services in reverse order, then the chain (which saves its state)."""
        while self.services:
            service = self.services.pop()
            service.stop()
            on_stopped(service.name)
        if self.anvil is not None:
            self.anvil.stop()
            on_stopped("anvil")

    # -- progress --------------------------------------------------------------------------

    def progress(self) -> Progress:
        """The fleet's counters, the oracle's status and the vehicles the indexer serves."""
        s = self.settings
        fleet = None
        path = fleet_dir(self.data) / "progress.json"
        if path.exists():
            try:
                fleet = json.loads(path.read_text())
            except json.JSONDecodeError:
                fleet = None
        oracle = indexer = None
        with contextlib.suppress(httpx.HTTPError, ValueError):
            oracle = httpx.get(f"{s.oracle_url}/v1/status", timeout=2).json()
        try:
            body = httpx.get(f"{s.indexer_url}/vehicles", params={"limit": 100}, timeout=2).json()
            indexer = len(body.get("items", []))
        except (httpx.HTTPError, ValueError, AttributeError):
            pass
        return Progress(fleet, oracle, indexer, self.service_states())
