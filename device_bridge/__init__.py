"""The device bridge: CAN/OBD-II frames to signed VSS bundles, queued until acknowledged."""
