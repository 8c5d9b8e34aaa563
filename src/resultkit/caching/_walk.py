"""The walk behind a code fingerprint: each object reached becomes a component, once.

See :mod:`resultkit.caching.fingerprint` for what is followed and why.
"""

from __future__ import annotations

import builtins
import functools
import importlib
import sys
import threading
import types
import uuid
from collections.abc import Mapping
from typing import Any

from ..errors import warn_user
from ._codetoken import (
    PYTHON,
    Unfingerprintable,
    code_info,
    home_module,
    is_user_function,
    is_user_module,
    package_of,
)
from ._valuetoken import is_code, value_token
from .hashing import input_token

__all__ = ["Walk", "Read"]

#: One lookup a walk made: (kind, holder, key, the object found); see ``unchanged``.
Read = tuple[str, Any, Any, Any]

_NONCE = uuid.uuid4().hex  # what an unfollowable component is worth: this process only
_WARNED: set[str] = set()
_WARNED_LOCK = threading.Lock()
_MISSING = object()
# What a class's __dict__ holds that is not its code nor its data (abc's cache is C state).
_NOT_MEMBERS = frozenset(
    {"__dict__", "__weakref__", "__module__", "__doc__", "__qualname__", "_abc_impl"}
)


class Walk:
    """One traversal: each object is a component once, at the first path that reaches it."""

    def __init__(self, root_module: str | None) -> None:
        self.root_module = root_module
        self.components: dict[str, str] = {"python": input_token(PYTHON)}
        self.kinds: dict[str, str] = {"python": "package"}
        self.seen: dict[int, str] = {}
        self.reads: list[Read] = []  # each lookup and what it found (see _unchanged)
        self._alive: list[Any] = []  # keeps ids unique during the walk
        self.root: str | None = None

    # -- naming -----------------------------------------------------------------------------
    def display(self, obj: Any) -> str:
        qualname = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
        qualname = str(qualname or type(obj).__name__).rpartition("<locals>.")[2]
        module = getattr(obj, "__module__", None)
        if module in (None, "__main__", self.root_module):
            return qualname
        return f"{module}.{qualname}"

    def _path(self, parent: str | None, name: str) -> str:
        return name if parent is None else f"{parent} -> {name}"

    def add(self, path: str, kind: str, token: str) -> None:
        self.components.setdefault(path, token)
        self.kinds.setdefault(path, kind)

    def failed(self, path: str, reason: str) -> None:
        self.add(path, "unfollowed", f"{_NONCE}:{path}")
        root = self.root or path
        with _WARNED_LOCK:
            if path in _WARNED:
                return
            _WARNED.add(path)
        warn_user(
            f"code fingerprint of {root!r}: cannot fingerprint {path!r} ({reason}); it counts as "
            "changed in every new process. Give the task code_version='...' to control its "
            "cache by hand."
        )

    # -- following --------------------------------------------------------------------------
    def follow(self, obj: Any, parent: str | None, name: str | None = None) -> str:
        """Register ``obj`` (code) under ``parent``; returns the name it is known by."""
        name = name or self.display(obj)
        path = self._path(parent, name)
        if self.root is None:
            self.root = path
        known = self.seen.get(id(obj))
        if known is not None:
            return known
        self.seen[id(obj)] = name
        self._alive.append(obj)
        try:
            self._follow(obj, parent, path)
        except Unfingerprintable as exc:
            self.failed(path, str(exc))
        except Warning:
            raise  # warnings turned into errors: the user asked for it to propagate
        except Exception as exc:  # noqa: BLE001 - fail closed, never fail the task
            self.failed(path, f"{type(exc).__name__}: {exc}")
        return name

    def _follow(self, obj: Any, parent: str | None, path: str) -> None:
        if isinstance(obj, staticmethod | classmethod):
            self._follow(obj.__func__, parent, path)
        elif isinstance(obj, property):
            for part in (obj.fget, obj.fset, obj.fdel):
                if part is not None:
                    self.follow(part, parent)
        elif isinstance(obj, functools.cached_property):
            self.follow(obj.func, parent)  # its lock (3.11) is no part of the code
        elif isinstance(obj, types.MethodType):
            bound = obj.__self__
            owner = bound if isinstance(bound, type) else type(bound)
            self.follow(owner, parent)
            self.follow(obj.__func__, parent)
            if owner is not bound and is_user_module(owner.__module__):
                # A method of one of your objects: that object's attributes count too.
                self._value(bound, path, "self", "global")
        elif isinstance(obj, functools.partial):
            self.follow(obj.func, parent)
            state = (obj.args, obj.keywords)
            self.add(path, "global", value_token(state, lambda c: self.follow(c, path)))
        elif isinstance(obj, types.FunctionType):
            if not is_user_function(obj):
                self._package(home_module(obj) or "builtins", parent)
                # A library's wrapper of your code (contextmanager, singledispatch...):
                # the code it wraps, and the implementations it dispatches to.
                wrapped = getattr(obj, "__wrapped__", None)
                if callable(wrapped):
                    self.follow(wrapped, parent)
                registry = getattr(obj, "registry", None)
                if isinstance(registry, Mapping):
                    for impl in list(registry.values()):
                        if callable(impl):
                            self.follow(impl, parent)
            else:
                self._function(obj, path)
        elif isinstance(obj, type):
            if not is_user_module(obj.__module__):
                self._package(obj.__module__, parent)
            else:
                self._class(obj, path)
        elif isinstance(obj, types.ModuleType):
            if not is_user_module(obj.__name__):
                self._package(obj.__name__, parent)
            else:
                self.add(path, "module", input_token(obj.__name__))
        elif callable(getattr(obj, "__wrapped__", None)):
            # A wrapper object (functools.cache, a decorator's instance): the code it
            # wraps, and its class; its own state is the wrapper's business.
            self.follow(type(obj), parent)
            self.follow(obj.__wrapped__, parent)
        elif hasattr(obj, "__dict__") or is_user_module(type(obj).__module__):
            # A callable object: its class's code and its own state, and the functions
            # of yours a library wrapper keeps (np.vectorize's pyfunc, numba's py_func).
            self.follow(type(obj), parent)
            kept = False
            for attr, value in sorted(getattr(obj, "__dict__", {}).items()):
                if isinstance(value, types.FunctionType) and is_user_function(value):
                    self.reads.append(("attr", obj, attr, value))
                    self.follow(value, parent)
                    kept = True
            module = getattr(obj, "__module__", None)
            if not kept and isinstance(module, str) and _compiled_of_yours(obj, module):
                raise Unfingerprintable(f"compiled code of module {module!r} has no bytecode")
            self.add(path, "global", value_token(obj, lambda c: self.follow(c, path)))
        else:  # compiled code (a builtin, a C extension's function, a ufunc)
            module = getattr(obj, "__module__", None) or type(obj).__module__
            if is_user_module(module):
                raise Unfingerprintable(f"compiled code of module {module!r} has no bytecode")
            self._package(module, parent)

    def _package(self, module: str, parent: str | None) -> None:
        top = module.partition(".")[0]
        path = f"package {top}"
        if path not in self.components:
            try:
                self.add(path, "package", input_token(package_of(module)))
            except Unfingerprintable as exc:
                self.failed(path, str(exc))

    def _function(self, fn: types.FunctionType, path: str) -> None:
        for attr in ("__code__", "__defaults__", "__kwdefaults__", "__closure__"):
            self.reads.append(("attr", fn, attr, getattr(fn, attr)))
        info = code_info(fn.__code__, fn.__doc__)
        defaults = (fn.__defaults__, fn.__kwdefaults__)
        token = info.token
        if defaults != (None, None):
            token += ":" + value_token(defaults, lambda c: self.follow(c, path))
        self.add(path, "code", token)
        scope = fn.__globals__
        for chain in info.globals:
            self._global(scope, chain, path)
        for module_name, imported in info.imports:
            self._import(module_name, imported, path)
        for var, cell in zip(fn.__code__.co_freevars, fn.__closure__ or (), strict=False):
            try:
                value = cell.cell_contents
            except ValueError:  # not yet assigned
                self.reads.append(("cell", cell, None, _MISSING))
                self.add(self._path(path, var), "closure", "empty")
                continue
            self.reads.append(("cell", cell, None, value))
            self._value(value, path, var, "closure")

    def _class(self, cls: type, path: str) -> None:
        members = []
        self.reads.append(("attr", cls, "__bases__", cls.__bases__))
        for attr in sorted(cls.__dict__):
            if attr in _NOT_MEMBERS:
                continue
            value = cls.__dict__[attr]
            self.reads.append(("map", cls.__dict__, attr, value))
            if isinstance(value, types.MemberDescriptorType | types.GetSetDescriptorType):
                continue  # a slot or a C attribute: no code
            members.append(attr)
            name = f"{self.display(cls)}.{attr}"
            if is_code(value):
                self.follow(value, path.rpartition(" -> ")[0] or None, name)
            else:
                self._value(value, path, attr, "global")
        bases = [self.follow(b, path) for b in cls.__bases__ if b is not object]
        self.add(path, "code", input_token([members, bases]))

    def _value(self, value: Any, parent: str, name: str, kind: str) -> None:
        if is_code(value) or callable(value):
            # Named as the code reading it names it when that differs (an alias, a
            # lambda, a closure held in a global), else by its own module and name.
            own = getattr(value, "__name__", None)
            self.follow(value, parent, None if own == name.rpartition(".")[2] else name)
            return
        path = self._path(parent, name)
        try:
            self.add(path, kind, value_token(value, lambda c: self.follow(c, path)))
        except Unfingerprintable as exc:
            self.failed(path, str(exc))

    def _global(self, scope: Mapping[str, Any], chain: tuple[str, ...], parent: str) -> None:
        first, *attrs = chain
        value = scope.get(first, _MISSING)
        self.reads.append(("map", scope, first, value))
        if value is _MISSING:
            if hasattr(builtins, first):
                return  # a builtin: the Python version covers it
            self.add(self._path(parent, first), "global", "undefined")
            return
        taken = [first]
        while attrs and isinstance(value, types.ModuleType) and is_user_module(value.__name__):
            attr = attrs.pop(0)
            holder, value = value, getattr(value, attr, _MISSING)
            self.reads.append(("attr", holder, attr, value))
            taken.append(attr)
            if value is _MISSING:
                self.add(self._path(parent, ".".join(taken)), "global", "undefined")
                return
        if (
            isinstance(value, types.ModuleType)
            and taken == [first]
            and is_user_module(value.__name__)
        ):
            return  # a user module used as a whole (passed around): not followed
        self._value(value, parent, ".".join(taken), "global")

    def _import(self, module_name: str, attr: str | None, parent: str) -> None:
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # noqa: BLE001 - the task's own import will say why
            self.failed(self._path(parent, module_name), f"cannot import it: {exc}")
            return
        self.reads.append(("map", sys.modules, module_name, module))
        if not is_user_module(module.__name__):
            self._package(module.__name__, parent)
        elif attr is not None:
            value = getattr(module, attr, _MISSING)
            self.reads.append(("attr", module, attr, value))
            if value is _MISSING:  # a submodule imported by name
                value = importlib.import_module(f"{module_name}.{attr}")
            self._value(value, parent, f"{module_name}.{attr}", "global")
        else:  # ``import helpers`` in the body: every function and class it defines
            self.reads.append(("attr", module, "__dict__", module.__dict__))
            for attr_name in sorted(vars(module)):
                value = vars(module)[attr_name]
                self.reads.append(("map", module.__dict__, attr_name, value))
                if is_code(value) and getattr(value, "__module__", None) == module.__name__:
                    self.follow(value, parent)


def _compiled_of_yours(obj: Any, module: str) -> bool:
    """A library type's callable that says it belongs to a module of yours: a function
    of your own compiled module (Cython), whose code a fingerprint cannot read."""
    return not is_user_module(type(obj).__module__) and is_user_module(module)


def unchanged(reads: tuple[Read, ...]) -> bool:
    """Whether every lookup of a walk still finds the object it found."""
    for kind, holder, key, value in reads:
        if kind == "map":
            current = holder.get(key, _MISSING)
        elif kind == "attr":
            current = getattr(holder, key, _MISSING)
        else:
            try:
                current = holder.cell_contents
            except ValueError:
                current = _MISSING
        if current is not value:
            return False
    return True
