"""User code outside the task body (validators, handlers, triggers, Result hooks) fails that task.

Such a failure is an ordinary Failed state: logged, passed through the state
handlers, with a message naming what raised, never "internal error".
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import pytest

from resultkit import Flow, context, task
from resultkit.results import MemoryResult
from resultkit.states import Failed, Success


@pytest.fixture(autouse=True)
def fresh_caches():
    context.caches.clear()
    yield
    context.caches.clear()


class Recorder:
    """A state handler that records each change as (old, new, message)."""

    def __init__(self):
        self.changes = []

    def __call__(self, task_, old, new):
        self.changes.append((type(old).__name__, type(new).__name__, new.message))


def _messages(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "resultkit"]


def test_cache_validator_that_raises_fails_the_task(caplog):
    def picky(state, inputs, parameters):
        raise TypeError("cannot compare these")

    seen = Recorder()

    @task(cache_for=timedelta(hours=1), cache_validator=picky, state_handlers=[seen])
    def work():
        return 1

    with Flow("validator-raises") as flow:
        ref = work()
    assert flow.run().result[ref].is_successful()  # nothing cached yet: not called
    seen.changes.clear()
    with caplog.at_level(logging.INFO, logger="resultkit"):
        state = flow.run().result[ref]
    assert state.is_failed() and isinstance(state.exception, TypeError)
    assert state.message == "cache validator picky raised TypeError: cannot compare these"
    assert "internal error" not in state.message
    assert seen.changes[-1][1] == "Failed" and "picky" in seen.changes[-1][2]
    assert any("Failed" in m and "picky" in m for m in _messages(caplog))


def test_result_write_that_raises_without_message(caplog):
    class Broken(MemoryResult):
        def write(self, value, location=None, **kwargs):
            raise NotImplementedError()

    seen = Recorder()

    @task(checkpoint=True, result=Broken(root=f"/f-{uuid.uuid4().hex}"), state_handlers=[seen])
    def work():
        return 1

    with Flow("hook-raises") as flow:
        ref = work()
    with caplog.at_level(logging.INFO, logger="resultkit"):
        state = flow.run().result[ref]
    assert state.is_failed() and isinstance(state.exception, NotImplementedError)
    assert state.message.startswith("Result hook Broken.write raised NotImplementedError")
    assert not state.message.rstrip().endswith(":")
    assert "implement" in state.message.split("NotImplementedError", 1)[1]
    assert "internal error" not in state.message
    assert [c[:2] for c in seen.changes] == [("Pending", "Running"), ("Running", "Failed")]
    assert any("Broken.write" in m for m in _messages(caplog))


def test_result_read_that_raises_in_a_mapped_child_fails_only_that_child():
    class Flaky(MemoryResult):
        def read(self, location=None, **kwargs):
            if str(location).endswith("/1.pkl"):
                raise KeyError("backend lost its index")
            return super().read(location, **kwargs)

    @task(target="{map_index}.pkl", result=Flaky(root=f"/f-{uuid.uuid4().hex}"))
    def square(x):
        return x * x

    with Flow("read-raises") as flow:
        m = square.map([1, 2, 3])
    assert flow.run().is_successful()  # nothing stored yet: read is not called
    state = flow.run()
    kids = state.result[m].map_states
    assert [k.is_successful() for k in kids] == [True, False, True]
    assert kids[1].message.startswith("Result hook Flaky.read raised KeyError")


def test_trigger_that_raises_fails_the_task():
    def moody(upstream):
        raise ValueError("bad mood")

    @task(trigger=moody)
    def work():
        return 1

    with Flow("trigger-raises") as flow:
        ref = work()
    state = flow.run().result[ref]
    assert state.is_failed() and state.message == "trigger moody raised ValueError: bad mood"


def test_state_handler_that_raises_fails_naming_it_and_does_not_recurse():
    calls = []

    def explodes(task_, old, new):
        calls.append(type(new).__name__)
        raise RuntimeError("handler bug")

    ran = []

    @task(state_handlers=[explodes])
    def work():
        ran.append(1)
        return 1

    with Flow("handler-raises") as flow:
        ref = work()
    state = flow.run().result[ref]
    assert state.is_failed() and isinstance(state.exception, RuntimeError)
    assert "state handler explodes raised RuntimeError: handler bug" in state.message
    assert ran == []  # it raised on Running: the body never ran
    assert len(calls) <= 2  # it saw Running, then (once) its own failure


def test_other_handlers_see_a_handler_failure():
    seen = Recorder()

    def explodes_on_success(task_, old, new):
        if isinstance(new, Success):
            raise OSError("disk full")

    @task(state_handlers=[explodes_on_success, seen])
    def work():
        return 1

    with Flow("handler-raises-2") as flow:
        ref = work()
    state = flow.run().result[ref]
    assert state.is_failed() and "explodes_on_success" in state.message
    assert seen.changes[-1][1] == "Failed" and "disk full" in seen.changes[-1][2]


def test_handler_replacing_a_failure_still_works():
    def forgive(task_, old, new):
        return Success("forgiven", "fallback") if isinstance(new, Failed) else None

    def picky(state, inputs, parameters):
        raise TypeError("no")

    @task(cache_for=timedelta(hours=1), cache_validator=picky, state_handlers=[forgive])
    def work():
        return 1

    with Flow("forgive") as flow:
        ref = work()
    flow.run()
    assert flow.run().result[ref].result == "fallback"


def test_body_exception_without_message_is_not_empty():
    class Todo(Exception):
        pass

    @task
    def work():
        raise Todo()

    with Flow("no-message") as flow:
        ref = work()
    state = flow.run().result[ref]
    assert state.is_failed() and state.message.startswith("Todo")
    assert not state.message.rstrip().endswith(":") and len(state.message) > len("Todo")


def test_trigger_signals_choose_the_state():
    from resultkit.signals import FAIL, SKIP

    def skip_it(upstream):
        raise SKIP("not needed today")

    def fail_it(upstream):
        raise FAIL("upstream data is stale")

    @task
    def work():
        return 1

    with Flow("trigger-signals") as flow:
        skipped = work(task_args={"trigger": skip_it})
        failed = work(task_args={"trigger": fail_it})
    state = flow.run()
    assert state.result[skipped].is_skipped()
    assert state.result[skipped].message == "not needed today"
    assert type(state.result[failed]).__name__ == "TriggerFailed"
    assert state.result[failed].message == "upstream data is stale"
