"""Code fingerprints: what counts, what does not, and the same token in every process.

Code is compiled from source strings with ``exec`` (as a notebook cell is),
so each test controls exactly what changed between two versions.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap
import threading
import warnings
from typing import Any

import numpy as np
import pytest

from resultkit.caching import code_fingerprint
from resultkit.errors import ResultKitWarning


def cell(source: str, name: str = "f", **names: Any) -> Any:
    """``name`` from ``source`` run as a notebook cell (module ``__main__``, no file)."""
    scope: dict[str, Any] = {"__name__": "__main__", **names}
    exec(compile(textwrap.dedent(source), "<cell>", "exec"), scope)
    return scope[name]


def token(source: str, name: str = "f", **names: Any) -> str:
    return code_fingerprint(cell(source, name, **names)).token


def test_formatting_comments_and_docstrings_do_not_count():
    plain = token("def f(x):\n    return x + 1\n")
    assert token("\n\ndef f(x):   # why\n\n    return x+1  # one more\n") == plain
    assert token('def f(x):\n    """Add one."""\n    return x + 1\n') == plain
    assert token("def f(x):\n    return x + 2\n") != plain
    assert token("def f(y):\n    return y + 1\n") != plain  # a renamed argument is an API change
    assert token("def f(x=1):\n    return x + 1\n") != token("def f(x=2):\n    return x + 1\n")


def test_helpers_are_followed_and_named_by_path():
    source = """
    LIMIT = 3
    def helper(x):
        return min(x, LIMIT)
    def f(x):
        return helper(x)
    """
    fp = code_fingerprint(cell(source))
    assert {"f", "f -> helper", "f -> helper -> LIMIT"} <= set(fp.components)
    changed = code_fingerprint(cell(source.replace("min(", "max(")))
    assert changed.changed_from(fp.components) == ["f -> helper"]
    constant = code_fingerprint(cell(source.replace("= 3", "= 4")))
    assert constant.changed_from(fp.components) == ["f -> helper -> LIMIT"]


def test_recursion_between_helpers_terminates_and_counts_both():
    source = """
    def f(n):
        return 0 if n == 0 else g(n - 1)
    def g(n):
        return f(n) + 1
    """
    fp = code_fingerprint(cell(source))
    assert set(fp.components) == {"python", "f", "f -> g"}
    assert code_fingerprint(cell(source.replace("+ 1", "+ 2"))).changed_from(fp.components) == [
        "f -> g"
    ]


def test_closures_and_lambdas_count_by_value_and_code():
    make = cell("def make(k):\n    def by(x):\n        return x * k\n    return by\n", "make")
    assert code_fingerprint(make(2)).token == code_fingerprint(make(2)).token
    assert code_fingerprint(make(2)).changed_from(code_fingerprint(make(3)).components) == [
        "by -> k"
    ]
    lam = "double = lambda x: x * 2\ndef f(x):\n    return double(x)\n"
    fp = code_fingerprint(cell(lam))
    assert "f -> double" in fp.components  # named as the code reading it names it
    assert token(lam.replace("* 2", "* 3")) != fp.token


def test_classes_methods_slots_properties_and_partials():
    source = """
    class Model:
        __slots__ = ("w",)
        RATE = 0.1
        def __init__(self):
            self.w = 1
        def fit(self, x):
            return self.step(x) * self.RATE
        def step(self, x):
            return x + 1
        @staticmethod
        def s():
            return 1
        @classmethod
        def c(cls):
            return cls.RATE
        @property
        def p(self):
            return self.w
    def f(x):
        return Model().fit(x)
    """
    fp = code_fingerprint(cell(source))
    assert {"f -> Model", "f -> Model.step", "f -> Model -> RATE", "f -> Model.p"} <= set(
        fp.components
    )
    step = code_fingerprint(cell(source.replace("x + 1", "x + 2")))
    assert step.changed_from(fp.components) == ["f -> Model.step"]
    method = cell(source, "Model")().fit  # a bound method: its class, all of it
    assert "Model.step" in code_fingerprint(method).components
    f = cell(source)
    assert (
        code_fingerprint(functools.partial(f, 1)).token
        != code_fingerprint(functools.partial(f, 2)).token
    )


def test_global_values_numpy_and_nested_code():
    source = """
    def a():
        return 1
    DISPATCH = {"a": a}
    def f(k):
        return DISPATCH[k]() + WEIGHTS.sum()
    """
    fp = code_fingerprint(cell(source, WEIGHTS=np.arange(4)))
    assert code_fingerprint(cell(source, WEIGHTS=np.arange(4))).token == fp.token
    other = code_fingerprint(cell(source, WEIGHTS=np.arange(5)))
    assert other.changed_from(fp.components) == ["f -> WEIGHTS"]
    assert "f -> DISPATCH -> a" in fp.components  # code held in data is followed
    edited = code_fingerprint(cell(source.replace("return 1", "return 2"), WEIGHTS=np.arange(4)))
    assert edited.changed_from(fp.components) == ["f -> DISPATCH -> a"]


def test_a_namedtuple_counts_by_its_items():
    source = "from collections import namedtuple\nP = namedtuple('P', 'a b')\nCFG = P(1, 2)\n"
    source += "def f():\n    return CFG.a\n"
    fp = code_fingerprint(cell(source))
    other = code_fingerprint(cell(source.replace("P(1, 2)", "P(1, 3)")))
    assert other.changed_from(fp.components) == ["f -> CFG"]


def test_library_code_counts_by_package_version():
    fp = code_fingerprint(
        cell("def f(x):\n    return np.mean(x) + json.dumps(x)\n", np=np, json=json)
    )
    assert fp.components["package numpy"] != fp.components["package json"]
    assert fp.kinds["package numpy"] == "package"
    assert not any(path.startswith("f -> np") for path in fp.components)  # not its code


def test_what_cannot_be_fingerprinted_warns_once_and_counts_as_changed():
    f = cell("def f():\n    with GUARD:\n        return 1\n", GUARD=threading.Lock())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = code_fingerprint(f)
        assert code_fingerprint(f).token == first.token  # the same within this process
        g = cell("def f():\n    with GUARD:\n        return 1\n", GUARD=threading.Lock())
        code_fingerprint(g)
    messages = [str(w.message) for w in caught if issubclass(w.category, ResultKitWarning)]
    assert len(messages) == 1 and "cannot fingerprint 'f -> GUARD'" in messages[0]
    assert "code_version" in messages[0]
    assert first.kinds["f -> GUARD"] == "unfollowed"


def test_a_rebound_global_is_seen_in_the_same_process():
    scope: dict[str, Any] = {"__name__": "__main__", "LIMIT": 1}
    exec("def f(x):\n    return x + LIMIT\n", scope)
    before = code_fingerprint(scope["f"]).token
    scope["LIMIT"] = 2
    assert code_fingerprint(scope["f"]).token != before
    exec("def f(x):\n    return x - LIMIT\n", scope)  # a notebook cell run again, edited
    assert code_fingerprint(scope["f"]).token != before


SEEDED = textwrap.dedent(
    """
    import argparse, json, sys, threading
    from collections import namedtuple
    from dataclasses import dataclass, field
    from resultkit.caching import code_fingerprint

    TAGS = {"alpha", "beta", "gamma", "delta", "epsilon"}
    NESTED = {"b": frozenset({"x", "y", "z"}), "a": [{"q", "r"}, ("s", "t")]}

    @dataclass
    class Settings:
        names: set = field(default_factory=lambda: {"u", "v", "w"})
        __hash__ = None

    SETTINGS = Settings()
    GUARD = threading.Lock()
    Pair = namedtuple("Pair", "left right")
    PAIR = Pair(1, {"m", "n", "o"})

    def f(x):
        return x in {"one", "two", "three"} and TAGS and NESTED and SETTINGS and PAIR

    def g():
        with GUARD:
            return 1

    # A library object is hashed by its pickle, which lists a set in hash order.
    OPTIONS = argparse.Namespace(tags={f"tag{i}" for i in range(50)})

    def h():
        return OPTIONS.tags

    print(json.dumps([code_fingerprint(fn).token for fn in (f, g, h)]))
    """
)


def test_tokens_are_equal_across_processes_and_hash_seeds(tmp_path):
    script = tmp_path / "seeded.py"
    script.write_text(SEEDED)
    tokens = []
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        done = subprocess.run(
            [sys.executable, "-W", "ignore", str(script)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        tokens.append(json.loads(done.stdout))
    assert tokens[0][0] == tokens[1][0]  # sets, frozensets, dict order, a dataclass with a set
    assert tokens[0][1] != tokens[1][1]  # a lock cannot be fingerprinted: changed every process
    assert tokens[0][2] != tokens[1][2]  # a library object's pickle holding a set: changed too


@pytest.mark.parametrize("seed_attr", ["__code__", "__defaults__"])
def test_a_replaced_code_or_default_is_seen(seed_attr):
    f = cell("def f(x=1):\n    return x\n")
    before = code_fingerprint(f).token
    other = cell("def f(x=2):\n    return -x\n")
    setattr(f, seed_attr, getattr(other, seed_attr))
    assert code_fingerprint(f).token != before


def test_wrapped_helpers_and_imports_in_the_body_are_followed(tmp_path, monkeypatch):
    cached = "import functools\n@functools.cache\ndef helper(x):\n    return x + 1\n"
    cached += "def f(x):\n    return helper(x)\n"
    fp = code_fingerprint(cell(cached))
    assert "f -> helper" in fp.components  # through functools.cache, to its code
    assert token(cached.replace("x + 1", "x + 2")) != fp.token

    (tmp_path / "local_helpers.py").write_text("def norm(x):\n    return x * 2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    body = "def f(x):\n    from local_helpers import norm\n    return norm(x)\n"
    before = code_fingerprint(cell(body))
    assert "f -> local_helpers.norm" in before.components
    sys.modules.pop("local_helpers")
    (tmp_path / "local_helpers.py").write_text("def norm(x):\n    return x * 3\n")
    after = code_fingerprint(cell(body))
    assert after.changed_from(before.components) == ["f -> local_helpers.norm"]
    sys.modules.pop("local_helpers")


def test_a_global_changed_in_place_is_seen_by_the_next_process_only():
    table = [1, 2]
    f = cell("def f():\n    return sum(TABLE)\n", TABLE=table)
    before = code_fingerprint(f).token
    table.append(3)  # the same object: its token is kept for this process
    assert code_fingerprint(f).token == before
    fresh = cell("def f():\n    return sum(TABLE)\n", TABLE=list(table))  # as a new process
    assert code_fingerprint(fresh).token != before


def test_a_bound_method_counts_its_object_and_a_wrapper_its_function():
    model = "class M:\n    def __init__(self, w):\n        self.w = w\n"
    model += "    def predict(self, x):\n        return x * self.w\n"
    two = code_fingerprint(cell(model + "f = M(2).predict\n"))
    three = code_fingerprint(cell(model + "f = M(3).predict\n"))
    assert three.changed_from(two.components) == ["M.predict -> self"]

    wrapped = "def h(x):\n    return x + 1\nvh = np.vectorize(h)\ndef f(a):\n    return vh(a)\n"
    before = code_fingerprint(cell(wrapped, np=np))
    after = code_fingerprint(cell(wrapped.replace("x + 1", "x + 2"), np=np))
    assert after.changed_from(before.components) == ["f -> h"]  # inside np.vectorize


def test_a_namespace_package_of_yours_is_followed(tmp_path, monkeypatch):
    (tmp_path / "rk_ns_pkg").mkdir()  # no __init__.py: a namespace package
    (tmp_path / "rk_ns_pkg" / "tools.py").write_text("def norm(x):\n    return x + 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import rk_ns_pkg.tools  # noqa: F401

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # followed, not failed closed
            fp = code_fingerprint(cell("def f(x):\n    return rk_ns_pkg.tools.norm(x)\n",
                                       rk_ns_pkg=sys.modules["rk_ns_pkg"]))  # fmt: skip
        assert "f -> rk_ns_pkg.tools.norm" in fp.components
    finally:
        sys.modules.pop("rk_ns_pkg.tools", None)
        sys.modules.pop("rk_ns_pkg", None)


def test_a_compiled_function_of_yours_fails_closed():
    # A library type's callable that says it belongs to a module of yours, as a
    # Cython function does: no bytecode to read.
    compiled = np.vectorize(len)
    compiled.__module__ = "__main__"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fp = code_fingerprint(cell("def f(x):\n    return fast(x)\n", fast=compiled))
    assert fp.kinds["f -> fast"] == "unfollowed"
    assert any("compiled code of module '__main__'" in str(w.message) for w in caught)


def test_library_wrappers_of_your_code_and_stdlib_named_modules_are_followed(tmp_path, monkeypatch):
    ctx = "import contextlib\n@contextlib.contextmanager\ndef ctx():\n    yield 2\n"
    ctx += "def f(x):\n    with ctx() as k:\n        return x * k\n"
    before = code_fingerprint(cell(ctx))
    after = code_fingerprint(cell(ctx.replace("yield 2", "yield 3")))
    assert after.changed_from(before.components) == ["f -> ctx"]  # inside contextmanager

    disp = "import functools\n@functools.singledispatch\ndef proc(x):\n    return x\n"
    disp += "@proc.register(int)\ndef _(x):\n    return x * 2\ndef f(x):\n    return proc(x)\n"
    before = code_fingerprint(cell(disp))
    after = code_fingerprint(cell(disp.replace("x * 2", "x * 3")))
    assert after.changed_from(before.components) == ["f -> _"]  # a registered implementation

    lazy = "import functools\nclass M:\n    @functools.cached_property\n    def k(self):\n"
    lazy += "        return 2\ndef f(x):\n    return x * M().k\n"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # its lock must not make it fail closed
        before = code_fingerprint(cell(lazy))
    assert code_fingerprint(cell(lazy.replace("return 2", "return 3"))).token != before.token

    # Your own module named like a standard one is yours.
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("statistics", None)
    (tmp_path / "statistics.py").write_text("def clip(x):\n    return min(x, 10)\n")
    try:
        body = "import statistics\ndef f(x):\n    return statistics.clip(x)\n"
        before = code_fingerprint(cell(body))
        sys.modules.pop("statistics")
        (tmp_path / "statistics.py").write_text("def clip(x):\n    return min(x, 20)\n")
        after = code_fingerprint(cell(body))
        assert after.changed_from(before.components) == ["f -> statistics.clip"]
    finally:
        sys.modules.pop("statistics", None)  # the real one comes back when next imported
