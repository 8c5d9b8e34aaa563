"""pytest plugin (registered by the ``pytest11`` entry point).

Installing resultkit is enough for a third party to subclass
:class:`resultkit.testing.ResultContract`: this plugin makes pytest rewrite
the suite's asserts (so failures show the compared values) and lists, after
collection, the contract tests a test class's capability flags leave out.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

pytest.register_assert_rewrite("resultkit.testing")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "result_contract: a test of resultkit's backend contract suite"
    )


def pytest_report_collectionfinish(
    config: pytest.Config, start_path: Path, items: Sequence[pytest.Item]
) -> list[str]:
    from .contract import ResultContract

    lines: list[str] = []
    seen: set[type] = set()
    for item in items:
        cls = getattr(item, "cls", None)
        if cls is None or cls in seen or not issubclass(cls, ResultContract):
            continue
        seen.add(cls)
        if cls.not_applicable:
            left_out = ", ".join(f"{n} ({why})" for n, why in sorted(cls.not_applicable.items()))
            lines.append(f"resultkit contract: {cls.__name__} does not collect {left_out}")
    return lines
