"""The indexer: chain sync, verified telemetry, and the API with the applications."""
