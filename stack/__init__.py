"""The `dimo` command and the local platform behind `make run`."""
