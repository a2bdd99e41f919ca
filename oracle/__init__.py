"""The oracle: verify signed bundles, journal them, anchor Merkle batches on-chain."""
