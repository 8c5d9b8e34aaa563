"""The ``resultkit`` command through its real entry point (``python -m resultkit``), on Local.

Each subprocess costs the imports (about a second on 2 cores), so each test
runs a few commands and checks several things of each; pure formatting
functions are tested in-process in test_cli_helpers.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import cloudpickle

from resultkit.caching import CacheKey, ResultCacheStore
from resultkit.caching.locks import SingleFlightLock
from resultkit.cli import main
from resultkit.engine.state import Cached
from resultkit.results import LocalResult
from resultkit.results._localsafety import process_space
from resultkit.serializers import JSONSerializer


def rk(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESULTKIT_SIGNING")}
    return subprocess.run(
        [sys.executable, "-m", "resultkit", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
    )


def rk_json(*args: str) -> tuple[int, dict]:
    done = rk(*args, "--json")
    assert done.stdout.strip(), done.stderr
    return done.returncode, json.loads(done.stdout)


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The command failed with exactly one line on stderr and no traceback."""
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def _store(tmp_path: Path) -> LocalResult:
    r = LocalResult(dir=tmp_path / "store")
    r.write({"rows": 3}, location="weather/extract.pkl")
    r.write(list(range(500)), location="weather/transform.pkl")
    LocalResult(dir=tmp_path / "store", serializer=JSONSerializer()).write(
        {"mean": 11.5}, location="summary.json"
    )
    return r


def test_ls_inspect_cat_and_their_json(tmp_path, capsys):
    _store(tmp_path)
    (tmp_path / "store" / "prefect.txt").write_bytes(cloudpickle.dumps([1, 2]))
    root = str(tmp_path / "store")

    code, listing = rk_json("ls", "-r", root)
    assert code == 0
    rows = {e["key"]: e for e in listing["entries"]}
    assert set(rows) == {
        "weather/extract.pkl",
        "weather/transform.pkl",
        "summary.json",
        "prefect.txt",
    }
    assert rows["summary.json"]["serializer"] == "json" and rows["summary.json"]["record"] == "ok"
    assert rows["prefect.txt"]["record"] == "missing" and rows["prefect.txt"]["size"] > 0
    assert listing["totals"]["results"] == 4 and listing["totals"]["without_record"] == 1

    assert main(["ls", root]) == 0  # (in-process) not recursive: a folder is one row
    text = capsys.readouterr().out
    assert "weather/" in text and "2 results" in text and "weather/extract.pkl" not in text
    assert "4 results" in text and "1 without a usable record" in text

    code, shown = rk_json("inspect", f"{root}/weather/extract.pkl", "--value")
    assert code == 0 and shown["ok"] is True
    assert shown["record"]["serializer"] == "pickle" and shown["preview"] == "{'rows': 3}"

    code, value = rk_json("cat", f"file://{root}/summary.json")
    assert code == 0 and value == {"mean": 11.5}


def test_errors_are_one_line_naming_the_url(tmp_path):
    _store(tmp_path)
    (tmp_path / "store" / "prefect.txt").write_bytes(b"written by another tool")
    missing = one_error_line(rk("inspect", str(tmp_path / "store" / "never.pkl")))
    assert "nothing is stored at" in missing and "never.pkl" in missing
    assert "integrity record" not in missing
    help_text = rk("gc", "--help")
    assert help_text.returncode == 0
    assert "examples:" in help_text.stdout and "--dry-run" in help_text.stdout
    assert "2 usage or access error" in help_text.stdout


def test_verify_names_a_flipped_byte_and_exits_1(tmp_path, capsys):
    _store(tmp_path)
    target = tmp_path / "store" / "weather" / "transform.pkl"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    done = rk("verify", "-r", str(tmp_path / "store"))
    assert done.returncode == 1, done.stdout + done.stderr
    problem_lines = [line for line in done.stdout.splitlines() if line.startswith("problem")]
    assert len(problem_lines) == 1 and "weather/transform.pkl" in problem_lines[0]
    assert "3 results checked" in done.stdout
    assert main(["verify", str(tmp_path / "store" / "weather" / "extract.pkl"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["checked"] == 1 and report["problems"] == []


def test_adopt_makes_prefect1_pickles_readable_and_refuses_junk(tmp_path):
    old = tmp_path / "prefect"
    (old / "monday").mkdir(parents=True)
    (old / "extract.txt").write_bytes(cloudpickle.dumps({"rows": [1, 2]}))  # as Prefect 1 wrote it
    (old / "monday" / "load.txt").write_bytes(cloudpickle.dumps("done"))
    (old / "junk.txt").write_bytes(b"\x80\x05not a pickle")
    done = rk("adopt", "-r", str(old), "--serializer", "pickle")
    assert done.returncode == 1, done.stdout + done.stderr  # junk is refused
    assert "2 adopted" in done.stdout and "1 refused" in done.stdout
    assert "refused" in done.stderr and "junk.txt" in done.stderr
    r = LocalResult(dir=old)
    assert r.read("extract.txt").value == {"rows": [1, 2]}
    assert r.read("monday/load.txt").value == "done"
    assert not (old / "junk.txt.rkmeta").exists()  # no record for what does not deserialize


def test_gc_dry_run_changes_nothing_then_gc_cleans_but_keeps_a_locked_result(tmp_path):
    r = _store(tmp_path)
    store = tmp_path / "store"
    r.write("in use", location="busy.pkl")
    (store / "orphan.pkl").write_bytes(b"payload without record")
    two_hours_ago = time.time() - 7200  # an orphan is removed once an hour old
    os.utime(store / "orphan.pkl", (two_hours_ago, two_hours_ago))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    temp = (
        store
        / "weather"
        / f".transform.pkl.rktmp-{dead.stdout.strip()}-{process_space()}0123456789"
    )
    temp.write_bytes(b"half a payload")
    os.utime(temp, (time.time() - 60, time.time() - 60))
    stale = {"owner": "gone:1:x", "expires": time.time() - 60, "lease": 30.0}
    r.storage.put_if_absent(".rklocks/summary.json/0000000003", json.dumps(stale).encode(), {})
    lock = SingleFlightLock(r, "busy.pkl", lease=120)
    assert lock.acquire()
    try:
        before = sorted(p.relative_to(store) for p in store.rglob("*"))
        code, plan = rk_json("gc", str(store), "--older-than", "0s", "--orphans", "--dry-run")
        assert code == 0 and plan["dry_run"] is True
        assert sorted(p.relative_to(store) for p in store.rglob("*")) == before
        kinds = {(e["kind"], e["location"].rpartition("store/")[2]) for e in plan["removed"]}
        assert ("temp file", f"weather/{temp.name}") in kinds
        assert ("stale lock", "summary.json") in kinds
        assert ("payload without record", "orphan.pkl") in kinds
        assert ("old result", "weather/extract.pkl") in kinds
        assert [k["location"].rpartition("/")[2] for k in plan["kept"]] == ["busy.pkl"]

        done = rk("gc", str(store), "--older-than", "0s", "--orphans")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "kept" in done.stdout and "busy.pkl: its lock is held" in done.stdout
        assert r.read("busy.pkl").value == "in use"  # a live run's lock protects it
        assert lock.holder() is not None  # and its lock is untouched
        assert not temp.exists() and not (store / "orphan.pkl").exists()
        assert not r.exists("weather/extract.pkl") and not r.exists("summary.json")
        assert not (store / ".rklocks" / "summary.json").exists()
    finally:
        lock.release()


def _expired_entries(tmp_path: Path) -> tuple[Path, int]:
    """A cache store with entries of three tasks, one of them expired."""
    cache = LocalResult(dir=tmp_path / "cache")
    store = ResultCacheStore(cache)
    soon = datetime.now(timezone.utc) + timedelta(hours=1)
    for name in ("old", "mid", "new"):
        entry = Cached("c", "x" * 2000, input_tokens={"a": name}, cached_parameters={},
                       cached_result_expiration=soon)  # fmt: skip
        store.put(CacheKey(name, "flow"), entry)
    # Expire one entry as time would: its document and its name carry its expiry.
    docs = LocalResult(dir=tmp_path / "cache", serializer=JSONSerializer())
    [entry_file] = (tmp_path / "cache").glob("v1/old-*/entries/*.json")
    old_key = str(entry_file.relative_to(tmp_path / "cache"))
    doc = docs.read(old_key).value
    created, _, rest = entry_file.name.split("_", 2)
    doc["name"] = f"{created}_20200101T000000000000Z_{rest}"
    doc["expires"] = datetime(2020, 1, 1, tzinfo=timezone.utc)
    docs.write(doc, location=old_key.replace(entry_file.name, doc["name"]))
    docs.delete(old_key)
    values = LocalResult(dir=tmp_path / "cache")  # the stored copy is named after its entry
    moved = doc["value"]["stored"].replace(entry_file.stem, Path(doc["name"]).stem)
    values.write(values.read(doc["value"]["stored"]).value, location=moved)
    values.delete(doc["value"]["stored"])
    doc["value"]["stored"] = moved
    docs.write(doc, location=old_key.replace(entry_file.name, doc["name"]))
    return tmp_path / "cache", len(store)


def test_gc_of_a_cache_store_expired_and_max_size(tmp_path):
    cache, count = _expired_entries(tmp_path)
    assert count == 3
    code, listing = rk_json("ls", str(cache))  # a cache store lists its entries
    assert code == 0 and sorted(e["task"] for e in listing["cache_entries"]) == [
        "mid",
        "new",
        "old",
    ]
    assert [e["task"] for e in listing["cache_entries"] if e["expires"] < "2021"] == ["old"]
    assert listing["totals"]["expired"] == 1
    done = rk("gc", str(cache), "--expired")
    assert done.returncode == 0, done.stderr
    assert "removed expired entry" in done.stdout and "/v1/old-" in done.stdout
    assert len(ResultCacheStore(LocalResult(dir=cache))) == 2
    assert not list(cache.glob("v1/old-*/values/*.val"))  # the value went with its entry
    code, report = rk_json("gc", str(cache), "--max-size", "3kB")
    assert code == 0
    assert [e["kind"] for e in report["removed"]] == ["over size"]  # the older of the two
    assert "/v1/mid-" in report["removed"][0]["location"]
    assert len(ResultCacheStore(LocalResult(dir=cache))) == 1


def test_rm_results_and_folders(tmp_path):
    _store(tmp_path)
    store = tmp_path / "store"
    done = rk("rm", str(store / "summary.json"), str(store / "nothing.pkl"))
    assert done.returncode == 2  # one URL named nothing: said, and the other still removed
    assert "removed" in done.stdout and "nothing is stored at" in done.stderr
    assert not (store / "summary.json").exists() and not (store / "summary.json.rkmeta").exists()
    code, report = rk_json("rm", "-r", str(store / "weather"))
    assert code == 0 and len(report["removed"]) == 2
    assert not list((store / "weather").glob("*.pkl*"))


FLOW = """
from resultkit import Flow, Parameter, task
from resultkit.results import LocalResult

@task(target="{task_name}-{n}.pkl", checkpoint=True)
def make(n):
    print("making", n)  # a task that prints: never inside the --json document
    return list(range(n))

@task
def total(xs):
    return sum(xs)

@task
def boom(x):
    raise ValueError("no good")

with Flow("numbers", result=LocalResult(dir=__file__ + ".results")) as flow:
    n = Parameter("n", default=3)
    total(make(n))

with Flow("broken") as broken:
    boom(1)

if __name__ == "__main__":
    raise SystemExit("the command must not run the file as __main__")
"""


def test_run_a_flow_table_summary_and_params(tmp_path, capsys):
    path = tmp_path / "flows.py"
    path.write_text(textwrap.dedent(FLOW))
    first = rk("run", str(path), "--flow", "numbers", "--param", "n=4")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "make" in first.stdout and "Success" in first.stdout  # the table
    assert "2 ran, 0 cached, 0 failed" in first.stdout
    code, again = rk_json("run", str(path), "--flow", "numbers", "--param", "n=4")
    assert code == 0 and again["cached"] == 1 and again["ran"] == 1  # make served from its target
    code, failed = rk_json("run", str(path), "--flow", "broken")
    assert code == 1 and failed["failed"] == 1 and "ValueError: no good" in failed["failures"][0]
    assert main(["run", str(path)]) == 2  # (in-process)
    several = capsys.readouterr().err
    assert "several flows (broken, numbers)" in several and "--flow" in several


def test_verify_checks_every_result_of_a_larger_tree(tmp_path):
    """verify reads in threads: every result checked once, none reported twice."""
    r = LocalResult(dir=tmp_path / "many")
    for i in range(60):
        r.write(i, location=f"part-{i % 7}/{i}.pkl")
    (tmp_path / "many" / "part-3" / "10.pkl").write_bytes(b"damaged")
    code, report = rk_json("verify", "-r", str(tmp_path / "many"))
    assert code == 1 and report["checked"] == 60
    assert [p["location"].rpartition("many/")[2] for p in report["problems"]] == ["part-3/10.pkl"]
