"""Build tools of the platform: the solc shim and its registration."""
