"""`python -m stack` runs the `dimo` command (how the stack starts its own children)."""

from stack.cli import app

app()
