"""Chain sync: adaptive `eth_getLogs` backfill, reorg rollback by block, live follow.

One step indexes one block range: it checks the stored hash of the last indexed block against
the chain (a mismatch walks back to the fork point and rolls back), fetches the logs of every
platform contract at once, decodes them with precomputed decoders, inserts them into `events`
(idempotent on `(tx_hash, log_index)`), rewrites the projections of the keys they touch in
chain order, and moves the checkpoint, all in one transaction.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import httpx
import msgspec
from sqlalchemy import Connection, Engine, delete, insert, select, update

from indexer import schema as s
from indexer.config import IndexerSettings
from indexer.db import insert_tuples, make_engine
from indexer.exceptions import (
    BatchContentUnavailable,
    ChainUnavailableError,
    DeploymentMismatchError,
    LogRangeError,
    ReorgTooDeepError,
)
from indexer.handlers import (
    Event,
    LogDecoder,
    Prefolded,
    Projector,
    build_decoders,
    keys_of,
    prefold,
)
from indexer.loader import (
    AnchoredBatch,
    BatchLoader,
    IndexedPairings,
    OracleReadings,
    pending_batches,
    rollback_after,
)
from indexer.reward_docs import (
    PENDING,
    PostedRoot,
    load_document,
    rollback_documents_after,
    undecided,
)
from protocol.blobstore import BlobStore, KuboRpcStore, LocalCidStore
from protocol.deployment import Deployment
from protocol.eip712 import dimo_domain

log = logging.getLogger("indexer.sync")

#: Substrings of provider errors that mean "ask for a smaller range".
RANGE_ERRORS = (
    "range",
    "limit",
    "too many",
    "too large",
    "exceed",
    "size",
    "timeout",
    "timed out",
    "more than",
)


class RpcError(Exception):
    """A JSON-RPC error answer (internal; mapped to the indexer's errors by the syncer)."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


class RawLog(msgspec.Struct):
    """One log of an `eth_getLogs` answer, as the node sends it (hex strings)."""

    address: str
    topics: list[str]
    data: str
    blockNumber: str  # noqa: N815 (JSON-RPC field names)
    blockHash: str  # noqa: N815
    transactionHash: str  # noqa: N815
    transactionIndex: str  # noqa: N815
    logIndex: str  # noqa: N815
    removed: bool = False


class _RpcFault(msgspec.Struct):
    code: int = 0
    message: str = ""


class _LogsAnswer(msgspec.Struct):
    result: list[RawLog] | None = None
    error: _RpcFault | None = None


_LOGS_DECODER = msgspec.json.Decoder(_LogsAnswer)


class Rpc:
    """A small JSON-RPC client over httpx (raw dicts: no web3 formatting on hot paths)."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self.url = url
        self._client = httpx.Client(timeout=timeout_s)
        self._id = 0

    def close(self) -> None:
        """Closes the HTTP connection pool."""
        self._client.close()

    def _post_raw(self, body: Any) -> bytes:
        try:
            resp = self._client.post(self.url, json=body)
        except httpx.TimeoutException as err:
            raise RpcError(-32000, f"request timed out ({err})") from None
        except httpx.HTTPError as err:
            raise ChainUnavailableError(self.url, str(err)) from None
        if resp.status_code in (413, 429) or resp.status_code >= 500:
            raise RpcError(-resp.status_code, f"HTTP {resp.status_code} response size/limit")
        return resp.content

    def _post(self, body: Any) -> Any:
        return msgspec.json.decode(self._post_raw(body))

    def get_logs(self, params: dict[str, Any]) -> list[RawLog]:
        """`eth_getLogs`, decoded straight into `RawLog`s; raises `RpcError` on an error."""
        self._id += 1
        body = {"jsonrpc": "2.0", "id": self._id, "method": "eth_getLogs", "params": [params]}
        answer = _LOGS_DECODER.decode(self._post_raw(body))
        if answer.error is not None:
            raise RpcError(answer.error.code, answer.error.message)
        if answer.result is None:
            raise RpcError(-32603, "eth_getLogs answered without a result")
        return answer.result

    def call(self, method: str, params: list[Any]) -> Any:
        """One request; raises `RpcError` on an error answer."""
        self._id += 1
        answer = self._post({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params})
        if "error" in answer:
            err = answer["error"]
            raise RpcError(int(err.get("code", 0)), str(err.get("message", err)))
        return answer["result"]

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """Several requests in one JSON-RPC batch; answers in call order."""
        if not calls:
            return []
        base = self._id
        body = [
            {"jsonrpc": "2.0", "id": base + i + 1, "method": m, "params": p}
            for i, (m, p) in enumerate(calls)
        ]
        self._id += len(calls)
        answers = self._post(body)
        by_id = {a["id"]: a for a in answers}
        out = []
        for i in range(len(calls)):
            a = by_id[base + i + 1]
            if "error" in a:
                raise RpcError(int(a["error"].get("code", 0)), str(a["error"].get("message")))
            out.append(a["result"])
        return out


@dataclass(frozen=True)
class Header:
    """What the syncer keeps of a block."""

    number: int
    hash: str
    parent_hash: str
    timestamp: int


def _header(raw: dict[str, Any]) -> Header:
    return Header(int(raw["number"], 16), raw["hash"], raw["parentHash"], int(raw["timestamp"], 16))


@dataclass(frozen=True)
class StepResult:
    """What one sync step did."""

    from_block: int
    to_block: int
    events: int
    rolled_back_to: int | None = None


#: Columns of the `events` table, in the order `Prepared.rows` holds them.
EVENT_COLUMNS = (
    "tx_hash",
    "log_index",
    "block_number",
    "tx_index",
    "block_timestamp",
    "address",
    "contract",
    "name",
    "args",
    "key1",
    "key2",
)


@dataclass
class Prepared:
    """A fetched range, decoded and made into rows (off the writing thread)."""

    to_block: int
    headers: dict[int, Header]
    #: Whether every log's block is among `headers` with the same hash (else nothing decoded).
    consistent: bool
    #: The range size the provider's answer suggests for the next fetch.
    next_range: int
    #: Events decoded.
    count: int = 0
    #: One tuple per event, in `EVENT_COLUMNS` order.
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    #: Every entity key the events touch.
    touched: set[str] = field(default_factory=set)
    #: The events of each key they touch, in chain order; when not `complete`, only of the
    #: keys `prefolded` does not hold.
    fresh: dict[str, list[Event]] = field(default_factory=dict)
    #: The `BatchAnchored` and `RootPosted` events, in chain order.
    special: list[Event] = field(default_factory=list)
    #: The entities the range creates, already folded (used by a forward step).
    prefolded: Prefolded | None = None
    #: Whether `fresh` holds every touched key (a replayed range needs it).
    complete: bool = True


#: The event whose batches the syncer verifies and loads.
ANCHORED = ("AttestationAnchor", "BatchAnchored")
#: The event whose rewards allocation document the syncer fetches and loads.
POSTED = ("Rewards", "RootPosted")


def _at(e: Event) -> tuple[int, str]:
    return e.block_number, e.tx_hash


def anchored_batch(e: Event) -> AnchoredBatch:
    """The `AnchoredBatch` of a decoded `BatchAnchored` event (bytes arrive as 0x hex)."""
    args = dict(e.args)
    for name in ("root", "cid"):
        value = args[name]
        args[name] = bytes.fromhex(value[2:]) if isinstance(value, str) else bytes(value)
    return AnchoredBatch.from_event(args, e.tx_hash, e.block_number)


def _no_pairings(device: str, vehicle_id: int, window_start_ms: int, window_end_ms: int) -> bool:
    """The loader's default check; the syncer always passes `IndexedPairings` instead."""
    raise RuntimeError("the syncer checks pairings against the indexed pairings table")


def _fingerprint(chain_id: int, addresses: Iterable[str]) -> str:
    joined = ",".join(sorted(a.lower() for a in addresses))
    return "0x" + hashlib.sha256(f"{chain_id}:{joined}".encode()).hexdigest()


class RangeFetcher:
    """Fetches block ranges and makes them ready to write: `eth_getLogs` sized to the provider
    and to `target_logs`, the blocks' headers, the events decoded, their `events` rows, their
    entity keys and the entities they create folded.

    It runs in the sync's prefetch thread, or during a large backfill in a worker process
    (`fetch_in_worker`), so that decoding does not compete with the writes for the GIL.
    """

    def __init__(self, settings: IndexerSettings, deployment: Deployment) -> None:
        self.settings = settings
        self.rpc = Rpc(settings.rpc_url, settings.rpc_timeout_s)
        contracts = deployment.contracts
        self.addresses = [c.address.lower() for c in contracts.values()]
        self.decoders: dict[tuple[str, str], LogDecoder] = build_decoders(
            {name: (c.address, c.abi) for name, c in contracts.items()}
        )
        self.range = max(settings.min_range, min(settings.initial_range, settings.max_range))

    def close(self) -> None:
        """Releases the RPC client."""
        self.rpc.close()

    def headers(self, numbers: Iterable[int]) -> dict[int, Header]:
        nums = sorted(set(numbers))
        out: dict[int, Header] = {}
        for i in range(0, len(nums), 100):
            chunk = nums[i : i + 100]
            try:
                raws = self.rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in chunk])
            except RpcError as err:
                raise ChainUnavailableError(self.settings.rpc_url, str(err)) from None
            for n, raw in zip(chunk, raws, strict=True):
                if raw is not None:
                    out[n] = _header(raw)
        return out

    def get_logs(self, from_block: int, to_block: int) -> tuple[list[RawLog], int]:
        """Logs of [from_block, to_block'] where to_block' <= to_block fits the provider."""
        while True:
            try:
                started = time.monotonic()
                logs = self.rpc.get_logs(
                    {
                        "address": self.addresses,
                        "fromBlock": hex(from_block),
                        "toBlock": hex(to_block),
                    }
                )
            except RpcError as err:
                text = err.message.lower()
                if not any(word in text for word in RANGE_ERRORS) and err.code != -32005:
                    raise ChainUnavailableError(self.settings.rpc_url, str(err)) from None
                span = to_block - from_block + 1
                if span <= self.settings.min_range:
                    raise LogRangeError(from_block, to_block, err.message) from None
                self.range = max(self.settings.min_range, span // 2)
                to_block = from_block + self.range - 1
                log.info("eth_getLogs range shrunk to %d blocks (%s)", self.range, err.message)
                continue
            elapsed = time.monotonic() - started
            span = to_block - from_block + 1
            target = self.settings.target_logs
            if len(logs) > target:
                self.range = max(self.settings.min_range, span * target // len(logs))
            elif elapsed < self.settings.fast_range_s and span >= self.range:
                if 2 * len(logs) <= target:
                    self.range = min(self.settings.max_range, self.range * 2)
            elif elapsed > 2 * self.settings.fast_range_s:
                self.range = max(self.settings.min_range, self.range // 2)
            return logs, to_block

    def decode(self, logs: list[RawLog], headers: dict[int, Header]) -> list[Event]:
        """The tracked events among `logs`, in chain order (a backfill's hot loop: numbers and
        addresses repeat, so each is converted once)."""
        out: list[Event] = []
        append = out.append
        find = self.decoders.get
        numbers: dict[str, int] = {}
        lowered: dict[str, str] = {}
        for raw in logs:
            topics = raw.topics
            if raw.removed or not topics:
                continue
            address = lowered.get(raw.address)
            if address is None:
                address = lowered[raw.address] = raw.address.lower()
            decoder = find((address, topics[0]))
            if decoder is None:
                continue
            number = numbers.get(raw.blockNumber)
            if number is None:
                number = numbers[raw.blockNumber] = int(raw.blockNumber, 16)
            append(
                Event(
                    number,
                    int(raw.transactionIndex, 16),
                    int(raw.logIndex, 16),
                    raw.transactionHash,
                    headers[number].timestamp,
                    address,
                    decoder.contract,
                    decoder.name,
                    decoder.decode(topics, raw.data),
                )
            )
        # Nodes answer in chain order; sort only if this one did not.
        if any(a.order > b.order for a, b in pairwise(out)):
            out.sort(key=lambda e: e.order)
        return out

    def fetch(self, from_block: int, to_block: int, *, slim: bool = False) -> Prepared:
        """The logs of a range (cut to what the provider answers), the headers it needs, and
        its events decoded into rows.

        Args:
            from_block: first block.
            to_block: last block wanted (the answer may stop earlier).
            slim: leave out of `fresh` the events of the entities `prefolded` holds (what a
                worker process sends back is then small; a replay refetches in full).
        """
        logs, to_block = self.get_logs(from_block, to_block)
        numbers = {int(raw.blockNumber, 16) for raw in logs} | {to_block}
        if from_block > 0:
            numbers.add(from_block - 1)
        headers = self.headers(numbers)
        consistent = to_block in headers and all(
            (h := headers.get(int(raw.blockNumber, 16))) is not None and h.hash == raw.blockHash
            for raw in logs
        )
        prepared = Prepared(to_block, headers, consistent, self.range)
        if consistent:
            self._prepare(prepared, self.decode(logs, headers), slim)
        return prepared

    def _prepare(self, p: Prepared, events: list[Event], slim: bool) -> None:
        """Makes `events` into `p`'s rows, keys, special events and prefolded entities."""
        fresh: dict[str, list[Event]] = defaultdict(list)
        rows = p.rows
        append = rows.append
        encode = msgspec.json.encode
        for e in events:
            k1, k2 = keys_of(e)
            if k1:
                fresh[k1].append(e)
            if k2:
                fresh[k2].append(e)
            append(
                (
                    e.tx_hash,
                    e.log_index,
                    e.block_number,
                    e.tx_index,
                    e.block_timestamp,
                    e.address,
                    e.contract,
                    e.name,
                    encode(e.args).decode(),
                    k1,
                    k2,
                )
            )
        p.count = len(events)
        p.special = [e for e in events if (e.contract, e.name) in (ANCHORED, POSTED)]
        p.touched = set(fresh)
        p.prefolded = folded = prefold(fresh)
        if slim:
            born = folded.keys
            p.fresh = {k: v for k, v in fresh.items() if k not in born}
            p.complete = not born
        else:
            p.fresh = fresh


#: The fetcher of this worker process (`start_worker`).
_WORKER: dict[str, RangeFetcher] = {}


def start_worker(settings: IndexerSettings, deployment: Deployment) -> None:
    """Initializer of the prefetch worker process."""
    _WORKER["fetcher"] = RangeFetcher(settings, deployment)


def fetch_in_worker(from_block: int, to_block: int, range_now: int) -> Prepared:
    """`RangeFetcher.fetch(..., slim=True)` in the prefetch worker process, from the sync's
    current range size."""
    fetcher = _WORKER["fetcher"]
    fetcher.range = range_now
    return fetcher.fetch(from_block, to_block, slim=True)


class Syncer:
    """Indexes the platform's contract events into the database at `engine`.

    Args:
        settings: the indexer's settings (RPC URL, confirmations, range sizes...).
        deployment: the deployment record; loaded from `settings.deployment` when omitted.
        engine: the database; made from `settings.database_url` when omitted.
        store: where anchored batch contents are fetched by CID; from `settings.kubo_url`, else
            `settings.blob_dir`, when omitted (opened at the first `BatchAnchored`).
    """

    def __init__(
        self,
        settings: IndexerSettings,
        deployment: Deployment | None = None,
        engine: Engine | None = None,
        store: BlobStore | None = None,
    ) -> None:
        self.settings = settings
        self.deployment = deployment or Deployment.load(settings.deployment)
        self.engine = engine or make_engine(settings.database_url)
        self.fetcher = RangeFetcher(settings, self.deployment)
        self.rpc = self.fetcher.rpc
        self.addresses = self.fetcher.addresses
        self.fingerprint = _fingerprint(self.deployment.chain_id, self.addresses)
        self.projector = Projector()
        self._dialect = self.engine.dialect.name
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="getlogs")
        self._workers: ProcessPoolExecutor | None = None
        #: Ranges being fetched ahead, in order: (first block, last block asked, future).
        self._ahead: deque[tuple[int, int, Future[Prepared]]] = deque()
        self._store = store
        self._loader: BatchLoader | None = None
        self._next_retry = 0.0

    @property
    def loader(self) -> BatchLoader:
        """The batch loader (its blob store is opened on first use)."""
        if self._loader is None:
            store = self._store
            if store is None:
                kubo = self.settings.kubo_url
                store = KuboRpcStore(kubo) if kubo else LocalCidStore(self.settings.blob_dir)
            anchor = self.deployment.contract("AttestationAnchor").address
            domain = dimo_domain(self.deployment.chain_id, anchor)
            readings = None
            if self.settings.oracle_url and self.settings.reader_key is not None:
                readings = OracleReadings(
                    self.settings.oracle_url, self.settings.reader_key.get_secret_value(), domain
                )
            self._loader = BatchLoader(self.engine, store, domain, _no_pairings, readings)
        return self._loader

    @property
    def range(self) -> int:
        """The `eth_getLogs` range size, in blocks, the next fetch asks for."""
        return self.fetcher.range

    def close(self) -> None:
        """Releases the prefetch thread or processes and the RPC client."""
        self._ahead.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._stop_workers()
        self.fetcher.close()

    def _start_workers(self) -> None:
        """Moves prefetching to `prefetch_workers` worker processes (forked: they start at once,
        with the decoders already built), each fetching and decoding its own range. Decoding
        then runs beside the writes, not under their GIL."""
        self._workers = ProcessPoolExecutor(
            max_workers=self.settings.prefetch_workers,
            mp_context=multiprocessing.get_context("fork"),
            initializer=start_worker,
            initargs=(self.settings, self.deployment),
        )

    def _stop_workers(self) -> None:
        workers, self._workers = self._workers, None
        if workers is not None:
            workers.shutdown(wait=True, cancel_futures=True)

    # ---------------------------------------------------------------------------------------
    # chain

    def _rpc(self, method: str, params: list[Any]) -> Any:
        try:
            return self.rpc.call(method, params)
        except RpcError as err:
            raise ChainUnavailableError(self.settings.rpc_url, str(err)) from None

    def target(self) -> int:
        """The newest block with enough confirmations."""
        head = int(self._rpc("eth_blockNumber", []), 16)
        return head - self.settings.confirmations

    # ---------------------------------------------------------------------------------------
    # database

    def _state(self, conn: Connection) -> Any:
        row = conn.execute(select(s.sync_state).where(s.sync_state.c.id == 1)).first()
        if row is not None and row.fingerprint != self.fingerprint:
            raise DeploymentMismatchError(row.fingerprint, self.fingerprint)
        return row

    def last_block(self) -> int:
        """The last block fully indexed (start block - 1 before the first step)."""
        with self.engine.connect() as conn:
            row = self._state(conn)
        return int(row.last_block) if row is not None else self.deployment.start_block - 1

    def _upsert_blocks(self, conn: Connection, headers: Iterable[Header]) -> None:
        rows = [
            {
                "number": h.number,
                "hash": h.hash,
                "parent_hash": h.parent_hash,
                "timestamp": h.timestamp,
            }
            for h in headers
        ]
        if not rows:
            return
        numbers = [r["number"] for r in rows]
        conn.execute(delete(s.blocks).where(s.blocks.c.number.in_(numbers)))
        conn.execute(insert(s.blocks), rows)

    def _set_state(self, conn: Connection, block: int, block_hash: str) -> None:
        values = {"last_block": block, "last_hash": block_hash}
        done = conn.execute(update(s.sync_state).where(s.sync_state.c.id == 1).values(values))
        if done.rowcount == 0:
            conn.execute(
                insert(s.sync_state).values(
                    id=1, chain_id=self.deployment.chain_id, fingerprint=self.fingerprint, **values
                )
            )

    # ---------------------------------------------------------------------------------------
    # reorg

    def _fork_point(self, conn: Connection, last: int) -> int:
        """The newest stored block whose hash the chain still has (start - 1 if none)."""
        stored = conn.execute(
            select(s.blocks.c.number, s.blocks.c.hash)
            .where(s.blocks.c.number <= last)
            .order_by(s.blocks.c.number.desc())
            .limit(self.settings.reorg_window)
        ).all()
        for i in range(0, len(stored), 32):
            chunk = stored[i : i + 32]
            chain = self.fetcher.headers(n for n, _ in chunk)
            for number, stored_hash in chunk:
                header = chain.get(number)
                if header is not None and header.hash == stored_hash:
                    return int(number)
        if len(stored) == self.settings.reorg_window:
            raise ReorgTooDeepError(int(stored[-1][0]), self.settings.reorg_window)
        return self.deployment.start_block - 1

    def rollback(self, fork: int) -> None:
        """Removes everything above block `fork` and rewrites the entities it touched."""
        with self.engine.begin() as conn:
            touched: set[str] = set()
            for k1, k2 in conn.execute(
                select(s.events.c.key1, s.events.c.key2).where(s.events.c.block_number > fork)
            ):
                touched.update(k for k in (k1, k2) if k)
            conn.execute(delete(s.events).where(s.events.c.block_number > fork))
            conn.execute(delete(s.blocks).where(s.blocks.c.number > fork))
            self.projector.rewrite(conn, touched)
            removed = rollback_after(conn, fork)
            rollback_documents_after(conn, fork)
            fork_hash = conn.execute(
                select(s.blocks.c.hash).where(s.blocks.c.number == fork)
            ).scalar()
            self._set_state(conn, fork, fork_hash or "")
        log.warning(
            "reorg: rolled back to block %d (%d entities rewritten, %d batches removed)",
            fork,
            len(touched),
            len(removed),
        )

    def check_reorg(self) -> int | None:
        """Rolls back if the last indexed block left the chain; returns the fork point."""
        with self.engine.connect() as conn:
            state = self._state(conn)
            if state is None or not state.last_hash:
                return None
            chain = self.fetcher.headers([int(state.last_block)]).get(int(state.last_block))
            if chain is not None and chain.hash == state.last_hash:
                return None
            fork = self._fork_point(conn, int(state.last_block))
        self.rollback(fork)
        return fork

    # ---------------------------------------------------------------------------------------
    # steps

    def _prefetch(self, from_block: int, to_block: int) -> None:
        future: Future[Prepared] | None = None
        if self._workers is not None:
            try:
                future = self._workers.submit(
                    fetch_in_worker, from_block, to_block, self.fetcher.range
                )
            except (BrokenProcessPool, RuntimeError) as exc:
                log.warning("prefetch worker process lost (%s); prefetching in a thread", exc)
                self._stop_workers()
        if future is None:
            future = self._pool.submit(self.fetcher.fetch, from_block, to_block)
        self._ahead.append((from_block, to_block, future))

    def _top_up(self, to_block: int, target: int) -> None:
        """Fetches ahead the ranges after `to_block` (one, or one per worker process)."""
        ahead = self._ahead
        depth = self.settings.prefetch_workers if self._workers is not None else 1
        start = ahead[-1][1] + 1 if ahead else to_block + 1
        while len(ahead) < depth and start <= target:
            end = min(target, start + self.range - 1)
            self._prefetch(start, end)
            start = end + 1

    def _take_prefetched(self, from_block: int, target: int) -> Prepared | None:
        """The prefetched range starting at `from_block`, if any and not past `target`
        (otherwise every range fetched ahead is dropped)."""
        if not self._ahead:
            return None
        start, end, future = self._ahead.popleft()
        if start != from_block or end > target:
            self._ahead.clear()
            return None
        try:
            return future.result()
        except Exception:  # refetched in the foreground, which reports the error
            self._ahead.clear()
            return None

    def step(self, target: int) -> StepResult | None:
        """Indexes the next range up to `target`; None when there is nothing to do."""
        fork = self.check_reorg()
        last = self.last_block()
        if last >= target:
            return StepResult(last, last, 0, fork) if fork is not None else None
        from_block = last + 1
        fetched = self._take_prefetched(from_block, target)
        if fetched is None:
            fetched = self.fetcher.fetch(from_block, min(target, from_block + self.range - 1))
        self.fetcher.range = fetched.next_range
        with self.engine.connect() as conn:
            state = self._state(conn)
            # Events already stored from here on (a replayed range) are skipped; a forward step
            # finds none and bulk-loads without the conflict check.
            replay = (
                conn.execute(
                    select(s.events.c.block_number)
                    .where(s.events.c.block_number >= from_block)
                    .limit(1)
                ).first()
                is not None
            )
        if replay and not fetched.complete:  # a replay rewrites every key: fetch in full
            fetched = self.fetcher.fetch(from_block, fetched.to_block)
        to_block, headers = fetched.to_block, fetched.headers
        settings = self.settings
        if (
            self._workers is None
            and settings.prefetch_process_logs
            and fetched.count >= settings.prefetch_process_logs
            and to_block < target
        ):
            self._start_workers()
        if self._ahead and self._ahead[0][0] != to_block + 1:
            self._ahead.clear()  # the range ended before the block asked: what is ahead is not next
        self._top_up(to_block, target)  # fetch the next ranges while this one is written
        consistent = fetched.consistent
        if state is not None and state.last_hash and last in headers:
            consistent = consistent and headers[last].hash == state.last_hash
        if not consistent:
            log.info("chain moved during step %d..%d; retrying", from_block, to_block)
            return StepResult(from_block, from_block - 1, 0, fork)
        fresh = fetched.fresh
        anchored = [e for e in fetched.special if (e.contract, e.name) == ANCHORED]
        posted = [e for e in fetched.special if (e.contract, e.name) == POSTED]
        with self.engine.begin() as conn:
            insert_tuples(conn, s.events, EVENT_COLUMNS, fetched.rows, ignore_conflicts=replay)
            self._upsert_blocks(conn, headers.values())
            self.projector.rewrite(
                conn,
                set(fetched.touched),
                fresh,
                from_block,
                replay=replay,
                prefolded=fetched.prefolded,
            )
            if anchored:
                self._load_batches(conn, anchored)
            for e in posted:
                load_document(conn, self.loader.store, PostedRoot.from_args(e.args, *_at(e)))
            self._set_state(conn, to_block, headers[to_block].hash)
        return StepResult(from_block, to_block, fetched.count, fork)

    # ---------------------------------------------------------------------------------------
    # verified telemetry

    def _load_batches(self, conn: Connection, anchored: list[Event]) -> None:
        """Verifies and loads the batches anchored in this step, inside its transaction.

        Pairings come from the `pairings` rows this transaction has just written. A batch whose
        content the store cannot serve now is recorded as pending and retried later.
        """
        loader = self.loader
        paired = IndexedPairings(conn)
        for e in anchored:
            batch = anchored_batch(e)
            try:
                checked = loader.check(batch, paired)
            except BatchContentUnavailable as err:
                loader.record_pending(conn, batch, err.reason)
                continue
            loader.write(conn, checked)

    def retry_pending(self) -> int:
        """Tries the pending batches and rewards documents again; returns how many were decided
        (loaded or rejected)."""
        with self.engine.connect() as conn:
            pending = pending_batches(conn)
            documents = undecided(conn)
        decided = 0
        for posted in documents:
            with self.engine.begin() as conn:
                decided += load_document(conn, self.loader.store, posted) != PENDING
        for batch in pending:
            with self.engine.begin() as conn:
                try:
                    checked = self.loader.check(batch, IndexedPairings(conn))
                except BatchContentUnavailable:
                    continue
                self.loader.write(conn, checked)
                decided += 1
        return decided

    def _maybe_retry_pending(self) -> None:
        now = time.monotonic()
        if now >= self._next_retry:
            self._next_retry = now + self.settings.pending_retry_s
            self.retry_pending()

    def backfill(
        self, target: int | None = None, progress: Callable[[StepResult, int], None] | None = None
    ) -> int:
        """Indexes up to `target` (the confirmed head now, by default); returns the events.

        Args:
            target: last block to index.
            progress: called after each step with the step and the target.
        """
        goal = self.target() if target is None else target
        total = 0
        self._maybe_retry_pending()
        while True:
            result = self.step(goal)
            if result is None:
                return total
            total += result.events
            if progress is not None:
                progress(result, goal)
            if self.settings.test_sleep_between_ranges_s:
                time.sleep(self.settings.test_sleep_between_ranges_s)

    def follow(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Backfills, then polls for new heads until `should_stop()` is true."""
        while not should_stop():
            self.backfill()
            time.sleep(self.settings.poll_interval_s)
