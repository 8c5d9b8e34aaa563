"""Output caches: an object with a bound and expiry, keyed per flow and task, indexed lookups."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from conftest import Counter
from resultkit import Flow, Parameter, cache_validators, context, task
from resultkit.caching import CacheKey, CacheStore, OutputCache
from resultkit.errors import ConfigurationError, FlowError
from resultkit.states import Cached

pytestmark = pytest.mark.usefixtures("fresh_caches")


def _entry(inputs, parameters, expires=None, value=None):
    return Cached(
        "c",
        value,
        input_tokens=inputs,
        cached_parameters=parameters,
        cached_result_expiration=expires or datetime.now(timezone.utc) + timedelta(hours=1),
    )


def test_context_caches_is_the_default_store(monkeypatch):
    from resultkit.caching import ResultCacheStore

    assert isinstance(context.caches, ResultCacheStore)  # persistent by default
    assert isinstance(context.caches, CacheStore)
    monkeypatch.setenv("RESULTKIT_CACHE_STORE", "memory")
    assert isinstance(context.caches, OutputCache)  # the in-process store on request
    assert context.caches.max_entries > 0


def test_same_named_tasks_of_two_flows_do_not_share():
    runs = Counter()

    def make(value):
        @task(cache_for=timedelta(hours=1))
        def answer():
            runs()
            return value

        return answer

    with Flow("first") as f1:
        one = make(1)()
    with Flow("second") as f2:
        two = make(2)()
    assert f1.run().result[one].result == 1
    state = f2.run()
    assert runs.n == 2 and state.result[two].result == 2 and not state.result[two].is_cached()
    assert f1.run().result[one].is_cached() and f2.run().result[two].is_cached()


def test_cache_key_still_shares_between_flows():
    runs = Counter()

    @task(cache_for=timedelta(hours=1), cache_key="shared")
    def answer():
        runs()
        return 42

    with Flow("a") as f1:
        answer()
    with Flow("b") as f2:
        ref = answer()
    f1.run()
    assert f2.run().result[ref].is_cached() and runs.n == 1


def test_store_is_bounded_least_recently_used_first():
    store = OutputCache(max_entries=3)
    runs = Counter()

    @task(cache_for=timedelta(hours=1), cache_validator=cache_validators.all_inputs)
    def square(x):
        runs()
        return x * x

    with Flow("bounded") as flow:
        x = Parameter("x")
        ref = square(x)
    for value in (1, 2, 3):
        flow.run(parameters={"x": value}, caches=store)
    assert len(store) == 3 and runs.n == 3
    assert flow.run(parameters={"x": 1}, caches=store).result[ref].is_cached()  # 1 is now recent
    flow.run(parameters={"x": 4}, caches=store)  # evicts 2, the least recently used
    assert len(store) == 3
    assert flow.run(parameters={"x": 1}, caches=store).result[ref].is_cached()
    assert not flow.run(parameters={"x": 2}, caches=store).result[ref].is_cached()


def test_rerunning_the_same_inputs_does_not_grow_the_store():
    store = OutputCache()

    @task(cache_for=timedelta(hours=1), cache_validator=cache_validators.never_use)
    def work():
        return 1

    with Flow("no-growth") as flow:
        work()
    for _ in range(20):
        flow.run(caches=store)
    assert len(store) == 1


def test_expired_entries_are_dropped_on_access():
    store = OutputCache()
    key = CacheKey("t", flow="f")
    past = datetime.now(timezone.utc) - timedelta(seconds=1)
    store.put(key, _entry({"x": "1"}, {}, expires=past))
    store.put(key, _entry({"x": "2"}, {}, expires=past))
    assert len(store) == 2
    assert store.get(key, {"x": "1"}, {}, cache_validators.all_inputs) is None
    assert store.get(key, {"x": "3"}, {}, cache_validators.duration_only) is None
    assert len(store) == 0


def test_prune_drops_every_expired_entry():
    store = OutputCache()
    past = datetime.now(timezone.utc) - timedelta(seconds=1)
    for i in range(5):
        store.put(CacheKey(f"t{i}"), _entry({}, {}, expires=past))
    store.put(CacheKey("live"), _entry({}, {}))
    assert store.prune() == 5 and len(store) == 1


def test_bad_max_entries_is_refused():
    with pytest.raises(ConfigurationError, match="max_entries"):
        OutputCache(max_entries=0)


def test_a_caches_key_that_is_not_a_store_is_refused():
    @task(cache_for=timedelta(hours=1))
    def work():
        return 1

    with Flow("bad-store") as flow:
        work()
    with pytest.raises(FlowError, match="CacheStore"):
        flow.run(caches={})


def test_a_custom_store_plugs_in():
    class DictStore:
        def __init__(self):
            self.entries = {}
            self.gets = 0

        def get(self, key, inputs, parameters, validator):
            self.gets += 1
            entry = self.entries.get(key)
            return entry if entry is not None and validator(entry, inputs, parameters) else None

        def put(self, key, entry):
            self.entries[key] = entry

    store = DictStore()
    assert isinstance(store, CacheStore)
    runs = Counter()

    @task(cache_for=timedelta(hours=1))
    def work():
        runs()
        return 5

    with Flow("custom-store") as flow:
        ref = work()
    flow.run(caches=store)
    state = flow.run(caches=store)
    assert runs.n == 1 and state.result[ref].is_cached() and state.result[ref].result == 5
    assert list(store.entries) == [CacheKey("work", flow="custom-store")]


def _custom_all_inputs(state, inputs, parameters):
    """A validator without index metadata: the store scans for it."""
    return cache_validators.all_inputs(state, inputs, parameters)


VALIDATORS = [
    cache_validators.never_use,
    cache_validators.duration_only,
    cache_validators.all_inputs,
    cache_validators.all_parameters,
    cache_validators.partial_inputs_only(["a"]),
    cache_validators.partial_inputs_only(["a", "c"]),
    cache_validators.partial_parameters_only(["p"]),
    cache_validators.partial_parameters_only(),
    _custom_all_inputs,
]


@pytest.mark.parametrize("validator", VALIDATORS, ids=lambda v: v.__name__)
def test_indexed_lookup_agrees_with_a_scan(validator):
    rng = random.Random(7)
    store = OutputCache()
    key = CacheKey("t", flow="f")
    latest = {}  # the store keeps one entry per distinct (inputs, parameters): the newest
    now = datetime.now(timezone.utc)

    def tokens(names):
        return {n: str(rng.randint(0, 2)) for n in names if rng.random() < 0.8}

    for _ in range(200):
        expires = now + timedelta(hours=1) if rng.random() < 0.9 else now - timedelta(hours=1)
        entry = _entry(tokens("abc"), tokens("pq"), expires=expires)
        identity = (
            sorted(entry.cached_input_tokens.items()),
            sorted(entry.cached_parameters.items()),
        )
        latest.pop(repr(identity), None)
        latest[repr(identity)] = entry
        store.put(key, entry)
    live = [e for e in latest.values() if e.cached_result_expiration > now]
    for _ in range(100):
        inputs, parameters = tokens("abc"), tokens("pq")
        want = [e for e in live if validator(e, inputs, parameters)]
        got = store.get(key, inputs, parameters, validator)
        if not want:
            assert got is None
        else:
            assert got is not None and validator(got, inputs, parameters)
            assert any(got is e for e in live)


def test_concurrent_task_runs_share_the_store_safely():
    from resultkit.executors import ThreadExecutor

    store = OutputCache(max_entries=50)
    runs = Counter()

    @task(cache_for=timedelta(hours=1), cache_validator=cache_validators.all_inputs)
    def square(x):
        runs()
        return x * x

    with Flow("threads", executor=ThreadExecutor(4)) as flow:
        refs = [square(i % 40) for i in range(200)]
    first = flow.run(caches=store)
    assert [first.result[r].result for r in refs] == [(i % 40) ** 2 for i in range(200)]
    assert len(store) == 40
    second = flow.run(caches=store)
    assert all(second.result[r].is_cached() for r in refs)
