"""Rewards: weekly DIMO allocations computed from anchored telemetry, posted and audited.

`dimo rewards compute` builds an epoch's allocation from public inputs only (anchored batches
fetched by CID and chain state), `dimo rewards verify` recomputes it and compares it with the
root on-chain, and `dimo rewards post` has the oracle quorum post it to the Rewards contract.
The formula itself is `protocol.rewards`.
"""
