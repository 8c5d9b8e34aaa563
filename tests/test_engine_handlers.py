"""State handlers see every state change: mapped parents and parameters included."""

from __future__ import annotations

from resultkit import Flow, Parameter, context, task
from resultkit.states import Failed, Mapped


class Recorder:
    """Records (who, old, new) for each change; who is the map index or 'parent'."""

    def __init__(self):
        self.changes = []

    def __call__(self, task_, old, new):
        who = context.get("map_index", "parent")
        self.changes.append((who, type(old).__name__, type(new).__name__))

    def of(self, who):
        return [(old, new) for w, old, new in self.changes if w == who]


def test_mapped_parent_transitions_reach_the_handlers():
    seen = Recorder()

    @task(state_handlers=[seen])
    def double(x):
        return 2 * x

    with Flow("mapped-handlers") as flow:
        m = double.map([1, 2, 3])
    state = flow.run()
    assert state.result[m].result == [2, 4, 6]
    assert seen.of("parent") == [("Pending", "Running"), ("Running", "Mapped")]
    for i in range(3):
        assert seen.of(i) == [("Pending", "Running"), ("Running", "Success")]


def test_empty_and_failed_maps_reach_the_handlers():
    seen_empty, seen_bad = Recorder(), Recorder()

    @task
    def double(x):
        return 2 * x

    with Flow("map-edges") as flow:
        empty = double.map([], task_args={"state_handlers": [seen_empty]})
        bad = double.map(5, task_args={"state_handlers": [seen_bad]})
    state = flow.run()
    assert state.result[empty].is_mapped() and state.result[bad].is_failed()
    assert seen_empty.of("parent") == [("Pending", "Running"), ("Running", "Mapped")]
    assert seen_bad.of("parent") == [("Pending", "Running"), ("Running", "Failed")]


def test_a_handler_can_replace_the_mapped_state():
    def refuse(task_, old, new):
        if isinstance(new, Mapped):
            return Failed("refused by the handler")
        return None

    @task(state_handlers=[refuse])
    def double(x):
        return 2 * x

    @task
    def total(xs):
        return sum(xs)

    with Flow("replace-mapped") as flow:
        m = double.map([1, 2])
        t = total(m)
    state = flow.run()
    assert state.result[m].is_failed() and state.result[m].message == "refused by the handler"
    assert state.result[t].is_failed()  # downstream sees the replaced state


def test_parameter_transitions_reach_the_handlers():
    seen = Recorder()

    @task
    def echo(x):
        return x

    with Flow("param-handlers") as flow:
        p = Parameter("p", default=1, state_handlers=[seen])
        ref = echo(p)
    state = flow.run(parameters={"p": 5})
    assert state.result[ref].result == 5
    assert seen.of("parent") == [("Pending", "Success")]


def test_a_handler_replacing_running_ends_the_run_without_the_body():
    from resultkit.states import Running, Skipped

    ran = []

    def not_today(task_, old, new):
        return Skipped("skipped by a handler") if isinstance(new, Running) else None

    @task(state_handlers=[not_today])
    def work():
        ran.append(1)
        return 1

    with Flow("replace-running") as flow:
        ref = work()
    state = flow.run().result[ref]
    assert state.is_skipped() and state.message == "skipped by a handler" and ran == []
