"""Reusable test suites for resultkit backends.

Subclass :class:`ResultContract` and override its ``result`` fixture::

    from resultkit.testing import ResultContract

    class TestMyBackend(ResultContract):
        @pytest.fixture
        def result(self, tmp_path):
            return MyResult(...)   # a fresh, empty Result for each test

``ResultContract`` is imported on first use, so that the pytest plugin
(:mod:`resultkit.testing.plugin`) registers the suite's modules for assert
rewriting before they are imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .contract import CAPABILITIES, ResultContract

__all__ = ["ResultContract", "CAPABILITIES"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import contract

        return getattr(contract, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
