"""Content-addressed blob stores: a local directory of blocks, and a Kubo node over HTTP RPC."""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Protocol, runtime_checkable

import httpx

from protocol.cid import (
    CHUNK_SIZE,
    DAG_PB,
    MAX_LINKS,
    RAW,
    Cid,
    CidVersion,
    MalformedBlock,
    PbNode,
    UnixFsData,
    UnixFsType,
    build_file_dag,
)
from protocol.exceptions import ProtocolError

# ---------------------------------------------------------------- errors


class BlobStoreError(ProtocolError):
    """Root of every error a blob store raises."""


class BlobNotFound(BlobStoreError, LookupError):
    """The store does not hold the blob, or one of its blocks."""

    def __init__(self, cid: str, where: str, missing: str | None = None) -> None:
        self.cid = cid
        self.where = where
        self.missing = missing or cid
        detail = "" if self.missing == cid else f" (block {self.missing} is missing)"
        super().__init__(
            f"blob {cid} not found in {where}{detail}; put it there first, or fetch it from "
            "a node that pins it"
        )


class BlobCorrupted(BlobStoreError, ValueError):
    """A block read back does not hash to its CID, or the file DAG is inconsistent."""

    def __init__(self, cid: str, block: str, reason: str) -> None:
        self.cid = cid
        self.block = block
        self.reason = reason
        super().__init__(
            f"blob {cid} is corrupted at block {block}: {reason}; delete the block and put the "
            "original content again, or fetch it from another node"
        )


class BlobCidMismatch(BlobStoreError, ValueError):
    """A node returned a CID other than the one computed locally for the same bytes."""

    def __init__(self, expected: str, returned: str, where: str) -> None:
        self.expected = expected
        self.returned = returned
        self.where = where
        super().__init__(
            f"{where} stored the blob as {returned}, but it hashes to {expected} locally; "
            "check the node's import settings (chunker size-262144, sha2-256, balanced layout, "
            "174 links, raw leaves with CIDv1)"
        )


class BlobUnsupported(BlobStoreError, ValueError):
    """The CID names something other than a UnixFS file (a directory, a HAMT shard, ...)."""

    def __init__(self, cid: str, what: str) -> None:
        self.cid = cid
        self.what = what
        super().__init__(
            f"{cid} is a {what}, not a file; blob stores hold single files added with `ipfs add`"
        )


class BlobStoreUnreachable(BlobStoreError, ConnectionError):
    """The IPFS node's RPC API cannot be reached."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(
            f"cannot reach the IPFS RPC API at {url}: {reason}; start the node (`ipfs daemon`) "
            "or fix the configured URL"
        )


class BlobStoreTimeout(BlobStoreError, TimeoutError):
    """The IPFS node did not answer in time."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        super().__init__(
            f"the IPFS RPC API at {url} did not answer within {timeout} s; the node is "
            "overloaded or stuck: raise the timeout or check the node"
        )


class BlobStoreRejected(BlobStoreError, RuntimeError):
    """The IPFS node answered a request with an error."""

    def __init__(self, url: str, status: int, message: str) -> None:
        self.url = url
        self.status = status
        self.message = message
        super().__init__(
            f"the IPFS RPC API at {url} answered {status}: {message}; check the node's log "
            "and that it speaks the Kubo RPC API"
        )


# ---------------------------------------------------------------- the protocol


@runtime_checkable
class BlobStore(Protocol):
    """A content-addressed store of files, keyed by the CID `ipfs add` gives them."""

    def put(self, data: bytes) -> str:
        """Store `data` and return its CID."""
        ...

    def get(self, cid: str) -> bytes:
        """Return the verified content of `cid`."""
        ...

    def has(self, cid: str) -> bool:
        """Whether the store holds `cid`."""
        ...

    def pin(self, cid: str) -> None:
        """Keep `cid` from being garbage-collected."""
        ...


# ---------------------------------------------------------------- local directory


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a crash leaves the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_dir(path.parent)


class LocalCidStore:
    """A directory of blocks, each stored under its CID, holding files as Kubo would.

    `put` writes every block of the file's UnixFS DAG, children before parents, each
    atomically (temp file, fsync, `os.replace`, fsync of the directory): a crash never leaves
    a partial block, and a root block on disk means its whole DAG is there. `get` walks the
    DAG and checks every block against its CID.
    """

    def __init__(
        self,
        root: Path,
        cid_version: CidVersion = 1,
        *,
        chunk_size: int = CHUNK_SIZE,
        max_links: int = MAX_LINKS,
    ) -> None:
        """Open (and create if needed) a store.

        Args:
            root: The store's directory.
            cid_version: 1 (`bafy...`/`bafk...`, raw leaves) or 0 (`Qm...`, Kubo's default).
            chunk_size: Bytes per leaf; keep Kubo's default unless testing.
            max_links: Links per node; keep Kubo's default unless testing.
        """
        if cid_version not in (0, 1):
            raise ValueError(f"cid_version must be 0 or 1, got {cid_version!r}")
        self.root = Path(root)
        self.cid_version: CidVersion = cid_version
        self._chunk_size = chunk_size
        self._max_links = max_links
        self._blocks = self.root / "blocks"
        self._pins = self.root / "pins"
        self._blocks.mkdir(parents=True, exist_ok=True)
        self._pins.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalCidStore({str(self.root)!r}, cid_version={self.cid_version})"

    def block_path(self, cid: Cid) -> Path:
        """Where the block named `cid` lives (sharded by next-to-last two characters)."""
        name = cid.encode()
        return self._blocks / name[-3:-1] / name

    def put(self, data: bytes) -> str:
        """Store `data` as a UnixFS file and return its CID.

        Args:
            data: The file's content.

        Returns:
            The CID `ipfs add` gives `data` in this store's CID version.
        """
        dag = build_file_dag(
            data,
            cid_version=self.cid_version,
            chunk_size=self._chunk_size,
            max_links=self._max_links,
        )
        for block in dag.blocks:
            path = self.block_path(block.cid)
            if path.is_file() and block.cid.matches(path.read_bytes()):
                continue
            _write_atomically(path, block.data)
        return dag.root.encode()

    def get(self, cid: str) -> bytes:
        """Reassemble the file named `cid`, checking every block's hash.

        Args:
            cid: The file's CID.

        Returns:
            The file's content.

        Raises:
            InvalidCid: If `cid` is not a CID.
            BlobNotFound: If the root or any block under it is absent.
            BlobCorrupted: If a block does not hash to its CID or the DAG is inconsistent.
            BlobUnsupported: If `cid` names a directory or other non-file node.
        """
        root = Cid.parse(cid)
        out = bytearray()
        self._append(root, cid, out, expected_size=None)
        return bytes(out)

    def has(self, cid: str) -> bool:
        """Whether the root block of `cid` is stored (its children are written before it).

        Raises:
            InvalidCid: If `cid` is not a CID.
        """
        return self.block_path(Cid.parse(cid)).is_file()

    def pin(self, cid: str) -> None:
        """Check that the whole file is present and intact, and record a pin for it.

        Raises:
            InvalidCid: If `cid` is not a CID.
            BlobNotFound: If any block of the file is absent.
            BlobCorrupted: If any block is damaged.
        """
        parsed = Cid.parse(cid)
        self.get(cid)
        _write_atomically(self._pins / parsed.encode(), b"")

    def is_pinned(self, cid: str) -> bool:
        """Whether `cid` has been pinned in this store."""
        return (self._pins / Cid.parse(cid).encode()).is_file()

    def _read_block(self, block: Cid, root: str) -> bytes:
        try:
            data = self.block_path(block).read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(root, str(self), missing=block.encode()) from None
        if not block.matches(data):
            raise BlobCorrupted(root, block.encode(), "the block's sha2-256 does not match its CID")
        return data

    def _append(self, block: Cid, root: str, out: bytearray, expected_size: int | None) -> None:
        data = self._read_block(block, root)
        start = len(out)
        if block.codec == RAW:
            out += data
        else:
            self._append_node(block, root, data, out)
        if expected_size is not None and len(out) - start != expected_size:
            raise BlobCorrupted(
                root,
                block.encode(),
                f"holds {len(out) - start} bytes where its parent says {expected_size}",
            )

    def _append_node(self, block: Cid, root: str, data: bytes, out: bytearray) -> None:
        assert block.codec == DAG_PB
        try:
            node = PbNode.decode(data)
            unixfs = UnixFsData.decode(node.data or b"")
        except MalformedBlock as exc:
            raise BlobCorrupted(root, block.encode(), exc.reason) from exc
        if unixfs.type not in (UnixFsType.FILE, UnixFsType.RAW):
            raise BlobUnsupported(root, f"UnixFS {unixfs.type.name.lower()}")
        if node.links and len(unixfs.blocksizes) != len(node.links):
            raise BlobCorrupted(root, block.encode(), "blocksizes do not match the links")
        start = len(out)
        out += unixfs.data or b""
        for link, size in zip(node.links, unixfs.blocksizes, strict=False):
            self._append(link.cid, root, out, expected_size=size)
        if unixfs.filesize is not None and len(out) - start != unixfs.filesize:
            raise BlobCorrupted(
                root,
                block.encode(),
                f"reassembles to {len(out) - start} bytes, filesize says {unixfs.filesize}",
            )


# ---------------------------------------------------------------- Kubo RPC

_NOT_FOUND = re.compile(
    r"not found|could not find|no link named|timed out|deadline exceeded", re.IGNORECASE
)


class KuboRpcStore:
    """A Kubo node (or any node with Kubo's HTTP RPC API) as a blob store.

    Every CID the node returns is checked against the one computed locally, and every blob
    read back is verified against its CID, so the node need not be trusted.
    """

    def __init__(
        self,
        url: str,
        timeout: float = 30.0,
        *,
        find_timeout: float = 10.0,
        cid_version: CidVersion = 1,
        client: httpx.Client | None = None,
    ) -> None:
        """Connect to a node's RPC API.

        Args:
            url: The RPC API's base URL, e.g. `http://127.0.0.1:5001`.
            timeout: Seconds to wait for any answer of the node.
            find_timeout: Seconds the node may search for content it does not hold before
                the store reports it not found; keep it below `timeout`.
            cid_version: 1 (`--cid-version=1 --raw-leaves`) or 0 (Kubo's default).
            client: An httpx client to use instead of a new one (tests, shared pools).
        """
        if cid_version not in (0, 1):
            raise ValueError(f"cid_version must be 0 or 1, got {cid_version!r}")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.find_timeout = find_timeout
        self.cid_version: CidVersion = cid_version
        self._client = client or httpx.Client(base_url=self.url, timeout=timeout)

    def __repr__(self) -> str:
        return f"KuboRpcStore({self.url!r}, timeout={self.timeout})"

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()

    def __enter__(self) -> KuboRpcStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def put(self, data: bytes) -> str:
        """Add and pin `data` on the node, and check the node's CID against the local one.

        Args:
            data: The file's content.

        Returns:
            The CID (canonical form) of `data`.

        Raises:
            BlobCidMismatch: If the node's CID differs from the locally computed one.
            BlobStoreUnreachable, BlobStoreTimeout, BlobStoreRejected: On transport errors.
        """
        expected = build_file_dag(data, cid_version=self.cid_version).root
        params = {
            "cid-version": str(self.cid_version),
            "raw-leaves": "true" if self.cid_version == 1 else "false",
            "pin": "true",
            "chunker": f"size-{CHUNK_SIZE}",
            "hash": "sha2-256",
        }
        response = self._post(
            "add", params, files={"file": ("blob", data, "application/octet-stream")}
        )
        lines = [line for line in response.text.splitlines() if line.strip()]
        try:
            returned = str(json.loads(lines[-1])["Hash"])
        except (IndexError, KeyError, ValueError) as exc:
            raise BlobStoreRejected(
                self.url, response.status_code, f"unexpected add answer {response.text[:200]!r}"
            ) from exc
        if Cid.parse(returned) != expected:
            raise BlobCidMismatch(expected.encode(), returned, self.url)
        return expected.encode()

    def get(self, cid: str) -> bytes:
        """Fetch `cid` through the node and verify it.

        Raises:
            InvalidCid: If `cid` is not a CID.
            BlobNotFound: If the node cannot find it within `find_timeout`.
            BlobCorrupted: If the bytes do not hash to `cid`.
            BlobStoreUnreachable, BlobStoreTimeout, BlobStoreRejected: On transport errors.
        """
        parsed = Cid.parse(cid)
        response = self._post("cat", self._lookup(parsed), not_found=cid)
        data = response.content
        if build_file_dag(data, cid_version=parsed.version).root != parsed:
            raise BlobCorrupted(cid, cid, f"the {len(data)} bytes served do not hash to the CID")
        return data

    def has(self, cid: str) -> bool:
        """Whether the node holds the root block of `cid` locally.

        Raises:
            InvalidCid: If `cid` is not a CID.
            BlobStoreUnreachable, BlobStoreTimeout, BlobStoreRejected: On transport errors.
        """
        parsed = Cid.parse(cid)
        try:
            self._post("block/stat", {**self._lookup(parsed), "offline": "true"}, not_found=cid)
        except BlobNotFound:
            return False
        return True

    def pin(self, cid: str) -> None:
        """Pin `cid` (recursively) on the node.

        Raises:
            InvalidCid: If `cid` is not a CID.
            BlobNotFound: If the node cannot find it within `find_timeout`.
            BlobStoreUnreachable, BlobStoreTimeout, BlobStoreRejected: On transport errors.
        """
        parsed = Cid.parse(cid)
        response = self._post("pin/add", self._lookup(parsed), not_found=cid)
        try:
            pins = {Cid.parse(str(pin)) for pin in response.json()["Pins"]}
        except (KeyError, TypeError, ValueError) as exc:
            raise BlobStoreRejected(
                self.url, response.status_code, f"unexpected pin answer {response.text[:200]!r}"
            ) from exc
        if parsed not in pins:
            raise BlobStoreRejected(self.url, response.status_code, f"{cid} was not pinned")

    def _lookup(self, cid: Cid) -> dict[str, str]:
        return {"arg": cid.encode(), "timeout": f"{round(self.find_timeout * 1000)}ms"}

    def _post(
        self,
        command: str,
        params: dict[str, str],
        *,
        files: dict[str, tuple[str, bytes, str]] | None = None,
        not_found: str | None = None,
    ) -> httpx.Response:
        try:
            response = self._client.post(f"/api/v0/{command}", params=params, files=files)
        except httpx.TimeoutException as exc:
            raise BlobStoreTimeout(self.url, self.timeout) from exc
        except httpx.TransportError as exc:
            raise BlobStoreUnreachable(self.url, str(exc) or type(exc).__name__) from exc
        if response.is_success:
            return response
        try:
            message = str(response.json()["Message"])
        except (KeyError, TypeError, ValueError):
            message = response.text[:200]
        if not_found is not None and _NOT_FOUND.search(message):
            raise BlobNotFound(not_found, self.url)
        raise BlobStoreRejected(self.url, response.status_code, message)
