"""Lenient DBC loading: cantools strict, then non-strict, then documented in-memory repairs."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cantools.database
from cantools.database.can import Database
from cantools.database.errors import UnsupportedDatabaseFormatError

from device_bridge.exceptions import DbcLoadError, DbcNotFoundError

__all__ = [
    "DbcLoadReport",
    "DbcRepair",
    "load_dbc",
    "load_dbc_string",
    "opendbc_dir",
    "resolve_dbc",
]

_MAX_ROUNDS = 16
_CANTOOLS_ERRORS = (UnsupportedDatabaseFormatError, ValueError, LookupError)


@dataclass(frozen=True, slots=True)
class DbcRepair:
    """One repair applied to a DBC text before cantools accepted it.

    Attributes:
        kind: short name of the repair (`missing-bs`, `comment-without-bo`, ...).
        detail: what was changed or dropped.
        count: how many places it touched.
        dropped: True if information was removed rather than rewritten.
    """

    kind: str
    detail: str
    count: int
    dropped: bool = False


@dataclass(frozen=True, slots=True)
class DbcLoadReport:
    """How a DBC was loaded.

    Attributes:
        source: the file path or the name given to a string.
        strict: True if cantools accepted the text in strict mode.
        repairs: the repairs applied, in order (empty if none was needed).
        errors: the cantools errors met on the way, in order.
        messages: number of messages in the loaded database.
    """

    source: str
    strict: bool
    repairs: tuple[DbcRepair, ...] = ()
    errors: tuple[str, ...] = ()
    messages: int = 0

    @property
    def repaired(self) -> bool:
        """Whether the text had to be changed before cantools accepted it."""
        return bool(self.repairs)

    @property
    def skipped(self) -> tuple[DbcRepair, ...]:
        """The repairs that dropped information instead of rewriting it."""
        return tuple(r for r in self.repairs if r.dropped)


@dataclass
class _Text:
    value: str
    repairs: list[DbcRepair] = field(default_factory=list)

    def sub(
        self,
        pattern: str,
        repl: str | Callable[[re.Match[str]], str],
        kind: str,
        detail: str,
        *,
        dropped: bool = False,
        count: int = 0,
    ) -> bool:
        new, count = re.subn(pattern, repl, self.value, count=count, flags=re.MULTILINE)
        if count:
            self.value = new
            self.repairs.append(DbcRepair(kind, detail, count, dropped))
        return bool(count)


def opendbc_dir() -> Path:
    """Return the directory of the DBC files shipped with the `opendbc` package."""
    import opendbc

    return Path(opendbc.__file__).resolve().parent / "dbc"


def resolve_dbc(
    name: str,
    *,
    dbc_dir: Path | None = None,
    dbc_paths: dict[str, Path] | None = None,
    base_dir: Path | None = None,
) -> Path:
    """Find the file a mapping means by `name`.

    `name` is looked up, in order, as a key of `dbc_paths`, as `opendbc:<file>` (the opendbc
    package, templates under `generator/` included), as an absolute path, under `dbc_dir`, and
    under `base_dir` (the mapping file's directory).

    Args:
        name: the DBC reference from a mapping.
        dbc_dir: directory for bare file names (setting `DIMO_BRIDGE_DBC_DIR`).
        dbc_paths: explicit paths by name (setting `DIMO_BRIDGE_DBC_PATHS`).
        base_dir: directory of the mapping file.

    Returns:
        The path of an existing file.

    Raises:
        DbcNotFoundError: no candidate exists.
    """
    if dbc_paths and name in dbc_paths:
        candidates = [Path(dbc_paths[name])]
    elif name.startswith("opendbc:"):
        root = opendbc_dir()
        file = name.removeprefix("opendbc:")
        candidates = [root / file, *sorted(root.glob(f"generator/*/{file}"))]
    else:
        path = Path(name).expanduser()
        candidates = [path] if path.is_absolute() else []
        candidates += [d / path for d in (dbc_dir, base_dir) if d is not None]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise DbcNotFoundError(name, tuple(str(c) for c in candidates))


def load_dbc(path: str | Path) -> tuple[Database, DbcLoadReport]:
    """Load a DBC file leniently; the file on disk is never changed.

    Tries cantools in strict mode, then non-strict, then applies the repairs documented in
    `load_dbc_string` to the text in memory. opendbc's `CM_ "IMPORT x.dbc";` lines are
    resolved against the file's directory.

    Args:
        path: the DBC file.

    Returns:
        The database and a report of what was repaired or skipped.

    Raises:
        DbcNotFoundError: the file does not exist.
        DbcLoadError: cantools refuses the text even after every repair.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DbcNotFoundError(str(path), (str(path),)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("cp1252")
    return load_dbc_string(text, source=str(path), include_dir=path.parent)


def load_dbc_string(
    text: str, *, source: str = "<string>", include_dir: Path | None = None
) -> tuple[Database, DbcLoadReport]:
    """Load DBC text leniently.

    Repairs, applied only when cantools refuses the text and only where they match:

    - `import`: opendbc templates' `CM_ "IMPORT x.dbc";` lines are replaced by the named files
      from `include_dir` (always, as opendbc's generator does).
    - `missing-bs`: the mandatory `BS_:` line is added before `BU_` (published Kona `pcan.dbc`).
    - `comment-without-bo`: `CM_ 123 "..."` becomes `CM_ BO_ 123 "..."` (opendbc).
    - `comment-without-signal`: `CM_ SG_ 123 "..."` becomes a message comment.
    - `comment-without-semicolon`: a free `CM_ "..."` line gets its `;`.
    - `number-without-zero`: `(.25,-500)` becomes `(0.25,-500)`.
    - `name-starts-with-digit`: names such as `2017_5` or `0_COUNTER` get a `_` prefix.
    - `unused-val` (dropped): `VAL_` tables naming signals their message lacks.
    - `standard-id-over-11-bits`: ids above 0x7FF not marked extended get the extended flag.

    Args:
        text: the DBC text.
        source: a name for the report and errors.
        include_dir: where `IMPORT`ed files are read from.

    Returns:
        The database and a report of what was repaired or skipped.

    Raises:
        DbcLoadError: cantools refuses the text even after every repair.
    """
    work = _Text(text)
    if include_dir is not None:
        _resolve_imports(work, include_dir)
    errors: list[str] = []
    for strict in (True, False):
        try:
            db = _parse(work.value, strict=strict)
        except _CANTOOLS_ERRORS as exc:
            _note(errors, exc)
            continue
        return db, _report(source, db, strict and not work.repairs, work, errors)

    for _ in range(_MAX_ROUNDS):
        try:
            db = _parse(work.value, strict=False)
        except _CANTOOLS_ERRORS as exc:
            message = str(exc)
            _note(errors, exc)
            if not (_syntax_repair(work, message) or _semantic_repair(work, message)):
                kinds = tuple(r.kind for r in work.repairs)
                raise DbcLoadError(source, _one_line(exc), kinds) from exc
            continue
        return db, _report(source, db, False, work, errors)
    kinds = tuple(r.kind for r in work.repairs)
    raise DbcLoadError(source, errors[-1], kinds)


def _parse(text: str, *, strict: bool) -> Database:
    db = cantools.database.load_string(text, database_format="dbc", strict=strict)
    if not isinstance(db, Database):  # pragma: no cover - database_format="dbc" gives CAN
        raise TypeError(f"expected a CAN database, got {type(db).__name__}")
    return db


def _report(
    source: str, db: Database, strict: bool, work: _Text, errors: list[str]
) -> DbcLoadReport:
    return DbcLoadReport(source, strict, tuple(work.repairs), tuple(errors), len(db.messages))


def _note(errors: list[str], exc: BaseException) -> None:
    line = _one_line(exc)
    if not errors or errors[-1] != line:
        errors.append(line)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


_IMPORT = re.compile(r'^CM_ "IMPORT (?P<file>[^"]+)";[ \t]*\r?\n?', re.MULTILINE)


def _resolve_imports(work: _Text, include_dir: Path) -> None:
    found: list[str] = []

    def repl(match: re.Match[str]) -> str:
        file = include_dir / match["file"]
        if not file.is_file():
            return match.group(0)
        found.append(match["file"])
        return file.read_text(encoding="utf-8") + "\n"

    new = _IMPORT.sub(repl, work.value)
    if found:
        work.value = new
        work.repairs.append(DbcRepair("import", f"inlined {', '.join(found)}", len(found)))


_SYNTAX_ERROR = re.compile(r"Invalid syntax at line (\d+)")
_DIGIT_NAME_LINE = re.compile(r"^(BO_ \d+ \d|\s+SG_ \d)")


def _syntax_repair(work: _Text, message: str) -> bool:
    match = _SYNTAX_ERROR.search(message)
    if match is None:
        return False
    lines = work.value.splitlines()
    index = int(match.group(1)) - 1
    line = lines[index] if 0 <= index < len(lines) else ""
    prev = next((lines[i] for i in range(index - 1, -1, -1) if lines[i].strip()), "")
    if re.match(r'CM_ \d+ "', line):
        return work.sub(
            r'^CM_ (\d+) "', r'CM_ BO_ \1 "', "comment-without-bo", 'CM_ <id> "..." -> CM_ BO_ <id>'
        )
    if re.match(r'CM_ SG_ \d+ "', line):
        return work.sub(
            r'^CM_ SG_ (\d+) "',
            r'CM_ BO_ \1 "',
            "comment-without-signal",
            'CM_ SG_ <id> "..." without a signal name -> message comment',
        )
    if re.match(r'(CM_|VAL_) .*"[ \t]*$', prev):
        return work.sub(
            r'^((?:CM_|VAL_) [^\n]*")[ \t]*$',
            r"\1;",
            "statement-without-semicolon",
            'added the ";" that ends a CM_ or VAL_ line',
        )
    if re.match(r"\s*SG_ .*[(,\[|]-?\.\d", line):
        return work.sub(
            r"(?<=[(,\[|])(-?)\.(?=\d)",
            r"\g<1>0.",
            "number-without-zero",
            "added the 0 before a leading decimal point",
        )
    if _DIGIT_NAME_LINE.match(line):
        return _rename_digit_names(work)
    if not re.search(r"^BS_\s*:", work.value, flags=re.MULTILINE):
        pattern = r"^(?=BU_\s*:)" if re.search(r"^BU_\s*:", work.value, re.M) else r"^(?=BO_ )"
        return work.sub(pattern, "BS_:\n\n", "missing-bs", "added the BS_: line", count=1)
    return False


def _rename_digit_names(work: _Text) -> bool:
    names = set(re.findall(r"^BO_ \d+ (\d\w*)\s*:", work.value, flags=re.MULTILINE))
    names |= set(re.findall(r"^\s+SG_ (\d\w*)[\s:]", work.value, flags=re.MULTILINE))
    if not names:
        return False
    pattern = r"(?<![\w.])(" + "|".join(re.escape(n) for n in sorted(names)) + r")(?![\w.])"
    # only rewrite identifiers on definition/reference lines, never numbers in ranges
    work.value = re.sub(
        r"^(BO_|\s+SG_|VAL_|CM_ SG_|BA_ |SIG_VALTYPE_|SG_MUL_VAL_).*$",
        lambda m: _prefix_names(m.group(0), pattern),
        work.value,
        flags=re.MULTILINE,
    )
    work.repairs.append(
        DbcRepair("name-starts-with-digit", f"prefixed _ to {sorted(names)}", len(names))
    )
    return True


def _prefix_names(line: str, pattern: str) -> str:
    head, sep, tail = line.partition('"')
    fixed = re.sub(r"(?<=[ :])" + pattern[len("(?<![\\w.])") :], r"_\1", head)
    return fixed + sep + tail


_REF_PREFIX = (
    r'^(BO_|VAL_|CM_ BO_|CM_ SG_|BA_ "[^"]*" BO_|BA_ "[^"]*" SG_|SIG_VALTYPE_|BO_TX_BU_'
    r"|SG_MUL_VAL_|SIG_GROUP_) (\d+)\b"
)


def _semantic_repair(work: _Text, message: str) -> bool:
    unused = re.findall(r"VAL_ (\d+) (\w+)", message) if "unused VAL_" in message else []
    if unused:
        changed = False
        for frame_id, signal in unused:
            changed |= work.sub(
                rf"^VAL_ {frame_id} {re.escape(signal)} [^;]*;[ \t]*\r?\n?",
                "",
                "unused-val",
                f"dropped VAL_ {frame_id} {signal} (no such signal in the message)",
                dropped=True,
            )
        return changed
    if "is more than 11 bits" in message:
        ids = {
            int(i)
            for i in re.findall(r"^BO_ (\d+) ", work.value, flags=re.MULTILINE)
            if 0x7FF < int(i) < 0x8000_0000
        }

        def repl(match: re.Match[str]) -> str:
            frame_id = int(match.group(2))
            if frame_id not in ids:
                return match.group(0)
            return f"{match.group(1)} {frame_id | 0x8000_0000}"

        new = re.sub(_REF_PREFIX, repl, work.value, flags=re.MULTILINE)
        if new == work.value:
            return False
        work.value = new
        detail = f"marked {len(ids)} ids above 0x7FF as extended: " + ", ".join(
            f"0x{i:x}" for i in sorted(ids)[:8]
        )
        work.repairs.append(DbcRepair("standard-id-over-11-bits", detail, len(ids)))
        return True
    return False
