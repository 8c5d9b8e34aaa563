"""pytest plugin (registered by the ``pytest11`` entry point).

Installing resultkit is enough for a third party to subclass
:class:`resultkit.testing.ResultContract`: this plugin makes pytest rewrite
the contract's asserts so failures show the compared values.
"""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("resultkit.testing.contract")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "result_contract: a test of resultkit's backend contract suite"
    )
