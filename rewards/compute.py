"""Compute an epoch's allocation from public inputs, verify a posted one, post a new one.

Inputs, all public: the anchored batches (fetched by the CIDs anchored on-chain, every
signature and root checked), the chain's pairing history and vehicle models, the epoch's cap,
the model catalog, and the streaks after the previous epoch. Those streaks come from the
previous epoch's posted allocation (fetched by its posted CID) when it has a live root, and
are recomputed otherwise, back to the last posted epoch or to genesis; `from_scratch`
recomputes every epoch from genesis and trusts no posted document.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Final

from protocol.blobstore import BlobStore, BlobStoreError
from protocol.cid import Cid, InvalidCid, compute_cid
from protocol.crypto import SignatureError, recover_address, sign_digest
from protocol.rewards import (
    Activity,
    EpochAllocation,
    StreakState,
    allocate,
    allocation_tree,
    root_digest,
)
from protocol.rewards_document import (
    AllocationDocument,
    DocumentInputs,
    ModelSignals,
    StreakSource,
    build_document,
    csv_rows,
    parse_document,
)
from rewards.activity import EpochActivity, PairingHistory, extract_activity
from rewards.catalog import ModelCatalog, model_key
from rewards.chain import AnchoredBatch, OnchainRoot, RewardsChain
from rewards.exceptions import (
    EpochNotEnded,
    InvalidAllocation,
    NothingToAllocate,
    QuorumNotReached,
    RootNotPosted,
    RootVetoed,
)

__all__ = [
    "ComputedEpoch",
    "EpochCheck",
    "EpochContext",
    "FundResult",
    "PostResult",
    "RewardsComputer",
    "Verification",
    "build_epoch",
]

#: CID version of allocation documents (what the blob stores put by default).
CID_VERSION: Final = 1


@dataclass(frozen=True)
class ComputedEpoch:
    """An epoch's allocation and its document.

    Attributes:
        allocation: Points, amounts, streaks and tree.
        document: The canonical document (what is stored by CID).
        cid: The document's CID (CIDv1).
        inputs: What the document records of the inputs.
    """

    allocation: EpochAllocation
    document: bytes
    cid: str
    inputs: DocumentInputs

    @property
    def epoch(self) -> int:
        """The epoch."""
        return self.allocation.epoch

    @cached_property
    def parsed(self) -> AllocationDocument:
        """The document, parsed back (and checked against itself)."""
        return parse_document(self.document, f"epoch {self.epoch}")

    def csv(self) -> str:
        """The allocation as CSV, one row per scored vehicle."""
        return csv_rows(self.allocation, self.inputs.vehicle_models)


@dataclass(frozen=True)
class EpochCheck:
    """One posted epoch recomputed on the way to the target (`from_scratch`)."""

    epoch: int
    onchain_root: bytes
    recomputed_root: bytes | None

    @property
    def ok(self) -> bool:
        """Whether the recomputed root is the one on-chain."""
        return self.onchain_root == self.recomputed_root


@dataclass(frozen=True)
class Verification:
    """A posted epoch against its recomputation.

    Attributes:
        epoch: The epoch.
        onchain: The root, total and flags on-chain.
        posted_cid: The CID posted with the root.
        recomputed: The recomputation (same batch horizon and cap as the posting).
        differences: Up to 20 `(vehicleId, posted amount, recomputed amount)` that differ.
        earlier: Earlier posted epochs recomputed on the way (`from_scratch` only).
    """

    epoch: int
    onchain: OnchainRoot
    posted_cid: str
    recomputed: ComputedEpoch
    differences: list[tuple[int, int, int]] = field(default_factory=list)
    earlier: list[EpochCheck] = field(default_factory=list)

    @property
    def root_matches(self) -> bool:
        """Whether the recomputed root and total are those on-chain."""
        return (
            self.recomputed.allocation.root == self.onchain.root
            and self.recomputed.allocation.total == self.onchain.total
        )

    @property
    def document_matches(self) -> bool:
        """Whether the recomputed document is byte for byte the posted one (same CID)."""
        return self.recomputed.cid == self.posted_cid

    @property
    def ok(self) -> bool:
        """The root matches, and so do the earlier epochs checked."""
        return self.root_matches and all(check.ok for check in self.earlier)


@dataclass(frozen=True)
class FundResult:
    """A funded epoch: the transactions sent (None for what was on-chain already) and the
    depth its claims' proofs may now stop at."""

    funded_tx: str | None
    cache_tx: str | None
    cached_depth: int


@dataclass(frozen=True)
class PostResult:
    """A posted epoch: its computation, the stored CID and the transaction."""

    computed: ComputedEpoch
    cid: str
    tx_hash: str
    signers: list[str]


@dataclass(frozen=True, slots=True)
class EpochContext:
    """Where and what an allocation is for: chain, contract, epoch, bounds, horizon, budget."""

    chain_id: int
    rewards: str
    epoch: int
    epoch_start: int
    epoch_end: int
    batch_horizon: int
    budget: int


def build_epoch(
    context: EpochContext,
    measured: EpochActivity,
    vehicle_models: Mapping[int, str],
    catalog: ModelCatalog,
    before: Mapping[int, StreakState],
    source: StreakSource | None,
) -> ComputedEpoch:
    """The allocation and document of an epoch from its extracted activity.

    Each vehicle's reportable signals are its model's catalog entry; a model the catalog
    does not list is measured: every signal any vehicle of that model reported in the epoch.

    Args:
        context: The epoch and where it is posted.
        measured: The activity `extract_activity` found.
        vehicle_models: Vehicle id -> `"Make|Model"` (from `VehicleMinted`).
        catalog: The model catalog.
        before: Streaks after the previous epoch.
        source: Where those streaks came from.

    Returns:
        The computed epoch.
    """
    unknown = model_key("", "")
    scored = set(measured.hours) | set(before)
    keys = {v: vehicle_models.get(v, unknown) for v in scored}
    models: dict[str, ModelSignals] = {}
    for key in set(keys.values()):
        make, _, model = key.partition("|")
        listed = catalog.reportable(make, model)
        if listed is not None:
            models[key] = ModelSignals("catalog", listed)
    unlisted: dict[str, set[str]] = {}
    for vehicle, names in measured.signals.items():
        if keys[vehicle] not in models:
            unlisted.setdefault(keys[vehicle], set()).update(names)
    for key, names in unlisted.items():
        models[key] = ModelSignals("measured", frozenset(names))
    signals = {v: frozenset(names) for v, names in measured.signals.items()}
    nothing = ModelSignals("measured", frozenset())
    no_signals: frozenset[str] = frozenset()
    activity = {
        v: Activity(hours, signals.get(v, no_signals), models.get(keys[v], nothing).signals)
        for v, hours in measured.hours.items()
    }
    allocation = allocate(context.epoch, context.budget, activity, before)
    inputs = DocumentInputs(
        chain_id=context.chain_id,
        rewards=context.rewards,
        epoch_start=context.epoch_start,
        epoch_end=context.epoch_end,
        batch_horizon=context.batch_horizon,
        batches=measured.batches,
        ignored=dict(measured.ignored),
        catalog_sha256=catalog.sha256,
        models=models,
        vehicle_models=keys,
        hours=measured.hours,
        signals=signals,
        streaks_from=source,
    )
    document = build_document(allocation, inputs)
    return ComputedEpoch(
        allocation, document, compute_cid(document, cid_version=CID_VERSION), inputs
    )


class RewardsComputer:
    """Computes, verifies and posts allocations against one deployment and blob store."""

    def __init__(
        self, chain: RewardsChain, store: BlobStore, catalog: ModelCatalog, *, workers: int = 1
    ) -> None:
        """Bind the inputs; chain history is read on first use and kept for this object.

        Args:
            chain: The chain reader.
            store: Where batch contents and allocation documents are fetched and stored.
            catalog: The model catalog.
            workers: Processes that check batch contents in parallel.
        """
        self.workers = workers
        self.chain = chain
        self.store = store
        self.catalog = catalog
        self._history: tuple[list[AnchoredBatch], PairingHistory, dict[int, str]] | None = None
        self._history_horizon = -1
        self.checks: list[EpochCheck] = []

    # ---- compute ---------------------------------------------------------------------------

    def compute(
        self,
        epoch: int,
        *,
        horizon: int | None = None,
        budget: int | None = None,
        from_scratch: bool = False,
    ) -> ComputedEpoch:
        """The allocation of an ended epoch.

        Args:
            epoch: The epoch.
            horizon: The last batch id to consider; default the last anchored one.
            budget: The cap to split; default `capOf(epoch)` now.
            from_scratch: Recompute the streaks from genesis, trusting no posted document.

        Returns:
            The allocation and its document.

        Raises:
            EpochNotEnded: the epoch has not ended on the chain's clock.
            BatchContentUnavailable: a batch of a recomputed epoch cannot be fetched.
            ChainUnavailableError: the chain does not answer.
        """
        _, end = self.chain.epoch_bounds(epoch)
        _, now = self.chain.head()
        if now < end:
            raise EpochNotEnded(epoch, end, now)
        if horizon is None:
            horizon = self.chain.last_batch_id()
        self.checks = []
        before, source = self._streaks_before(epoch, horizon, from_scratch)
        if budget is None:
            budget = self.chain.cap_of(epoch)
        return self._compute_one(epoch, horizon, budget, before, source)

    def _compute_one(
        self,
        epoch: int,
        horizon: int,
        budget: int,
        before: dict[int, StreakState],
        source: StreakSource | None,
    ) -> ComputedEpoch:
        start, end = self.chain.epoch_bounds(epoch)
        batches, pairings, vehicle_models = self._inputs(horizon)
        measured = extract_activity(
            start * 1000,
            end * 1000,
            [b for b in batches if b.id <= horizon],
            self.store.get,
            self.chain.bundle_domain(),
            pairings,
            workers=self.workers,
        )
        context = EpochContext(
            self.chain.chain_id, self.chain.rewards_address, epoch, start, end, horizon, budget
        )
        return build_epoch(context, measured, vehicle_models, self.catalog, before, source)

    def _inputs(self, horizon: int) -> tuple[list[AnchoredBatch], PairingHistory, dict[int, str]]:
        if self._history is None or horizon > self._history_horizon:
            batches = self.chain.anchored_batches(horizon)
            pairings = PairingHistory.from_events(self.chain.pairing_events())
            models = {v: model_key(*mm) for v, mm in self.chain.vehicle_models().items()}
            self._history = (batches, pairings, models)
            self._history_horizon = horizon
        return self._history

    def _posted_document(self, epoch: int) -> tuple[AllocationDocument, str, bytes] | None:
        """The posted allocation of a live root, fetched by its CID and checked, or None."""
        posting = self.chain.posting(epoch)
        if posting is None or not posting.cid:
            return None
        try:
            raw = self.store.get(posting.cid)
        except (BlobStoreError, InvalidCid):
            return None
        try:
            doc = parse_document(raw, posting.cid)
        except InvalidAllocation:
            return None
        if doc.epoch != epoch or doc.root != posting.root or doc.total != posting.total:
            return None
        return doc, posting.cid, posting.root

    def _streaks_before(
        self, epoch: int, horizon: int, from_scratch: bool
    ) -> tuple[dict[int, StreakState], StreakSource | None]:
        state: dict[int, StreakState] = {}
        source: StreakSource | None = None
        pending: list[int] = []
        m = epoch - 1
        while m >= 0:
            if not from_scratch:
                posted = self._posted_document(m)
                if posted is not None:
                    doc, cid, root = posted
                    state, source = dict(doc.streaks), StreakSource(m, cid, root)
                    break
            pending.append(m)
            m -= 1
        for e in reversed(pending):
            posted = self._posted_document(e) if from_scratch else None
            h = posted[0].batch_horizon if posted is not None else horizon
            computed = self._compute_one(e, h, self.chain.cap_of(e), state, source)
            state = dict(computed.allocation.streaks)
            source = StreakSource(e)
            if posted is not None:
                doc, cid, root = posted
                self.checks.append(EpochCheck(e, root, computed.allocation.root))
                # A recomputation equal to the posted document continues from it, so that a
                # consistent history reproduces every later document byte for byte.
                if computed.document == doc.raw:
                    source = StreakSource(e, cid, root)
        return state, source

    # ---- verify ----------------------------------------------------------------------------

    def verify(self, epoch: int, *, from_scratch: bool = False) -> Verification:
        """Recompute a posted epoch and compare it with the chain.

        The recomputation uses the posted document's batch horizon and the cap the contract
        had when the root was posted; everything else is recomputed.

        Raises:
            RootNotPosted: the epoch has no live root, or its document cannot be fetched.
        """
        posting = self.chain.posting(epoch)
        if posting is None:
            raise RootNotPosted(epoch, "no live root on-chain (never posted, or vetoed)")
        try:
            posted = parse_document(self.store.get(posting.cid), posting.cid)
        except (BlobStoreError, InvalidCid) as exc:
            raise RootNotPosted(
                epoch, f"its document {posting.cid} cannot be fetched ({exc})"
            ) from None
        budget = self.chain.cap_of(epoch, block=posting.block)
        recomputed = self.compute(
            epoch, horizon=posted.batch_horizon, budget=budget, from_scratch=from_scratch
        )
        posted_amounts, ours = posted.amounts(), recomputed.allocation.amounts
        differences = [
            (v, posted_amounts.get(v, 0), ours.get(v, 0))
            for v in sorted(set(posted_amounts) | set(ours))
            if posted_amounts.get(v, 0) != ours.get(v, 0)
        ][:20]
        return Verification(
            epoch,
            self.chain.epoch_root(epoch),
            posting.cid,
            recomputed,
            differences,
            list(self.checks),
        )

    # ---- fund ------------------------------------------------------------------------------

    def fund(self, epoch: int, submitter_key: str, cache_depth: int = 0) -> FundResult:
        """Mint the epoch into the Rewards contract and store its tree's level at `cache_depth`.

        The level is rebuilt from the posted document, fetched by its CID and checked against
        the root; a depth past the tree's deepest whole level stops there. Nothing is sent for
        what is on-chain already.

        Raises:
            RootNotPosted: the epoch has no live root, or its document cannot be fetched.
            TransactionFailed: the contract refuses (for instance before the delay is over).
        """
        onchain = self.chain.epoch_root(epoch)
        if not onchain.live:
            raise RootNotPosted(epoch, "no live root on-chain (never posted, or vetoed)")
        funded_tx = None if onchain.funded else self.chain.fund(epoch, submitter_key)
        if cache_depth <= onchain.cached_depth:
            return FundResult(funded_tx, None, onchain.cached_depth)
        posted = self._posted_document(epoch)
        if posted is None:
            raise RootNotPosted(epoch, "its allocation document cannot be fetched or is invalid")
        tree = allocation_tree(epoch, posted[0].amounts())
        if tree.root != onchain.root:
            raise InvalidAllocation(f"epoch {epoch}", "its amounts do not rebuild the posted root")
        depth = min(cache_depth, tree.whole_depth)
        if depth <= onchain.cached_depth:
            return FundResult(funded_tx, None, onchain.cached_depth)
        cache_tx = self.chain.cache_level(epoch, tree.level(depth), submitter_key)
        return FundResult(funded_tx, cache_tx, depth)

    # ---- post ------------------------------------------------------------------------------

    def post(self, epoch: int, signer_keys: Sequence[str], submitter_key: str) -> PostResult:
        """Compute the epoch, store its document, gather the quorum's signatures and post.

        Raises:
            NothingToAllocate: no vehicle earned points.
            QuorumNotReached: fewer valid oracle keys than the threshold.
            InvalidAllocation: the store names the document by another CID.
            RootVetoed: this very root was vetoed for the epoch.
            TransactionFailed: the contract refuses the post.
        """
        computed = self.compute(epoch)
        allocation = computed.allocation
        if allocation.root is None:
            raise NothingToAllocate(epoch)
        if self.chain.is_vetoed(epoch, allocation.root):
            raise RootVetoed(epoch, allocation.root)
        cid = self.store.put(computed.document)
        if cid != computed.cid:
            raise InvalidAllocation(
                f"epoch {epoch}", f"the store named it {cid}, not {computed.cid}"
            )
        self.store.pin(cid)
        cid_bytes = Cid.parse(cid).to_bytes()
        digest = root_digest(
            self.chain.root_domain(), epoch, allocation.root, allocation.total, cid_bytes
        )
        if digest != self.chain.root_digest(epoch, allocation.root, allocation.total, cid_bytes):
            raise InvalidAllocation(
                f"epoch {epoch}", "the contract's rootDigest differs from the off-chain digest"
            )
        oracles, threshold = self.chain.oracle_set()
        members = set(oracles)
        signed: dict[int, tuple[str, bytes]] = {}
        for key in signer_keys:
            try:
                signature = sign_digest(digest, key)
                signer = recover_address(digest, signature)
            except (SignatureError, ValueError):
                continue
            if signer in members:
                signed[int(signer, 16)] = (signer, signature)
        if len(signed) < threshold:
            raise QuorumNotReached(epoch, len(signed), threshold)
        chosen = [signed[a] for a in sorted(signed)[:threshold]]
        tx_hash = self.chain.post(
            epoch,
            allocation.root,
            allocation.total,
            cid_bytes,
            b"".join(sig for _, sig in chosen),
            submitter_key,
        )
        return PostResult(computed, cid, tx_hash, [who for who, _ in chosen])
