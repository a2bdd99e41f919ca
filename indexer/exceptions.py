"""Errors of the indexer: one root, each subclass carrying its context and its fix.

The applications' errors (`apps.exceptions`) are re-exported here for the indexer's modules;
its API maps them to problems in `indexer.api.problems`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from apps.exceptions import AppParameterInvalid as AppParameterInvalid
from apps.exceptions import AuditMismatch as AuditMismatch
from apps.exceptions import CertificateInvalid as CertificateInvalid
from apps.exceptions import InputProofInvalid as InputProofInvalid
from protocol.exceptions import ChainUnavailableError as _ChainUnavailableError
from protocol.exceptions import ConfigError, PlatformError, ProblemError


class IndexerError(PlatformError):
    """Root of every error raised by `indexer`."""


class IndexerConfigError(IndexerError, ConfigError):
    """Settings or a deployment record that the indexer cannot run with."""

    service = "indexer"


# --------------------------------------------------------------------------------------------
# Chain sync
# --------------------------------------------------------------------------------------------


class ChainUnavailableError(IndexerError, _ChainUnavailableError):
    """The chain's JSON-RPC endpoint did not answer or answered with an error."""

    rpc_setting = "DIMO_INDEXER_RPC_URL"


class LogRangeError(IndexerError, RuntimeError):
    """`eth_getLogs` kept failing even over the smallest block range."""

    def __init__(self, from_block: int, to_block: int, reason: str) -> None:
        self.from_block = from_block
        self.to_block = to_block
        self.reason = reason
        super().__init__(
            f"eth_getLogs over blocks {from_block}..{to_block} failed: {reason}; check the "
            "provider's limits or lower DIMO_INDEXER_MIN_RANGE / DIMO_INDEXER_INITIAL_RANGE"
        )


class ReorgTooDeepError(IndexerError, RuntimeError):
    """A reorg reached past every block hash the indexer keeps; no fork point was found."""

    def __init__(self, oldest_kept: int, window: int) -> None:
        self.oldest_kept = oldest_kept
        self.window = window
        super().__init__(
            f"reorg deeper than the {window} kept block hashes (oldest kept block "
            f"{oldest_kept}); raise DIMO_INDEXER_REORG_WINDOW or DIMO_INDEXER_CONFIRMATIONS "
            "and resync from scratch"
        )


class DeploymentMismatchError(IndexerError, ValueError):
    """The database was indexed from another deployment (chain id or addresses differ)."""

    def __init__(self, stored: str, given: str) -> None:
        self.stored = stored
        self.given = given
        super().__init__(
            f"database indexed deployment {stored} but {given} was given; point "
            "DIMO_INDEXER_DATABASE_URL at a fresh database or the matching deployment"
        )


# --------------------------------------------------------------------------------------------
# API: every error the API answers with is an RFC 9457 problem with a stable `type`
# --------------------------------------------------------------------------------------------


class ApiProblem(IndexerError, ProblemError):
    """An error the API answers with an RFC 9457 problem (`indexer.api.problems` renders it).

    Subclasses fix `slug` (the stable part of the `type` URI), `status` and `title`;
    `detail` says what was wrong and how to fix it, `context` adds extension members.
    """


class MalformedSiweMessage(ApiProblem, ValueError):
    """The login message is not an EIP-4361 message (a line missing, a field malformed)."""

    slug = "siwe-malformed-message"
    status = 400
    title = "Malformed Sign-In with Ethereum message"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(
            f"{reason}; build the message as EIP-4361 specifies (e.g. with the siwe package) "
            "and send it unchanged"
        )


class SiweRejected(ApiProblem, PermissionError):
    """A well-formed login message this API does not accept (401)."""

    slug = "siwe-rejected"
    status = 401
    title = "Sign-in rejected"


class SiweDomainMismatch(SiweRejected):
    """The message names another domain (or scheme) than this API's."""

    slug = "siwe-domain-mismatch"
    title = "Sign-in message for another domain"

    def __init__(self, expected: str, got: str) -> None:
        self.expected = expected
        self.got = got
        super().__init__(
            f"the message is for domain {got!r}, this API is {expected!r}; sign a message for "
            "this API's domain",
            expected=expected,
        )


class SiweUriMismatch(SiweRejected):
    """The message's URI is not the one this API accepts."""

    slug = "siwe-uri-mismatch"
    title = "Sign-in message for another URI"

    def __init__(self, expected: str, got: str) -> None:
        self.expected = expected
        self.got = got
        super().__init__(
            f"the message's URI is {got!r}, this API accepts {expected!r}; sign a message with "
            "that URI",
            expected=expected,
        )


class SiweChainMismatch(SiweRejected):
    """The message is bound to another chain than the deployment's."""

    slug = "siwe-chain-mismatch"
    title = "Sign-in message for another chain"

    def __init__(self, expected: int, got: int) -> None:
        self.expected = expected
        self.got = got
        super().__init__(
            f"the message is for chain {got}, this API indexes chain {expected}; switch the "
            "wallet to that chain and sign again",
            expected=expected,
        )


class SiweUnknownNonce(SiweRejected, LookupError):
    """The message's nonce was never issued by `GET /auth/nonce`."""

    slug = "siwe-unknown-nonce"
    title = "Unknown sign-in nonce"

    def __init__(self, nonce: str) -> None:
        self.nonce = nonce
        super().__init__(
            f"nonce {nonce!r} was not issued by this API; get one from GET /auth/nonce"
        )


class SiweNonceReused(SiweRejected):
    """The message's nonce was already used for a login."""

    slug = "siwe-nonce-reused"
    title = "Sign-in nonce already used"

    def __init__(self, nonce: str) -> None:
        self.nonce = nonce
        super().__init__(
            f"nonce {nonce!r} was already used; each login needs a fresh nonce from GET /auth/nonce"
        )


class SiweNonceExpired(SiweRejected):
    """The message's nonce was issued too long ago."""

    slug = "siwe-nonce-expired"
    title = "Sign-in nonce expired"

    def __init__(self, nonce: str, ttl_s: int) -> None:
        self.nonce = nonce
        self.ttl_s = ttl_s
        super().__init__(
            f"nonce {nonce!r} is older than {ttl_s} s; get a fresh one from GET /auth/nonce "
            "and sign again"
        )


class SiweMessageExpired(SiweRejected):
    """The message's Expiration Time has passed."""

    slug = "siwe-message-expired"
    title = "Sign-in message expired"

    def __init__(self, expiration_time: str) -> None:
        self.expiration_time = expiration_time
        super().__init__(
            f"the message expired at {expiration_time}; sign a new message",
            expiration_time=expiration_time,
        )


class SiweMessageNotYetValid(SiweRejected):
    """The message's Not Before (or Issued At) time is still in the future."""

    slug = "siwe-message-not-yet-valid"
    title = "Sign-in message not yet valid"

    def __init__(self, field: str, when: str) -> None:
        self.field = field
        self.when = when
        super().__init__(
            f"the message's {field} is {when}, in the future; check the wallet's clock or wait",
            valid_from=when,
        )


class SiweBadSignature(SiweRejected):
    """The signature does not recover (EIP-191) to the message's address."""

    slug = "siwe-bad-signature"
    title = "Bad sign-in signature"

    def __init__(self, address: str, reason: str) -> None:
        self.address = address
        self.reason = reason
        super().__init__(
            f"{reason}; sign the exact message text with personal_sign (EIP-191) using the key "
            f"of {address}",
        )


class TokenRejected(ApiProblem, PermissionError):
    """No usable bearer token on a route that needs one (401)."""

    slug = "token-missing"
    status = 401
    title = "Authentication required"

    def __init__(self, detail: str = "") -> None:
        super().__init__(
            detail
            or "this route needs `Authorization: Bearer <token>`; sign in with POST /auth/login"
        )


class InvalidToken(TokenRejected, ValueError):
    """The bearer token is not a JWT this API issued (bad format, algorithm or signature)."""

    slug = "token-invalid"
    title = "Invalid access token"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"{reason}; sign in again with POST /auth/login")


class TokenExpired(TokenRejected):
    """The bearer token's `exp` has passed."""

    slug = "token-expired"
    title = "Access token expired"

    def __init__(self, expired_at: int) -> None:
        self.expired_at = expired_at
        super().__init__(
            f"the token expired at unix time {expired_at}; refresh it with POST /auth/refresh "
            "before it expires, or sign in again"
        )


class SessionTooOld(TokenRejected):
    """A refresh was asked for a session signed in longer ago than the session limit."""

    slug = "session-expired"
    title = "Session too old to refresh"

    def __init__(self, auth_time: int, max_s: int) -> None:
        self.auth_time = auth_time
        self.max_s = max_s
        super().__init__(
            f"the session began at unix time {auth_time}, more than {max_s} s ago; sign in "
            "again with POST /auth/login"
        )


class RateLimited(ApiProblem):
    """The caller used up its requests for the current window (429)."""

    slug = "rate-limited"
    status = 429
    title = "Too many requests"

    def __init__(self, limit: int, retry_after_s: int) -> None:
        self.limit = limit
        self.retry_after_s = retry_after_s
        super().__init__(
            f"at most {limit} requests a minute per caller; retry after {retry_after_s} s",
            retry_after=retry_after_s,
        )


# --------------------------------------------------------------------------------------------
# Verified telemetry (batch loader, telemetry queries)
# --------------------------------------------------------------------------------------------


class BatchContentUnavailable(IndexerError, ConnectionError):
    """The blob store could not serve an anchored batch's content now; the batch is undecided."""

    def __init__(self, batch_id: int, cid: str, reason: str) -> None:
        self.batch_id = batch_id
        self.cid = cid
        self.reason = reason
        super().__init__(
            f"batch {batch_id}: content {cid} could not be fetched: {reason}; check that the "
            "blob store (DIMO_INDEXER_BLOB_DIR or DIMO_INDEXER_KUBO_URL) holds it and is up, "
            "then retry"
        )


class InvalidTelemetryQuery(IndexerError, ValueError):
    """A telemetry query with a bad argument (time range, interval, aggregation, limit)."""

    def __init__(self, argument: str, reason: str) -> None:
        self.argument = argument
        self.reason = reason
        super().__init__(f"invalid telemetry query argument {argument}: {reason}")


class ReadingNotFound(IndexerError, LookupError):
    """No served reading matches; it may be in a rejected batch or not indexed yet."""

    def __init__(self, vehicle_id: int, signal: str, ts: int) -> None:
        self.vehicle_id = vehicle_id
        self.signal = signal
        self.ts = ts
        super().__init__(
            f"no verified reading of {signal} for vehicle {vehicle_id} at {ts} ms; query the "
            "vehicle's signals for a reading that exists (rejected batches serve nothing)"
        )


# --------------------------------------------------------------------------------------------
# API: identity, rights and governance routes (lists, cursors, unknown ids)
# --------------------------------------------------------------------------------------------


class InvalidCursor(ApiProblem, ValueError):
    """A `cursor` query parameter that is not one this API handed out for this list (400)."""

    slug = "invalid-cursor"
    status = 400
    title = "Invalid page cursor"

    def __init__(self, cursor: str, reason: str) -> None:
        self.cursor = cursor
        self.reason = reason
        super().__init__(
            f"{reason}; pass the `next_cursor` of the previous page of the same list unchanged, "
            "or omit `cursor` for the first page"
        )


class ResourceNotFound(ApiProblem, LookupError):
    """An id the index holds no record of (404); subclasses name the kind of record."""

    slug = "not-found"
    status = 404
    title = "Not found"
    #: What kind of record was looked up, e.g. "vehicle".
    resource: ClassVar[str] = "record"

    def __init__(self, ident: str | int) -> None:
        self.ident = ident
        super().__init__(
            f"no {self.resource} {ident} is indexed; check the id, or wait for the indexer to "
            "reach the block that created it (GET /healthz, then retry)",
            resource=self.resource,
            id=str(ident),
        )


class VehicleNotFound(ResourceNotFound):
    """No vehicle with this token id is indexed."""

    slug = "vehicle-not-found"
    title = "Unknown vehicle"
    resource = "vehicle"


class DeviceNotFound(ResourceNotFound):
    """No device with this address is indexed."""

    slug = "device-not-found"
    title = "Unknown device"
    resource = "device"


class ProductNotFound(ResourceNotFound):
    """No data product with this id is indexed."""

    slug = "product-not-found"
    title = "Unknown data product"
    resource = "product"


class ProposalNotFound(ResourceNotFound):
    """No governance proposal with this id is indexed."""

    slug = "proposal-not-found"
    title = "Unknown proposal"
    resource = "proposal"


# --------------------------------------------------------------------------------------------
# API: telemetry and proofs (per-signal read rights)
# --------------------------------------------------------------------------------------------


class UnknownSignalName(ApiProblem, LookupError):
    """A telemetry request names a signal that is neither in the VSS catalog nor loaded (400)."""

    slug = "unknown-signal"
    status = 400
    title = "Unknown signal"

    def __init__(self, names: list[str]) -> None:
        self.names = names
        super().__init__(
            f"no signal named {', '.join(repr(n) for n in names)}; use COVESA VSS names from "
            "the catalog (protocol/vss.py), e.g. 'Vehicle.Speed'",
            signals=names,
        )


class BadTelemetryQuery(ApiProblem, ValueError):
    """A telemetry request with a bad argument: range, interval, aggregation or limit (400)."""

    slug = "invalid-telemetry-query"
    status = 400
    title = "Invalid telemetry query"

    def __init__(self, argument: str, reason: str) -> None:
        self.argument = argument
        self.reason = reason
        super().__init__(f"{argument}: {reason}", argument=argument)


class PrivilegeMissing(ApiProblem, PermissionError):
    """The caller's rights cover none of the requested signals for the requested time (403).

    `missing_scopes` names the privileges that would cover them; `signals` the signals.
    """

    slug = "privilege-missing"
    status = 403
    title = "Missing data privilege"

    def __init__(self, vehicle_id: int, missing: dict[str, list[str]]) -> None:
        self.vehicle_id = vehicle_id
        self.missing = missing
        scopes = sorted(missing)
        signals = sorted({n for names in missing.values() for n in names})
        needs = "; ".join(f"{scope} for {', '.join(sorted(missing[scope]))}" for scope in scopes)
        super().__init__(
            f"your rights on vehicle {vehicle_id} cover none of the requested time of these "
            f"signals ({needs}); own the vehicle, get a grant with the scope from its owner, "
            "or buy a licence of a product with the scope that the vehicle is opted in to",
            vehicle_id=vehicle_id,
            missing_scopes=scopes,
            signals=signals,
        )


class LocationPrivilegeMissing(ApiProblem, PermissionError):
    """A position-based region asked for by a caller holding LOCATION on no vehicle (403).

    The same problem type as `PrivilegeMissing`, with `missing_scopes: ["LOCATION"]`.
    """

    slug = "privilege-missing"
    status = 403
    title = "Missing data privilege"

    def __init__(self, region: str, signals: Sequence[str]) -> None:
        self.region = region
        super().__init__(
            f"placing vehicles in the geometric region {region!r} reads their positions, and "
            "you hold the LOCATION scope on no vehicle: get a grant with LOCATION from owners "
            "or buy a licence of a product with LOCATION; regions declared by owners "
            "(GET /apps/energy/regions/{region}/flexibility) need no position",
            region=region,
            missing_scopes=["LOCATION"],
            signals=list(signals),
        )


class ReadingNotServed(ApiProblem, LookupError):
    """No served reading of the signal at that time, for a caller who may read it (404)."""

    slug = "reading-not-found"
    status = 404
    title = "Reading not found"

    def __init__(self, vehicle_id: int, signal: str, ts: int) -> None:
        self.vehicle_id = vehicle_id
        self.signal = signal
        self.ts = ts
        super().__init__(
            f"no verified reading of {signal} for vehicle {vehicle_id} at {ts} ms; list the "
            "readings with GET /vehicles/{id}/readings and ask for the proof of one of them",
            vehicle_id=vehicle_id,
            signal=signal,
            ts=ts,
        )


class BundleNotDisclosable(ApiProblem, PermissionError):
    """A proof or export would hand over a bundle holding signals the caller may not read (403).

    `signals` names them (names only: their values are never sent).
    """

    slug = "bundle-not-disclosable"
    status = 403
    title = "Bundle holds signals you may not read"

    def __init__(
        self, vehicle_id: int, batch_id: int, leaf_index: int, uncovered: Sequence[str]
    ) -> None:
        self.vehicle_id = vehicle_id
        self.uncovered = list(uncovered)
        super().__init__(
            f"bundle {batch_id}/{leaf_index} of vehicle {vehicle_id} also holds signals your "
            f"rights do not cover at its time ({', '.join(self.uncovered)}); a schema-1 bundle "
            "is proved only whole, and a schema-2 signal is opened only when every reading of "
            "it in the bundle is covered, so this proof is not served to you; read the values "
            "you may read from GET /vehicles/{id}/readings, or get the missing scopes",
            vehicle_id=vehicle_id,
            batch_id=batch_id,
            leaf_index=leaf_index,
            signals=self.uncovered,
        )


class BatchNotFound(ResourceNotFound):
    """No loaded batch with this id is indexed."""

    slug = "batch-not-found"
    title = "Unknown batch"
    resource = "loaded batch"


class OpeningInvalid(ApiProblem, ValueError):
    """A schema-2 signal opening sent to be checked does not verify (422).

    `signal` names the opening, `reason` says which check failed (its commitment does not lead
    to the leaf's dataHash, the leaf is not in the batch, a malformed member).
    """

    slug = "opening-invalid"
    status = 422
    title = "Signal opening does not verify"

    def __init__(self, batch_id: int, signal: str, reason: str) -> None:
        self.reason = reason
        super().__init__(
            f"the opening of {signal} in batch {batch_id} does not verify: {reason}; send the "
            "opening, leaf and proof exactly as a proof route served them",
            batch_id=batch_id,
            signal=signal,
            reason=reason,
        )


class BundleNotServed(ApiProblem, LookupError):
    """No bundle of the vehicle at (batch, leaf) that the caller may read any of (404).

    An unknown pair, another vehicle's bundle, and a bundle of this vehicle none of whose
    readings the caller may read get this same answer, so that it tells nothing of when the
    vehicle was active.
    """

    slug = "bundle-not-found"
    status = 404
    title = "Bundle not found"

    def __init__(self, vehicle_id: int, batch_id: int, leaf_index: int) -> None:
        super().__init__(
            f"no loaded bundle {batch_id}/{leaf_index} of vehicle {vehicle_id} holds a reading "
            "your rights cover; take the (batch, leaf) pairs from an application answer's "
            "`inputs` or from GET /vehicles/{id}/readings",
            vehicle_id=vehicle_id,
            batch_id=batch_id,
            leaf_index=leaf_index,
        )


class RewardNotFound(ResourceNotFound):
    """No posted epoch, or no allocation of a vehicle in a loaded epoch document."""

    slug = "reward-not-found"
    title = "Unknown reward"
    resource = "reward"

    def __init__(self, epoch: int, vehicle_id: int | None) -> None:
        self.epoch = epoch
        self.vehicle_id = vehicle_id
        ident = (
            f"epoch {epoch}" if vehicle_id is None else f"of vehicle {vehicle_id} in epoch {epoch}"
        )
        super().__init__(ident)


# --------------------------------------------------------------------------------------------
# Applications: insurance and grid integration
# --------------------------------------------------------------------------------------------


class ExportInvalid(IndexerError, ValueError):
    """An exported readings file does not verify: a signature, a Merkle path, a root or the
    recomputed result fails."""

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        self.reason = reason
        super().__init__(
            f"export rejected at {where}: {reason}; the file was altered or is not an export "
            "of signed, anchored readings"
        )


class FeatureDisabled(ApiProblem, PermissionError):
    """A governance feature flag the request needs is off (403)."""

    slug = "feature-disabled"
    status = 403
    title = "Feature disabled by governance"

    def __init__(self, feature: str) -> None:
        self.feature = feature
        super().__init__(
            f"{feature} is off in Parameters; a governance proposal must enable it "
            f"(Parameters.setFlag({feature}, true)) before this can be used",
            feature=feature,
        )


class GridLicenceMissing(ApiProblem, PermissionError):
    """A grid programme action by a caller without a live licence that reads CHARGING (403)."""

    slug = "grid-licence-missing"
    status = 403
    title = "Grid licence missing"

    def __init__(self, caller: str) -> None:
        self.caller = caller
        super().__init__(
            f"{caller} holds no live licence of a product with the CHARGING scope; buy one "
            "on the DataMarket to publish and settle demand-response events",
            caller=caller,
        )


class RegionDeclarationInvalid(ApiProblem, ValueError):
    """A grid region declaration that is malformed or not signed by the vehicle's owner (400)."""

    slug = "invalid-region-declaration"
    status = 400
    title = "Invalid grid region declaration"

    def __init__(self, vehicle_id: int, reason: str) -> None:
        self.vehicle_id = vehicle_id
        self.reason = reason
        super().__init__(
            f"vehicle {vehicle_id}: {reason}; the current owner signs the EIP-712 "
            "GridRegion(vehicleId, region, issuedAt) message under the DIMO domain",
            vehicle_id=vehicle_id,
        )


class OpenAdrInvalid(ApiProblem, ValueError):
    """An OpenADR 3 program, event or report body this API cannot accept (400)."""

    slug = "invalid-openadr-object"
    status = 400
    title = "Invalid OpenADR object"

    def __init__(self, member: str, reason: str) -> None:
        self.member = member
        self.reason = reason
        super().__init__(f"{member}: {reason}", member=member)


class GridResourceNotFound(ResourceNotFound):
    """No OpenADR program, event or report with this id."""

    slug = "openadr-object-not-found"
    title = "Unknown OpenADR object"
    resource = "OpenADR object"


# --------------------------------------------------------------------------------------------
# DIMO's developer surface: challenge login, token exchange
# --------------------------------------------------------------------------------------------


class DeveloperApiProblem(ApiProblem):
    """A problem of DIMO's developer surface. Besides RFC 9457's members it carries DIMO's
    own error shape, `code` (the status) and `message` (the detail), which DIMO's SDKs show."""

    def __init__(self, detail: str, **context: object) -> None:
        super().__init__(detail, code=self.status, message=detail, **context)


class DeveloperRequestMalformed(DeveloperApiProblem, ValueError):
    """A login or exchange request missing a field or with a malformed one (400)."""

    slug = "developer-request-malformed"
    status = 400
    title = "Malformed request"

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        super().__init__(f"{field}: {reason}", field=field)


class ClientIdUnknown(DeveloperApiProblem, LookupError):
    """The `client_id` is no developer licence's client id (400)."""

    slug = "client-id-unknown"
    status = 400
    title = "Unknown client id"

    def __init__(self, client_id: str) -> None:
        self.client_id = client_id
        super().__init__(
            f"{client_id} is not the client id of a developer licence; mint one with "
            "DeveloperLicence.mint and use the clientId of its LicenceMinted event",
            client_id=client_id,
        )


class RedirectUriUnknown(DeveloperApiProblem, PermissionError):
    """The login's `domain` is not an enabled redirect URI of the licence (400)."""

    slug = "redirect-uri-unknown"
    status = 400
    title = "Redirect URI not registered"

    def __init__(self, client_id: str, domain: str) -> None:
        super().__init__(
            f"{domain!r} is not a redirect URI of licence {client_id}; its owner enables it "
            "with DeveloperLicence.setRedirectUri",
            client_id=client_id,
            domain=domain,
        )


class ChallengeRejected(DeveloperApiProblem, PermissionError):
    """A submitted challenge this API does not accept (401)."""

    slug = "challenge-rejected"
    status = 401
    title = "Challenge rejected"


class ChallengeUnknown(ChallengeRejected, LookupError):
    """No challenge has this `state`."""

    slug = "challenge-unknown"
    title = "Unknown challenge state"

    def __init__(self) -> None:
        super().__init__("no challenge has this state; get one from /auth/web3/generate_challenge")


class ChallengeReused(ChallengeRejected):
    """The challenge was already submitted successfully."""

    slug = "challenge-reused"
    title = "Challenge already used"

    def __init__(self) -> None:
        super().__init__("this challenge state was already used; generate a new challenge")


class ChallengeExpired(ChallengeRejected):
    """The challenge is older than its validity."""

    slug = "challenge-expired"
    title = "Challenge expired"

    def __init__(self, ttl_s: int) -> None:
        super().__init__(
            f"the challenge is valid {ttl_s} s and that has passed; generate a new challenge"
        )


class ChallengeMismatch(ChallengeRejected):
    """The submit names another client id or domain than its challenge."""

    slug = "challenge-mismatch"
    title = "Challenge for another client or domain"

    def __init__(self, field: str, expected: str, got: str) -> None:
        super().__init__(
            f"the challenge was generated for {field} {expected!r}, not {got!r}; submit with "
            "the values the challenge was generated with",
            field=field,
        )


class ChallengeSignerRejected(ChallengeRejected):
    """The signature is not by the client id nor by a signer of its licence."""

    slug = "challenge-signer-rejected"
    title = "Signer not allowed for this licence"

    def __init__(self, client_id: str, signer: str) -> None:
        super().__init__(
            f"the challenge was signed by {signer}, which is neither {client_id} nor a signer "
            "of its licence (ERC-1271 isValidSignature refused it); sign with a key the "
            "licence's owner added with DeveloperLicence.addSigner",
            client_id=client_id,
            signer=signer,
        )


class DeveloperTokenRejected(DeveloperApiProblem, PermissionError):
    """No usable developer JWT on a route that needs one (401)."""

    slug = "developer-token-rejected"
    status = 401
    title = "Developer token required"


class NftContractUnknown(DeveloperApiProblem, LookupError):
    """Token exchange for a contract that is not the platform's vehicle NFT (400)."""

    slug = "nft-contract-unknown"
    status = 400
    title = "Unknown NFT contract"

    def __init__(self, address: str, known: Sequence[str]) -> None:
        super().__init__(
            f"{address} is not the vehicle NFT of this platform; use one of {', '.join(known)}",
            nft_contract_address=address,
        )


class DimoPrivilegeUnknown(DeveloperApiProblem, ValueError):
    """Token exchange for a privilege id with no scope here (400)."""

    slug = "privilege-id-unknown"
    status = 400
    title = "Unknown privilege id"


class PrivilegesNotHeld(DeveloperApiProblem, PermissionError):
    """The licence does not hold, now, every privilege the exchange asks for (403)."""

    slug = "privileges-not-held"
    status = 403
    title = "Privileges not held"

    def __init__(self, client_id: str, vehicle_id: int, missing: list[int]) -> None:
        super().__init__(
            f"developer licence {client_id} does not hold privileges {missing} on vehicle "
            f"{vehicle_id} now (never granted, expired, revoked, or the vehicle changed "
            "hands); ask the vehicle's owner for a grant to the client id",
            vehicle_id=vehicle_id,
            missing_privileges=missing,
        )


class SignerCheckUnavailable(DeveloperApiProblem, ConnectionError):
    """The chain node that answers the licence's ERC-1271 check did not answer (503)."""

    slug = "signer-check-unavailable"
    status = 503
    title = "Signer check unavailable"

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"the chain node did not answer the licence's ERC-1271 isValidSignature ({reason}); "
            "try again, or sign with the client id's own key; the challenge stays usable"
        )


class VehicleTokenExpired(DeveloperApiProblem, PermissionError):
    """A vehicle JWT whose `exp` has passed (401)."""

    slug = "vehicle-token-expired"
    status = 401
    title = "Vehicle token expired"

    def __init__(self, expired_at: int) -> None:
        self.expired_at = expired_at
        super().__init__(
            f"the vehicle JWT expired at unix time {expired_at}; exchange a new one with "
            "POST /v1/tokens/exchange",
            expired_at=expired_at,
        )


class VehicleTokenOtherVehicle(DeveloperApiProblem, PermissionError):
    """A vehicle JWT sent for another vehicle than its own (403)."""

    slug = "vehicle-token-other-vehicle"
    status = 403
    title = "Vehicle token for another vehicle"

    def __init__(self, asset: str, vehicle_id: int) -> None:
        super().__init__(
            f"the vehicle JWT is for {asset}, not vehicle {vehicle_id}; exchange one for it",
            vehicle_id=vehicle_id,
            asset=asset,
        )


# --------------------------------------------------------------------------------------------
# Vehicle credentials (the index `vinVCLatest` reads)
# --------------------------------------------------------------------------------------------


class CredentialRejected(ApiProblem, ValueError):
    """A credential submitted to the index does not verify, or is not of this platform (400)."""

    slug = "credential-rejected"
    status = 400
    title = "Credential rejected"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(
            f"{reason}; only credentials the oracle quorum signed for this platform's vehicles, "
            "as VehicleCredentials.verifyCredential accepts them now, are indexed",
            reason=reason,
        )


class CredentialCheckUnavailable(ApiProblem, ConnectionError):
    """The chain node that answers `verifyCredential` did not answer (503)."""

    slug = "credential-check-unavailable"
    status = 503
    title = "Credential check unavailable"

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"the chain node did not answer VehicleCredentials.verifyCredential ({reason}); "
            "submit the credential again"
        )
