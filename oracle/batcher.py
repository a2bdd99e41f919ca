"""The batcher: claims journaled bundles and moves each batch through its persisted states.

BUILT -> STORED -> SIGNED -> SUBMITTED -> CONFIRMED, each state committed before the next
step starts, so a process killed at any point resumes where it stopped and every journaled
bundle is anchored exactly once (`bundles.batch_id` is set once, in the transaction that
creates the batch; the contract accepts each id once).

Fault injection: `BatcherTuning.crash_at` (the `crash_at` setting, `DIMO_ORACLE_CRASH_AT`,
off by default) names a checkpoint at which the process exits at once with status 137, as
after `kill -9`; the crash tests use it to stop the oracle in every state.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from web3.exceptions import ContractLogicError

from oracle.anchoring import (
    AnchorConflictError,
    Anchorer,
    AnchorRevertedError,
    BatchHeader,
    Fees,
    SentTx,
    bump_fees,
)
from oracle.config import CrashPoint
from oracle.exceptions import ChainUnavailableError, OracleError
from oracle.journal import reading
from oracle.quorum import Quorum, QuorumNotReached
from oracle.tables import BatchState, batches, bundles
from protocol.batch import build_content, build_public, leaf_of_row
from protocol.batch import wire_form as make_wire
from protocol.blobstore import BlobStore, BlobStoreError
from protocol.bundle import BUNDLE_LEAF_ENCODING
from protocol.merkle import StandardMerkleTree

__all__ = ["Batcher", "BatcherTuning", "JournalCorrupted"]

log = logging.getLogger(__name__)


class JournalCorrupted(OracleError, RuntimeError):
    """A batch's claimed bundles no longer rebuild the root recorded for it."""

    def __init__(self, batch_id: int, reason: str) -> None:
        self.batch_id = batch_id
        self.reason = reason
        super().__init__(
            f"batch {batch_id}: {reason}; the journal was changed outside the oracle. Restore "
            "it from a backup; do not edit anchored rows"
        )


@dataclass(frozen=True)
class BatcherTuning:
    """Timings of the batcher (defaults suit a local chain; see OracleSettings)."""

    batch_interval_s: float = 60.0
    batch_max_bundles: int = 10_000
    confirmations: int = 0
    # Seconds an anchor tx may stay unmined before it is resent with bumped fees.
    tx_timeout_s: float = 30.0
    # Seconds between receipt polls.
    poll_s: float = 0.25
    # First and largest backoff after a failure (chain down, quorum not reached).
    backoff_s: float = 0.5
    backoff_max_s: float = 15.0
    # Fault injection (crash tests only): the checkpoint after which the process exits with
    # status 137, as after `kill -9`; None (the default) never exits. See OracleSettings.
    crash_at: CrashPoint | None = None


def _now_ms() -> int:
    return int(time.time() * 1000)


Leaf = tuple[str, int, int, int, int, bytes, bytes]


def journal_documents(
    engine: Engine, batch_id: int, *, public: bool = True
) -> tuple[bytes, bytes, StandardMerkleTree]:
    """Rebuild a batch's two documents from its claimed journal rows.

    Args:
        engine: The journal.
        batch_id: A built batch.
        public: False skips the public document (returned empty), for the readings route.

    Returns:
        The public document (`dimo-batch-v2`: commitments and signatures, stored by CID), the
        readings document (`dimo-batch-v1`: wire-form bundles, for authorised indexers only)
        and the tree.

    Raises:
        JournalCorrupted: the rows no longer give the recorded root or count.
        LookupError: no such batch.
    """
    with reading(engine) as conn:
        row = conn.execute(select(batches).where(batches.c.id == batch_id)).one_or_none()
        if row is None:
            raise LookupError(f"no batch {batch_id} in the journal")
        claimed = list(
            conn.execute(
                select(bundles).where(bundles.c.batch_id == batch_id).order_by(bundles.c.position)
            )
        )
    count = int(row._mapping["count"])
    if len(claimed) != count:
        raise JournalCorrupted(batch_id, f"{len(claimed)} bundles claimed, {count} built")
    leaves = [Batcher._leaf(r) for r in claimed]
    encodings = [bytes(r.encoding) for r in claimed]
    signatures = [bytes(r.signature) for r in claimed]
    wires = [make_wire(e, s) for e, s in zip(encodings, signatures, strict=True)]
    readings, tree = build_content(batch_id, wires, leaves)
    if tree.root != bytes(row.root):
        raise JournalCorrupted(batch_id, "the claimed bundles rebuild another root")
    if not public:
        return b"", readings, tree
    document, _ = build_public(batch_id, encodings, signatures, leaves, tree)
    return document, readings, tree


class Batcher:
    """Cuts batches from the journal and drives them on-chain."""

    def __init__(
        self,
        engine: Engine,
        store: BlobStore,
        quorum: Quorum,
        anchorer: Anchorer,
        tuning: BatcherTuning | None = None,
        *,
        clock_ms: Callable[[], int] = _now_ms,
    ) -> None:
        """Wire the batcher.

        Args:
            engine: The journal (see `oracle.tables.open_journal`).
            store: Where batch content goes (local CID store or Kubo).
            quorum: The oracle signers.
            anchorer: The chain.
            tuning: Windows, confirmations and timeouts.
            clock_ms: Unix time in ms (a seam for tests).
        """
        self.engine = engine
        self.store = store
        self.quorum = quorum
        self.anchorer = anchorer
        self.tuning = tuning or BatcherTuning()
        self.clock_ms = clock_ms
        self._postgres = engine.dialect.name == "postgresql"

    def _checkpoint(self, point: CrashPoint) -> None:
        """Reached `point` (its state is committed): exit here if fault injection asks to."""
        if self.tuning.crash_at == point:
            log.warning("crash_at=%s: exiting with 137 as a kill -9 would", point)
            os._exit(137)

    # -- the loop -------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Run until `stop` is set: finish unfinished batches, then cut new ones when due.

        Failures (chain down, quorum short, blob store down, the journal locked by writers
        past its busy timeout or unreachable) are logged and retried with exponential
        backoff; the batch waits in its persisted state, nothing is lost.
        """
        backoff = self.tuning.backoff_s
        while not stop.is_set():
            try:
                did = self.step(stop)
                backoff = self.tuning.backoff_s
                if not did:
                    stop.wait(min(self.tuning.poll_s * 4, 1.0))
            except (
                ChainUnavailableError,
                QuorumNotReached,
                BlobStoreError,
                ContractLogicError,
                OperationalError,
            ) as exc:
                log.warning("batcher: %s; retrying in %.1f s", exc, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, self.tuning.backoff_max_s)
            except OracleError as exc:
                log.error("batcher: %s; retrying in %.1f s", exc, self.tuning.backoff_max_s)
                stop.wait(self.tuning.backoff_max_s)

    def step(self, stop: threading.Event | None = None) -> bool:
        """Do one unit of work: finish the oldest unfinished batch, or cut one if due.

        Returns:
            Whether there was anything to do.
        """
        unfinished = self.unfinished()
        if unfinished:
            self.advance(unfinished[0], stop)
            return True
        if self.due():
            batch_id = self.build()
            if batch_id is not None:
                self.advance(batch_id, stop)
                return True
        return False

    def drain(self, stop: threading.Event | None = None) -> list[int]:
        """Anchor everything waiting now, ignoring the interval; returns the batch ids."""
        done: list[int] = []
        for batch_id in self.unfinished():
            self.advance(batch_id, stop)
            done.append(batch_id)
        while True:
            built = self.build()
            if built is None:
                return done
            self.advance(built, stop)
            done.append(built)

    # -- reading state --------------------------------------------------------------------------

    def unfinished(self) -> list[int]:
        """Ids of batches not yet confirmed, in id (= anchoring) order."""
        with reading(self.engine) as conn:
            rows = conn.execute(
                select(batches.c.id)
                .where(batches.c.state != BatchState.CONFIRMED.value)
                .order_by(batches.c.id)
            )
            return [int(r[0]) for r in rows]

    def due(self) -> bool:
        """Whether a batch should be cut: enough bundles wait, or the oldest waited a window."""
        with reading(self.engine) as conn:
            waiting, oldest = conn.execute(
                select(func.count(), func.min(bundles.c.received_at)).where(
                    bundles.c.batch_id.is_(None)
                )
            ).one()
        if not waiting:
            return False
        if waiting >= self.tuning.batch_max_bundles:
            return True
        return bool(self.clock_ms() - int(oldest) >= self.tuning.batch_interval_s * 1000)

    def _row(self, batch_id: int) -> Any:
        with reading(self.engine) as conn:
            return conn.execute(select(batches).where(batches.c.id == batch_id)).one()

    def _claimed(self, batch_id: int) -> list[Any]:
        with reading(self.engine) as conn:
            return list(
                conn.execute(
                    select(bundles)
                    .where(bundles.c.batch_id == batch_id)
                    .order_by(bundles.c.position)
                )
            )

    @staticmethod
    def _leaf(row: Any) -> Leaf:
        return leaf_of_row(
            row.device,
            int(row.vehicle_id),
            int(row.sequence),
            int(row.window_start),
            int(row.window_end),
            bytes(row.data_hash),
            bytes(row.signature),
        )

    def header(self, batch_id: int) -> BatchHeader:
        """The header of a stored batch."""
        row = self._row(batch_id)
        if row.cid is None:
            raise JournalCorrupted(batch_id, "the batch has no CID yet")
        return BatchHeader(
            int(row.id),
            bytes(row.root),
            str(row.cid),
            int(row.count),
            int(row.window_start),
            int(row.window_end),
        )

    # -- BUILT -----------------------------------------------------------------------------------

    def _next_id(self, conn: Any) -> int:
        last = conn.execute(select(func.max(batches.c.id))).scalar()
        if last is not None:
            return int(last) + 1
        return self.anchorer.last_batch_id() + 1

    def build(self) -> int | None:
        """Claim up to `batch_max_bundles` unbatched bundles in journal order as a new batch.

        One transaction assigns the next id, sets `bundles.batch_id` and inserts the batch
        row with its root (state BUILT). On PostgreSQL the rows are claimed with
        `FOR UPDATE SKIP LOCKED`, so concurrent batchers never claim the same bundle.

        Returns:
            The new batch id, or None when nothing waits.
        """
        for _attempt in range(5):
            try:
                with self.engine.begin() as conn:
                    query = (
                        select(bundles)
                        .where(bundles.c.batch_id.is_(None))
                        .order_by(bundles.c.position)
                        .limit(self.tuning.batch_max_bundles)
                    )
                    if self._postgres:
                        query = query.with_for_update(skip_locked=True)
                    rows = list(conn.execute(query))
                    if not rows:
                        return None
                    batch_id = self._next_id(conn)
                    leaves = [self._leaf(r) for r in rows]
                    tree = StandardMerkleTree.of(leaves, BUNDLE_LEAF_ENCODING)
                    now = self.clock_ms()
                    conn.execute(
                        insert(batches).values(
                            id=batch_id,
                            state=BatchState.BUILT.value,
                            root=tree.root,
                            count=len(rows),
                            window_start=min(r.window_start for r in rows),
                            window_end=max(r.window_end for r in rows),
                            created_at=now,
                            updated_at=now,
                        )
                    )
                    positions = [r.position for r in rows]
                    for i in range(0, len(positions), 10_000):
                        conn.execute(
                            update(bundles)
                            .where(bundles.c.position.in_(positions[i : i + 10_000]))
                            .where(bundles.c.batch_id.is_(None))
                            .values(batch_id=batch_id)
                        )
            except IntegrityError:
                # Another batcher took this id first; claim again.
                continue
            log.info("batch %s built: %s bundles, root 0x%s", batch_id, len(rows), tree.root.hex())
            self._checkpoint("built")
            return batch_id
        raise OracleError("could not claim a batch id after 5 attempts; too many batchers race")

    # -- driving a batch ------------------------------------------------------------------------

    def _set(self, batch_id: int, state: BatchState, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(batches)
                .where(batches.c.id == batch_id)
                .values(state=state.value, updated_at=self.clock_ms(), **values)
            )

    def advance(self, batch_id: int, stop: threading.Event | None = None) -> None:
        """Drive one batch from its persisted state to CONFIRMED."""
        while True:
            if stop is not None and stop.is_set():
                return
            state = BatchState(self._row(batch_id).state)
            if state is BatchState.CONFIRMED:
                return
            if state is BatchState.BUILT:
                self.store_content(batch_id)
            elif state is BatchState.STORED:
                self.sign(batch_id)
            elif state is BatchState.SIGNED:
                self.submit(batch_id)
            else:
                self.confirm(batch_id, stop)

    def content(self, batch_id: int) -> tuple[bytes, StandardMerkleTree]:
        """Rebuild a batch's public document (no reading values) from its claimed rows.

        Raises:
            JournalCorrupted: the rows no longer give the recorded root or count.
        """
        public, _readings, tree = journal_documents(self.engine, batch_id)
        return public, tree

    def store_content(self, batch_id: int) -> str:
        """BUILT -> STORED: put the public document in the blob store, pin it, record the CID.

        The readings document is not stored: the oracle's API rebuilds it from the journal
        for authorised indexers (`journal_documents`).
        """
        doc, _tree = self.content(batch_id)
        cid = self.store.put(doc)
        self.store.pin(cid)
        self._set(batch_id, BatchState.STORED, cid=cid)
        log.info("batch %s stored as %s (%s bytes)", batch_id, cid, len(doc))
        self._checkpoint("stored")
        return cid

    def sign(self, batch_id: int) -> bytes:
        """STORED -> SIGNED: gather the quorum's signatures over the header."""
        header = self.header(batch_id)
        signatures = self.quorum.collect(header, lambda: self.store.get(header.cid))
        self._set(batch_id, BatchState.SIGNED, signatures=signatures)
        log.info("batch %s signed by %s oracles", batch_id, len(signatures) // 65)
        self._checkpoint("signed")
        return signatures

    def _covered(self, header: BatchHeader) -> bool:
        """Whether the chain already holds this batch (and with our root)."""
        root = self.anchorer.root_of(header.id)
        if root is None:
            return False
        if root != header.root:
            raise AnchorConflictError(header.id, header.root, root)
        return True

    def _send(self, batch_id: int, header: BatchHeader, signatures: bytes, sent: SentTx) -> None:
        # Persist first: a crash after this line finds the tx by hash and nonce.
        self._set(
            batch_id,
            BatchState.SUBMITTED,
            tx_hash=sent.tx_hash,
            tx_nonce=sent.nonce,
            tx_fee_per_gas=sent.fees.max_fee,
        )
        self._checkpoint("submitted")
        self.anchorer.broadcast(sent)
        log.info(
            "batch %s anchor tx %s sent (nonce %s, max fee %s)",
            batch_id,
            sent.tx_hash,
            sent.nonce,
            sent.fees.max_fee,
        )
        self._checkpoint("sent")

    def submit(self, batch_id: int, nonce: int | None = None, fees: Fees | None = None) -> None:
        """SIGNED -> SUBMITTED: sign the anchor tx, persist hash/nonce/fee, then broadcast."""
        header = self.header(batch_id)
        row = self._row(batch_id)
        signatures = bytes(row.signatures)
        if self._covered(header):
            self._mark_anchored(batch_id, header)
            return
        try:
            gas = self.anchorer.gas_limit(header, signatures)
        except ContractLogicError:
            if self._covered(header):
                self._mark_anchored(batch_id, header)
                return
            # The quorum's signatures no longer pass (oracle set changed): sign again.
            log.warning("batch %s: anchor would revert; gathering signatures again", batch_id)
            self._set(batch_id, BatchState.STORED, signatures=None)
            return
        if nonce is None:
            nonce = self.anchorer.pending_nonce()
        if fees is None:
            fees = self.anchorer.market_fees()
        sent = self.anchorer.sign_anchor(header, signatures, nonce, fees, gas)
        self._send(batch_id, header, signatures, sent)

    def _mark_anchored(self, batch_id: int, header: BatchHeader) -> None:
        found = self.anchorer.anchored_in(header.id)
        tx_hash, block = found if found is not None else (None, None)
        values: dict[str, Any] = {"block_number": block}
        if tx_hash is not None:
            values["tx_hash"] = tx_hash
        self._set(batch_id, BatchState.SUBMITTED, **values)

    def confirm(self, batch_id: int, stop: threading.Event | None = None) -> None:
        """SUBMITTED -> CONFIRMED: wait for the receipt and confirmations.

        The anchor is recognised by its receipt, or by `lastBatchId()`/`rootOf(id)` covering
        the batch (a replaced or earlier copy of the tx was mined). An unmined tx past
        `tx_timeout_s` is re-sent with the same nonce and fees raised 12.5%; a tx the node no
        longer knows (crash before broadcast, mempool dropped it) is re-sent; a nonce taken by
        another transaction gets a fresh nonce.
        """
        t = self.tuning
        row = self._row(batch_id)
        header = self.header(batch_id)
        sent_at = time.monotonic()
        resent_unknown = False
        while stop is None or not stop.is_set():
            row = self._row(batch_id)
            tx_hash = row.tx_hash
            receipt = self.anchorer.receipt(tx_hash) if tx_hash else None
            if receipt is not None and int(receipt["status"]) == 1:
                block = int(receipt["blockNumber"])
                if self.anchorer.head() - block >= t.confirmations:
                    again = self.anchorer.receipt(tx_hash)
                    if again is not None and int(again["blockNumber"]) == block:
                        self._set(batch_id, BatchState.CONFIRMED, block_number=block)
                        log.info("batch %s confirmed in block %s (%s)", batch_id, block, tx_hash)
                        self._checkpoint("confirmed")
                        return
                self.anchorer.wait(t.poll_s)
                continue
            if self._covered(header):
                found = self.anchorer.anchored_in(header.id)
                if found is not None and found[0] != tx_hash:
                    self._set(batch_id, BatchState.SUBMITTED, tx_hash=found[0])
                    continue
                if found is None:
                    # Anchored, but the log is outside the node's range: trust the contract.
                    self._set(batch_id, BatchState.CONFIRMED)
                    return
                self.anchorer.wait(t.poll_s)
                continue
            if receipt is not None:
                raise AnchorRevertedError(batch_id, str(tx_hash))
            nonce = int(row.tx_nonce) if row.tx_nonce is not None else None
            if nonce is None or row.signatures is None:
                self._set(batch_id, BatchState.SIGNED)
                return
            if self.anchorer.mined_nonce() > nonce:
                # Our nonce was used by a transaction that did not anchor this batch.
                log.warning("batch %s: nonce %s taken by another tx; new nonce", batch_id, nonce)
                self.submit(batch_id)
                sent_at = time.monotonic()
                continue
            known = self.anchorer.pending_fees(str(tx_hash)) if tx_hash else None
            if known is None and not resent_unknown:
                # Never broadcast (crash between persist and send) or dropped: send again.
                fees = Fees(int(row.tx_fee_per_gas), int(row.tx_fee_per_gas))
                self._resend(batch_id, header, nonce, fees, bump=False)
                resent_unknown = True
                sent_at = time.monotonic()
                continue
            if time.monotonic() - sent_at >= t.tx_timeout_s:
                old = known or Fees(int(row.tx_fee_per_gas), int(row.tx_fee_per_gas))
                self._resend(batch_id, header, nonce, old, bump=True)
                sent_at = time.monotonic()
                continue
            self.anchorer.wait(t.poll_s)

    def _resend(
        self, batch_id: int, header: BatchHeader, nonce: int, fees: Fees, *, bump: bool
    ) -> None:
        signatures = bytes(self._row(batch_id).signatures)
        market = self.anchorer.market_fees()
        new_fees = (
            bump_fees(fees, market)
            if bump
            else Fees(
                max(fees.max_fee, market.max_fee), min(fees.priority_fee, market.priority_fee)
            )
        )
        try:
            gas = self.anchorer.gas_limit(header, signatures)
        except ContractLogicError:
            if self._covered(header):
                return
            raise
        sent = self.anchorer.sign_anchor(header, signatures, nonce, new_fees, gas)
        log.warning(
            "batch %s: %s anchor tx with nonce %s (max fee %s -> %s)",
            batch_id,
            "bumping" if bump else "re-sending",
            nonce,
            fees.max_fee,
            new_fees.max_fee,
        )
        self._send(batch_id, header, signatures, sent)
