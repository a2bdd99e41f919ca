"""Errors of the rewards service: one root, each subclass carrying its context and its fix."""

from __future__ import annotations

# The allocation document's parser lives in `protocol` (the indexer checks posted documents
# with it too); its error is re-exported here, where the rewards service's callers look.
from protocol.exceptions import ChainUnavailableError as _ChainUnavailableError
from protocol.exceptions import ConfigError, PlatformError
from protocol.rewards_document import InvalidAllocation as InvalidAllocation


class RewardsError(PlatformError):
    """Root of every error raised by `rewards`."""


class RewardsConfigError(RewardsError, ConfigError):
    """Settings, a catalog or a deployment record the service cannot run with."""

    service = "rewards"


class ChainUnavailableError(RewardsError, _ChainUnavailableError):
    """The chain's JSON-RPC endpoint did not answer or answered with an error."""

    rpc_setting = "DIMO_REWARDS_RPC_URL"


class EpochNotEnded(RewardsError, ValueError):
    """An epoch that has not ended yet cannot be computed or posted."""

    def __init__(self, epoch: int, ends_at: int, now: int) -> None:
        self.epoch = epoch
        self.ends_at = ends_at
        self.now = now
        super().__init__(
            f"epoch {epoch} ends at {ends_at} (unix s) and the chain is at {now}; wait until "
            "it has ended (and its late bundles are anchored)"
        )


class BatchContentUnavailable(RewardsError, LookupError):
    """An anchored batch of the epoch cannot be fetched by its CID: the allocation would be
    incomplete."""

    def __init__(self, batch_id: int, cid: str, reason: str) -> None:
        self.batch_id = batch_id
        self.cid = cid
        self.reason = reason
        super().__init__(
            f"batch {batch_id} (CID {cid}) cannot be fetched: {reason}; point "
            "DIMO_REWARDS_BLOB_DIR or DIMO_REWARDS_KUBO_URL at a store that holds it"
        )


class NothingToAllocate(RewardsError, ValueError):
    """No vehicle earned points in the epoch, so there is no root to post."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        super().__init__(
            f"no vehicle earned points in epoch {epoch}: the allocation is empty and has no "
            "root; nothing is posted for it"
        )


class RootNotPosted(RewardsError, LookupError):
    """The epoch has no root on-chain (never posted, or vetoed)."""

    def __init__(self, epoch: int, reason: str) -> None:
        self.epoch = epoch
        self.reason = reason
        super().__init__(
            f"epoch {epoch} has no root to verify: {reason}; `dimo rewards compute --epoch "
            f"{epoch}` shows what would be posted"
        )


class QuorumNotReached(RewardsError, RuntimeError):
    """Fewer oracle signatures than the threshold."""

    def __init__(self, epoch: int, got: int, threshold: int) -> None:
        self.epoch = epoch
        self.got = got
        self.threshold = threshold
        super().__init__(
            f"epoch {epoch}: {got} of the {threshold} oracle signatures needed; set "
            "DIMO_REWARDS_SIGNER_KEYS to keys of the oracle set (`oracles()` on the anchor)"
        )


class TransactionFailed(RewardsError, RuntimeError):
    """A `post` or `fund` transaction was refused or reverted."""

    def __init__(self, action: str, reason: str) -> None:
        self.action = action
        self.reason = reason
        super().__init__(
            f"{action} failed: {reason}; check the submitter's funds "
            "(DIMO_REWARDS_SUBMITTER_KEY) and the epoch's state (`epochRoot`)"
        )


class RootVetoed(RewardsError, ValueError):
    """The computed root was vetoed for the epoch: a veto is final for that root."""

    def __init__(self, epoch: int, root: bytes) -> None:
        self.epoch = epoch
        self.root = root
        super().__init__(
            f"epoch {epoch}: root 0x{root.hex()} was vetoed and can never be posted again; "
            "fix the inputs the guardian objected to and compute a corrected allocation"
        )
