"""Tests of lenient DBC loading."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from device_bridge.dbc import load_dbc, load_dbc_string, opendbc_dir, resolve_dbc
from device_bridge.exceptions import BridgeError, DbcLoadError, DbcNotFoundError

HEADER = 'VERSION ""\n\nNS_ :\n\nBS_:\n\nBU_: XXX\n\n'


def test_published_kona_dbc_loads_after_adding_bs_and_file_is_unchanged(kona_dir: Path) -> None:
    path = kona_dir / "pcan.dbc"
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    db, report = load_dbc(path)
    assert [r.kind for r in report.repairs] == ["missing-bs"]
    assert not report.strict
    assert "UNK_07F" in report.errors[0]
    assert db.get_message_by_name("BMS_542").frame_id == 0x542
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_kona_dbc_with_bs_line_loads_strict_without_repairs(kona_dir: Path) -> None:
    db, report = load_dbc(kona_dir / "pcan.cantools.dbc")
    assert report.strict
    assert not report.repaired
    assert report.messages == len(db.messages) == 107


def test_opendbc_hyundai_generic_comments_without_bo_are_repaired() -> None:
    db, report = load_dbc(opendbc_dir() / "hyundai_kia_generic.dbc")
    assert [(r.kind, r.count) for r in report.repairs] == [("comment-without-bo", 2)]
    assert db.get_message_by_frame_id(145).comment is not None


def test_opendbc_template_imports_are_inlined() -> None:
    db, report = load_dbc(resolve_dbc("opendbc:hyundai_canfd.dbc"))
    assert report.repairs[0].kind == "import"
    assert "_hyundai_canfd_common.dbc" in report.repairs[0].detail
    assert db.get_message_by_name("LKAS").length == 16


def test_overlapping_signals_load_non_strict_without_repairs() -> None:
    db, report = load_dbc(opendbc_dir() / "vw_mqb.dbc")
    assert not report.strict
    assert not report.repaired
    assert "overlapping" in report.errors[0]
    assert len(db.messages) > 100


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ('BO_ 100 A: 8 XXX\n SG_ S : 0|8@1+ (.5,0) [0|1] "" XXX\n', "number-without-zero"),
        (
            'BO_ 100 A: 8 XXX\n SG_ S : 0|8@1+ (1,0) [0|1] "" XXX\n\nCM_ "free text"\n'
            'BO_ 101 B: 8 XXX\n SG_ T : 0|8@1+ (1,0) [0|1] "" XXX\n',
            "statement-without-semicolon",
        ),
        (
            'BO_ 100 2017_5: 8 XXX\n SG_ 0_COUNTER : 0|8@1+ (1,0) [0|1] "" XXX\n',
            "name-starts-with-digit",
        ),
        (
            'BO_ 100 A: 8 XXX\n SG_ S : 0|8@1+ (1,0) [0|1] "" XXX\n\nCM_ SG_ 100 "no name";\n',
            "comment-without-signal",
        ),
        (
            'BO_ 100 A: 8 XXX\n SG_ S : 0|8@1+ (1,0) [0|1] "" XXX\n\nVAL_ 100 GONE 1 "x" ;\n',
            "unused-val",
        ),
        (
            'BO_ 4660 A: 8 XXX\n SG_ S : 0|8@1+ (1,0) [0|1] "" XXX\n\nCM_ BO_ 4660 "big id";\n',
            "standard-id-over-11-bits",
        ),
    ],
)
def test_each_documented_repair_makes_cantools_accept_the_text(body: str, kind: str) -> None:
    db, report = load_dbc_string(HEADER + body)
    assert kind in [r.kind for r in report.repairs]
    assert db.messages


def test_ids_over_11_bits_become_extended_ids() -> None:
    body = 'BO_ 4660 A: 8 XXX\n SG_ S : 0|8@1+ (1,0) [0|1] "" XXX\n'
    db, _ = load_dbc_string(HEADER + body)
    message = db.messages[0]
    assert (message.frame_id, message.is_extended_frame) == (4660, True)


def test_unused_val_repair_is_reported_as_skipped() -> None:
    body = 'BO_ 100 A: 8 XXX\n SG_ S : 0|8@1+ (1,0) [0|1] "" XXX\n\nVAL_ 100 GONE 1 "x" ;\n'
    _, report = load_dbc_string(HEADER + body)
    assert [r.kind for r in report.skipped] == ["unused-val"]


def test_unrepairable_dbc_raises_a_typed_error() -> None:
    with pytest.raises(DbcLoadError) as info:
        load_dbc(opendbc_dir() / "toyota_2017_ref_pt.dbc")
    assert isinstance(info.value, BridgeError)
    assert "29 bits" in info.value.reason


def test_garbage_raises_dbc_load_error() -> None:
    with pytest.raises(DbcLoadError):
        load_dbc_string("this is not a DBC")


def test_missing_dbc_raises_not_found_with_the_places_looked(tmp_path: Path) -> None:
    with pytest.raises(DbcNotFoundError) as info:
        resolve_dbc("nope.dbc", dbc_dir=tmp_path)
    assert str(tmp_path / "nope.dbc") in info.value.looked_in
    with pytest.raises(FileNotFoundError):
        load_dbc(tmp_path / "nope.dbc")


def test_explicit_dbc_path_wins(tmp_path: Path, kona_dir: Path) -> None:
    path = kona_dir / "pcan.dbc"
    assert resolve_dbc("pcan.dbc", dbc_paths={"pcan.dbc": path}, dbc_dir=tmp_path) == path
