"""The contract suite, run on the built-in local backends and a third-party one."""

from __future__ import annotations

import uuid

import pytest

from resultkit.results import FSSpecResult, LocalResult, MemoryResult, from_url
from resultkit.testing import ResultContract

from dirfs_backend import SandboxResult


class TestLocalResult(ResultContract):
    @pytest.fixture
    def result(self, tmp_path):
        return LocalResult(dir=tmp_path / "results")


class TestLocalResultFsync(ResultContract):
    large_size = 8 * 2**20

    @pytest.fixture
    def result(self, tmp_path):
        return LocalResult(dir=tmp_path / "results", fsync=True)


class TestMemoryResult(ResultContract):
    persists_across_processes = False  # one store per process

    @pytest.fixture
    def result(self):
        return MemoryResult(root=f"/contract-{uuid.uuid4().hex}")


class TestFromUrlMemory(ResultContract):
    persists_across_processes = False

    @pytest.fixture
    def result(self):
        return from_url(f"memory://contract-url-{uuid.uuid4().hex}")


class TestSandboxDirFS(ResultContract):
    """The third-party example: a user's own backend, tested with the same suite."""

    @pytest.fixture
    def result(self, tmp_path):
        folder = tmp_path / "sandbox"
        folder.mkdir()
        return SandboxResult(str(folder))


def test_fsspec_result_accepts_protocol_name(tmp_path):
    r = FSSpecResult("file", str(tmp_path))
    assert r.write(1, location="x.pkl").location == f"file://{tmp_path}/x.pkl"
