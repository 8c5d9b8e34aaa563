"""Round-5 attack: bugs found in this round's changes (each fixed; each test failed before
its fix), and what held. The findings:
* BatchError: a cause whose __str__ raises breaks the BatchError itself; a cause
  whose message starts with a blank line is quoted as empty; the forked-obstore
  ConfigurationError is cut before its fix (spawn / forkserver / engine='s3fs').
* warn_user: a ThreadExecutor task's warning points at concurrent/futures/thread.py;
  under ``-W error`` the warning fails the task as "internal error ... please report it".
* obstore: a child forked after the user's own obstore use hangs, its parent gets SIGSEGV.
* from_url / S3Result: config_kwargs that is not a mapping, and an option s3fs does not take
  (engine=), are not refused when made.
* lockstep: a worker line starting with "{" that is not JSON crashes the driver; a side
  that ended its case sets up its next case during the other side's last timed run.
"""

from __future__ import annotations

import glob
import os
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from resultkit import Flow, task
from resultkit.engine.executors import ThreadExecutor
from resultkit.errors import ConfigurationError
from resultkit.results import LocalResult, _obstore
from resultkit.results._batch import BatchError

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

import lockstep  # noqa: E402

pytestmark = pytest.mark.timeout(60)


# -- BatchError --------------------------------------------------------------------------------
class _UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ is broken")


def test_batch_error_survives_a_cause_whose_str_raises():
    cause = _UnprintableError()
    error = BatchError("write_many", [1, cause], [("s3://b/k.pkl", cause)])
    assert "k.pkl" in str(error) and "_UnprintableError" in str(error)


def test_batch_error_quotes_a_cause_whose_message_starts_with_a_blank_line():
    cause = ValueError("\nthe disk is full")
    assert "the disk is full" in str(BatchError("write_many", [cause], [("k.pkl", cause)]))


def test_batch_error_of_a_forked_obstore_child_keeps_the_fix(monkeypatch):
    # The exact error a forked child's items get (write_many / read_many there).
    monkeypatch.setattr(_obstore, "_forked_from", os.getpid() + 1)
    with pytest.raises(ConfigurationError) as refused:
        _obstore._requests_allowed()
    cause = refused.value
    message = str(BatchError("write_many", [cause], [("s3://b/k.pkl", cause)]))
    assert "spawn" in message and "engine='s3fs'" in message, message


# -- warn_user ---------------------------------------------------------------------------------
def _damaged_target_flow(tmp_path: Path) -> tuple[Flow, str]:
    results = LocalResult(dir=str(tmp_path))

    @task(target="t/{task_name}.pkl", checkpoint=True, result=results)
    def make() -> int:
        return 1

    with Flow("attack-warn") as flow:
        make()
    flow.run(executor=ThreadExecutor(2))
    for path in glob.glob(str(tmp_path / "t" / "*")):
        with open(path, "r+b") as damaged:
            damaged.write(b"XXXX")
    return flow, str(tmp_path)


def test_a_thread_executor_warning_points_at_the_users_flow_run(tmp_path):
    flow, _ = _damaged_target_flow(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        state = flow.run(executor=ThreadExecutor(2))
    assert state.is_successful()
    files = {os.path.basename(w.filename) for w in caught}
    assert files == {os.path.basename(__file__)}, files


def test_warnings_as_errors_are_not_reported_as_an_internal_error(tmp_path):
    flow, _ = _damaged_target_flow(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        state = flow.run(executor=ThreadExecutor(2))
    text = " ".join(str(s) for s in state.result.values())
    assert "please report it" not in text, text


# -- benchmarks/lockstep.py ----------------------------------------------------------------------
WORKER = textwrap.dedent(
    """
    import json, sys, time
    sys.path.insert(0, {bench!r})
    import harness, lockstep
    name, log, junk = sys.argv[1], sys.argv[2], sys.argv[3] == "junk"
    lockstep.ACTIVE = True
    out = {{}}

    def busy(tag, seconds):
        with open(log, "a") as f:
            f.write(tag + "+\\n")
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:  # work, not a wait
            pass
        with open(log, "a") as f:
            f.write(tag + "-\\n")

    for case in ("case0", "case1"):
        if case == "case1":
            busy(name + "setup", 0.3)  # the next case's untimed setup
        lockstep.start_case(case)
        if junk:
            print("{{not json: a case's own output}}", flush=True)
        times = harness.timed(lambda: busy(name, 0.3), 1)
        lockstep.end_case()
        out[case] = {{"median": 0.0, "times": times}}
    print(json.dumps({{name: out}}))
    """
)


@pytest.fixture
def worker(tmp_path: Path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(bench=str(BENCH)))
    log = tmp_path / "runs.log"

    def command(name: str, junk: bool = False) -> list[str]:
        return [sys.executable, str(script), name, str(log), "junk" if junk else "-"]

    return command, log


def test_lockstep_driver_survives_a_worker_line_that_looks_like_json(worker):
    command, _ = worker
    paired, _, _ = lockstep.run_in_lockstep(command("A", junk=True), command("B"), {})
    assert set(paired) == {"case0", "case1"}


def test_lockstep_no_setup_of_one_side_inside_the_others_timed_run(worker):
    command, log = worker
    lockstep.run_in_lockstep(command("A"), command("B"), {})
    inside: list[str] = []
    running: str | None = None
    for mark in log.read_text().split():
        tag, edge = mark[:-1], mark[-1]
        if tag in ("A", "B"):
            running = tag if edge == "+" else None
        elif running is not None and not tag.startswith(running):
            inside.append(f"{mark} during {running}'s timed run")
    assert inside == [], inside


# -- obstore + fork: a runtime started by the user's own obstore use ----------------------------
FORKED_AFTER_USERS_OBSTORE = """
import os, signal, sys, time, uuid
import obstore
from obstore.store import MemoryStore
from resultkit.results import S3Result

obstore.put(MemoryStore(), "k", b"v")  # the user's own obstore use starts its runtime
r = S3Result("rk-attack5", prefix=uuid.uuid4().hex, endpoint_url=sys.argv[1], engine="obstore",
             storage_options={"key": "testing", "secret": "testing"})
if not r.fs.exists("rk-attack5"):
    r.fs.mkdir("rk-attack5")
pid = os.fork()
if pid == 0:
    signal.alarm(8)  # a hung child ends (SIGALRM's default action) instead of lingering
    try:
        r.write(1, "child.pkl")
        print("child: wrote", flush=True)
    except Exception as exc:
        print("child:", type(exc).__name__, flush=True)
    os._exit(0)
_, status = os.waitpid(pid, 0)
print("child exit:", os.waitstatus_to_exitcode(status), flush=True)
r.write(2, "parent.pkl")
print("parent:", r.read("parent.pkl").value, flush=True)
"""


def test_a_child_forked_after_the_users_own_obstore_use_is_refused_and_the_parent_lives(
    moto_server, tmp_path
):
    """Was: the child hung at its first request and the parent died of SIGSEGV.

    The guard only knows of requests resultkit sent; the child's request on the
    runtime it inherited registers its socket in the epoll instance both share.
    """
    import subprocess

    script = tmp_path / "forked_after_users_obstore.py"
    script.write_text(FORKED_AFTER_USERS_OBSTORE)
    out = subprocess.run(
        [sys.executable, str(script), moto_server.url],
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert out.returncode == 0, (out.returncode, out.stdout, out.stderr[-1000:])
    assert "child: ConfigurationError" in out.stdout or "child: wrote" in out.stdout, out.stdout
    assert "parent: 2" in out.stdout, out.stdout


# -- from_url: what held (backs /tmp/readme/attack.md) -----------------------------------------
def test_from_url_s3a_gets_s3results_client_defaults_and_a_chained_url_does_not():
    from resultkit.results import S3Result, from_url

    defaults = S3Result("b").fs.config_kwargs
    assert from_url("s3a://b/p").fs.config_kwargs == defaults
    mine = from_url("s3a://b/p", config_kwargs={"max_pool_connections": 3, "user_agent": None})
    assert mine.fs.config_kwargs["max_pool_connections"] == 3
    assert mine.fs.config_kwargs["user_agent"] is None
    chained = from_url("simplecache::s3://b/p")  # fsspec builds this one: yours, as given
    assert chained.fs.fs.config_kwargs == {}


def test_from_url_refuses_a_misspelt_config_option_when_made():
    from resultkit.results import from_url

    with pytest.raises(ConfigurationError, match="did you mean 'max_pool_connections'"):
        from_url("s3://b/p", config_kwargs={"max_pool_conections": 3})


def test_config_kwargs_that_is_not_a_mapping_is_a_configuration_error():
    """Was: a raw ValueError ('dictionary update sequence element #0 ...')."""
    from resultkit.results import S3Result

    with pytest.raises(ConfigurationError, match="config_kwargs"):
        S3Result("b", storage_options={"config_kwargs": "max_pool_connections=3"})


def test_from_url_with_an_option_s3fs_does_not_take_is_refused_when_made():
    """Was: made without complaint; the first write was a StorageError wrapping
    'AioSession.__init__() got an unexpected keyword argument' (engine= is S3Result's)."""
    from resultkit.results import from_url

    with pytest.raises(ConfigurationError, match="engine"):
        from_url("s3://b/p", engine="obstore")


# -- obstore + fork: what held (backs /tmp/readme/attack.md) -----------------------------------
FORKED_BATCHES = """
import os, signal, sys, uuid
from resultkit.errors import ConfigurationError
from resultkit.results import BatchError, S3Result

r = S3Result("rk-attack5", prefix=uuid.uuid4().hex, endpoint_url=sys.argv[1], engine="obstore",
             storage_options={"key": "testing", "secret": "testing"})
if not r.fs.exists("rk-attack5"):
    r.fs.mkdir("rk-attack5")
r.write(0, "parent.pkl")  # obstore's runtime runs here now
pid = os.fork()
if pid == 0:
    signal.alarm(20)
    def outcome(call):
        try:
            call()
            return "ok"
        except BatchError as exc:
            kinds = {type(e).__name__ for _, e in exc.failures}
            return "BatchError of " + ",".join(sorted(kinds))
        except ConfigurationError:
            return "ConfigurationError"
    print("write_many:", outcome(lambda: r.write_many({"a.pkl": 1, "b.pkl": 2})), flush=True)
    print("read_many:", outcome(lambda: r.read_many(["parent.pkl"])), flush=True)
    print("exists_many:", outcome(lambda: r.exists_many(["parent.pkl"])), flush=True)
    print("large write:", outcome(lambda: r.write(os.urandom(6 << 20), "big.pkl")), flush=True)
    print("large read:", outcome(lambda: r.read("big.pkl")), flush=True)
    os._exit(0)
_, status = os.waitpid(pid, 0)
print("child exit:", os.waitstatus_to_exitcode(status), flush=True)
print("parent:", r.read("parent.pkl").value, flush=True)
"""


def test_a_forked_childs_batches_fail_as_batch_errors_and_large_writes_still_go(
    moto_server, tmp_path
):
    import subprocess

    script = tmp_path / "forked_batches.py"
    script.write_text(FORKED_BATCHES)
    out = subprocess.run(
        [sys.executable, str(script), moto_server.url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, (out.returncode, out.stdout, out.stderr[-1000:])
    lines = dict(line.split(": ", 1) for line in out.stdout.splitlines())
    assert lines["write_many"] == lines["read_many"] == "BatchError of ConfigurationError"
    assert lines["exists_many"] == "ConfigurationError"
    assert lines["large write"] == "ok" and lines["large read"] == "ConfigurationError"
    assert lines["child exit"] == "0" and lines["parent"] == "0"


OWN_FILESYSTEM_FORKED = """
import multiprocessing as mp, sys, uuid
import s3fs
from resultkit.errors import ConfigurationError
from resultkit.results import FSSpecResult

fs = s3fs.S3FileSystem(endpoint_url=sys.argv[1], key="testing", secret="testing")
if not fs.exists("rk-own-fs"):
    fs.mkdir("rk-own-fs")
r = FSSpecResult(fs, "rk-own-fs/" + uuid.uuid4().hex)
r.write(1, "a.pkl")

def child(q):
    try:
        r.read("a.pkl")
        q.put("read")
    except ConfigurationError as exc:
        q.put("ConfigurationError: " + str(exc))
    except Exception as exc:
        q.put(type(exc).__name__ + ": " + str(exc))

ctx = mp.get_context("fork")
q = ctx.Queue()
p = ctx.Process(target=child, args=(q,))
p.start()
print("child:", q.get(timeout=30), flush=True)
p.join(10)
print("parent:", r.read("a.pkl").value, flush=True)
"""


def test_a_filesystem_of_ones_own_used_in_a_forked_child_says_how_to_fix_it(moto_server, tmp_path):
    """Newcomer: it was a StorageError wrapping 'RuntimeError: This class is not fork-safe'."""
    import subprocess

    script = tmp_path / "own_fs_forked.py"
    script.write_text(OWN_FILESYSTEM_FORKED)
    out = subprocess.run(
        [sys.executable, str(script), moto_server.url], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr[-1500:]
    child = next(line for line in out.stdout.splitlines() if line.startswith("child:"))
    assert child.startswith("child: ConfigurationError: "), child
    assert "build the filesystem in this process" in child and "S3Result" in child, child
    assert "parent: 1" in out.stdout
