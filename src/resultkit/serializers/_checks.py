"""Argument checks shared by the serializers: near-name hints, keyword dicts."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from .._suggest import did_you_mean
from ..errors import ConfigurationError

__all__ = ["did_you_mean", "check_call_kwargs", "qualified_name"]


def check_call_kwargs(
    owner: str,
    arg: str,
    label: str,
    fn: Callable[..., Any],
    kwargs: Mapping[str, Any],
    supplied: tuple[str, ...],
) -> None:
    """Fail now, not at the first write, if ``fn(*supplied, **kwargs)`` cannot bind.

    ``owner`` is the serializer class, ``arg`` the argument the user gave
    (``serialize_kwargs``...), ``label`` the function (``DataFrame.to_csv``), ``supplied`` the positional
    arguments the serializer passes itself (their names, for the message).
    Functions without an introspectable signature are not second-guessed,
    nor are unknown keywords of functions that take ``**kwargs``.
    """
    where = f"{owner}({arg}=...)" if kwargs else owner
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # some C functions have no signature
        return
    params = sig.parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    named = [
        name
        for name, p in params.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]
    if not takes_any:
        for key in kwargs:
            if key not in named:
                raise ConfigurationError(
                    f"{where}: {label}() has no keyword {key!r}{did_you_mean(key, named)}; "
                    f"it takes: {', '.join(n for n in named if n != 'self') or 'none'}"
                )
    try:
        sig.bind(*([None] * len(supplied)), **kwargs)
    except TypeError as exc:
        given = [k for k in kwargs if k in named[: len(supplied)]]
        if given:
            raise ConfigurationError(
                f"{where}: {given[0]!r} is passed by the serializer itself "
                f"({label}({', '.join(supplied)}, ...)); remove it from {arg}"
            ) from exc
        fix = (
            f"Fix {arg} (or the function's signature)"
            if kwargs
            else f"{label} must take {', '.join(supplied)} as positional arguments"
        )
        raise ConfigurationError(
            f"{where}: the serializer calls {label}({', '.join(supplied)}, **{arg}), "
            f"which fails: {exc}. {fix}."
        ) from exc


def qualified_name(fn: Callable[..., Any]) -> str:
    """``module.qualname`` of a function, of a ``functools.partial``'s function,
    or of a callable object's class: stable across processes."""
    target: Any = fn
    while hasattr(target, "func") and hasattr(target, "keywords"):  # functools.partial
        target = target.func
    qual = getattr(target, "__qualname__", None) or type(target).__qualname__
    module = getattr(target, "__module__", None) or type(target).__module__
    return f"{module}.{qual}"
