"""Applications: pure, versioned functions of verified readings (battery, finance, ...)."""
