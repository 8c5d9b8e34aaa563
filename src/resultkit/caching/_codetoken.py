"""The pieces of a code fingerprint: code objects, where code lives, and values as tokens.

A code object's token covers what runs (bytecode, constants, names,
argument layout, exception table) and not where it sits (file, line
numbers): a comment or a blank line changes nothing. Each code object is
analysed once (weakly cached by the object itself); values are tokenized
without ``repr`` of anything that carries an id, sets are sorted, so a
token is the same in every process whatever ``PYTHONHASHSEED`` is.
"""

from __future__ import annotations

import dis
import functools
import importlib.metadata
import os
import site
import sys
import sysconfig
import threading
import types
import weakref
from dataclasses import dataclass
from typing import Any

import xxhash

from .hashing import input_token

__all__ = [
    "PYTHON",
    "Unfingerprintable",
    "CodeInfo",
    "code_info",
    "is_user_module",
    "is_user_function",
    "home_module",
    "package_of",
]

#: Bytecode is only comparable within one Python minor version.
PYTHON = f"python {sys.version_info.major}.{sys.version_info.minor}"
_LOADS = frozenset({"LOAD_GLOBAL", "LOAD_NAME"})
_ATTRS = frozenset({"LOAD_ATTR", "LOAD_METHOD"})
_MAX_DEPTH = 40


class Unfingerprintable(Exception):
    """Something a fingerprint cannot follow; the message says what and why."""


@dataclass(frozen=True)
class CodeInfo:
    """What one code object does: its token and the names it reads.

    ``globals`` holds the chains it reads from its module (``("helpers",
    "normalise")`` for ``helpers.normalise``); ``imports`` the modules it
    imports in its body, with the name taken (``None`` for the whole module).
    """

    token: str
    globals: tuple[tuple[str, ...], ...]
    imports: tuple[tuple[str, str | None], ...]


_CODE_INFO: weakref.WeakKeyDictionary[types.CodeType, CodeInfo] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def code_info(code: types.CodeType, docstring: str | None = None) -> CodeInfo:
    """The analysis of ``code`` (cached per code object); ``docstring`` is left out of it."""
    with _LOCK:
        found = _CODE_INFO.get(code)
    if found is None:
        found = _analyse(code, docstring)
        with _LOCK:
            _CODE_INFO[code] = found
    return found


def _analyse(code: types.CodeType, docstring: str | None) -> CodeInfo:
    h = xxhash.xxh3_128()
    for part in (
        PYTHON,
        code.co_name,
        code.co_argcount,
        code.co_posonlyargcount,
        code.co_kwonlyargcount,
        code.co_flags,
        code.co_names,
        code.co_varnames,
        code.co_freevars,
        code.co_cellvars,
    ):
        h.update(f"{part!r};".encode())
    h.update(code.co_code)
    h.update(getattr(code, "co_exceptiontable", b""))
    consts = list(code.co_consts)
    if docstring is not None and consts and consts[0] == docstring:
        consts[0] = None  # a docstring is documentation, not behaviour
    globals_read: list[tuple[str, ...]] = []
    imports: list[tuple[str, str | None]] = []
    for const in consts:
        if isinstance(const, types.CodeType):
            inner = code_info(const)
            h.update(f"code:{inner.token};".encode())
            globals_read.extend(inner.globals)
            imports.extend(inner.imports)
        else:
            h.update(f"{const_token(const)};".encode())
    chain: list[str] = []
    pending_import: str | None = None
    for ins in dis.get_instructions(code):
        if ins.opname in _ATTRS and chain:
            chain.append(str(ins.argval))
            continue
        if chain:
            globals_read.append(tuple(chain))
            chain = []
        if ins.opname in _LOADS:
            chain = [str(ins.argval)]
        elif ins.opname == "IMPORT_NAME":
            if pending_import is not None:
                imports.append((pending_import, None))
            pending_import = str(ins.argval)
        elif ins.opname == "IMPORT_FROM" and pending_import is not None:
            imports.append((pending_import, str(ins.argval)))
            pending_import = ""  # its names were taken one by one
        elif pending_import is not None and ins.opname not in ("IMPORT_FROM", "POP_TOP"):
            if pending_import:
                imports.append((pending_import, None))
            pending_import = None
    if chain:
        globals_read.append(tuple(chain))
    if pending_import:
        imports.append((pending_import, None))
    return CodeInfo(
        h.hexdigest(),
        tuple(dict.fromkeys(globals_read)),
        tuple(dict.fromkeys(i for i in imports if i[0])),
    )


def const_token(value: Any) -> str:
    """A compiled constant as text: literals, tuples and frozensets of them (sorted)."""
    if isinstance(value, frozenset):
        return "frozenset(" + ",".join(sorted(const_token(v) for v in value)) + ")"
    if isinstance(value, tuple):
        return "(" + ",".join(const_token(v) for v in value) + ")"
    if isinstance(value, types.CodeType):
        return f"code:{code_info(value).token}"
    if value is Ellipsis:
        return "..."
    return input_token(value)


# -- where code lives --------------------------------------------------------------------
@functools.cache
def _library_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    dirs.update(getattr(site, "getsitepackages", list)())
    user_site = getattr(site, "getusersitepackages", lambda: None)()
    if isinstance(user_site, str):
        dirs.add(user_site)
    return tuple(sorted(os.path.join(os.path.realpath(d), "") for d in dirs if d))


@functools.cache
def _file_is_library(path: str) -> bool:
    real = os.path.realpath(path)
    return any(real.startswith(d) for d in _library_dirs())


def is_user_module(name: str | None) -> bool:
    """Whether code of module ``name`` is the user's own (followed) or a library's.

    The standard library, anything under site-packages and resultkit itself
    are libraries; a module with no file (``__main__`` in a notebook, code
    run by ``exec``) is the user's.
    """
    if not name or name == "__main__":
        return True  # a script, a notebook, code run by exec
    top = name.partition(".")[0]
    if top == "resultkit":
        return False
    module = sys.modules.get(name)
    path = getattr(module, "__file__", None)
    if isinstance(path, str):  # by its file first: your statistics.py is yours
        return not _file_is_library(path)
    if top in sys.stdlib_module_names or name in sys.builtin_module_names:
        return False
    # A namespace package (no file): judged by its folders.
    folders = [p for p in getattr(module, "__path__", None) or () if isinstance(p, str)]
    if folders:
        return not all(_file_is_library(p) for p in folders)
    return module is None or getattr(module, "__spec__", None) is None


def home_module(fn: types.FunctionType) -> str | None:
    """The module a function's code lives in: its globals' (``functools.wraps`` copies
    ``__module__`` from the function it wraps, so that may be another module's)."""
    name = fn.__globals__.get("__name__")
    return name if isinstance(name, str) else fn.__module__


def is_user_function(fn: types.FunctionType) -> bool:
    """Whether ``fn`` is the user's code: by the file its code was compiled from, else
    (code made by ``exec``: a notebook cell, a generated ``__init__``) by its module."""
    path = fn.__code__.co_filename
    module = home_module(fn)
    if path.startswith("<") or not os.path.isabs(path):
        return is_user_module(module)
    top = (module or "").partition(".")[0]
    return top != "resultkit" and not _file_is_library(path)


@functools.cache
def _distributions() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())


@functools.cache
def package_of(module_name: str) -> str:
    """The version that stands for library code of ``module_name``: its distribution's,
    or the Python version for the standard library. Raises :class:`Unfingerprintable`."""
    top = module_name.partition(".")[0]
    if top in sys.stdlib_module_names or top in sys.builtin_module_names or top == "builtins":
        return PYTHON
    for dist in sorted(_distributions().get(top, [])):
        try:
            return f"{dist} {importlib.metadata.version(dist)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    raise Unfingerprintable(
        f"module {module_name!r} is neither the user's nor an installed package"
    )
