"""The command's pure parts in-process: parsing, formatting, the lock and temp-file helpers,
memory:// URLs (a process's own), hostile names and the error guard."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

from resultkit._cli._common import (
    CliError,
    Output,
    guarded,
    human_age,
    human_size,
    parse_duration,
    parse_size,
)
from resultkit._cli._open import _storage_options, parse_options
from resultkit._cli._serializers import serializer_named
from resultkit._cli.listing import expiry_of, preview
from resultkit._cli.run import parse_params
from resultkit.caching.locks import SingleFlightLock, lock_holders, remove_stale_lock
from resultkit.cli import main
from resultkit.results import LocalResult, MemoryResult, from_url
from resultkit.results._localsafety import is_dead_writer_temp, process_space


def test_sizes_durations_and_ages():
    assert parse_size("10GB") == 10_000_000_000 and parse_size("2GiB") == 2 * 2**30
    assert parse_size("500 mb") == 500_000_000 and parse_size("0") == 0
    assert parse_duration("30d") == 30 * 86400 and parse_duration("12h") == 43200
    for bad_size, bad_age in (("ten", "30"), ("10XB", "3y"), ("-1GB", "d")):
        with pytest.raises(CliError, match="500MB"):
            parse_size(bad_size)
        with pytest.raises(CliError, match="30d"):
            parse_duration(bad_age)
    assert [human_size(n) for n in (0, 999, 1000, 1_234_567, 5 * 10**12)] == [
        "0 B", "999 B", "1.0 kB", "1.2 MB", "5.0 TB",
    ]  # fmt: skip
    now = datetime(2026, 1, 2, tzinfo=timezone.utc)
    ages = [now - timedelta(seconds=5), now - timedelta(minutes=5), now - timedelta(days=40)]
    assert [human_age(a, now) for a in ages] == ["5s", "5m", "40d"]
    assert human_age(now + timedelta(hours=2), now) == "in 2h" and human_age(None) == "-"


def test_options_params_serializers_and_previews():
    assert parse_options(["anon=true", "n=3", 'client_kwargs={"a": 1}', "profile=dev"]) == {
        "anon": True, "n": 3, "client_kwargs": {"a": 1}, "profile": "dev",
    }  # fmt: skip
    with pytest.raises(CliError, match="not K=V"):
        parse_options(["anon"])
    assert _storage_options("gs://b/p", "http://gcs:4443", [])["endpoint_url"] == "http://gcs:4443"
    s3 = _storage_options("s3://b/p", "http://minio:9000", [])
    assert s3["endpoint_url"] == "http://minio:9000" and s3["config_kwargs"]["retries"]
    with pytest.raises(CliError, match="connection_string"):
        _storage_options("az://c/p", "http://azurite:10000", [])
    assert parse_params(["n=3", "day=2026-11-23", "xs=[1, 2]"]) == {
        "n": 3, "day": "2026-11-23", "xs": [1, 2],
    }  # fmt: skip
    with pytest.raises(CliError, match="NAME=VALUE"):
        parse_params(["1x=2"])
    for name in ("pickle", "json", "datetime", "compressed:gzip/json", "compressed:zlib/pickle"):
        assert serializer_named(name).name == name
    with pytest.raises(CliError, match="unknown serializer 'yaml'"):
        serializer_named("yaml")
    with pytest.raises(CliError, match="custom compress"):
        serializer_named("compressed:custom(a.b,c.d)/pickle")
    assert preview(list(range(3))) == "[0, 1, 2]"
    long = preview({i: "x" * 300 for i in range(40)})
    assert long.endswith("...") and len(long.splitlines()) == 13
    entry = "v1/t-1/entries/20261101T000000000000Z_20261102T000000000000Z_0123456789abcdef.json"
    assert expiry_of(entry) == datetime(2026, 11, 2, tzinfo=timezone.utc)
    assert expiry_of(entry.replace("entries", "values").replace(".json", ".val")) is not None
    assert expiry_of("weather/extract.pkl") is None


def test_lock_holders_and_stale_lock_removal():
    r = MemoryResult()
    live = SingleFlightLock(r, "live.pkl", lease=60)
    assert live.acquire()
    try:
        stale = {"owner": "gone:1:x", "expires": time.time() - 1, "lease": 30.0}
        for epoch in (1, 2):
            r.storage.put_if_absent(
                f".rklocks/dead/x.pkl/000000000{epoch}", json.dumps(stale).encode(), {}
            )
        holders = lock_holders(r)
        assert set(holders) == {"live.pkl", "dead/x.pkl"} and holders["dead/x.pkl"] is None
        assert holders["live.pkl"] is not None and holders["live.pkl"]["owner"] == live.owner
        assert remove_stale_lock(r, "live.pkl") == 0  # held: left alone
        assert remove_stale_lock(r, "dead/x.pkl") == 2
        assert set(lock_holders(r)) == {"live.pkl"} and live.holder() is not None
    finally:
        live.release()
    assert lock_holders(r) == {}


def test_dead_writer_temps_are_told_from_live_ones():
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    here = process_space()
    now = time.time()
    assert is_dead_writer_temp(f".a.pkl.rktmp-{dead}-{here}0123456789", now - 60, now)
    assert not is_dead_writer_temp(f".a.pkl.rktmp-{dead}-{here}0123456789", now - 1, now)  # young
    assert not is_dead_writer_temp(f".a.pkl.rktmp-{os.getpid()}-{here}01234", now - 600, now)
    assert not is_dead_writer_temp(f".a.pkl.rktmp-{dead}-zzzzzz0123", now - 3600, now)  # elsewhere
    assert is_dead_writer_temp(f".a.pkl.rktmp-{dead}-zzzzzz0123", now - 2 * 86400, now)
    assert not is_dead_writer_temp("a.pkl", 0.0, now)


def test_every_command_on_a_memory_url(capsys):
    """memory:// lives in one process: the commands run in-process through main()."""
    r = from_url("memory://cli-memory")
    r.write({"a": 1}, location="x/one.pkl")
    r.write([2], location="two.pkl")
    r.storage.fs.pipe(r.storage.path("foreign.pkl"), __import__("cloudpickle").dumps("old"))
    assert main(["ls", "-r", "memory://cli-memory", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert {e["key"] for e in listing["entries"]} == {"x/one.pkl", "two.pkl", "foreign.pkl"}
    assert main(["verify", "-r", "memory://cli-memory"]) == 1
    assert "foreign.pkl" in capsys.readouterr().out
    assert main(["adopt", "memory://cli-memory/foreign.pkl"]) == 0
    assert main(["cat", "memory://cli-memory/foreign.pkl"]) == 0
    assert capsys.readouterr().out.strip().endswith("old")
    assert main(["inspect", "memory://cli-memory/x/one.pkl", "--value"]) == 0
    assert "{'a': 1}" in capsys.readouterr().out
    assert main(["gc", "memory://cli-memory", "--older-than", "0s", "--dry-run"]) == 0
    assert "3 would remove" in capsys.readouterr().out and r.exists("two.pkl")
    assert main(["rm", "-r", "memory://cli-memory/x"]) == 0
    assert not r.exists("x/one.pkl") and r.exists("two.pkl")


def test_hostile_names_are_shown_escaped_and_never_removed_as_orphans(tmp_path, capsys):
    store = LocalResult(dir=tmp_path)
    store.write(1, location="[bold]x[/bold].pkl")  # markup in a name prints as written
    (tmp_path / "new\nline.pkl").write_bytes(b"written by someone else")
    (tmp_path / "esc\x1b[31m.pkl").write_bytes(b"x")
    os.symlink("/etc/passwd", tmp_path / "link.pkl")
    os.mkfifo(tmp_path / "fifo.pkl")
    os.symlink("..", tmp_path / "loop")
    assert main(["ls", "-r", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "new\\nline.pkl" in out and "esc\\x1b[31m.pkl" in out and "\x1b" not in out
    assert "[bold]x[/bold]" in out  # (the folder "[bold]x[" holds "bold].pkl")
    assert "link.pkl" not in out and "fifo.pkl" not in out  # never a result
    assert main(["verify", "-r", str(tmp_path)]) == 1
    assert "control character" in capsys.readouterr().out
    assert main(["gc", str(tmp_path), "--orphans"]) == 0
    assert (tmp_path / "new\nline.pkl").exists() and (tmp_path / "fifo.pkl").exists()


def test_missing_bucket_and_the_guard(moto_server, capsys):
    url = "s3://rk-cli-no-such-bucket/prefix"
    assert main(["verify", url, "--endpoint-url", moto_server.url]) == 2
    err = capsys.readouterr().err
    assert "bucket 'rk-cli-no-such-bucket' does not exist" in err and len(err.splitlines()) == 1

    class Args:
        command = "verify"
        url = "s3://b/x"

    def interrupted(args, out):
        raise KeyboardInterrupt

    def broken(args, out):
        raise RuntimeError("a client's\nown error")

    assert guarded(interrupted, Args(), Output(False)) == 130
    assert guarded(broken, Args(), Output(False)) == 2
    err = capsys.readouterr().err
    assert "interrupted" in err and "s3://b/x: RuntimeError: a client's own error" in err


def test_local_errors_in_process(tmp_path, capsys):
    LocalResult(dir=tmp_path).write({"rows": 3}, location="extract.pkl")
    (tmp_path / "prefect.txt").write_bytes(b"written by another tool")
    assert main(["cat", str(tmp_path / "extract.pkl")]) == 0
    assert capsys.readouterr().out.strip() == "{'rows': 3}"
    assert main(["ls", str(tmp_path / "extract.pkl"), "--json"]) == 0  # one result
    [row] = json.loads(capsys.readouterr().out)["entries"]
    assert row["key"] == "extract.pkl" and row["serializer"] == "pickle" and row["record"] == "ok"
    assert main(["inspect", str(tmp_path)]) == 2
    assert "(it is a folder; name a stored result in it)" in capsys.readouterr().err
    assert main(["cat", str(tmp_path / "prefect.txt")]) == 1
    err = capsys.readouterr().err
    assert "no integrity record" in err and "prefect.txt" in err and len(err.splitlines()) == 1
    assert main(["ls", str(tmp_path), "--endpoint-url", "http://x"]) == 2
    assert "--endpoint-url applies to s3:// and gs://" in capsys.readouterr().err
    assert main(["gc", str(tmp_path / "extract.pkl")]) == 2
    assert "is one result; gc takes the folder" in capsys.readouterr().err


def test_dead_endpoint_and_missing_credentials(moto_server, monkeypatch, capsys):
    url = "s3://rk-cli/anything"
    assert main(["verify", "-r", url, "--endpoint-url", "http://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert "127.0.0.1:1" in err and "--endpoint-url" in err and len(err.splitlines()) == 1
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # A client of its own (not one cached with the credentials of another test).
    args = ["--endpoint-url", moto_server.url, "--storage-option", "skip_instance_cache=true"]
    assert main(["inspect", f"{url}/x.pkl", *args]) == 2
    err = capsys.readouterr().err
    assert "no credentials were found" in err and "--storage-option" in err
    assert len(err.splitlines()) == 1


def test_gc_of_a_subfolder_keeps_what_a_run_rooted_higher_up_has_locked(tmp_path, capsys):
    """A run's lock lives under its Result's root, above the folder gc is given."""
    root = LocalResult(dir=tmp_path / "results")
    root.write("busy", location="weather/x.pkl")
    root.write("idle", location="weather/y.pkl")
    (tmp_path / "results" / "weather" / "foreign.txt").write_bytes(b"another tool's, not adopted")
    lock = SingleFlightLock(root, "weather/x.pkl", lease=120)
    assert lock.acquire()
    try:
        assert main(["gc", str(tmp_path / "results" / "weather"), "--older-than", "0s"]) == 0
        out = capsys.readouterr().out
        assert "x.pkl: its lock is held" in out and "removed old result" in out
        assert root.read("weather/x.pkl").value == "busy" and not root.exists("weather/y.pkl")
        assert root.exists("weather/foreign.txt")  # only --orphans removes a payload without record
    finally:
        lock.release()


def test_temp_objects_of_object_stores_go_after_a_day():
    from resultkit._cli._gcplan import _temp_is_garbage
    from resultkit._cli._inventory import Item
    from resultkit.results import S3Result

    s3 = S3Result("any-bucket", endpoint_url="http://127.0.0.1:1")  # no request is made
    old = datetime.now(timezone.utc) - timedelta(days=2)
    fresh = datetime.now(timezone.utc) - timedelta(hours=1)
    name = "runs/.big.pkl.rktmp-4242-abcdef0123"
    assert _temp_is_garbage(s3, Item(name, 10, old))
    assert not _temp_is_garbage(s3, Item(name, 10, fresh))  # an upload may still be under way
    mine = f"runs/.big.pkl.rktmp-{os.getpid()}-abcdef0123"
    assert not _temp_is_garbage(s3, Item(mine, 10, old))  # this process's own upload


def test_gc_and_rm_never_touch_what_is_not_a_result(tmp_path, monkeypatch, capsys):
    # The home folder and the disk's root are refused outright.
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["gc", str(tmp_path), "--orphans", "--dry-run"]) == 2
    assert "not a results folder" in capsys.readouterr().err
    # A folder with no result: --orphans would take every file, so it is refused.
    project = tmp_path / "proj"
    (project / "src").mkdir(parents=True)
    (project / "src" / "main.py").write_text("print('mine')\n")
    assert main(["gc", str(project), "--orphans"]) == 2
    assert (project / "src" / "main.py").exists()
    # rm -r deletes results only, never the other files beside them.
    r = LocalResult(dir=project / "results")
    r.write(1, location="one.pkl")
    (project / "results" / "notes.txt").write_text("keep me")
    assert main(["rm", "-r", str(project / "results")]) == 0
    assert not (project / "results" / "one.pkl").exists()
    assert (project / "results" / "notes.txt").read_text() == "keep me"


def test_gc_of_a_parent_folder_keeps_what_a_run_below_holds_and_its_lock(tmp_path):
    below = LocalResult(dir=tmp_path / "nest" / "sub")
    below.write("in use", location="v.pkl")
    lock = SingleFlightLock(below, "v.pkl", lease=60)
    assert lock.acquire()
    try:
        assert main(["gc", str(tmp_path / "nest"), "--older-than", "0s", "--orphans"]) == 0
        assert (tmp_path / "nest" / "sub" / "v.pkl").exists()
        assert lock_holders(below)["v.pkl"] is not None  # the lock itself is no orphan
    finally:
        lock.release()
