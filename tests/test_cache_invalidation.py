"""Cache invalidation: code changes seen across processes, refresh, cache_ignore, explained misses.

The two-process tests run a small flow file with ``python`` (a new process
each run, each with another ``PYTHONHASHSEED``), rewriting the task's helper
module between runs as a user editing code would.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from resultkit import Flow, Task, cache_validators, task
from resultkit.caching import CacheKey, OutputCache, ResultCacheStore
from resultkit.caching.explain import CacheMiss, compare_last_entries
from resultkit.errors import ConfigurationError, FlowError
from resultkit.results import LocalResult

FLOW = textwrap.dedent(
    """
    import json, os, sys
    from datetime import timedelta
    from resultkit import Flow, task, cache_validators
    from resultkit.results import LocalResult
    import helpers

    def scaled(k):
        def by(x):
            return x * k
        return by

    SCALE = scaled(int(os.environ.get("CLOSURE", "1")))

    @task(cache_for=timedelta(hours=1), cache_validator=cache_validators.all_inputs_and_code)
    def clean(x):
        return SCALE(helpers.normalise(x))

    with Flow("invalidation") as flow:
        ref = clean(3)
    state = flow.run(caches=LocalResult(dir=sys.argv[1])).result[ref]
    miss = state.cache_miss
    print(json.dumps({"cached": state.is_cached(), "result": state.result,
                      "reason": miss and miss.reason, "changed": miss and list(miss.changed)}))
    """
)

HELPERS = textwrap.dedent(
    """
    OFFSET = 1
    TAGS = {"a", "b", "c", "d"}  # a set: its order differs between hash seeds

    def normalise(x):
        # add the offset
        return x + OFFSET if "a" in TAGS else x
    """
)


def _run(folder: Path, seed: int, closure: int = 1) -> dict:
    env = dict(os.environ, PYTHONHASHSEED=str(seed), CLOSURE=str(closure))
    env["PYTHONPATH"] = os.pathsep.join([str(folder), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, str(folder / "flow.py"), str(folder / "cache")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_code_changes_across_processes(tmp_path):
    (tmp_path / "flow.py").write_text(FLOW)
    helpers = tmp_path / "helpers.py"
    helpers.write_text(HELPERS)

    first = _run(tmp_path, seed=1)
    assert first == {"cached": False, "result": 4, "reason": "no entry", "changed": []}
    assert _run(tmp_path, seed=2)["cached"]  # another process, another hash seed: a hit

    # Only a comment and blank lines: still a hit.
    helpers.write_text(HELPERS.replace("# add the offset", "# add the offset (see the docs)\n"))
    assert _run(tmp_path, seed=3)["cached"]

    # The helper's body: a miss naming it.
    helpers.write_text(HELPERS.replace("x + OFFSET", "x + OFFSET + 0"))
    edited = _run(tmp_path, seed=4)
    assert not edited["cached"]
    assert edited["reason"] == "code of `clean -> helpers.normalise` changed"
    assert edited["changed"] == ["code clean -> helpers.normalise"]

    # A global constant the helper reads.
    helpers.write_text(HELPERS.replace("x + OFFSET", "x + OFFSET + 0").replace("= 1", "= 2"))
    constant = _run(tmp_path, seed=5)
    assert not constant["cached"] and constant["result"] == 5
    assert constant["reason"] == "code of `clean -> helpers.normalise -> OFFSET` changed"

    # The same code closing over another value.
    closure = _run(tmp_path, seed=7, closure=2)
    assert not closure["cached"] and closure["result"] == 10
    assert closure["reason"] == "code of `clean -> SCALE -> k` changed"


def _counting(**kwargs) -> tuple[Task, list[int]]:
    calls: list[int] = []

    @task(cache_for=timedelta(hours=1), cache_validator=cache_validators.all_inputs, **kwargs)
    def count(x, verbose=False):
        calls.append(x)
        return x

    return count, calls


def test_a_run_level_refresh_recomputes_once_and_the_next_run_hits(tmp_path, monkeypatch):
    count, calls = _counting()
    with Flow("refresh") as flow:
        ref = count(1)
    store = ResultCacheStore(LocalResult(dir=str(tmp_path)))
    flow.run(caches=store)
    state = flow.run(caches=store, refresh=True).result[ref]
    assert calls == [1, 1] and not state.is_cached()
    assert state.cache_miss == CacheMiss("cache", "count", "refresh requested")
    assert flow.run(caches=store).result[ref].is_cached() and calls == [1, 1]
    assert len(store) == 1  # the refreshed entry replaced the old one
    flow.run(caches=store, refresh=[count])  # a task: by its name
    assert calls == [1, 1, 1]
    flow.run(caches=store, refresh=["other"])
    assert calls == [1, 1, 1]
    flow.run(caches=store, refresh=["count"])
    assert calls == [1, 1, 1, 1]
    monkeypatch.setenv("RESULTKIT_REFRESH", "1")
    flow.run(caches=store)
    assert calls == [1, 1, 1, 1, 1]
    monkeypatch.delenv("RESULTKIT_REFRESH")
    hit = flow.run(caches=store).result[ref]
    assert hit.is_cached() and hit.cache_miss is None
    with pytest.raises(ConfigurationError, match="refresh=3"):
        flow.run(caches=store, refresh=3)


def test_refresh_cache_on_the_task_recomputes_every_run():
    count, calls = _counting(refresh_cache=True)

    @task
    def uncached():
        return 1

    with Flow("refresh-task") as flow:
        count(1)
        plain = uncached()
    store = OutputCache()
    flow.run(caches=store)
    state = flow.run(caches=store)
    assert calls == [1, 1] and state.result[plain].cache_miss is None


def test_cache_ignore_keeps_a_hit_when_only_the_ignored_input_changes():
    count, calls = _counting(cache_ignore=["verbose"])
    store = OutputCache()
    for verbose in (False, True):
        with Flow("ignore") as flow:
            count(1, verbose=verbose)
        flow.run(caches=store)
    assert calls == [1]
    with Flow("ignore") as flow:
        ref = count(2, verbose=True)
    miss = flow.run(caches=store).result[ref].cache_miss
    assert calls == [1, 2] and miss is not None and miss.reason == "input `x` changed"
    with pytest.raises(FlowError, match=r"cache_ignore names \['verbos'\].*'verbose', 'x'"):
        _counting(cache_ignore=["verbos"])


def test_a_deleted_payload_is_a_miss_with_a_reason(tmp_path, caplog):
    count, calls = _counting()
    with Flow("deleted") as flow:
        ref = count(5)
    store = ResultCacheStore(LocalResult(dir=str(tmp_path)))
    flow.run(caches=store)
    (info,) = store.entries()
    (tmp_path / info.value_at).unlink()  # a lifecycle rule, behind the store's back
    with caplog.at_level(logging.INFO, logger="resultkit"):
        state = flow.run(caches=store).result[ref]
    assert state.is_successful() and not state.is_cached() and calls == [5, 5]
    assert state.cache_miss is not None and "has gone" in state.cache_miss.reason
    lines = [r.getMessage() for r in caplog.records if "cache miss" in r.getMessage()]
    assert lines == [f"Task 'count': cache miss (output cache 'count'): {state.cache_miss.reason}"]
    assert flow.run(caches=store).result[ref].is_cached()
    assert len(store.entries()) == 1  # the entry whose value had gone was deleted


def test_misses_explain_inputs_parameters_and_expiry():
    from resultkit import Parameter

    @task(cache_for=timedelta(hours=1), cache_validator=cache_validators.all_parameters)
    def load(day):
        return day

    store = OutputCache()
    with Flow("explain") as flow:
        day = Parameter("day", default="mon")
        ref = load(day)
    assert flow.run(caches=store).result[ref].cache_miss.reason == "no entry"
    miss = flow.run(caches=store, parameters={"day": "tue"}).result[ref].cache_miss
    assert miss.reason == "parameter `day` changed"  # what all_parameters compares, only
    assert miss.changed == ("parameter day",)

    @task(cache_for=timedelta(microseconds=1))
    def brief():
        return 1

    with Flow("expiry") as short:
        ref = brief()
    short.run(caches=store)
    assert short.run(caches=store).result[ref].cache_miss.reason.startswith("expired at ")


def test_code_version_replaces_the_fingerprint():
    def build(version: str, body: int) -> tuple[Flow, Task]:
        @task(cache_for=timedelta(hours=1), code_version=version)
        def versioned():
            return body

        with Flow("versioned") as flow:
            ref = versioned()
        return flow, ref

    store = OutputCache()
    flow, ref = build("1", body=1)
    flow.run(caches=store)
    flow, ref = build("1", body=2)  # other code, same version: still a hit
    assert flow.run(caches=store).result[ref].result == 1
    flow, ref = build("2", body=2)
    state = flow.run(caches=store).result[ref]
    assert state.result == 2 and state.cache_miss.reason == "code of `code_version` changed"
    with pytest.raises(FlowError, match="code_version must be a non-empty str"):
        Task(code_version="")


def test_target_validator_makes_a_target_stale_when_the_code_changes(tmp_path, caplog):
    result = LocalResult(dir=str(tmp_path / "out"))
    store = OutputCache()

    def build(body: int) -> tuple[Flow, Task]:
        @task(
            target="{task_name}.json",
            checkpoint=True,
            result=result,
            target_validator=cache_validators.code_only,
        )
        def made():
            return body

        with Flow("targets") as flow:
            ref = made()
        return flow, ref

    flow, ref = build(1)
    first = flow.run(caches=store).result[ref]
    assert first.cache_miss.kind == "target" and first.cache_miss.reason == "no target"
    assert flow.run(caches=store).result[ref].is_cached()
    flow, ref = build(2)
    with caplog.at_level(logging.INFO, logger="resultkit"):
        state = flow.run(caches=store).result[ref]
    target = tmp_path / "out" / "made.json"
    assert f"Task 'made': target miss ({target.as_uri()}): code of `made -> body` changed" in [
        r.getMessage() for r in caplog.records
    ]
    assert not state.is_cached() and state.result == 2
    assert state.cache_miss.reason == "code of `made -> body` changed"  # its closure
    assert flow.run(caches=store).result[ref].result == 2  # rewritten, and a hit again
    with pytest.raises(FlowError, match="target_validator needs a target"):
        Task(target_validator=cache_validators.code_only)


def test_without_target_validator_a_target_stays_make_style(tmp_path):
    result = LocalResult(dir=str(tmp_path / "out"))

    def run(body: int) -> Any:
        @task(target="plain.json", checkpoint=True, result=result)
        def plain():
            return body

        with Flow("make") as flow:
            ref = plain()
        return flow.run(caches=OutputCache()).result[ref]

    run(1)
    state = run(2)  # other code: the target still serves
    assert state.is_cached() and state.result == 1


def test_compare_last_entries_shows_what_differs(tmp_path):
    store = ResultCacheStore(LocalResult(dir=str(tmp_path)))
    count, _ = _counting()
    for x in (1, 2):
        with Flow("why") as flow:
            count(x)
        flow.run(caches=store)
    comparison = compare_last_entries(store, CacheKey("count", "why"))
    assert comparison.older is not None and comparison.newer > comparison.older
    changed = [row[0] for row in comparison.rows() if row[3] == "changed"]
    assert changed == ["input x", "expires"]
    unchanged = [row[0] for row in comparison.rows() if not row[3]]
    assert unchanged == []
    assert compare_last_entries(store, CacheKey("other", "why")).components == ()


WHY_FLOW = textwrap.dedent(
    """
    from datetime import timedelta
    from resultkit import Flow, task, cache_validators

    LIMIT = 10

    @task(cache_for=timedelta(hours=1), cache_validator=cache_validators.code_only)
    def clean(x):
        return min(x, LIMIT)

    with Flow("why-flow") as flow:
        ref = clean(3)
    """
)


def test_resultkit_why_shows_the_two_newest_entries(tmp_path, monkeypatch, capsys):
    from resultkit.cli import main

    monkeypatch.setenv("RESULTKIT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RESULTKIT_CACHE_STORE", raising=False)
    flow_file = tmp_path / "flow.py"
    for limit in (10, 20):
        flow_file.write_text(WHY_FLOW.replace("LIMIT = 10", f"LIMIT = {limit}"))
        assert main(["run", str(flow_file)]) == 0
    flow_file.write_text(WHY_FLOW.replace("LIMIT = 10", "LIMIT = 30"))
    capsys.readouterr()
    assert main(["why", str(flow_file), "clean", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    changed = [c["name"] for c in report["components"] if c["changed"]]
    assert changed == ["code clean -> LIMIT", "expires"]
    assert report["code_changed_since_newer"] == ["clean -> LIMIT"]
    assert main(["why", str(flow_file), "clean"]) == 0
    text = capsys.readouterr().out
    assert "code clean -> LIMIT" in text and "changed" in text
    assert main(["why", str(flow_file), "nope"]) == 2
    assert "has no task named 'nope' (its cached tasks: clean)" in capsys.readouterr().err


def test_a_task_subclass_counts_its_methods_and_its_own_attributes():
    class Scale(Task):
        def __init__(self, factor: int, **kwargs: Any) -> None:
            self.factor = factor
            super().__init__(**kwargs)

        def run(self, x):
            return self.apply(x)

        def apply(self, x):
            return x * self.factor

    store = OutputCache()
    states = []
    for factor in (2, 2, 3):
        with Flow("subclass") as flow:
            ref = Scale(factor, cache_for=timedelta(hours=1), code_version=None,
                        cache_validator=cache_validators.code_only)(1)  # fmt: skip
        states.append(flow.run(caches=store).result[ref])
    assert [s.is_cached() for s in states] == [False, True, False]
    assert states[2].result == 3
    assert states[2].cache_miss.reason == "code of `Scale -> self.factor` changed"


def test_a_miss_is_explained_by_the_closest_entry_and_what_the_validator_compares():
    scope: dict[str, Any] = {"__name__": "__main__", "OFFSET": 1}
    exec("def shift(x):\n    return x + OFFSET\n", scope)
    store = OutputCache()

    def run(x: int, validator: Any = cache_validators.all_inputs_and_code) -> CacheMiss | None:
        with Flow("closest") as flow:
            ref = task(cache_for=timedelta(hours=1), cache_validator=validator)(scope["shift"])(x)
        return flow.run(caches=store).result[ref].cache_miss

    run(1)
    run(2)  # the newest entry now has another input
    scope["OFFSET"] = 2
    miss = run(1)
    assert miss is not None and miss.reason == "code of `shift -> OFFSET` changed"
    assert miss.changed == ("code shift -> OFFSET",)
    scope["OFFSET"] = 3
    only_code = run(5, cache_validators.code_only)  # inputs are not what code_only compares
    assert only_code is not None and only_code.reason == "code of `shift -> OFFSET` changed"
