"""The README's first command: the example pipeline, run twice; and the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from resultkit.cli import main
from resultkit.results import LocalResult

ROOT = Path(__file__).resolve().parent.parent


def test_example_pipeline_second_run_is_cached(tmp_path):
    cmd = [sys.executable, str(ROOT / "examples" / "pipeline.py"), str(tmp_path)]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "computed everything" in first.stdout
    assert "Retrying" in first.stderr  # the flaky load retried
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert "served from cache: extract, transform" in second.stdout.replace("\n", " ")
    assert "Task 'extract': Running" not in second.stderr


def test_example_default_dir_is_under_home(tmp_path):
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "pipeline.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / ".resultkit" / "results" / "weather").is_dir()


def test_cli_inspect(tmp_path, capsys):
    written = LocalResult(dir=tmp_path).write({"a": 1}, location="x.pkl")
    assert main(["inspect", written.location]) == 0
    out = capsys.readouterr().out
    assert "pickle" in out and written.record.digest in out
    (tmp_path / "x.pkl").write_bytes(b"tampered")
    assert main(["inspect", written.location]) == 1
    assert "ResultCorruptError" in capsys.readouterr().out


def test_cli_version(capsys):
    assert main(["version"]) == 0
    assert "0.1.0" in capsys.readouterr().out


def test_cli_inspect_missing_file_says_nothing_stored(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "never-written.pkl")]) == 1
    out = capsys.readouterr().out
    assert "nothing is stored" in out and "integrity record" not in out


def test_cli_inspect_payload_without_record(tmp_path, capsys):
    (tmp_path / "foreign.pkl").write_bytes(b"written by another tool")
    assert main(["inspect", str(tmp_path / "foreign.pkl")]) == 1
    assert "no integrity record" in capsys.readouterr().out


def test_cli_inspect_any_serializer(tmp_path, capsys):
    from resultkit.serializers import JSONSerializer

    written = LocalResult(dir=tmp_path, serializer=JSONSerializer()).write([1], location="j.json")
    assert main(["inspect", written.location]) == 0
    assert "json" in capsys.readouterr().out
