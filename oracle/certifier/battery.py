"""Battery health certificates signed by the oracle quorum: the certifier service, which signs a
certificate only after recomputing it from the chain-verified readings, and its client.

The battery checker composes the applications' audit code (`apps.audit`): from its own
indexer it fetches the served battery answer and the proofs of every input bundle, checks
each bundle's device signature and its Merkle path against the root `AttestationAnchor`
holds (as `dimo apps battery --audit` does), recomputes the report with method
`battery-soh/1` under its defaults for the vehicle's model as recorded on-chain by
`VehicleId`, derives `Certificate.of(...)` and refuses unless the requested certificate is
that one. The oracle's generic certification routes (`oracle.certify`) then have every local
oracle key sign the certificate's EIP-712 digest under the BatteryCertificates domain.

`certify_battery` (behind `dimo certify battery`) asks one or more certifiers, keeps the
signatures of current oracles, concatenates them in ascending signer order and checks them
with `BatteryCertificates.verifyCertificate`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import httpx
from fastapi import FastAPI
from web3.exceptions import ContractCustomError, ContractLogicError

from apps import battery
from apps.audit import AppInputs, fetch_and_verify_inputs
from apps.exceptions import CertificateInvalid, InputProofInvalid
from apps.exceptions import ChainUnavailableError as AuditChainUnavailable
from oracle.certifier.chain import CertifierChain
from oracle.certifier.exceptions import CertificationFailed
from oracle.certify import (
    CERTIFY_PATH,
    CheckerUnavailable,
    StatementChecker,
    StatementMalformed,
    StatementRefused,
    add_certify_routes,
)
from oracle.exceptions import OracleConfigError
from oracle.quorum import OracleSigner
from protocol.crypto import SignatureError, checksum_address, recover_address
from protocol.deployment import Deployment
from protocol.eip712 import dimo_domain

__all__ = [
    "KIND",
    "BatteryChecker",
    "SignedCertificate",
    "certify_battery",
    "collect_signatures",
    "covers",
    "create_certifier_app",
    "problem_text",
    "verify_on_chain",
]

#: The statement kind of battery health certificates (`POST /v1/certify/battery`).
KIND: Final = "battery"


# --------------------------------------------------------------------------------------------
# The chain: facts, domains, the verdict of BatteryCertificates
# --------------------------------------------------------------------------------------------


def covers(spans: Sequence[Sequence[int]], start: int, end: int) -> bool:
    """Whether the spans, together, cover `[start, end)` without a gap."""
    at = start
    for a, b in sorted((int(a), int(b)) for a, b in spans):
        if a > at:
            return False
        at = max(at, b)
        if at >= end:
            return True
    return at >= end


# --------------------------------------------------------------------------------------------
# The checker
# --------------------------------------------------------------------------------------------


class BatteryChecker:
    """Recomputes a battery health certificate from chain-verified readings (a
    `oracle.certify.StatementChecker` for kind `battery`).

    A request is `{vehicleId, start, end, certificate, token?}`: the window in unix ms, the
    certificate as `Certificate.as_dict` gives it, and the caller's bearer token at this
    checker's indexer (the certifier reads with the caller's rights; without one it uses its
    own `api_token`). The certificate is refused unless:

    - its vehicle and window are the request's, and its method version is `battery-soh/1`'s;
    - the caller's rights cover the battery signals (SoC, pack current and voltage) over the
      whole window, so the statement is about every reading in it;
    - every input bundle's device signature and Merkle path check against the root the chain
      holds, and the inputs are exactly the listed ones;
    - the report recomputed from them under the method's defaults for the vehicle's model
      (make, model, year read from `VehicleId` on-chain) gives this very certificate.
    """

    def __init__(
        self,
        api_url: str,
        rpc_url: str,
        deployment: Deployment,
        *,
        api_token: str | None = None,
        timeout_s: float = 300.0,
    ) -> None:
        """Binds the checker to its indexer and chain.

        Args:
            api_url: Base URL of the indexer API it trusts for bytes to check (its own).
            rpc_url: JSON-RPC URL of the chain.
            deployment: The deployment record of the chain.
            api_token: Its own bearer token at the indexer, for requests without one.
            timeout_s: HTTP timeout towards the indexer.
        """
        self.api_url = api_url.rstrip("/")
        self.rpc_url = rpc_url
        self.deployment = deployment
        self.api_token = api_token
        self.timeout_s = timeout_s
        self.chain = CertifierChain(rpc_url, deployment)
        self.domain = self.chain.certificates_domain()
        self.anchor_address = deployment.contract("AttestationAnchor").address

    def __call__(self, request: Mapping[str, Any], /) -> bytes:
        """The certificate's EIP-712 digest, once recomputed from verified readings.

        Raises:
            StatementMalformed: a field is missing or of the wrong type.
            StatementRefused: the verified readings do not give this certificate.
            CheckerUnavailable: the chain or the indexer did not answer.
        """
        vehicle_id, start, end, asked, token = self._parse(request)
        wrong = [
            f"{name} {got} is not the request's {want}"
            for name, got, want in (
                ("vehicleId", asked.vehicle_id, vehicle_id),
                ("windowStart", asked.window_start, start),
                ("windowEnd", asked.window_end, end),
                ("methodVersion", asked.method_version, battery.METHOD_VERSION),
            )
            if got != want
        ]
        if wrong:
            raise StatementRefused(KIND, "; ".join(wrong))
        mine = self.recompute(vehicle_id, start, end, token)
        if mine != asked:
            given, recomputed = asked.as_dict(), mine.as_dict()
            diff = [
                f"{k} {given[k]} (the verified readings give {recomputed[k]})"
                for k in recomputed
                if given[k] != recomputed[k]
            ]
            raise StatementRefused(KIND, "; ".join(diff))
        return mine.digest(self.domain)

    def recompute(self, vehicle_id: int, start: int, end: int, token: str) -> battery.Certificate:
        """The certificate the verified readings of `[start, end)` give, read with `token`.

        Raises:
            StatementRefused: the caller's rights or the readings give no certificate.
            CheckerUnavailable: the chain or the indexer did not answer.
        """
        self._check_chain_id()
        facts = self._vehicle_facts(vehicle_id)
        nominal = battery.nominal_kwh_of(facts.make, facts.model)
        if nominal is None:
            raise StatementRefused(
                KIND,
                f"{battery.METHOD} has no catalogued pack energy for {facts.make} {facts.model}",
            )
        with httpx.Client(timeout=self.timeout_s) as http:
            answer = self._served_answer(http, token, vehicle_id, start, end)
            covered = {
                str(name): [(int(a), int(b)) for a, b in spans]
                for name, spans in answer["covered"].items()
                if name in battery.SIGNALS
            }
            for name in battery.REQUIRED:
                if not covers(covered.get(name, []), start, end):
                    raise StatementRefused(
                        KIND,
                        f"the caller's rights cover {name} only over {covered.get(name, [])}, "
                        f"not the whole window [{start}, {end}); certify a window inside them",
                    )
            listed = sorted((int(b), int(leaf)) for b, leaf in answer["inputs"])
            inputs = self._verified_inputs(http, token, vehicle_id, start, end, covered, listed)
        if inputs.refs() != listed:
            raise StatementRefused(
                KIND, "the listed inputs carry other readings than the verified ones"
            )
        with_charging = any(name in covered for name in battery.CHARGING_SIGNALS)
        context = battery.battery_context(
            facts, battery.BatteryParams(nominal), with_charging=with_charging
        )
        report = battery.compute(inputs, context, start, end)
        try:
            mine = battery.Certificate.of(vehicle_id, report, start, end, inputs.refs())
        except CertificateInvalid as exc:
            raise StatementRefused(
                KIND, f"the verified readings of the window give no certificate: {exc.reason}"
            ) from None
        return mine

    # -- steps -------------------------------------------------------------------------------

    def _parse(self, request: Mapping[str, Any]) -> tuple[int, int, int, battery.Certificate, str]:
        try:
            vehicle_id, start, end = (int(request[k]) for k in ("vehicleId", "start", "end"))
            raw = request["certificate"]
            if not isinstance(raw, Mapping):
                raise TypeError("certificate is not an object")
            certificate = battery.Certificate.from_dict(raw)
        except (KeyError, TypeError, ValueError) as exc:
            raise StatementMalformed(
                KIND, f"expected {{vehicleId, start, end, certificate, token?}}: {exc}"
            ) from None
        token = request.get("token") or self.api_token
        if not isinstance(token, str) or not token:
            raise StatementMalformed(KIND, "no bearer token for the indexer (field `token`)")
        return vehicle_id, start, end, certificate, token

    def _check_chain_id(self) -> None:
        chain_id = self.chain.call(
            "eth_chainId", lambda: int(self.chain.w3.eth.chain_id), self._unavailable
        )
        if chain_id != self.deployment.chain_id:
            raise CheckerUnavailable(
                KIND,
                f"{self.rpc_url} is chain {chain_id}, the deployment record chain "
                f"{self.deployment.chain_id}",
            )

    def _vehicle_facts(self, vehicle_id: int) -> battery.VehicleFacts:
        fn = self.chain.contract("VehicleId").functions.vehicleOf(vehicle_id)
        try:
            make, model, year, _ = self.chain.call("vehicleOf", fn.call, self._unavailable)
        except (ContractCustomError, ContractLogicError) as exc:
            _, why = self.chain.decode(exc)
            raise StatementRefused(KIND, f"vehicle {vehicle_id} is not on-chain: {why}") from None
        return battery.VehicleFacts(str(make), str(model), int(year))

    def _served_answer(
        self, http: httpx.Client, token: str, vehicle_id: int, start: int, end: int
    ) -> dict[str, Any]:
        try:
            r = http.get(
                f"{self.api_url}/apps/battery/{vehicle_id}",
                params={"start": start, "end": end},
                headers={"Authorization": f"Bearer {token}"},
            )
        except httpx.HTTPError as exc:
            raise self._unavailable(f"indexer {self.api_url}: {exc}") from None
        if r.status_code >= 500:
            raise self._unavailable(f"indexer {self.api_url}: HTTP {r.status_code}")
        if r.status_code != 200:
            raise StatementRefused(KIND, f"the indexer refused the caller: {problem_text(r)}")
        try:
            answer: dict[str, Any] = r.json()
            same = (answer["app"], int(answer["vehicle_id"]), answer["start"], answer["end"])
        except (KeyError, TypeError, ValueError) as exc:
            raise self._unavailable(
                f"indexer {self.api_url} answered no battery answer: {exc}"
            ) from None
        if same != (KIND, vehicle_id, start, end):
            raise self._unavailable(f"indexer {self.api_url} answered for {same}")
        return answer

    def _verified_inputs(
        self,
        http: httpx.Client,
        token: str,
        vehicle_id: int,
        start: int,
        end: int,
        covered: dict[str, list[tuple[int, int]]],
        listed: list[tuple[int, int]],
    ) -> AppInputs:
        try:
            return fetch_and_verify_inputs(
                self.api_url,
                token,
                vehicle_id,
                listed,
                self.rpc_url,
                self.anchor_address,
                signal_names=sorted(covered),
                start_ms=start,
                end_ms=end,
                covered=covered,
                client=http,
            )
        except InputProofInvalid as exc:
            raise StatementRefused(KIND, str(exc)) from None
        except AuditChainUnavailable as exc:
            raise self._unavailable(str(exc)) from None
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code >= 500:
                raise self._unavailable(f"indexer proofs: {exc}") from None
            raise StatementRefused(
                KIND, f"the indexer withheld the proofs: {problem_text(exc.response)}"
            ) from None
        except httpx.HTTPError as exc:
            raise self._unavailable(f"indexer proofs: {exc}") from None

    @staticmethod
    def _unavailable(reason: str) -> CheckerUnavailable:
        return CheckerUnavailable(KIND, reason)


def problem_text(r: httpx.Response) -> str:
    """An error answer in one line: status, and the problem's title and detail if any."""
    try:
        body = r.json()
        return f"{r.status_code} {body.get('title')}: {body.get('detail')}"
    except ValueError:
        return f"{r.status_code} {r.text[:300]}"


# --------------------------------------------------------------------------------------------
# The certifier service
# --------------------------------------------------------------------------------------------


def create_certifier_app(
    keys: Sequence[str],
    checker: BatteryChecker,
    others: Mapping[str, StatementChecker] | None = None,
) -> FastAPI:
    """The certifier: `GET /healthz`, `GET /v1/certify`, `POST /v1/certify/battery` (and
    `POST /v1/certify/{kind}` for each other checker, e.g. `credential`).

    Args:
        keys: The oracle keys that sign (hex), one signer each.
        checker: The battery checker every certificate passes first.
        others: More statement kinds and their checkers.

    Raises:
        OracleConfigError: no key.
    """
    if not keys:
        raise OracleConfigError("DIMO_CERTIFY_KEYS", "the certifier needs at least one oracle key")
    deployment = checker.deployment
    anchor_domain = dimo_domain(
        deployment.chain_id, deployment.contract("AttestationAnchor").address
    )
    signers = [OracleSigner(k, anchor_domain) for k in keys]
    app = FastAPI(title="DIMO certifier", version="1")

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "signers": [s.address for s in signers]}

    add_certify_routes(app, signers, {KIND: checker, **(others or {})})
    return app


# --------------------------------------------------------------------------------------------
# The client: signatures from certifiers, checked on-chain
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedCertificate:
    """A certificate with the quorum's signatures, as `verifyCertificate` takes them.

    Attributes:
        certificate: The statement.
        signatures: 65-byte signatures, concatenated in ascending signer order.
        signers: Their signers, ascending.
        contract: The BatteryCertificates address that verified them.
        chain_id: Its chain.
    """

    certificate: battery.Certificate
    signatures: bytes
    signers: tuple[str, ...]
    contract: str
    chain_id: int

    def as_json(self) -> dict[str, Any]:
        """The signed certificate as JSON (what `dimo certify battery` writes)."""
        return {
            "certificate": self.certificate.as_dict(),
            "signatures": "0x" + self.signatures.hex(),
            "signers": list(self.signers),
            "verify": {
                "chainId": self.chain_id,
                "contract": self.contract,
                "function": "verifyCertificate((uint256,uint16,uint16,uint16,uint32,uint64,"
                "uint64,bytes32),bytes)",
            },
        }


def collect_signatures(
    certifier_urls: Sequence[str],
    request: Mapping[str, Any],
    digest: bytes,
    oracles: Sequence[str],
    *,
    client: httpx.Client,
    kind: str = KIND,
    into: dict[str, bytes] | None = None,
) -> tuple[bytes, tuple[str, ...], list[str]]:
    """Asks each certifier to sign; keeps valid signatures of current oracles.

    Args:
        certifier_urls: Base URLs of certifiers.
        request: The certification request (`{vehicleId, start, end, certificate, token?}`
            for battery certificates).
        digest: The statement's EIP-712 digest (BatteryCertificates domain for certificates).
        oracles: The current oracle set.
        client: The HTTP client.
        kind: The statement kind (`POST /v1/certify/{kind}`).
        into: Signatures already held, by signer; the new ones are added to it.

    Returns:
        The signatures concatenated in ascending signer order, their signers, and what went
        wrong with the certifiers or signatures left out.
    """
    members = {checksum_address(a) for a in oracles}
    got: dict[int, tuple[str, bytes]] = {
        int(who, 16): (checksum_address(who), sig) for who, sig in (into or {}).items()
    }
    problems: list[str] = []
    for url in certifier_urls:
        where = url.rstrip("/") + f"{CERTIFY_PATH}/{kind}"
        try:
            r = client.post(where, json=dict(request))
        except httpx.HTTPError as exc:
            problems.append(f"{url}: {exc}")
            continue
        if r.status_code != 200:
            problems.append(f"{url}: {problem_text(r)}")
            continue
        try:
            items = [(str(i["signer"]), str(i["signature"])) for i in r.json()["signatures"]]
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(f"{url}: no signatures in the answer ({exc})")
            continue
        for claimed, hex_sig in items:
            try:
                sig = bytes.fromhex(hex_sig.removeprefix("0x"))
                who = recover_address(digest, sig)
            except (SignatureError, ValueError) as exc:
                problems.append(f"{url}: a bad signature ({exc})")
                continue
            if who != checksum_address(claimed):
                problems.append(f"{url}: a signature of {who}, said to be {claimed}'s")
            elif who not in members:
                problems.append(f"{url}: {who} is not a current oracle")
            else:
                got[int(who, 16)] = (who, sig)
    ordered = [got[k] for k in sorted(got)]
    if into is not None:
        into.update(dict(ordered))
    return b"".join(s for _, s in ordered), tuple(w for w, _ in ordered), problems


def verify_on_chain(
    rpc_url: str, deployment: Deployment, certificate: battery.Certificate, signatures: bytes
) -> None:
    """Calls `BatteryCertificates.verifyCertificate(certificate, signatures)`.

    Raises:
        CertificationFailed: it reverted (`error` names the custom error) or the RPC failed.
    """
    chain = CertifierChain(rpc_url, deployment)
    fn = chain.contract("BatteryCertificates").functions.verifyCertificate(
        certificate.as_tuple(), signatures
    )
    try:
        ok = chain.call("verifyCertificate", fn.call, CertificationFailed)
    except (ContractCustomError, ContractLogicError) as exc:
        name, why = chain.decode(exc)
        raise CertificationFailed(f"verifyCertificate reverted with {why}", name) from None
    if ok is not True:
        raise CertificationFailed(f"verifyCertificate returned {ok!r}")


def certify_battery(
    certifier_urls: Sequence[str],
    request: Mapping[str, Any],
    rpc_url: str,
    deployment: Deployment,
    *,
    client: httpx.Client,
) -> SignedCertificate:
    """Has the certifiers sign a certificate and checks the quorum on-chain.

    Args:
        certifier_urls: Base URLs of certifiers.
        request: `{vehicleId, start, end, certificate, token?}` (see `BatteryChecker`).
        rpc_url: JSON-RPC URL of the chain.
        deployment: The deployment record.
        client: The HTTP client.

    Raises:
        CertificationFailed: too few oracles signed, or the contract rejects the signatures.
        StatementMalformed: the request's certificate does not parse.
    """
    try:
        certificate = battery.Certificate.from_dict(request["certificate"])
    except (CertificateInvalid, KeyError, TypeError, ValueError) as exc:
        raise StatementMalformed(KIND, f"the certificate does not parse: {exc}") from None
    chain = CertifierChain(rpc_url, deployment)
    digest = certificate.digest(chain.certificates_domain())
    oracles_fn = chain.contract("AttestationAnchor").functions.oracles()
    members, threshold, _ = chain.call("oracles", oracles_fn.call, CertificationFailed)
    signatures, signers, problems = collect_signatures(
        certifier_urls, request, digest, members, client=client
    )
    if len(signers) < threshold:
        raise CertificationFailed(
            f"{len(signers)} of the {threshold} oracle signatures needed"
            + ("; " + "; ".join(problems) if problems else ""),
            "OracleRegistryQuorumNotReached",
        )
    verify_on_chain(rpc_url, deployment, certificate, signatures)
    return SignedCertificate(
        certificate,
        signatures,
        signers,
        deployment.contract("BatteryCertificates").address,
        deployment.chain_id,
    )
