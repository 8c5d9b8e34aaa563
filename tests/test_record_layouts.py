"""benchmarks/record_layouts.py: the three record layouts it times really store, verify and
detect damage, and its tiny mode prints a row for each (behaviour only, no timing asserts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import xxhash

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

import record_layouts  # noqa: E402
from record_io import XATTR_NAME, Corrupt  # noqa: E402

STORED = (record_layouts.Sidecar, record_layouts.Xattr, record_layouts.OneFile)


def test_tiny_mode_prints_a_row_for_each_layout(tmp_path):
    report = tmp_path / "layouts.json"
    out = subprocess.run(
        [sys.executable, str(BENCH / "record_layouts.py"), "--tiny", "--folder", str(tmp_path)]
        + ["--json", str(report)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    rows = {line.split("|")[1].strip() for line in out.stdout.splitlines() if line.startswith("|")}
    assert {"sidecar", "xattr", "one file", "raw in place"} <= rows, out.stdout
    results = json.loads(report.read_text())["results"]
    for layout in ("sidecar", "xattr", "one file", "raw in place"):
        for op in ("write", "read", "warm"):
            assert results[layout][op]["median_us"] > 0, (layout, op)
    assert results["sidecar"]["write"]["ratio"] == 1.0
    # The xattr facts are checked on this machine, not assumed.
    assert "setting one moves ctime: True" in out.stdout, out.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["layouts.json"]  # its temp folder is gone


@pytest.mark.parametrize("layout_class", STORED, ids=lambda c: c.name)
def test_each_layout_reads_back_what_it_wrote_with_a_digest_that_verifies(tmp_path, layout_class):
    layout = layout_class(str(tmp_path / "layout"))
    layout.prepare(record_layouts.PAYLOAD)
    for value in (b"second value " * 90, b"short", record_layouts.PAYLOAD):
        layout.write(value)
        data, meta = layout.read()
        assert data == value
        assert meta["digest"] == "xxh3_128:" + xxhash.xxh3_128(value).hexdigest()
        assert meta["size"] == str(len(value))


@pytest.mark.parametrize("layout_class", STORED, ids=lambda c: c.name)
def test_each_layout_detects_a_flipped_payload_byte(tmp_path, layout_class):
    layout = layout_class(str(tmp_path / "layout"))
    layout.prepare(record_layouts.PAYLOAD)
    layout.write(record_layouts.PAYLOAD)
    at = layout.payload_offset() + 100
    with open(layout.path, "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0x01]))
    with pytest.raises(Corrupt, match="does not match its record"):
        layout.read()


@pytest.mark.parametrize("layout_class", STORED, ids=lambda c: c.name)
def test_each_layouts_warm_check_sees_a_new_write(tmp_path, layout_class):
    layout = layout_class(str(tmp_path / "layout"))
    layout.prepare(record_layouts.PAYLOAD)
    layout.read()
    layout.keep()
    assert layout.unchanged()
    layout.write(record_layouts.PAYLOAD)  # the same bytes again: still a new write
    assert not layout.unchanged()


def test_an_xattr_record_change_alone_fails_the_one_lstat_warm_check(tmp_path):
    # The xattr layout's warm check looks at the payload file only: it relies on a
    # change of the attribute moving the file's change time.
    layout = record_layouts.Xattr(str(tmp_path / "layout"))
    layout.prepare(record_layouts.PAYLOAD)
    layout.keep()
    os.setxattr(layout.path, XATTR_NAME, os.getxattr(layout.path, XATTR_NAME) + b" ")
    assert not layout.unchanged()
