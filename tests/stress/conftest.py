"""The stress tier: real processes killed, raced and released together, with figures.

Counts
    CI runs this folder with REDUCED counts (the whole tier in about two
    minutes on 2 cores). FULL counts (the figures in the README's
    "Guarantees") take one of::

        RESULTKIT_STRESS=full .venv/bin/python -m pytest tests/stress
        .venv/bin/python -m pytest tests/stress --stress-full

    (``--stress-full`` is known when ``tests/stress`` or a file in it is on
    the command line; the environment variable works from anywhere.)

Figures
    Every test records what it measured with the ``figures`` fixture before
    it asserts, and the session ends with a table of all of them in the
    normal pytest output ("resultkit stress figures"). With
    ``RESULTKIT_STRESS_REPORT=FILE`` the table is also written to FILE as
    Markdown.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
ENV = "RESULTKIT_STRESS"
REPORT_ENV = "RESULTKIT_STRESS_REPORT"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("resultkit stress").addoption(
        "--stress-full",
        action="store_true",
        default=False,
        help="run tests/stress with full counts (same as RESULTKIT_STRESS=full)",
    )


def is_full(config: pytest.Config) -> bool:
    try:
        flag = bool(config.getoption("--stress-full"))
    except ValueError:  # the option is not registered (this conftest was not initial)
        flag = False
    return flag or os.environ.get(ENV, "").strip().lower() == "full"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    full = is_full(config)
    for item in items:
        if HERE not in Path(str(item.path)).resolve().parents:
            continue
        item.add_marker(pytest.mark.stress)
        if full:  # full counts outlast the suite's 300 s per test
            item.add_marker(pytest.mark.timeout(3600))


@dataclass(frozen=True)
class Counts:
    """Which counts this run uses: ``pick(reduced, full)``."""

    full: bool

    @property
    def mode(self) -> str:
        return "full" if self.full else "reduced"

    def pick(self, reduced: Any, full: Any) -> Any:
        return full if self.full else reduced


@pytest.fixture(scope="session")
def stress(pytestconfig: pytest.Config) -> Counts:
    return Counts(is_full(pytestconfig))


# == figures ====================================================================================
@dataclass
class Figure:
    test: str
    backend: str
    name: str
    value: Any
    required: str
    ok: bool | None


_FIGURES: list[Figure] = []
_STARTED = time.time()


class Figures:
    """What one test measured; ``add`` records a figure, ``check`` fails on any off target."""

    _OPS = {
        "==": lambda v, t: v == t,
        ">=": lambda v, t: v >= t,
        "<=": lambda v, t: v <= t,
        ">": lambda v, t: v > t,
    }

    def __init__(self, test: str) -> None:
        self.test = test
        self.mine: list[Figure] = []
        self.notes: list[str] = []

    def add(self, backend: str, name: str, value: Any, require: str | None = None) -> Any:
        """Record ``value``; ``require`` is e.g. ``"== 0"`` or ``">= 200"``."""
        ok: bool | None = None
        if require is not None:
            op, _, target = require.partition(" ")
            ok = bool(self._OPS[op](value, type(value)(target) if value is not None else target))
        fig = Figure(self.test, backend, name, value, require or "", ok)
        self.mine.append(fig)
        _FIGURES.append(fig)
        return value

    def note(self, text: str) -> None:
        """A detail shown with the failure (the first error messages, for example)."""
        self.notes.append(text)

    def check(self) -> None:
        bad = [f for f in self.mine if f.ok is False]
        if bad:
            lines = [f"{f.backend}: {f.name} = {f.value} (required {f.required})" for f in bad]
            pytest.fail("figures off target:\n  " + "\n  ".join(lines + self.notes), pytrace=False)


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Any:
    figs = Figures(request.node.name)
    start = time.monotonic()
    yield figs
    figs.add("-", "seconds", round(time.monotonic() - start, 1))


def _table() -> list[str]:
    header = ("test", "backend", "figure", "value", "required", "")
    rows = [
        (
            f.test,
            f.backend,
            f.name,
            str(f.value),
            f.required,
            {True: "ok", False: "FAIL", None: ""}[f.ok],
        )
        for f in _FIGURES
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*r) for r in rows]
    return out


def _markdown(mode: str) -> str:
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"stress run: {mode} counts, {when}, {os.cpu_count()} cores, "
        f"{platform.system()} {platform.machine()}, Python {platform.python_version()}",
        "",
        "| test | backend | figure | value | required | |",
        "|---|---|---|---|---|---|",
    ]
    for f in _FIGURES:
        status = {True: "ok", False: "**FAIL**", None: ""}[f.ok]
        lines.append(f"| {f.test} | {f.backend} | {f.name} | {f.value} | {f.required} | {status} |")
    return "\n".join(lines) + "\n"


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not _FIGURES:
        return
    mode = "full" if is_full(config) else "reduced"
    tr = terminalreporter
    tr.section(f"resultkit stress figures ({mode} counts)")
    if mode == "reduced":
        tr.write_line(f"full counts: {ENV}=full (or --stress-full with tests/stress)")
    tested = sum(f.value for f in _FIGURES if f.name == "seconds")
    tr.write_line(
        f"{os.cpu_count()} cores, {platform.system()} {platform.machine()}; "
        f"stress tests {tested:.0f} s, session wall time {time.time() - _STARTED:.0f} s"
    )
    for line in _table():
        tr.write_line(line)
    path = os.environ.get(REPORT_ENV)
    if path:
        Path(path).write_text(_markdown(mode))
        tr.write_line(f"written to {path}")
