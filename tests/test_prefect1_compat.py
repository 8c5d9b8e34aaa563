"""A Prefect 1 user's code keeps working wherever resultkit does not differ on purpose."""

from __future__ import annotations

import os
from typing import Any

import pytest

from resultkit import Flow, task
from resultkit.errors import ConfigurationError
from resultkit.results import ConstantResult, LocalResult, MemoryResult, Result


def test_base_result_formats_like_prefect1():
    r = Result(location="{flow_name}/{task_name}.txt")
    formatted = r.format(flow_name="etl", task_name="clean")
    assert formatted.location == "etl/clean.txt"
    assert r.location == "{flow_name}/{task_name}.txt"  # the template is unchanged
    assert Result(value=3).value == 3


def test_results_compare_by_value(tmp_path):
    assert LocalResult(dir=tmp_path, location="a.pkl") == LocalResult(
        dir=tmp_path, location="a.pkl"
    )
    assert LocalResult(dir=tmp_path, location="a") != LocalResult(dir=tmp_path, location="b")
    assert LocalResult(dir=tmp_path / "x") != LocalResult(dir=tmp_path / "y")
    assert MemoryResult(value=1) != LocalResult(dir=tmp_path, value=1)
    assert ConstantResult(5) == ConstantResult(5)
    assert ConstantResult(5) != ConstantResult(6)
    written = LocalResult(dir=tmp_path).write([1, 2], location="v.pkl")
    assert written == LocalResult(dir=tmp_path).read("v.pkl")


def test_constant_result_refuses_unknown_keywords():
    with pytest.raises(ConfigurationError, match=r"'valeu' \(did you mean 'value'\?\)"):
        ConstantResult(valeu=3)  # type: ignore[call-arg]


class DictResult(Result):
    """A Prefect-1-style Result: overrides read, write and exists itself."""

    store: dict[str, Any] = {}

    def read(self, location: Any = None, **kwargs: Any) -> DictResult:  # type: ignore[override]
        new = self.format(location, **kwargs)
        new.value = self.store[new.location]
        return new

    def write(self, value_: Any, location: Any = None, **kwargs: Any) -> DictResult:  # type: ignore[override]
        new = self.format(location, **kwargs)
        new.value = value_
        self.store[new.location] = value_
        return new

    def exists(self, location: Any = None, **kwargs: Any) -> bool:
        return self.format(location, **kwargs).location in self.store


def test_prefect1_style_subclass_works_in_the_runner():
    DictResult.store.clear()
    calls = []

    @task(target="{task_name}-{x}.txt", result=DictResult())
    def double(x):
        calls.append(x)
        return 2 * x

    with Flow("p1-style") as flow:
        ref = double(21)
    first = flow.run().result[ref]
    assert first.is_successful() and first.result == 42 and not first.is_cached()
    assert DictResult.store == {"double-21.txt": 42}
    second = flow.run().result[ref]
    assert second.is_cached() and second.result == 42
    assert calls == [21]


def test_prefect1_style_subclass_missing_a_method_fails_at_construction():
    class Incomplete(Result):
        def read(self, location: Any = None, **kwargs: Any) -> Any:
            return self

    with pytest.raises(ConfigurationError, match=r"Incomplete must implement write, exists"):
        Incomplete()


def test_task_run_of_the_base_task_returns_none():
    from resultkit import Task

    assert Task().run() is None


def test_prefect1_context_keys_during_a_run():
    from resultkit import context

    seen = []

    @task(max_retries=1)
    def flaky():
        seen.append((context.task_run_count, context.task_loop_count))
        if len(seen) == 1:
            raise RuntimeError("first try fails")
        return "ok"

    with Flow("ctx") as flow:
        ref = flaky()
    assert flow.run().result[ref].result == "ok"
    assert seen == [(1, 1), (2, 1)]


def test_compressed_serializer_with_prefect1_callables(tmp_path):
    import gzip

    from resultkit.serializers import CompressedSerializer

    s = CompressedSerializer(compress=gzip.compress, decompress=gzip.decompress)
    r = LocalResult(dir=tmp_path, serializer=s)
    assert r.read(r.write({"a": 1}, location="c.gz").location).value == {"a": 1}
    assert os.path.getsize(tmp_path / "c.gz") > 0
