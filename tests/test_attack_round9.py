"""Attack round 9: local exists over unreadable folders, the CLI's walk, put_if_absent's tries.

Each test is an attack on this session's changes. Those whose docstring says what it
did ("said all verified") failed before this round's fixes (the bug they document);
the others held and stay as guards. Unreadable folders are tested in a child process
without root's permission override (``setpriv``), as tests/test_long_names.py does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from typing import Any

import pytest

from fault_proxy import FaultProxy, s3_result_through
from resultkit.errors import StorageError
from resultkit.results import LocalResult, RetryPolicy, S3Result

BUCKET = "rk-attack-round9"
FAST = RetryPolicy(attempts=3, initial_delay=0.001, max_delay=0.002)


def _unprivileged(*command: str) -> list[str]:
    """``command`` run without the capabilities that let root read any folder."""
    if os.geteuid() != 0:
        return list(command)
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}", *command]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = _unprivileged(sys.executable, "-m", "resultkit", *args)
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


# -- the CLI over a folder it cannot list -------------------------------------------------------
def test_cli_commands_over_an_unreadable_folder_say_so_not_all_verified(tmp_path):
    """ls, verify, gc and rm -r walked past a folder they could not list (os.walk drops
    its errors): ls hid its results, verify said "all verified" (exit 0) with them never
    checked, rm -r said there was no result under it. Now each says which folder could
    not be listed and why, exit 2, one line, no traceback."""
    r = LocalResult(dir=str(tmp_path))
    r.write(1, location="a/1.pkl")
    r.write(2, location="b/1.pkl")
    os.symlink("loop2", tmp_path / "loop1")  # a symlink loop is no folder: walked past
    os.symlink("loop1", tmp_path / "loop2")
    os.chmod(tmp_path / "b", 0)
    try:
        runs = {
            "ls": _cli("ls", "-r", str(tmp_path)),
            "verify": _cli("verify", "-r", str(tmp_path)),
            "verify b": _cli("verify", str(tmp_path / "b")),
            "gc": _cli("gc", str(tmp_path)),
            "rm -r": _cli("rm", "-r", str(tmp_path / "b")),
        }
    finally:
        os.chmod(tmp_path / "b", 0o755)
    for name, run in runs.items():
        assert run.returncode == 2, (name, run.returncode, run.stdout, run.stderr)
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in run.stderr, (name, run.stderr)
        assert f"cannot list the folder {tmp_path / 'b'} (Permission denied)" in lines[0], lines
        assert "all verified" not in run.stdout, (name, run.stdout)
    assert r.read("b/1.pkl").value == 2  # rm -r and gc removed nothing
    ok = _cli("verify", "-r", str(tmp_path))  # readable again: the loop is no problem
    assert ok.returncode == 0 and "2 results checked" in ok.stdout, (ok.stdout, ok.stderr)


# -- exists / exists_many / flows over unreadable folders ---------------------------------------
_EXISTS_CHILD = r"""
import json, sys
from resultkit.results import LocalResult
r = LocalResult(dir=sys.argv[1])
out = {}
for name, keys in [
    ("duplicates", ["a/1.pkl", "a/1.pkl", "b/1.pkl", "b/1.pkl"]),
    ("listed then refused", [f"a/{i % 3}.pkl" for i in range(90)] + ["b/1.pkl"]),
    ("listed folder refused", [f"many/{i}.pkl" for i in range(70)]),
    ("readable only", [f"a/{i % 4}.pkl" for i in range(70)] + ["loop1", "loop1/x", "a\\1.pkl"]),
]:
    try:
        out[name] = r.exists_many(keys)
    except PermissionError as exc:
        out[name] = "denied: " + str(exc)
print(json.dumps(out))
"""


def test_exists_many_with_duplicates_and_mixed_folders_raises_naming_the_refused_key(tmp_path):
    r = LocalResult(dir=str(tmp_path))
    for i in range(3):
        r.write(i, location=f"a/{i}.pkl")
    r.write(1, location="b/1.pkl")
    for i in range(70):
        r.write(i, location=f"many/{i}.pkl")
    os.symlink("loop2", tmp_path / "loop1")
    os.symlink("loop1", tmp_path / "loop2")
    os.chmod(tmp_path / "b", 0)
    os.chmod(tmp_path / "many", 0)
    try:
        command = _unprivileged(sys.executable, "-c", _EXISTS_CHILD, str(tmp_path))
        out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60)
    finally:
        os.chmod(tmp_path / "b", 0o755)
        os.chmod(tmp_path / "many", 0o755)
    answers = json.loads(out.stdout)
    for name, key in [
        ("duplicates", "b/1.pkl"),
        ("listed then refused", "b/1.pkl"),
        ("listed folder refused", "many/0.pkl"),
    ]:
        assert answers[name].startswith("denied: access denied to "), (name, answers[name])
        assert f"/{key} while trying to check" in answers[name], (name, answers[name])
    # a symlink loop is nothing there; a backslash is a folder separator, as on every storage
    expected = [True, True, True, False] * 17 + [True, True] + [False, False, True]
    assert answers["readable only"] == expected


_FLOW_CHILD = r"""
import json, os, sys
from resultkit import Flow, task
from resultkit.results import LocalResult
root = sys.argv[1]
ran = []

@task
def spoil():
    os.chmod(os.path.join(root, "t"), 0)  # the target's folder becomes unreadable mid-run
    return 1

@task(target="t/v.pkl", checkpoint=True, result=LocalResult(dir=root))
def compute(x):
    ran.append(1)
    return 42

with Flow("f") as flow:
    c = compute(spoil())
state = flow.run()
print(json.dumps({"ok": state.is_successful(), "ran": len(ran),
                  "message": str(state.result[c].message)}))
"""


def test_a_target_whose_folder_becomes_unreadable_mid_run_fails_the_task_unrun(tmp_path):
    LocalResult(dir=str(tmp_path)).write(7, location="t/v.pkl")
    os.chmod(tmp_path, 0o777)
    try:
        command = _unprivileged(sys.executable, "-c", _FLOW_CHILD, str(tmp_path))
        out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60)
    finally:
        os.chmod(tmp_path / "t", 0o755)
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert answer["ok"] is False and answer["ran"] == 0, answer  # never recomputed
    assert "access denied to file://" in answer["message"] and "t/v.pkl" in answer["message"]
    assert LocalResult(dir=str(tmp_path)).read("t/v.pkl").value == 7


# -- put_if_absent under 503 storms and a first create that lands late --------------------------
@pytest.fixture(scope="module")
def proxy(moto_server: Any) -> Any:
    with FaultProxy(moto_server.port) as p:
        yield p


def _through(
    proxy: FaultProxy, engine: str, timeout: float | None = None, prefix: str | None = None
) -> S3Result:
    return s3_result_through(proxy, BUCKET, engine, timeout=timeout, prefix=prefix)


def _race(
    r: S3Result, location: str, contenders: int = 6
) -> tuple[dict[int, bool], list[BaseException]]:
    """Each contender's answer by its number (it writes b"c<number>"), and the errors."""
    start = threading.Barrier(contenders)
    answers: dict[int, bool] = {}
    errors: list[BaseException] = []

    def contend(i: int) -> None:
        try:
            start.wait(timeout=10)
            answers[i] = r.put_if_absent(f"c{i}".encode(), location=location)
        except BaseException as exc:  # collected: the test asserts on them
            errors.append(exc)

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(contenders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a contender hung"
    return answers, errors


@pytest.mark.parametrize("engine", ["s3fs", "obstore"])
def test_racing_creators_under_a_503_storm_give_exactly_one_winner(proxy, engine):
    r = _through(proxy, engine)
    for round_ in range(3):
        proxy.fail(4, status=503, method="PUT")  # fewer than one contender's 5 tries
        answers, errors = _race(r, f"locks/storm{round_}")
        assert proxy.count("PUT", "status:503") == 4 * (round_ + 1), "the storm hit"
        assert not errors, errors
        assert sorted(answers.values()) == [False] * 5 + [True], answers
        (winner,) = [i for i, won in answers.items() if won]
        stored = r.storage.get(f"locks/storm{round_}")
        assert stored is not None and bytes(stored[0]) == f"c{winner}".encode()


def test_a_first_create_that_lands_after_the_clients_timeout_still_answers_true(proxy):
    """The first PUT is held past the client's timeout (s3fs: read_timeout; obstore's is
    fixed at 60 s), then forwarded (it lands); the call's next try is refused by it or
    wins, and either way this call's nonce is on the object: True."""
    r = _through(proxy, "s3fs", timeout=1.0)
    proxy.delay(1, ms=2500, method="PUT")
    assert r.put_if_absent(b"mine", location="locks/late") is True
    stored = r.storage.get("locks/late")
    assert stored is not None and bytes(stored[0]) == b"mine"
    assert r.put_if_absent(b"again", location="locks/late") is False


def test_exists_many_of_a_listed_folder_raises_for_a_too_long_name_as_exists_does(tmp_path):
    """exists("a/<300 bytes>") raises "too long" (as every other call), but among 64+
    keys of one folder (the folder is listed) the same key answered False: the answer
    depended on how many keys were asked. Now both raise; 249-255 bytes stay False."""
    r = LocalResult(dir=str(tmp_path))
    for i in range(70):
        r.write(i, location=f"a/{i}.pkl")
    many = [f"a/{i}.pkl" for i in range(70)]
    too_long = "a/" + "x" * 300
    for keys in ([too_long], many[:3] + [too_long], many + [too_long]):
        with pytest.raises(StorageError, match="too long"):
            r.exists_many(keys)
    assert r.exists_many([*many, "a/" + "y" * 250]) == [True] * 70 + [False]


@pytest.mark.parametrize("engine", ["s3fs", "obstore"])
def test_racing_creators_whose_winning_answer_is_lost_give_exactly_one_winner(proxy, engine):
    """The first creates land but their answers are lost (reset after the server applied
    them), amid 503s: the one whose object is there answers True, the others False."""
    r = _through(proxy, engine)
    for round_ in range(3):
        proxy.reset(2, after_upstream=True, method="PUT")
        proxy.fail(2, status=503, method="PUT")
        answers, errors = _race(r, f"locks/lost{round_}")
        assert not errors, errors
        assert sorted(answers.values()) == [False] * 5 + [True], answers
        (winner,) = [i for i, won in answers.items() if won]
        stored = r.storage.get(f"locks/lost{round_}")
        assert stored is not None and bytes(stored[0]) == f"c{winner}".encode()
        proxy.heal()


@pytest.mark.parametrize("engine", ["s3fs", "obstore"])
def test_a_landed_create_whose_check_fails_says_the_outcome_is_unknown(proxy, engine):
    """The create lands but its answer is lost, and every check of whose object is there
    (HEAD) then fails: the call said "could not create ...: Service Unavailable", read
    as "not created" while its object (a lock nobody knows it holds) was there. Now the
    error says whether this call created the object is unknown."""
    r = _through(proxy, engine)
    proxy.reset(1, after_upstream=True, method="PUT")
    proxy.fail(None, status=503, method="HEAD")
    try:
        with pytest.raises(StorageError) as info:
            r.put_if_absent(b"mine", location="locks/unsettled")
    finally:
        proxy.heal()
    message = " ".join(str(info.value).split())
    assert "locks/unsettled" in message and "Service Unavailable" in message, message
    assert "whether this call created the object is unknown" in message, message
    stored = r.storage.get("locks/unsettled")
    assert stored is not None and bytes(stored[0]) == b"mine"  # it had landed


_LOCK_CHILD = r"""
import json, os, sys
from resultkit.caching.locks import SingleFlightLock
from resultkit.results import LocalResult
r = LocalResult(dir=sys.argv[1])
out = {}
try:
    out["acquired"] = SingleFlightLock(r, "v.pkl", lease=600).acquire()
except Exception as exc:
    out["error"] = f"{type(exc).__name__}: {exc}"
try:
    out["list"] = list(r.storage.list(""))
except Exception as exc:
    out["list error"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
"""


def test_a_held_lock_in_a_folder_that_cannot_be_listed_is_not_taken_a_second_time(tmp_path):
    """A holds epoch 3 of a lock; its folder then loses read permission (write and search
    stay). Local list omitted the folder (fsspec's walk drops the error), so B listed no
    epoch, created epoch 0 and held the lock too: two holders. Now the listing raises:
    B's acquire fails naming the lock, and list("") says which folder it cannot read."""
    r = LocalResult(dir=str(tmp_path))
    from resultkit.caching.locks import SingleFlightLock

    for epoch in range(3):  # earlier holders, taken over (their epochs deleted)
        r.storage.put_if_absent(f".rklocks/v.pkl/{epoch:010d}", b"{}", {})
    holder = SingleFlightLock(r, "v.pkl", lease=600)
    assert holder.acquire() and holder._epoch == 3
    folder = tmp_path / ".rklocks" / "v.pkl"
    os.chmod(folder, 0o333)
    try:
        command = _unprivileged(sys.executable, "-c", _LOCK_CHILD, str(tmp_path))
        out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60)
    finally:
        os.chmod(folder, 0o755)
        holder.release()
    answer = json.loads(out.stdout)
    assert "acquired" not in answer, answer
    assert answer["error"].startswith("StorageError: could not list the single-flight locks")
    assert "Permission denied" in answer["error"] and str(folder) in answer["error"], answer
    assert "Permission denied" in answer["list error"], answer
    assert not folder.exists(), "released (its folder pruned): B created no epoch in it"
