"""A third party gets the contract suite from the installed package alone."""

from __future__ import annotations

pytest_plugins = ["pytester"]


def test_contract_runs_in_a_foreign_project(pytester):
    pytester.makepyfile(
        test_mine="""
        import pytest
        from resultkit.results import MemoryResult
        from resultkit.testing import ResultContract
        import uuid

        class TestMine(ResultContract):
            large_size = 2**20

            @pytest.fixture
            def result(self):
                return MemoryResult(root=f"/third-party-{uuid.uuid4().hex}")
        """
    )
    out = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    assert out.parseoutcomes()["passed"] >= 70
    assert "failed" not in out.parseoutcomes()


def test_contract_catches_a_broken_backend(pytester):
    pytester.makepyfile(
        test_broken="""
        import pytest, uuid
        from resultkit.results import MemoryResult
        from resultkit.testing import ResultContract

        class Broken(MemoryResult):
            def _read(self, location):
                value, record = super()._read(location)
                return (value if not isinstance(value, int) else value + 1), record

        class TestBroken(ResultContract):
            large_size = 2**20

            @pytest.fixture
            def result(self):
                return Broken(root=f"/broken-{uuid.uuid4().hex}")
        """
    )
    out = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "-k", "roundtrip_values")
    assert out.parseoutcomes()["failed"] >= 2
    out.stdout.fnmatch_lines(["*assert*=*"])  # rewritten asserts show the values
