"""The benchmark table runs end to end in its tiny mode, so it cannot rot (no timing asserts)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_tiny_benchmark_prints_every_row_with_a_number(tmp_path, moto_server):
    report_path = tmp_path / "bench.json"
    missing = str(tmp_path / "no-such-venv" / "python")
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "run.py"),
            "--tiny",
            "--prefect1-python",
            missing,
            "--prefect3-python",
            missing,
            "--json",
            str(report_path),
            "--moto-port",  # the session's moto, behind the benchmark's latency proxy
            str(moto_server.port),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    for impl in ("prefect1", "prefect3"):
        assert f"skipped: {impl} (no interpreter at {missing}" in out.stdout, out.stdout
    report = json.loads(report_path.read_text())
    issue_rows = {
        "large_read": "joblib",
        "large_write": "joblib",
        "warm_flow": "joblib",
        "small_write": "raw pickle",
        "small_read": "raw pickle",
        "s3_checkpoints": "serial",
        "exists_many_4": "resultkit, 4 exists()",
        "numpy_read": "joblib",
        "cold_flow": "prefect1",
    }
    assert set(issue_rows) <= set(report["cases"]), sorted(report["cases"])
    for case, impls in report["cases"].items():
        ours = report["results"]["resultkit"].get(case, {})
        assert isinstance(ours.get("median"), float) and ours["median"] > 0, (case, ours)
        for impl in impls:
            if impl == "resultkit" or impl in report["skipped"]:
                continue
            theirs = report["results"][impl].get(case, {})
            assert isinstance(theirs.get("median"), float), (case, impl, theirs)
    # Every case is a row of the printed table, and every measured baseline has a ratio.
    for case in report["cases"]:
        assert re.search(rf"│ {case}: .*│ +\d+\.\d+ (us|ms|s) +│", out.stdout), case
    ratios = re.findall(r"│ +(\d+\.\d\d)x\*? │", out.stdout)
    measured = sum(
        1
        for case, impls in report["cases"].items()
        for impl in impls
        if impl != "resultkit" and impl not in report["skipped"]
    )
    assert len(ratios) == measured, (len(ratios), measured, out.stdout)
    assert "goals met:" in out.stdout
    # Goal rows are measured again in turns (lockstep.py): one pair per run (tiny: 1 run).
    for row in ("large_read / joblib", "s3_checkpoints / serial", "numpy_write / joblib"):
        pairs = report["paired"][row]
        baseline = row.split(" / ")[1]
        assert len(pairs["resultkit"]) == len(pairs[baseline]) == 1, (row, pairs)
        assert pairs["ratio"] == pairs[baseline][0] / pairs["resultkit"][0]
    assert len(re.findall(r"\d\.\d\dx\* │", out.stdout)) == len(report["paired"])


def test_only_runs_the_cases_named_and_an_unknown_name_lists_them(tmp_path):
    report_path = tmp_path / "bench.json"
    missing = str(tmp_path / "no-such-venv" / "python")
    base = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--tiny"]
    base += ["--prefect1-python", missing, "--prefect3-python", missing]
    out = subprocess.run(
        [*base, "--only", "exists_many_4", "--json", str(report_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert set(report["results"]["resultkit"]) == {"exists_many_4"}
    wrong = subprocess.run(
        [*base, "--only", "help"], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert wrong.returncode == 2
    assert "no case help" in wrong.stderr and "large_read" in wrong.stderr


def test_the_small_value_is_about_1_kb_pickled():
    """The small-value rows say "~1 KB": the value they write is that size (it was 359 bytes)."""
    import pickle

    for name in ("cases", "local_cases"):
        source = (ROOT / "benchmarks" / f"{name}.py").read_text()
        line = next(x for x in source.splitlines() if x.startswith("SMALL = "))
        value = eval(line.split("=", 1)[1].split("#")[0])  # a literal dict
        assert 900 <= len(pickle.dumps(value, protocol=5)) <= 1100, name
