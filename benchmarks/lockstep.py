"""Paired measurement: two implementations timed run by run, in turns, in two processes.

This machine's speed drifts by 2x and more from one minute to the next (a shared
host), so two medians taken minutes apart can give any ratio. For the goal rows
``run.py`` starts the two sides at once, each in its own interpreter
(``harness.py --lockstep``), and lets them run one timed run at a time, in turns
(A B, B A, A B, ...). Each pair of neighbouring runs saw the same machine; the
goal's ratio is the median of the pairs' ratios.

Protocol, over the worker's stdin and stdout (lines):

* worker: ``LOCKSTEP R <case>`` before each timed run, then waits;
* driver: ``go`` (run once, answer ``LOCKSTEP T <case> <seconds>``) or ``stop``
  (run the rest of this case without waiting); it sends a word only after an R;
* worker: ``LOCKSTEP E <case>`` when a case has finished (a case that times
  nothing sends only this), then waits for the driver's ``next`` (sent once both
  sides have finished the case); the last line is the harness's JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

#: Set by ``harness.py --lockstep``: timed runs wait for the driver's turn.
ACTIVE = False
_state = {"case": "", "stopped": False}
PREFIX = "LOCKSTEP"


# -- the worker's side (in harness.py's process) ----------------------------------------------
def start_case(case: str) -> None:
    _state.update(case=case, stopped=False)


def end_case() -> None:
    if ACTIVE:
        _say("E", _state["case"])
        # Held until the other side has ended the case too: the next case's setup never
        # runs during the other side's last timed run. EOF (the driver gone) lets it on.
        sys.stdin.readline()


def paced(run: Callable[[], float]) -> float:
    """Time one run, on the driver's turn when in lockstep (``run`` returns seconds)."""
    if not ACTIVE or _state["stopped"]:
        return run()
    _say("R", _state["case"])
    if sys.stdin.readline().strip() != "go":  # "stop", or the driver has gone
        _state["stopped"] = True
        return run()
    seconds = run()
    _say("T", _state["case"], f"{seconds!r}")
    return seconds


def _say(*words: object) -> None:
    print(PREFIX, *words, flush=True)


# -- the driver's side (in run.py's process) ---------------------------------------------------
@dataclass
class Paired:
    """One case's paired runs: ``ratios[i]`` = baseline / resultkit of the i-th pair."""

    ours: list[float] = field(default_factory=list)
    theirs: list[float] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        return [b / a for a, b in zip(self.ours, self.theirs, strict=False) if a > 0]

    @property
    def ratio(self) -> float | None:
        return statistics.median(self.ratios) if self.ratios else None


#: A worker silent this long (seconds) is taken for hung: it is killed, and the run goes
#: on without it (its cases get no pairs). A timed run of the slowest case takes ~10 s.
SILENCE_LIMIT = 900.0


class _Worker:
    def __init__(self, command: list[str], env: dict[str, str], silence_limit: float) -> None:
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        self.report: dict[str, dict[str, object]] = {}
        self.timed: dict[str, list[float]] = {}  # the seconds of its runs made in turns
        self.waiting = False  # its last word was R: it reads stdin before anything else
        self.silence_limit = silence_limit
        # Lines arrive through a thread, so that waiting for one can give up.
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._ended = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _lines_until_end(self) -> Iterator[str]:
        while not self._ended:
            try:
                line = self._lines.get(timeout=self.silence_limit)
            except queue.Empty:
                print(
                    f"lockstep: {' '.join(self.proc.args[-6:])!s} said nothing for "
                    f"{self.silence_limit:.0f} s: killed, its cases are not paired",
                    file=sys.stderr,
                    flush=True,
                )
                _kill_tree(self.proc.pid)  # with what it started (a server, a pool)
                self.waiting, self._ended = False, True  # nothing more is read from it
                return
            if line is None:
                self._ended = True
                return
            yield line

    def next_event(self) -> tuple[str, str]:
        """The next lockstep line as (kind, case); ("", "") once the worker has ended
        (or was killed after :data:`SILENCE_LIMIT` seconds without a line)."""
        for line in self._lines_until_end():
            words = line.split()
            if len(words) >= 3 and words[0] == PREFIX:
                kind, case = words[1:3]
                self.waiting = kind in ("R", "E")
                if kind == "T":
                    with contextlib.suppress(IndexError, ValueError):
                        self.timed.setdefault(case, []).append(float(words[3]))
                return kind, case
            if line.startswith("{"):  # the harness's report is the last such line
                with contextlib.suppress(ValueError):
                    report = json.loads(line)
                    if isinstance(report, dict):
                        self.report = report
        return "", ""

    def send(self, word: str) -> None:
        assert self.proc.stdin is not None
        self.waiting = False
        try:
            self.proc.stdin.write(word + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass

    def finish(self) -> None:
        while True:  # drains the rest (unpaced), keeps the JSON
            if self.waiting:
                self.send("stop")
            if not self.next_event()[0]:
                break
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait()


def run_in_lockstep(
    ours: list[str],
    theirs: list[str],
    env: dict[str, str],
    silence_limit: float = SILENCE_LIMIT,
) -> tuple[dict[str, Paired], dict[str, dict[str, object]], dict[str, dict[str, object]]]:
    """Run two harness commands (``--lockstep``, the same ``--only`` cases) in turns.

    Returns the paired samples by case (the harness's returned samples, the first
    ones both sides ran in turns) and each side's JSON report. A side silent for
    ``silence_limit`` seconds is killed (its report is then empty).
    """
    a, b = _Worker(ours, env, silence_limit), _Worker(theirs, env, silence_limit)
    runs_paired: dict[str, int] = {}
    try:
        while True:
            kind_a, case_a = a.next_event()
            kind_b, case_b = b.next_event()
            if not kind_a or not kind_b or case_a != case_b:
                break  # one side ended or the two disagree: no more pairs
            case = case_a
            if kind_a == "E" or kind_b == "E":  # one side times nothing: unpaired
                for worker, kind in ((a, kind_a), (b, kind_b)):
                    if kind == "R":
                        worker.send("stop")
                        while worker.next_event()[0] not in ("E", ""):
                            pass
                a.send("next")
                b.send("next")
                continue
            # Both wait at an R. A turn: each in its order gets go, answers T, then its
            # next R (waits again) or E (its case is done, it waits for next). Turns
            # alternate the order (A B, B A, ...).
            turn = len(runs_paired)  # the side that goes first alternates from case to case
            ended: set[int] = set()
            while not ended:
                for worker in (a, b) if turn % 2 == 0 else (b, a):
                    worker.send("go")
                    worker.next_event()  # T
                    if worker.next_event()[0] != "R":
                        ended.add(id(worker))
                turn += 1
            runs_paired[case] = min(len(a.timed.get(case, ())), len(b.timed.get(case, ())))
            for worker in (a, b):
                if id(worker) not in ended:  # it waits at an R: the rest runs unpaced
                    worker.send("stop")
                    while worker.next_event()[0] not in ("E", ""):
                        pass
            a.send("next")  # both have ended the case: on to the next, together
            b.send("next")
    finally:
        a.finish()
        b.finish()
    paired = {
        case: Paired(_samples(a, case, n), _samples(b, case, n))
        for case, n in runs_paired.items()
        if n
    }
    return paired, _only_impl(a.report), _only_impl(b.report)


def _samples(worker: _Worker, case: str, n: int) -> list[float]:
    """The first ``n`` durations of ``case``: as the case reported them (a case may scale
    its samples, e.g. to one call of many), or, from a side that ended without its report
    (killed, dead), its runs' own lines, so the cases it finished keep their pairs."""
    row = _only_impl(worker.report).get(case)
    times = row.get("times") if isinstance(row, dict) else None
    if isinstance(times, list) and len(times) >= n:
        return [float(t) for t in times[:n]]
    return worker.timed[case][:n]


def _kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and every process it started (Linux ``/proc``), children first
    found, so that none is left running after a hung worker is given up."""
    family, i = [pid], 0
    while i < len(family):
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{family[i]}/task"):
                with open(f"/proc/{family[i]}/task/{task}/children") as f:
                    family.extend(int(child) for child in f.read().split())
        i += 1
    for member in family:
        with contextlib.suppress(OSError):
            os.kill(member, signal.SIGKILL)


def _only_impl(report: dict[str, dict[str, object]]) -> dict[str, object]:
    return next(iter(report.values()), {})
