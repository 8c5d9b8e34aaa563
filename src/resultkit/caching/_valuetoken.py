"""Values as tokens for code fingerprints: deterministic, hash-seed free, cached per object.

A global's or a closure cell's value is tokenized without ``repr`` of
anything that carries an id; sets are sorted, dicts by key; objects of the
user's classes by their class and attributes; cycles (a parent and its
children) by how far up they point. Code found inside data (a dict of
functions) goes back to the fingerprint's walk.
"""

from __future__ import annotations

import enum
import functools
import threading
import types
from collections.abc import Callable
from typing import Any

import xxhash

from ..errors import UnhashableInputError
from ._codetoken import Unfingerprintable, is_user_module
from .hashing import input_token

__all__ = ["is_code", "value_token"]

_MAX_DEPTH = 40
_LOCK = threading.Lock()

_SIMPLE = (type(None), bool, int, float, complex, str, bytes, bytearray)
# id -> (the object, kept alive; its token; the code found in it, followed again on each use)
_VALUES: dict[int, tuple[Any, str, tuple[Any, ...]]] = {}
_MAX_VALUES = 2048


def is_code(value: Any) -> bool:
    """Whether ``value`` is code a fingerprint follows (not a value it tokenizes)."""
    return isinstance(
        value,
        types.FunctionType
        | types.MethodType
        | types.ModuleType
        | type
        | functools.partial
        | types.BuiltinFunctionType
        | staticmethod
        | classmethod
        | property
        | functools.cached_property,
    )


def value_token(value: Any, follow: Callable[[Any], str]) -> str:
    """A deterministic token of a data value; code found inside it goes to ``follow``
    (which returns the name the token embeds: the code's own tokens are its components).

    Objects are tokenized once per object (by identity): a value changed in
    place during a process is not seen until the next process.
    """
    if isinstance(value, _SIMPLE):
        return input_token(value)
    with _LOCK:
        cached = _VALUES.get(id(value))
    if cached is not None and cached[0] is value:
        for code in cached[2]:
            follow(code)
        return cached[1]
    found: list[Any] = []

    def record(code: Any) -> str:
        found.append(code)
        return follow(code)

    h = xxhash.xxh3_128()
    _feed(h, value, record, 0)
    token = h.hexdigest()
    with _LOCK:
        if len(_VALUES) >= _MAX_VALUES:
            _VALUES.pop(next(iter(_VALUES)))
        _VALUES[id(value)] = (value, token, tuple(found))
    return token


def _feed(
    h: Any,
    value: Any,
    follow: Callable[[Any], str],
    depth: int,
    stack: dict[int, int] | None = None,
) -> None:
    if depth > _MAX_DEPTH:
        raise Unfingerprintable(f"a value nests more than {_MAX_DEPTH} levels")
    t = type(value)
    if isinstance(value, _SIMPLE):
        h.update(f"{input_token(value)};".encode())
        return
    if is_code(value):
        h.update(f"code:{follow(value)};".encode())
        return
    stack = {} if stack is None else stack
    entered = stack.get(id(value))
    if entered is not None:  # a cycle (a parent and its children): named by how far up
        h.update(f"cycle:{depth - entered};".encode())
        return
    stack[id(value)] = depth
    try:
        _feed_container(h, value, t, follow, depth, stack)
    finally:
        del stack[id(value)]


def _feed_container(
    h: Any, value: Any, t: type, follow: Callable[[Any], str], depth: int, stack: dict[int, int]
) -> None:
    def sub(item: Any) -> str:
        inner = xxhash.xxh3_128()
        _feed(inner, item, follow, depth + 1, stack)
        return inner.hexdigest()

    if isinstance(value, list | tuple):  # a namedtuple too: its class, then its items
        kind = t.__name__ if t in (list, tuple) else f"{_class_name(t, follow)}"
        h.update(f"{kind}[{len(value)}](".encode())
        for item in value:
            _feed(h, item, follow, depth + 1, stack)
        h.update(b")")
    elif isinstance(value, dict | types.MappingProxyType):
        items = sorted((sub(k), v) for k, v in value.items())
        h.update(f"dict[{len(items)}](".encode())
        for key, item in items:
            h.update(key.encode())
            _feed(h, item, follow, depth + 1, stack)
        h.update(b")")
    elif isinstance(value, set | frozenset):
        h.update(f"set({','.join(sorted(sub(v) for v in value))})".encode())
    elif isinstance(value, enum.Enum):
        h.update(f"enum:{follow(t)}:{value.name};".encode())
    elif is_user_module(t.__module__) and (hasattr(value, "__dict__") or hasattr(t, "__slots__")):
        _feed_state(h, f"object:{follow(t)}", value, follow, depth, stack)
    else:
        try:
            h.update(f"{t.__module__}.{t.__qualname__}:{input_token(value)};".encode())
        except UnhashableInputError as exc:
            if not _state(value):  # nothing to walk: a lock, a socket, a C object
                raise Unfingerprintable(str(exc)) from None
            # A library object that will not pickle (a dataclass Field holding a
            # lambda): its attributes, walked like a user object's.
            _feed_state(h, f"object:{t.__module__}.{t.__qualname__}", value, follow, depth, stack)


def _class_name(t: type, follow: Callable[[Any], str]) -> str:
    """A class as a token names it: the user's own by its code, a library's by name."""
    return follow(t) if is_user_module(t.__module__) else f"{t.__module__}.{t.__qualname__}"


def _feed_state(
    h: Any,
    label: str,
    value: Any,
    follow: Callable[[Any], str],
    depth: int,
    stack: dict[int, int],
) -> None:
    h.update(f"{label}(".encode())
    for name, item in sorted(_state(value).items()):
        h.update(f"{name}=".encode())
        _feed(h, item, follow, depth + 1, stack)
    h.update(b")")


def _state(value: Any) -> dict[str, Any]:
    """An object's attributes: its ``__dict__`` and every ``__slots__`` slot that is set."""
    state = dict(getattr(value, "__dict__", {}))
    for klass in type(value).__mro__:
        slots = klass.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name not in ("__dict__", "__weakref__") and hasattr(value, name):
                state[name] = getattr(value, name)
    return state
