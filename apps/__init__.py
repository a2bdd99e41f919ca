"""The applications: pure, versioned functions over verified readings (a leaf beside protocol)."""
