"""Register tools/solc-shim.js with py-solc-x, so that ape-solidity compiles offline.

A small executable `solc` is written into the venv's bin folder; it runs the shim with
this clone's Node. py-solc-x then imports it into ``$SOLCX_BINARY_PATH`` (the venv),
where ape-solidity finds version 0.8.28 installed and never tries to download it.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from pathlib import Path

import solcx

ROOT = Path(__file__).resolve().parent.parent
SHIM = ROOT / "tools" / "solc-shim.js"
EXPECTED = "0.8.28"


def main() -> int:
    node = shutil.which("node")
    if node is None:
        print("register_solc: node is not on PATH; install Node 20", file=sys.stderr)
        return 1
    bin_dir = Path(sys.executable).parent
    wrapper = bin_dir / "solc"
    wrapper.write_text(f'#!/bin/sh\nexec "{node}" "{SHIM}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)

    folder = Path(os.environ.get("SOLCX_BINARY_PATH", bin_dir.parent / "solcx"))
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["SOLCX_BINARY_PATH"] = str(folder)
    # Replace any earlier copy, so a moved clone never keeps a wrapper to an old path.
    for old in folder.glob("solc-v*"):
        old.unlink()
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    imported = [str(v) for v in solcx.import_installed_solc()]
    installed = [str(v) for v in solcx.get_installed_solc_versions()]
    if EXPECTED not in installed:
        print(f"register_solc: solc {EXPECTED} not registered (got {installed})", file=sys.stderr)
        return 1
    print(f"register_solc: solc {', '.join(imported) or EXPECTED} -> {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
