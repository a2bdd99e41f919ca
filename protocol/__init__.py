"""What every part of the platform agrees on: formats, domains, trees, CIDs, catalogs."""
