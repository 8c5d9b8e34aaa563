"""Worker processes for the stress tier: a zygote that forks real writers and readers.

Starting a Python process that imports resultkit and a cloud client costs
0.5 to 2 s on this machine, so the tests start one *zygote* per backend: it
imports everything once, starts no thread and builds no client, then forks a
fresh process per request (``{"spawn": ROLE, "args": {...}}`` on its stdin,
answered by ``{"pid": PID}`` on its stdout). A forked child builds its own
Result and client, does its role and never returns; the tests SIGKILL it or
release it through pipes. ``{"reap": PID}`` waits for a child (a dead child
that is not reaped is a zombie, which still counts as alive) and answers
``{"pid": PID, "status": CODE}``.

Children talk to the test through two pipes inherited from the zygote:

- the *report* pipe, where each child writes JSON lines (shorter than
  PIPE_BUF, so lines of different children never interleave): ``ready``
  when it is about to start its loop, ``done`` after each write, ...
- the *go* pipes, the barrier: a blocked child takes one byte per round, so
  the test releases N children at the same instant by writing N bytes
  (``g``: go, ``q``: quit). Rounds alternate between two pipes, so a child
  that finishes early cannot take a byte meant for a slower one.

Roles:

``overwrite``
    Rewrites one key in a loop (value: its pid, the round and a blob of
    ``size`` bytes) until it is killed. Says ``ready`` just before the loop.
``writer``
    One write of key ``k{round}.pkl`` per barrier byte; reports ``done``
    with ``ok`` or the error.
``reader``
    Per barrier byte, reads key ``k{round}.pkl`` in a loop until the file
    ``{ctl}/stop-{round}`` exists, and reports what every read gave.
``churn``
    Writes then deletes one key in a loop until the file ``{stop}`` exists.
``stop_between``
    One local write that stops itself (SIGSTOP) right after renaming its
    record into place and says ``between``: the test kills it there.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent


# == Results from a plain description (sent to children as JSON) =============================
def build_result(spec: dict[str, Any]) -> Any:
    """The Result that ``spec`` describes (``kind``: local, s3, gcs or azure)."""
    from resultkit.results import AzureResult, GCSResult, LocalResult, S3Result

    kind = spec["kind"]
    if kind == "local":
        return LocalResult(dir=spec["dir"])
    options: dict[str, Any] = {"skip_instance_cache": True, **spec.get("options", {})}
    if kind == "s3":
        return S3Result(
            spec["bucket"],
            prefix=spec["prefix"],
            endpoint_url=spec["endpoint_url"],
            storage_options=options,
        )
    if kind == "gcs":
        return GCSResult(
            spec["bucket"],
            prefix=spec["prefix"],
            endpoint_url=spec["endpoint_url"],
            token="anon",
            project="test",
            storage_options=options,
        )
    if kind == "azure":
        return AzureResult(
            spec["container"],
            prefix=spec["prefix"],
            connection_string=spec["connection_string"],
            storage_options=options,
        )
    raise ValueError(f"unknown backend kind {kind!r}")


def blob(tag: int, size: int) -> bytes:
    """A payload whose every byte says who wrote it (checked on read)."""
    return bytes([tag % 251]) * size


def round_size(sizes: list[int], rnd: int) -> int:
    return sizes[rnd % len(sizes)]


def classify(exc: BaseException) -> str:
    """How a failed read is counted: 'missing', 'alarm' (said corrupt) or 'error'."""
    from resultkit.errors import ResultCorruptError, ResultNotFoundError

    if isinstance(exc, ResultNotFoundError):
        return "missing"
    if isinstance(exc, ResultCorruptError):
        return "alarm"
    return "error"


def describe(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())  # one line
    return text if len(text) <= limit else text[: limit - 3] + "..."


# == the roles (run in a forked child) ========================================================
def _report(fd: int, **fields: Any) -> None:
    line = json.dumps(fields, default=str)
    if len(line) > 3800:  # one write below PIPE_BUF is atomic: never interleaved
        fields = {k: v for k, v in fields.items() if not isinstance(v, (list, str)) or k == "kind"}
        fields["truncated"] = True
        line = json.dumps(fields, default=str)
    os.write(fd, (line + "\n").encode())


#: No child loops longer than this, whatever happens to the test (seconds).
LIFETIME = 1800.0
_PARENT = 0
_DEADLINE = 0.0


def _orphaned() -> bool:
    """Whether this child should stop: its zygote is gone or its lifetime is over."""
    return os.getppid() != _PARENT or time.monotonic() > _DEADLINE


def _warm(result: Any, key: str) -> None:
    """Build the client and its session before the real work (outside the timed part)."""
    with contextlib.suppress(Exception):
        result.exists(key)


def role_overwrite(spec: dict[str, Any], key: str, size: int, report: int) -> None:
    r = build_result(spec)
    _warm(r, key)
    pid = os.getpid()
    _report(report, kind="ready", pid=pid)
    i = 0
    while not _orphaned():
        i += 1
        r.write({"pid": pid, "round": i, "blob": blob(i, size)}, location=key)


def role_writer(
    spec: dict[str, Any], wid: int, sizes: list[int], go: list[int], report: int
) -> None:
    r = build_result(spec)
    _warm(r, "k0.pkl")
    _report(report, kind="up", role="writer", id=wid)
    rnd = 0
    while True:
        if os.read(go[rnd % 2], 1) != b"g":
            return
        size = round_size(sizes, rnd)
        try:
            r.write({"writer": wid, "round": rnd, "blob": blob(wid, size)}, location=f"k{rnd}.pkl")
            _report(report, kind="done", id=wid, round=rnd, ok=True)
        except Exception as exc:  # reported to the test, which counts it
            _report(report, kind="done", id=wid, round=rnd, ok=False, error=describe(exc))
        rnd += 1


def role_stop_between(spec: dict[str, Any], key: str, tag: int, report: int) -> None:
    """One write that stops itself (SIGSTOP) right after its record is renamed into place.

    The test then SIGKILLs it: a writer killed exactly between its two renames.
    """
    real_replace = os.replace

    def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        real_replace(src, dst, *args, **kwargs)
        if str(dst).endswith(".rkmeta"):
            _report(report, kind="between", pid=os.getpid())
            os.kill(os.getpid(), signal.SIGSTOP)

    from resultkit.results import _localwrite

    real_exchange = _localwrite.exchange

    def exchange(first: Any, second: Any) -> bool:  # small overwrites swap their files in
        swapped = real_exchange(first, second)
        if swapped and str(second).endswith(".rkmeta"):
            _report(report, kind="between", pid=os.getpid())
            os.kill(os.getpid(), signal.SIGSTOP)
        return swapped

    r = build_result(spec)
    os.replace = replace  # this forked child only
    _localwrite.exchange = exchange
    r.write({"pid": os.getpid(), "round": tag, "blob": blob(tag, 1000)}, location=key)
    _report(report, kind="published", pid=os.getpid())


def check_round_value(value: Any, rnd: int, sizes: list[int], writers: int) -> str | None:
    """Why ``value`` is not a whole value some writer wrote in round ``rnd`` (None: it is)."""
    if not isinstance(value, dict) or set(value) != {"writer", "round", "blob"}:
        return f"not a round value: {type(value).__name__}"
    if value["round"] != rnd:
        return f"round {value['round']} in key of round {rnd}"
    if not 0 <= value["writer"] < writers:
        return f"unknown writer {value['writer']}"
    if value["blob"] != blob(value["writer"], round_size(sizes, rnd)):
        return "blob does not match its writer"
    return None


def role_reader(
    spec: dict[str, Any], sizes: list[int], writers: int, ctl: str, go: list[int], report: int
) -> None:
    r = build_result(spec)
    _warm(r, "k0.pkl")
    _report(report, kind="up", role="reader")
    rnd = 0
    while True:
        if os.read(go[rnd % 2], 1) != b"g":
            return
        stop = os.path.join(ctl, f"stop-{rnd}")
        counts = {"reads": 0, "ok": 0, "missing": 0, "alarm": 0, "error": 0, "wrong": 0}
        messages: list[str] = []
        while not _orphaned():
            last = os.path.exists(stop)
            counts["reads"] += 1
            try:
                value = r.read(f"k{rnd}.pkl").value
            except Exception as exc:  # classified and reported
                kind = classify(exc)
                counts[kind] += 1
                if kind != "missing" and len(messages) < 3:
                    messages.append(describe(exc, 200))
            else:
                problem = check_round_value(value, rnd, sizes, writers)
                if problem is None:
                    counts["ok"] += 1
                else:
                    counts["wrong"] += 1
                    if len(messages) < 3:
                        messages.append(problem)
            if last:
                break
        _report(report, kind="reads", round=rnd, messages=messages, **counts)
        rnd += 1


def role_churn(spec: dict[str, Any], key: str, stop: str, report: int) -> None:
    r = build_result(spec)
    _warm(r, key)
    _report(report, kind="ready", pid=os.getpid())
    cycles = errors = 0
    first_error = ""
    value = {"churn": list(range(64)), "blob": blob(7, 4096)}
    while not os.path.exists(stop) and not _orphaned():
        try:
            r.write(value, location=key)
            r.delete(key)
            cycles += 1
        except Exception as exc:  # reported to the test, which counts it
            errors += 1
            first_error = first_error or describe(exc)
    _report(report, kind="churned", cycles=cycles, errors=errors, first_error=first_error)


ROLES: dict[str, Callable[..., None]] = {
    "overwrite": role_overwrite,
    "writer": role_writer,
    "reader": role_reader,
    "churn": role_churn,
    "stop_between": role_stop_between,
}


# == the zygote's own loop ========================================================================
def main() -> None:
    preload = json.loads(sys.argv[1]) if len(sys.argv) > 1 else []
    import resultkit.results  # noqa: F401 - imported once, shared by every fork

    for module in preload:
        __import__(module)
    global _PARENT, _DEADLINE
    out = sys.stdout
    out.write(json.dumps({"zygote": os.getpid()}) + "\n")
    children: set[int] = set()
    out.flush()
    for line in sys.stdin:
        cmd = json.loads(line)
        if "spawn" in cmd:
            out.flush()
            zygote = os.getpid()
            pid = os.fork()
            if pid == 0:  # the child: never returns into this loop
                code = 0
                _PARENT, _DEADLINE = zygote, time.monotonic() + LIFETIME
                try:
                    sys.stdin.close()
                    signal.signal(signal.SIGINT, signal.SIG_DFL)
                    ROLES[cmd["spawn"]](**cmd["args"])
                except BaseException:
                    import traceback

                    traceback.print_exc()
                    code = 1
                finally:
                    os._exit(code)
            children.add(pid)
            out.write(json.dumps({"pid": pid}) + "\n")
        elif "reap" in cmd:
            _, status = os.waitpid(int(cmd["reap"]), 0)
            children.discard(int(cmd["reap"]))
            out.write(json.dumps({"pid": cmd["reap"], "status": status}) + "\n")
        elif "quit" in cmd:
            break
        out.flush()
    # The test quit or went away (stdin closed): no child outlives the zygote.
    deadline = time.monotonic() + 10
    while children and time.monotonic() < deadline:
        for pid in list(children):
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == 0:
                    continue
            children.discard(pid)
        time.sleep(0.05)
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        while True:
            os.wait()


# == the test's side ==============================================================================
class Zygote:
    """A zygote process and the two pipes its children share with the test."""

    def __init__(self, preload: tuple[str, ...] = ()) -> None:
        self.go = [os.pipe(), os.pipe()]  # (read, write) for even and odd rounds
        self.report_r, self.report_w = os.pipe()
        self._buffer = b""
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "_zygote.py"), json.dumps(list(preload))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            pass_fds=(self.go[0][0], self.go[1][0], self.report_w),
            cwd=str(TESTS.parent),
        )
        hello = self._reply(timeout=120)
        assert "zygote" in hello, hello
        self.children: set[int] = set()

    def _reply(self, timeout: float = 60) -> dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError(f"the zygote did not answer in {timeout}s")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the zygote exited (code {self.proc.poll()})")
        return dict(json.loads(line))

    def _send(self, cmd: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        self.proc.stdin.flush()
        return self._reply()

    def spawn(self, role: str, **args: Any) -> int:
        """Fork a child doing ``role``; its pid."""
        if role in ("overwrite", "churn", "stop_between"):
            args.setdefault("report", self.report_w)
        else:
            args.setdefault("go", [self.go[0][0], self.go[1][0]])
            args.setdefault("report", self.report_w)
        pid = int(self._send({"spawn": role, "args": args})["pid"])
        self.children.add(pid)
        return pid

    def reap(self, pid: int) -> int:
        """Wait for a child to end (after a kill or a quit); its wait status."""
        status = int(self._send({"reap": pid})["status"])
        self.children.discard(pid)
        return status

    def kill(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        self.reap(pid)

    def release(self, n: int, rnd: int, byte: bytes = b"g") -> None:
        """Let ``n`` children waiting for round ``rnd`` through at the same instant."""
        os.write(self.go[rnd % 2][1], byte * n)

    def report(self, timeout: float = 120) -> dict[str, Any]:
        """The next JSON line a child wrote on the report pipe."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.report_r], [], [], max(left, 0))
            if not ready:
                raise TimeoutError(f"no child reported within {timeout}s")
            chunk = os.read(self.report_r, 65536)
            if not chunk:
                raise RuntimeError("the report pipe closed")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return dict(json.loads(line))

    def reports(self, n: int, timeout: float = 120) -> list[dict[str, Any]]:
        return [self.report(timeout) for _ in range(n)]

    def close(self) -> None:
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            assert self.proc.stdin is not None
            self.proc.stdin.write(b'{"quit": true}\n')
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
        for fd in (*self.go[0], *self.go[1], self.report_r, self.report_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> Zygote:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    main()
