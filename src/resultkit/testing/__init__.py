"""Reusable test suites for resultkit backends.

Subclass :class:`ResultContract` and override its ``result`` fixture::

    from resultkit.testing import ResultContract

    class TestMyBackend(ResultContract):
        @pytest.fixture
        def result(self, tmp_path):
            return MyResult(...)   # a fresh, empty Result for each test
"""

from .contract import ResultContract

__all__ = ["ResultContract"]
