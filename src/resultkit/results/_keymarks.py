"""Marks on a storage's exception naming the key it is about, in a call about many keys.

``exists_many`` asks about many keys at once; the storage marks the failure
of one with its key (:func:`about_key`), and the Result's error then names
that key's location (:func:`failed_key`), not the first one asked.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

__all__ = ["about_key", "failed_key", "exists_about"]


def about_key(exc: BaseException, key: str) -> BaseException:
    """``exc``, marked as the failure of ``key`` in a call about many keys (``exists_many``),
    so that the error names that key's location, not the first one's."""
    if failed_key(exc) is None:
        # An exception class with __slots__ stays unmarked (the first location is named).
        with contextlib.suppress(AttributeError):
            exc._resultkit_key = key  # type: ignore[attr-defined]
    return exc


def exists_about(key: str, exists: Callable[[str], bool]) -> bool:
    """``exists(key)``, a failure marked with ``key`` (:func:`about_key`): the per-key
    answers of an ``exists_many`` that name the key that failed, not the first one."""
    try:
        return exists(key)
    except Exception as exc:
        raise about_key(exc, key)  # noqa: B904  (the same exception, marked)


def failed_key(exc: BaseException) -> str | None:
    """The key :func:`about_key` marked ``exc`` with, if any."""
    key = getattr(exc, "_resultkit_key", None)
    return key if isinstance(key, str) else None
