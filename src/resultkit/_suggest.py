"""Near-name hints for error messages ("did you mean 'dir'?"), shared by every layer."""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["did_you_mean", "suggest_keywords"]


def did_you_mean(word: object, choices: Iterable[str], cutoff: float = 0.6) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest of ``choices``, or ``""``."""
    if not isinstance(word, str):
        return ""
    options = list(choices)
    by_lower = {c.lower(): c for c in options}
    lowered = word.lower()
    if lowered in by_lower:
        return f" (did you mean {by_lower[lowered]!r}?)"
    # A known name the word starts with, or that starts with the word
    # ("directory" -> "dir", "serial" -> "serializer"), beats a mere look-alike.
    affixes = [
        c
        for c in options
        if len(c) >= 3 and (lowered.startswith(c.lower()) or c.lower().startswith(lowered))
    ]
    if affixes and len(lowered) >= 3:
        return f" (did you mean {max(affixes, key=len)!r}?)"
    close = difflib.get_close_matches(word.lower(), options, n=1, cutoff=cutoff)
    return f" (did you mean {close[0]!r}?)" if close else ""


def suggest_keywords(init: Callable[..., None]) -> Callable[..., None]:
    """Wrap ``__init__`` so an unknown keyword names the near valid one.

    ``LocalResult(directory="x")`` raises ``ConfigurationError: LocalResult got an
    unknown keyword 'directory'; did you mean 'dir'?`` instead of a bare TypeError.
    """
    if getattr(init, "_suggests_keywords", False):
        return init
    signature = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            init(self, *args, **kwargs)
        except TypeError as exc:  # only then pay for the signature check
            try:
                signature.bind(self, *args, **kwargs)
            except TypeError:
                unknown = [k for k in kwargs if k not in signature.parameters]
                takes_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
                if unknown and not takes_any:
                    known = [
                        name
                        for name, p in signature.parameters.items()
                        if name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
                    ]
                    name = unknown[0]
                    hint = did_you_mean(name, known, cutoff=0.5) or f" (valid keywords: {known})"
                    from .errors import ConfigurationError  # errors import nothing of ours

                    raise ConfigurationError(
                        f"{type(self).__name__} got an unknown keyword {name!r}{hint}"
                    ) from exc
            raise

    wrapper._suggests_keywords = True  # type: ignore[attr-defined]
    return wrapper
