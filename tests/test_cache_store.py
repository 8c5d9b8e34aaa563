"""The persistent output cache: entries on a Result backend, shared between processes.

Flows run in separate Python processes on real storage (a local folder, S3
on moto); the second process must hit what the first one cached, and
expiry and validators must hold across them as they do in memory.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import sys
import textwrap
import threading
import time
import uuid
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from resultkit import Flow, Parameter, cache_validators, config, context, task
from resultkit.caching import CacheKey, CacheStore, OutputCache, ResultCacheStore
from resultkit.errors import ConfigurationError, ResultKitWarning
from resultkit.executors import ThreadExecutor
from resultkit.results import (
    ConstantResult,
    LocalResult,
    MemoryResult,
    S3Result,
    Storage,
    StorageResult,
)
from resultkit.serializers import JSONSerializer
from test_engine_cache import VALIDATORS, _entry  # the in-memory store's cases, for this one

# One flow run per item of spec["runs"]; prints what each run's task state was.
SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from datetime import timedelta
    from resultkit import Flow, Parameter, task, cache_validators
    from resultkit.results import LocalResult, S3Result

    spec = json.loads(sys.argv[1])

    def result_of(where):
        if where is None:
            return None
        if where["kind"] == "local":
            return LocalResult(dir=where["dir"])
        return S3Result(where["bucket"], prefix=where["prefix"], endpoint_url=where["endpoint"])

    checkpoint = result_of(spec.get("checkpoint"))

    @task(
        name="compute",
        cache_for=timedelta(seconds=spec["cache_for"]),
        cache_key=spec.get("cache_key"),
        cache_validator=getattr(cache_validators, spec.get("validator", "duration_only")),
        checkpoint=checkpoint is not None,
        result=checkpoint,
    )
    def compute(x):
        with open(spec["counter"], "a") as f:
            f.write(f"{spec['flow']} {x}\\n")
        return {"x": x, "flow": spec["flow"], "pid": os.getpid()}

    with Flow(spec["flow"], cache_store=result_of(spec.get("flow_store"))) as flow:
        x = Parameter("x")
        Parameter("p", default=0)
        ref = compute(x)
    out = []
    for parameters in spec["runs"]:
        state = flow.run(parameters=parameters).result[ref]
        out.append({"ok": state.is_successful(), "cached": state.is_cached(),
                    "value": state.result, "location": state.location})
    print(json.dumps(out))
    """
)


def run_process(spec: dict[str, Any], env: dict[str, str]) -> list[dict[str, Any]]:
    """Run SCRIPT in a new Python process; the states of its runs."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("RESULTKIT_")}
    full.update(env)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(spec)],
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    runs = json.loads(done.stdout.strip().splitlines()[-1])
    assert all(r["ok"] for r in runs), runs
    return runs


def computed(counter: Path) -> list[str]:
    """What the task bodies computed, across every process."""
    return counter.read_text().splitlines() if counter.exists() else []


class _AnyPid:
    """Equal to the id of any process but this one (the value came from another process)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, int) and other != os.getpid()


ANY_PID = _AnyPid()


def _s3(moto_server: Any, bucket: str = "rk-cache-store") -> S3Result:
    r = S3Result(bucket, prefix=uuid.uuid4().hex, endpoint_url=moto_server.url)
    if not r.fs.exists(bucket):
        with contextlib.suppress(FileExistsError):  # created meanwhile
            r.fs.mkdir(bucket)
    return r


class Backend:
    """Where a test keeps the cache store (and checkpoints), as the processes are told."""

    def __init__(self, name: str, tmp_path: Path, moto_server: Any = None) -> None:
        self.name = name
        if name == "local":
            # No setting at all: the default folder under RESULTKIT_HOME.
            self.env = {"RESULTKIT_HOME": str(tmp_path / "home")}
            self.store_result: StorageResult = LocalResult(dir=tmp_path / "home" / "cache")
            self.checkpoint = {"kind": "local", "dir": str(tmp_path / "out")}
        else:
            self.store_result = _s3(moto_server)
            self.env = {
                "RESULTKIT_HOME": str(tmp_path / "unused-home"),
                "RESULTKIT_CACHE_STORE": self.store_result.root_url,
                "AWS_ENDPOINT_URL": moto_server.url,
            }
            out = _s3(moto_server)
            self.checkpoint = {
                "kind": "s3",
                "bucket": out.bucket,
                "prefix": out.root_url.rsplit("/", 1)[1],
                "endpoint": moto_server.url,
            }

    def store(self) -> ResultCacheStore:
        return ResultCacheStore(self.store_result)

    def entry_docs(self) -> list[dict[str, Any]]:
        """Every entry document in the store (read as JSON, never unpickled)."""
        reader = self.store_result.copy()
        reader.serializer = JSONSerializer()
        keys = [k for k in self.store_result.storage.list("v1/") if "/entries/" in k]
        return [reader.read(k).value for k in keys]


@pytest.fixture(params=["local", "s3"])
def backend(request, tmp_path):
    if request.param == "local":
        return Backend("local", tmp_path)
    return Backend("s3", tmp_path, request.getfixturevalue("moto_server"))


@pytest.fixture
def restore_config():
    saved = config.cache_store
    yield
    config.cache_store = saved


# == across processes ================================================================================
def test_cache_key_shared_between_flows_in_two_processes(backend, tmp_path):
    counter = tmp_path / "computed.txt"
    base = {"cache_for": 3600, "cache_key": "shared-answer", "counter": str(counter)}
    first = run_process({**base, "flow": "one", "runs": [{"x": 1}]}, backend.env)
    second = run_process({**base, "flow": "two", "runs": [{"x": 1}]}, backend.env)
    assert not first[0]["cached"] and second[0]["cached"]
    assert second[0]["value"] == first[0]["value"] == {"x": 1, "flow": "one", "pid": ANY_PID}
    assert computed(counter) == ["one 1"]
    (doc,) = backend.entry_docs()
    assert doc["key"] == {"name": "shared-answer", "flow": None, "map_index": None}
    assert "stored" in doc["value"]  # no checkpoint: the value is kept in the store


def test_a_checkpointed_value_is_kept_as_its_location(backend, tmp_path):
    counter = tmp_path / "computed.txt"
    spec = {
        "cache_for": 3600,
        "cache_key": "checkpointed",
        "counter": str(counter),
        "checkpoint": backend.checkpoint,
        "runs": [{"x": 7}],
    }
    first = run_process({**spec, "flow": "one"}, backend.env)
    second = run_process({**spec, "flow": "two"}, backend.env)
    assert second[0]["cached"] and second[0]["value"]["flow"] == "one"
    assert second[0]["location"] == first[0]["location"]
    assert computed(counter) == ["one 7"]
    (doc,) = backend.entry_docs()
    assert doc["value"] == {"location": first[0]["location"]}  # where it is, not a copy
    assert not [k for k in backend.store_result.storage.list("v1/") if "/values/" in k]


@pytest.mark.parametrize(
    ("validator", "hits"),
    [("all_inputs", [True, False, True]), ("all_parameters", [False, False, True])],
)
def test_validators_hold_across_processes(backend, tmp_path, validator, hits):
    counter = tmp_path / "computed.txt"
    spec = {"flow": "validated", "cache_for": 3600, "validator": validator}
    spec["counter"] = str(counter)
    first = run_process({**spec, "runs": [{"x": 1, "p": 1}]}, backend.env)
    # Same input, other parameter; other input; the first process's input and parameter.
    runs = [{"x": 1, "p": 2}, {"x": 2, "p": 1}, {"x": 1, "p": 1}]
    second = run_process({**spec, "runs": runs}, backend.env)
    assert [r["cached"] for r in second] == hits
    assert second[2]["value"] == first[0]["value"]  # made by the first process
    assert len(computed(counter)) == 1 + hits.count(False)


def test_expiry_holds_across_processes(tmp_path):
    backend = Backend("local", tmp_path)
    counter = tmp_path / "computed.txt"
    spec = {"flow": "expiring", "counter": str(counter), "runs": [{"x": 1}]}
    run_process({**spec, "cache_for": 1}, backend.env)
    (doc,) = backend.entry_docs()
    while datetime.now(timezone.utc) <= doc["expires"]:  # wait past the entry's expiry
        time.sleep(0.05)
    second = run_process({**spec, "cache_for": 3600, "runs": [{"x": 1}, {"x": 1}]}, backend.env)
    assert [r["cached"] for r in second] == [False, True]  # expired: a miss; then its own
    assert computed(counter) == ["expiring 1", "expiring 1"]
    (doc,) = backend.entry_docs()  # the expired entry was deleted by the put
    assert doc["expires"] > datetime.now(timezone.utc) + timedelta(minutes=30)


def test_flow_cache_store_on_s3_shared_between_processes(moto_server, tmp_path):
    store = _s3(moto_server)
    where = {
        "kind": "s3",
        "bucket": store.bucket,
        "prefix": store.root_url.rsplit("/", 1)[1],
        "endpoint": moto_server.url,
    }
    counter = tmp_path / "computed.txt"
    spec = {"flow": "s3-flow", "cache_for": 3600, "counter": str(counter), "flow_store": where}
    env = {"RESULTKIT_HOME": str(tmp_path / "home")}
    run_process({**spec, "runs": [{"x": 3}]}, env)
    second = run_process({**spec, "runs": [{"x": 3}]}, env)
    assert second[0]["cached"] and computed(counter) == ["s3-flow 3"]
    assert len(ResultCacheStore(store)) == 1
    assert not (tmp_path / "home").exists()  # Flow(cache_store=) wins over the default


# == in one process: payloads, precedence, validators ==============================================
def _counting_flow(name: str, **task_kwargs: Any) -> tuple[Flow, Any, list[Any]]:
    runs: list[Any] = []
    task_kwargs.setdefault("cache_for", timedelta(hours=1))

    @task(name="compute", **task_kwargs)
    def compute(x):
        runs.append(x)
        return [x]

    with Flow(name) as flow:
        ref = compute(Parameter("x"))
    return flow, ref, runs


@pytest.mark.parametrize("checkpointed", [True, False], ids=["checkpoint", "stored"])
def test_a_deleted_payload_is_a_miss(tmp_path, checkpointed):
    out = LocalResult(dir=tmp_path / "out")
    kwargs = {"checkpoint": True, "result": out} if checkpointed else {}
    flow, ref, runs = _counting_flow("deleted", **kwargs)
    store_result = LocalResult(dir=tmp_path / "cache")
    first = flow.run(parameters={"x": 1}, caches=ResultCacheStore(store_result))
    if checkpointed:
        assert out.delete(first.result[ref].location)
    else:
        (value,) = [k for k in store_result.storage.list("v1/") if "/values/" in k]
        assert store_result.delete(value)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a miss, not a problem
        second = flow.run(parameters={"x": 1}, caches=ResultCacheStore(store_result))
    assert second.is_successful() and not second.result[ref].is_cached()
    third = flow.run(parameters={"x": 1}, caches=ResultCacheStore(store_result))
    assert third.result[ref].is_cached() and third.result[ref].result == [1]
    assert runs == [1, 1]


def _entries_in(path: Path) -> int:
    return len(ResultCacheStore(LocalResult(dir=path))) if path.exists() else 0


def test_precedence_of_the_settings(tmp_path, monkeypatch, restore_config):
    monkeypatch.setenv("RESULTKIT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RESULTKIT_CACHE_STORE", raising=False)
    config.cache_store = None
    flow, ref, runs = _counting_flow("precedence")
    places = {
        "default": tmp_path / "home" / "cache",
        "env": tmp_path / "env",
        "config": tmp_path / "config",
        "flow": tmp_path / "flow",
    }

    def run(x):
        state = flow.run(parameters={"x": x}).result[ref]
        return state.is_cached(), {k: _entries_in(p) for k, p in places.items()}

    assert isinstance(context.caches, ResultCacheStore) and isinstance(context.caches, CacheStore)
    assert run(1) == (False, {"default": 1, "env": 0, "config": 0, "flow": 0})
    assert run(1)[0]  # the default store is shared by runs (and processes)
    monkeypatch.setenv("RESULTKIT_CACHE_STORE", str(places["env"]))
    assert run(1) == (False, {"default": 1, "env": 1, "config": 0, "flow": 0})
    config.cache_store = LocalResult(dir=places["config"])
    assert run(1) == (False, {"default": 1, "env": 1, "config": 1, "flow": 0})
    flow.cache_store = ResultCacheStore(LocalResult(dir=places["flow"]))
    assert run(1) == (False, {"default": 1, "env": 1, "config": 1, "flow": 1})
    memory = OutputCache()
    state = flow.run(parameters={"x": 1}, caches=memory).result[ref]
    assert not state.is_cached() and len(memory) == 1
    assert {k: _entries_in(p) for k, p in places.items()} == dict.fromkeys(places, 1)
    with context(caches=memory):
        assert flow.run(parameters={"x": 1}).result[ref].is_cached()
    assert runs == [1] * 5


def test_memory_only_settings(tmp_path, monkeypatch, restore_config):
    monkeypatch.setenv("RESULTKIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RESULTKIT_CACHE_STORE", "memory")
    config.cache_store = None
    assert isinstance(context.caches, OutputCache)
    flow, ref, runs = _counting_flow("memory-only")
    flow.run(parameters={"x": 1})
    assert flow.run(parameters={"x": 1}).result[ref].is_cached()
    assert not (tmp_path / "home").exists()
    monkeypatch.delenv("RESULTKIT_CACHE_STORE")
    config.cache_store = "memory"
    assert isinstance(context.caches, OutputCache)
    assert isinstance(Flow("f", cache_store="memory").cache_store, OutputCache)
    assert isinstance(Flow("f", cache_store=str(tmp_path)).cache_store, ResultCacheStore)


def test_bad_settings_are_clear(tmp_path, monkeypatch, restore_config):
    with pytest.raises(ConfigurationError, match=r"Flow\('f', cache_store=...\)"):
        Flow("f", cache_store=42)  # type: ignore[arg-type]
    config.cache_store = object()
    with pytest.raises(ConfigurationError, match="config.cache_store"):
        _ = context.caches
    config.cache_store = None
    monkeypatch.setenv("RESULTKIT_CACHE_STORE", "  ")
    monkeypatch.setenv("RESULTKIT_HOME", str(tmp_path))
    assert isinstance(context.caches, ResultCacheStore)  # blank: not set
    with pytest.raises(ConfigurationError, match="StorageResult"):
        ResultCacheStore(ConstantResult(1))  # type: ignore[arg-type]


def test_flow_run_caches_takes_a_result(tmp_path):
    flow, ref, runs = _counting_flow("caches-result")
    flow.run(parameters={"x": 1}, caches=LocalResult(dir=tmp_path))
    assert flow.run(parameters={"x": 1}, caches=LocalResult(dir=tmp_path)).result[ref].is_cached()
    assert runs == [1]


def _custom(state, inputs, parameters):
    """A validator that declares nothing: the store lists the key's entries."""
    return inputs.get("x") == state.cached_input_tokens.get("x") and parameters.get("p") != "no"


def test_a_custom_validator_uses_the_listing(tmp_path):
    flow, ref, runs = _counting_flow("custom", cache_validator=_custom)
    counting = CountingStorage(LocalResult(dir=tmp_path).storage)
    store = ResultCacheStore(StorageResult(counting))
    for x in (1, 2, 1, 3):
        flow.run(parameters={"x": x}, caches=store)
    assert runs == [1, 2, 3]
    counting.calls.clear()
    other = ResultCacheStore(LocalResult(dir=tmp_path))  # as another process would see it
    state = flow.run(parameters={"x": 2}, caches=other).result[ref]
    assert state.is_cached() and state.result == [2] and runs == [1, 2, 3]
    state = flow.run(parameters={"x": 2}, caches=store).result[ref]
    assert state.is_cached() and counting.calls["list"] == 1


def test_a_hit_with_a_builtin_validator_is_two_reads_and_no_listing(tmp_path):
    flow, ref, runs = _counting_flow("indexed", cache_validator=cache_validators.all_inputs)
    counting = CountingStorage(LocalResult(dir=tmp_path).storage)
    store = ResultCacheStore(StorageResult(counting))
    for x in range(20):
        flow.run(parameters={"x": x}, caches=store)
    counting.calls.clear()
    state = flow.run(parameters={"x": 13}, caches=store).result[ref]
    assert state.is_cached() and state.result == [13]
    assert counting.calls == {"get": 2, "put": 1}  # the entry, the value; the last-hit marker
    counting.calls.clear()
    assert flow.run(parameters={"x": 13}, caches=store).result[ref].is_cached()
    assert counting.calls == {"get": 2}  # marked less than an hour ago: no write


def test_a_front_serves_repeated_hits_from_memory(tmp_path):
    flow, ref, runs = _counting_flow("front")
    counting = CountingStorage(LocalResult(dir=tmp_path).storage)
    store = ResultCacheStore(StorageResult(counting), front=OutputCache())
    flow.run(parameters={"x": 1}, caches=store)
    counting.calls.clear()
    assert flow.run(parameters={"x": 1}, caches=store).result[ref].is_cached()
    assert counting.calls == {}


def test_a_value_that_cannot_be_stored_warns_and_the_task_succeeds(tmp_path):
    @task(cache_for=timedelta(hours=1))
    def lock():
        return threading.Lock()

    with Flow("unpicklable") as flow:
        ref = lock()
    with pytest.warns(ResultKitWarning, match="could not keep the output"):
        state = flow.run(caches=ResultCacheStore(LocalResult(dir=tmp_path)))
    assert state.is_successful() and state.result[ref].is_successful()


def test_mapped_children_each_have_their_entry(tmp_path):
    runs: list[int] = []

    @task(cache_for=timedelta(hours=1))
    def inc(x):
        runs.append(x)
        return x + 1

    with Flow("mapped") as flow:
        ref = inc.map([0, 1, 2])
    flow.run(caches=ResultCacheStore(LocalResult(dir=tmp_path)))
    state = flow.run(caches=ResultCacheStore(LocalResult(dir=tmp_path))).result[ref]
    assert [s.is_cached() for s in state.map_states] == [True] * 3
    assert state.result == [1, 2, 3] and runs == [0, 1, 2]


def test_a_storage_failure_is_a_miss_with_a_warning(moto_server):
    missing = S3Result(f"no-such-bucket-{uuid.uuid4().hex[:8]}", endpoint_url=moto_server.url)
    flow, ref, runs = _counting_flow("sick-storage")
    for _ in range(2):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            state = flow.run(parameters={"x": 1}, caches=missing)
        assert state.is_successful() and not state.result[ref].is_cached()
        said = " ".join(str(w.message) for w in caught if w.category is ResultKitWarning)
        assert "treated as a miss" in said and "could not keep the output" in said
    assert runs == [1, 1]


def test_prune_and_clear(tmp_path):
    store = ResultCacheStore(LocalResult(dir=tmp_path))
    key = CacheKey("t", "f")
    soon = datetime.now(timezone.utc) + timedelta(milliseconds=300)
    store.get(key, {}, {}, cache_validators.all_inputs)  # the slot now keeps an inputs index
    for i in range(3):
        store.put(key, _entry({"a": str(i)}, {}, expires=soon))
    store.put(CacheKey("u", "f"), _entry({}, {}))
    assert len(store) == 4
    while datetime.now(timezone.utc) <= soon:  # wait past their expiry
        time.sleep(0.05)
    assert store.prune() == 3 and len(store) == 1
    assert not [k for k in store.result.storage.list("v1/") if "/index/" in k]
    store.clear()
    assert len(store) == 0 and not list(store.result.storage.list(""))


# == the store against a scan (as OutputCache is tested) ===========================================
@pytest.mark.parametrize("validator", VALIDATORS, ids=lambda v: v.__name__)
def test_lookups_agree_with_a_scan(validator):
    rng = random.Random(11)
    store = ResultCacheStore(MemoryResult(root=f"/agree-{uuid.uuid4().hex}"))
    key = CacheKey("t", flow="f")
    now = datetime.now(timezone.utc)
    live: dict[str, Any] = {}  # the newest entry of each distinct (inputs, parameters)

    def tokens(names):
        return {n: str(rng.randint(0, 2)) for n in names if rng.random() < 0.8}

    def identity(entry):
        return repr(
            (sorted(entry.cached_input_tokens.items()), sorted(entry.cached_parameters.items()))
        )

    def check():
        for _ in range(25):
            inputs, parameters = tokens("abc"), tokens("pq")
            want = [e for e in live.values() if validator(e, inputs, parameters)]
            got = store.get(key, inputs, parameters, validator)
            if not want:
                assert got is None
            else:
                assert got is not None and validator(got, inputs, parameters)
                assert identity(got) in live and got.result == live[identity(got)].result

    for i in range(60):
        expires = now + timedelta(hours=1) if rng.random() < 0.9 else now - timedelta(hours=1)
        entry = _entry(tokens("abc"), tokens("pq"), expires=expires, value=i)
        store.put(key, entry)
        live.pop(identity(entry), None)
        if expires > now:
            live[identity(entry)] = entry
        if i == 30:
            check()  # indexes built here are kept up to date by the puts that follow
    check()


def test_concurrent_runs_share_the_store_safely(tmp_path):
    store = ResultCacheStore(LocalResult(dir=tmp_path))
    runs: list[int] = []

    @task(cache_for=timedelta(hours=1), cache_validator=cache_validators.all_inputs)
    def square(x):
        runs.append(x)
        return x * x

    with Flow("threads", executor=ThreadExecutor(4)) as flow:
        refs = [square(i % 10) for i in range(40)]
    errors: list[BaseException] = []
    states: list[Any] = []

    def one_run():
        try:
            states.append(flow.run(caches=store))
        except BaseException as exc:  # collected: asserted below
            errors.append(exc)

    threads = [threading.Thread(target=one_run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for state in states:
        assert [state.result[r].result for r in refs] == [(i % 10) ** 2 for i in range(40)]
    # Racing puts may leave an entry out of an index (a miss, never a wrong
    # hit); one more run puts any such entry back, and after it all hit.
    flow.run(caches=store)
    last = flow.run(caches=ResultCacheStore(LocalResult(dir=tmp_path)))
    assert all(last.result[r].is_cached() for r in refs)


# == a real storage that counts what the store asks of it ============================================
class CountingStorage(Storage):
    """A local storage that counts each kind of call (a real storage, not a stand-in)."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.root_url = inner.root_url
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def _count(self, name: str) -> None:
        with self._lock:
            self.calls[name] = self.calls.get(name, 0) + 1

    def put(self, key, data, metadata):
        self._count("put")
        self.inner.put(key, data, metadata)

    def get(self, key):
        self._count("get")
        return self.inner.get(key)

    def head(self, key):
        self._count("head")
        return self.inner.head(key)

    def delete(self, key):
        self._count("delete")
        return self.inner.delete(key)

    def list(self, prefix=""):
        self._count("list")
        return self.inner.list(prefix)
