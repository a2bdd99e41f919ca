"""Our solc shim answers as native solc does for what py-solc-x and ape-solidity ask."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import solcx

ROOT = Path(__file__).resolve().parents[2]
SHIM = ROOT / "tools" / "solc-shim.js"
OZ = ROOT / "node_modules" / "@openzeppelin" / "contracts"

CONTRACT = """// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {Lib} from "lib/Lib.sol";
contract Probe is ERC20 {
    constructor() ERC20("P", "P") {}
    function twice(uint256 x) external pure returns (uint256) { return Lib.twice(x); }
}
"""
LIB = """// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;
library Lib { function twice(uint256 x) internal pure returns (uint256) { return 2 * x; } }
"""


def standard_input() -> dict[str, object]:
    return {
        "language": "Solidity",
        "sources": {"Probe.sol": {"content": CONTRACT}},
        "settings": {
            "remappings": [f"@openzeppelin/contracts={OZ}"],
            "optimizer": {"enabled": True, "runs": 200},
            "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
        },
    }


def run_shim(
    *args: str, stdin: str = "", cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", str(SHIM), *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )


def test_version_is_printed_as_native_solc_prints_it() -> None:
    out = run_shim("--version")
    assert out.returncode == 0
    assert out.stdout.splitlines()[-1] == "Version: 0.8.28+commit.7893614a.Emscripten.clang"


def test_py_solc_x_reads_the_version() -> None:
    assert str(solcx.wrapper.get_solc_version(ROOT / ".venv" / "bin" / "solc")) == "0.8.28"


def test_standard_json_equals_solc_js_called_directly(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "Lib.sol").write_text(LIB)
    request = json.dumps(standard_input())
    shim = run_shim(
        "--standard-json",
        "--base-path",
        str(tmp_path),
        "--allow-paths",
        f"{tmp_path},{OZ}",
        stdin=request,
    )
    assert shim.returncode == 0, shim.stderr
    direct_js = f"""
const solc = require("solc"); const fs = require("fs"); const path = require("path");
const input = fs.readFileSync(0, "utf8");
const find = (p) => {{
  for (const c of [p, path.join({json.dumps(str(tmp_path))}, p)]) {{
    try {{ return {{contents: fs.readFileSync(c, "utf8")}}; }} catch (e) {{}}
  }}
  return {{error: "not found"}};
}};
process.stdout.write(solc.compile(input, {{import: find}}));
"""
    direct = subprocess.run(
        ["node", "-e", direct_js],
        input=request,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    ours, theirs = json.loads(shim.stdout), json.loads(direct.stdout)
    assert "errors" not in ours or all(e["severity"] != "error" for e in ours["errors"])
    assert ours == theirs
    assert ours["contracts"]["Probe.sol"]["Probe"]["evm"]["bytecode"]["object"]


def test_include_path_resolves_imports(tmp_path: Path) -> None:
    base, include = tmp_path / "base", tmp_path / "inc"
    base.mkdir()
    (include / "lib").mkdir(parents=True)
    (include / "lib" / "Lib.sol").write_text(LIB)
    out = run_shim(
        "--standard-json",
        "--base-path",
        str(base),
        "--include-path",
        str(include),
        stdin=json.dumps(standard_input()),
    )
    result = json.loads(out.stdout)
    assert not [e for e in result.get("errors", []) if e["severity"] == "error"]


def test_missing_import_is_reported_like_solc(tmp_path: Path) -> None:
    out = run_shim(
        "--standard-json", "--base-path", str(tmp_path), stdin=json.dumps(standard_input())
    )
    errors = json.loads(out.stdout)["errors"]
    assert any("lib/Lib.sol" in e["message"] and e["severity"] == "error" for e in errors)


@pytest.mark.parametrize("args", [["--bin", "x.sol"], ["--base-path"], []])
def test_unsupported_arguments_fail_with_a_message(args: list[str]) -> None:
    out = run_shim(*args)
    assert out.returncode == 1
    assert out.stderr.startswith("Error:")
